// Unit tests of TraceContext (dataplane/trace_context.h): W3C traceparent parsing (valid,
// invalid, future versions), formatting, head sampling, and a request's ids.
#include "dataplane/trace_context.h"

#include <gtest/gtest.h>

#include <string>

namespace llmgw::dataplane {
namespace {

constexpr char kValid[] = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

TEST(TraceContextTest, ParsesTheW3cExample) {
  TraceParent t;
  ASSERT_TRUE(ParseTraceparent(kValid, &t));
  EXPECT_EQ(t.trace_id[0], 0x4b);
  EXPECT_EQ(t.trace_id[15], 0x36);
  EXPECT_EQ(t.parent_id[0], 0x00);
  EXPECT_EQ(t.parent_id[7], 0xb7);
  EXPECT_TRUE(t.sampled());
  ASSERT_TRUE(ParseTraceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00", &t));
  EXPECT_FALSE(t.sampled());
}

TEST(TraceContextTest, RefusesInvalidHeaders) {
  TraceParent t;
  for (const char* bad : {
           "", "garbage", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0",  // short
           "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",                // uppercase
           "00-00000000000000000000000000000000-00f067aa0ba902b7-01",                // zero trace id
           "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",                // zero parent id
           "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",                // version ff
           "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",          // 00 with more
           "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",                // separator
           "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01"}) {             // not hex
    EXPECT_FALSE(ParseTraceparent(bad, &t)) << bad;
  }
  // A later version may append fields after a '-'.
  EXPECT_TRUE(ParseTraceparent("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-abcd", &t));
  EXPECT_FALSE(ParseTraceparent("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01abcd", &t));
}

TEST(TraceContextTest, FormatRoundTrips) {
  TraceParent t;
  ASSERT_TRUE(ParseTraceparent(kValid, &t));
  char out[kTraceparentLen];
  FormatTraceparent(t.trace_id, t.parent_id, true, out);
  EXPECT_EQ(std::string(out, kTraceparentLen), kValid);
}

TEST(TraceContextTest, SampledParentIsAlwaysRecordedAndContinued) {
  Rng rng(7);
  TraceContext c;
  c.Begin(kValid, /*sample=*/0.0, &rng);
  EXPECT_TRUE(c.has_parent());
  EXPECT_TRUE(c.sampled()) << "the client's sampled flag wins over sample: 0";
  TraceParent t;
  ParseTraceparent(kValid, &t);
  EXPECT_EQ(std::memcmp(c.trace_id(), t.trace_id, 16), 0);
  EXPECT_EQ(std::memcmp(c.parent_span(), t.parent_id, 8), 0);
  EXPECT_NE(std::memcmp(c.server_span(), t.parent_id, 8), 0);
  // The attempt's traceparent: same trace, the attempt span as parent, sampled.
  c.NewAttempt(&rng);
  char up[kTraceparentLen];
  c.UpstreamTraceparent(up);
  TraceParent u;
  ASSERT_TRUE(ParseTraceparent(std::string_view(up, kTraceparentLen), &u));
  EXPECT_EQ(std::memcmp(u.trace_id, t.trace_id, 16), 0);
  EXPECT_EQ(std::memcmp(u.parent_id, c.attempt_span(), 8), 0);
  EXPECT_NE(std::memcmp(c.attempt_span(), c.server_span(), 8), 0);
  EXPECT_TRUE(u.sampled());
}

TEST(TraceContextTest, NewTracesAreSampledAtTheConfiguredRate) {
  Rng rng(11);
  int sampled = 0;
  for (int i = 0; i < 20000; ++i) {
    TraceContext c;
    c.Begin("", 0.1, &rng);
    EXPECT_FALSE(c.has_parent());
    sampled += c.sampled();
  }
  EXPECT_GT(sampled, 1700);
  EXPECT_LT(sampled, 2300);
  TraceContext all, none;
  all.Begin("", 1.0, &rng);
  none.Begin("", 0.0, &rng);
  EXPECT_TRUE(all.sampled());
  EXPECT_FALSE(none.sampled());
  // An unsampled parent is sampled by rate on its trace id (1.0: always).
  TraceContext up;
  up.Begin("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00", 1.0, &rng);
  EXPECT_TRUE(up.sampled());
  EXPECT_FALSE(up.parent_sampled());
}

TEST(TraceContextTest, SamplingDependsOnlyOnTheTraceId) {
  TraceParent t;
  ParseTraceparent(kValid, &t);
  bool a = SampleTrace(t.trace_id, 0.5), b = SampleTrace(t.trace_id, 0.5);
  EXPECT_EQ(a, b);
}

}  // namespace
}  // namespace llmgw::dataplane
