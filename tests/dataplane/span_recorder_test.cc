// Unit tests of SpanRecorder (dataplane/span_recorder.h): the records a request and its
// attempts leave in the ring — ids and parentage, times, attributes, sampling.
#include "dataplane/span_recorder.h"

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

namespace llmgw::dataplane {
namespace {

constexpr char kParent[] = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

std::vector<shm::SpanRecord> Drain(shm::SpanRing* ring) {
  std::vector<shm::SpanRecord> out;
  shm::SpanRingReader(ring).Drain([&](const shm::SpanRecord& r) { out.push_back(r); });
  return out;
}

TEST(SpanRecorderTest, RequestAndAttemptsFormOneTree) {
  auto ring = std::make_unique<shm::SpanRing>();
  SpanRecorder rec;
  rec.Attach(ring.get(), true, 0.0);
  Rng rng(3);
  TraceContext t;
  t.Begin(kParent, rec.sample(), &rng);  // the client sampled it
  uint64_t unix0 = 1'700'000'000'000'000'000ull, us0 = 5'000'000;
  t.NewAttempt(&rng);
  uint8_t first_attempt[8];
  std::memcpy(first_attempt, t.attempt_span(), 8);
  AttemptSpan a;
  a.start_us = us0 + 100;
  a.end_us = us0 + 5100;
  a.status = 503;
  a.error_kind = 9;
  a.backend = 0;
  a.model = 0;
  a.operation = shm::SpanOperation::kChat;
  ASSERT_TRUE(rec.Attempt(t, unix0, us0, a, "k=v"));
  t.NewAttempt(&rng);
  a.attempt = 2;
  a.reason = shm::AttemptReason::kRetry;
  a.start_us = us0 + 6000;
  a.first_token_us = us0 + 48000;
  a.end_us = us0 + 900000;
  a.status = 200;
  a.error_kind = 0;
  a.backend = 1;
  ASSERT_TRUE(rec.Attempt(t, unix0, us0, a, "k=v"));
  RequestSpan q;
  q.start_us = us0;
  q.end_us = us0 + 900100;
  q.first_token_us = us0 + 48000;
  q.status = 200;
  q.attempts = 2;
  q.stream = true;
  q.operation = shm::SpanOperation::kChat;
  q.model = 0;
  q.backend = 1;
  q.request_model = "default";
  q.request_id = "rid";
  q.trace_state = "k=v";
  ASSERT_TRUE(rec.Request(t, unix0, q));

  auto spans = Drain(ring.get());
  ASSERT_EQ(spans.size(), 3u);
  const auto &a1 = spans[0], &a2 = spans[1], &srv = spans[2];
  TraceParent p;
  ParseTraceparent(kParent, &p);
  for (const auto& s : spans) EXPECT_EQ(std::memcmp(s.trace_id, p.trace_id, 16), 0);
  EXPECT_EQ(srv.kind, static_cast<uint8_t>(shm::SpanKind::kServer));
  EXPECT_EQ(std::memcmp(srv.parent_span_id, p.parent_id, 8), 0) << "continues the client's span";
  EXPECT_EQ(std::memcmp(srv.span_id, t.server_span(), 8), 0);
  EXPECT_EQ(std::memcmp(a1.parent_span_id, t.server_span(), 8), 0);
  EXPECT_EQ(std::memcmp(a2.parent_span_id, t.server_span(), 8), 0);
  EXPECT_EQ(std::memcmp(a1.span_id, first_attempt, 8), 0);
  EXPECT_NE(std::memcmp(a1.span_id, a2.span_id, 8), 0);
  EXPECT_EQ(a1.start_unix_ns, unix0 + 100'000);
  EXPECT_EQ(a1.end_unix_ns, unix0 + 5'100'000);
  EXPECT_EQ(a1.status_code, 503);
  EXPECT_EQ(a1.first_token_unix_ns, 0u);
  EXPECT_EQ(a2.reason, static_cast<uint8_t>(shm::AttemptReason::kRetry));
  EXPECT_EQ(a2.first_token_unix_ns, unix0 + 48'000'000);
  EXPECT_EQ(a2.operation, static_cast<uint8_t>(shm::SpanOperation::kChat));
  EXPECT_EQ(srv.end_unix_ns - srv.start_unix_ns, 900'100'000u);
  EXPECT_STREQ(srv.request_model, "default");
  EXPECT_STREQ(srv.trace_state, "k=v");
  EXPECT_EQ(srv.sampled_by_parent, 1);
  EXPECT_EQ(srv.attempt, 2);
}

TEST(SpanRecorderTest, NothingWhenDisabledOrUnsampled) {
  auto ring = std::make_unique<shm::SpanRing>();
  Rng rng(5);
  SpanRecorder off;
  off.Attach(ring.get(), false, 1.0);
  TraceContext t;
  t.Begin("", 1.0, &rng);
  EXPECT_FALSE(off.Request(t, 1, RequestSpan{}));
  SpanRecorder on;
  on.Attach(ring.get(), true, 0.0);
  TraceContext u;
  u.Begin("", on.sample(), &rng);  // sample 0, no parent: not recorded
  EXPECT_FALSE(on.Request(u, 1, RequestSpan{}));
  EXPECT_TRUE(Drain(ring.get()).empty());
}

TEST(SpanRecorderTest, OversizedTraceStateIsDroppedNotCut) {
  auto ring = std::make_unique<shm::SpanRing>();
  SpanRecorder rec;
  rec.Attach(ring.get(), true, 1.0);
  Rng rng(9);
  TraceContext t;
  t.Begin("", 1.0, &rng);
  std::string big(300, 'a');
  RequestSpan q;
  q.trace_state = big;
  ASSERT_TRUE(rec.Request(t, 1, q));
  auto spans = Drain(ring.get());
  ASSERT_EQ(spans.size(), 1u);
  EXPECT_STREQ(spans[0].trace_state, "");
  EXPECT_EQ(spans[0].parent_span_id[0] | spans[0].parent_span_id[7], 0) << "a new trace is a root";
}

}  // namespace
}  // namespace llmgw::dataplane
