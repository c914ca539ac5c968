// Unit tests of ThreadStats (the per-thread stats slot) and AccessLog, on a slot in
// ordinary memory and a pipe: no shared memory, no other process.
#include "dataplane/thread_stats.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <memory>
#include <string>

#include "dataplane/access_log.h"

namespace llmgw::dataplane {
namespace {

uint64_t Get(const std::atomic<uint64_t>& a) { return a.load(); }

struct Fixture : ::testing::Test {
  std::unique_ptr<shm::StatsSlot> slot = std::make_unique<shm::StatsSlot>();
  ThreadStats stats;
  void SetUp() override { stats.Attach(slot.get(), /*slow_call_ms=*/100); }
};

using ThreadStatsTest = Fixture;

TEST_F(ThreadStatsTest, SuccessCountsForModelAndBackend) {
  stats.RequestRouted(2);
  EXPECT_EQ(Get(slot->models[2].active), 1u);
  stats.BackendPicked(5, 77, 1);
  stats.FirstToken(2, 5, 1500);
  stats.InterToken(2, 5, 300);
  RequestOutcome r;
  r.status = 200;
  r.duration_us = 20000;
  r.model = 2;
  r.backend = 5;
  r.prompt_tokens = 7;
  r.completion_tokens = 16;
  stats.EndRequest(r);
  EXPECT_EQ(Get(slot->requests_total), 1u);
  EXPECT_EQ(Get(slot->models[2].active), 0u);
  EXPECT_EQ(Get(slot->models[2].requests_by_code[shm::StatusCodeIndex(200)]), 1u);
  EXPECT_EQ(Get(slot->models[2].completion_tokens), 16u);
  EXPECT_EQ(Get(slot->backends[5].key), 77u);
  EXPECT_EQ(Get(slot->backends[5].picks), 1u);
  EXPECT_EQ(Get(slot->backends[5].successes), 1u);
  EXPECT_EQ(Get(slot->backends[5].prompt_tokens), 7u);
  EXPECT_EQ(Get(slot->backends[5].slow_calls), 0u);
  EXPECT_EQ(Get(slot->backends[5].ttft.count), 1u);
  EXPECT_EQ(Get(slot->ttft.sum_us), 1500u);
  // Per model and per backend: latency, TTFT and inter-token histograms.
  EXPECT_EQ(Get(slot->models[2].ttft.sum_us), 1500u);
  EXPECT_EQ(Get(slot->models[2].latency.sum_us), 20000u);
  EXPECT_EQ(Get(slot->models[2].inter_token.sum_us), 300u);
  EXPECT_EQ(Get(slot->backends[5].inter_token.count), 1u);
  EXPECT_EQ(Get(slot->inter_token.count), 1u);
}

TEST_F(ThreadStatsTest, StreamCutCountsUnderItsOwnCodeAndNotAsSuccess) {
  RequestOutcome r;
  r.status = 520;  // kStreamCutStatus: the head was 200, the stream broke
  r.model = 1;
  r.backend = 2;
  stats.EndRequest(r);
  EXPECT_EQ(Get(slot->models[1].requests_by_code[shm::StatusCodeIndex(520)]), 1u);
  EXPECT_EQ(Get(slot->models[1].requests_by_code[shm::StatusCodeIndex(200)]), 0u);
  EXPECT_EQ(shm::StatusCodeLabel(shm::StatusCodeIndex(520)), "520");
  EXPECT_EQ(Get(slot->backends[2].successes), 0u);
}

TEST_F(ThreadStatsTest, FailuresAndClientGone) {
  RequestOutcome r;
  r.status = 0;  // the client left: counted as 499, not a backend success
  r.duration_us = 10;
  r.model = 1;
  r.backend = 3;
  stats.EndRequest(r);
  EXPECT_EQ(Get(slot->models[1].requests_by_code[shm::StatusCodeIndex(499)]), 1u);
  EXPECT_EQ(Get(slot->backends[3].successes), 0u);
  r.status = 429;
  stats.EndRequest(r);
  EXPECT_EQ(Get(slot->backends[3].successes), 0u);
  stats.CountError(ErrorKind::kTimeout);
  EXPECT_EQ(Get(slot->errors_by_kind[static_cast<size_t>(ErrorKind::kTimeout)]), 1u);
  stats.UpstreamError(3, shm::UpstreamErr::kStatus5xx);
  EXPECT_EQ(Get(slot->backends[3].errors[static_cast<size_t>(shm::UpstreamErr::kStatus5xx)]), 1u);
  stats.Retry(1);
  stats.Fallback(1);
  stats.AdmissionRejected(1);
  EXPECT_EQ(Get(slot->retries), 1u);
  EXPECT_EQ(Get(slot->models[1].retries), 1u);
  EXPECT_EQ(Get(slot->models[1].fallbacks), 1u);
  EXPECT_EQ(Get(slot->models[1].rejected), 1u);
  EXPECT_EQ(Get(slot->admission_rejected), 1u);
}

TEST_F(ThreadStatsTest, RequestWithoutModelCountsOnlyTheThread) {
  RequestOutcome r;
  r.status = 404;
  r.duration_us = 5;
  stats.EndRequest(r);
  EXPECT_EQ(Get(slot->requests_total), 1u);
  EXPECT_EQ(Get(slot->latency.count), 0u);  // answered locally: no latency sample
  for (const auto& m : slot->models) EXPECT_EQ(Get(m.requests_by_code[shm::StatusCodeIndex(404)]), 0u);
  // ...but counted by code (llm_gateway_requests_total without a model label).
  EXPECT_EQ(Get(slot->unrouted_by_code[shm::StatusCodeIndex(404)]), 1u);
}

// Latency quantiles are those of requests a backend answered: llmgw's own quick answers
// (a model's 429 or 503 with no backend tried, /v1/models, 404s) are counted by code only.
TEST_F(ThreadStatsTest, LatencyCountsProxiedRequestsOnly) {
  RequestOutcome local;
  local.status = 429;
  local.duration_us = 40;
  local.model = 1;  // named a model, refused before any backend
  stats.EndRequest(local);
  EXPECT_EQ(Get(slot->models[1].requests_by_code[shm::StatusCodeIndex(429)]), 1u);
  EXPECT_EQ(Get(slot->latency.count), 0u);
  EXPECT_EQ(Get(slot->models[1].latency.count), 0u);
  RequestOutcome proxied = local;
  proxied.status = 200;
  proxied.duration_us = 250000;
  proxied.backend = 0;
  stats.EndRequest(proxied);
  EXPECT_EQ(Get(slot->latency.count), 1u);
  EXPECT_EQ(Get(slot->latency.sum_us), 250000u);
  EXPECT_EQ(Get(slot->models[1].latency.count), 1u);
  EXPECT_EQ(Get(slot->backends[0].latency.count), 1u);
}

TEST_F(ThreadStatsTest, SlowCallIsASlowHeadNotALongStream) {
  RequestOutcome r;
  r.status = 200;
  r.model = 0;
  r.backend = 0;
  r.duration_us = 5000000;  // a 5 s stream...
  r.attempt_wait_us = 2000;  // ...whose head came after 2 ms: not slow
  stats.EndRequest(r);
  EXPECT_EQ(Get(slot->backends[0].slow_calls), 0u);
  r.attempt_wait_us = 150000;  // 150 ms > 100 ms to the head
  stats.EndRequest(r);
  EXPECT_EQ(Get(slot->backends[0].slow_calls), 1u);
}

TEST_F(ThreadStatsTest, Connections) {
  stats.ConnectionOpened(1);
  stats.ConnectionOpened(2);
  stats.ConnectionClosed(1);
  EXPECT_EQ(Get(slot->connections_total), 2u);
  EXPECT_EQ(Get(slot->connections_open), 1u);
}

TEST(AccessLogTest, OneJsonLinePerRequest) {
  int p[2];
  ASSERT_EQ(::pipe(p), 0);
  AccessLog log;
  log.UseFd(p[1], 1.0);
  Rng rng(1);
  AccessRecord a;
  a.method = "POST";
  a.path = "/v1/chat/completions";
  a.status = 200;
  a.model = "m";
  a.attempts = 2;
  a.request_id = "abc";
  log.Write(a, &rng);
  char buf[4096];
  ssize_t n = ::read(p[0], buf, sizeof(buf));
  ASSERT_GT(n, 0);
  std::string line(buf, static_cast<size_t>(n));
  EXPECT_NE(line.find("\"status\":200"), std::string::npos) << line;
  EXPECT_NE(line.find("\"attempts\":2"), std::string::npos) << line;
  EXPECT_NE(line.find("abc"), std::string::npos) << line;
  EXPECT_EQ(line.back(), '\n');
  ::close(p[0]);
  ::close(p[1]);
}

// The fields nginx and Envoy operators expect: client, user agent, bytes both ways, the
// upstream address, status and time per attempt, response flags, trace id.
TEST(AccessLogTest, OperatorFields) {
  int p[2];
  ASSERT_EQ(::pipe(p), 0);
  AccessLog log;
  log.UseFd(p[1], 1.0);
  Rng rng(1);
  AccessRecord a;
  a.method = "POST";
  a.path = "/v1/chat/completions";
  a.status = 520;
  a.client_addr = "10.1.2.3:51000";
  a.user_agent = "OpenAI/Python 1.40.0 \"quoted\"";
  a.bytes_in = 321;
  a.bytes_out = 4567;
  a.upstream_addr = "10.0.0.2:8001";
  a.attempt_notes[0] = {503, 4500};
  a.attempt_notes[1] = {0, 2000000};
  a.attempt_notes[2] = {200, 812250};
  a.notes = 3;
  a.flags = kFlagRetried | kFlagStreamCut | kFlagUpstreamTimeout;
  a.trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
  log.Write(a, &rng);
  char buf[4096];
  ssize_t n = ::read(p[0], buf, sizeof(buf));
  ASSERT_GT(n, 0);
  std::string line(buf, static_cast<size_t>(n));
  for (const char* want : {"\"status\":520", "\"client\":\"10.1.2.3:51000\"",
                           "\"user_agent\":\"OpenAI/Python 1.40.0 \\\"quoted\\\"\"", "\"bytes_in\":321",
                           "\"bytes_out\":4567", "\"upstream\":\"10.0.0.2:8001\"", "\"upstream_status\":\"503,0,200\"",
                           "\"upstream_time_ms\":\"4.500,2000.000,812.250\"",
                           "\"flags\":\"retried,stream_cut,upstream_timeout\"",
                           "\"trace_id\":\"4bf92f3577b34da6a3ce929d0e0e4736\""})
    EXPECT_NE(line.find(want), std::string::npos) << want << "\n" << line;
  ::close(p[0]);
  ::close(p[1]);
}

TEST(AccessLogTest, SampleZeroWritesNothing) {
  int p[2];
  ASSERT_EQ(::pipe(p), 0);
  AccessLog log;
  log.UseFd(p[1], 0.0);
  Rng rng(7);
  AccessRecord a;
  for (int i = 0; i < 10; ++i) log.Write(a, &rng);
  ::close(p[1]);
  char buf[16];
  EXPECT_EQ(::read(p[0], buf, sizeof(buf)), 0);
  ::close(p[0]);
}

}  // namespace
}  // namespace llmgw::dataplane
