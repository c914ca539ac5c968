// Unit tests for llmgw-bench: percentiles and summaries on synthetic inputs, workload
// generation (distributions, shared prefixes, stream mix), and flag parsing.
#include <gtest/gtest.h>

#include <set>

#include "bench/loadgen/loadgen.h"
#include "bench/loadgen/stats.h"

namespace llmgw::bench {
namespace {

TEST(SamplesTest, PercentilesInterpolateBetweenRanks) {
  Samples s;
  for (int i = 100; i >= 1; --i) s.Add(i);  // unsorted input
  EXPECT_DOUBLE_EQ(s.Percentile(0), 1);
  EXPECT_DOUBLE_EQ(s.Percentile(100), 100);
  EXPECT_DOUBLE_EQ(s.Percentile(50), 50.5);
  EXPECT_NEAR(s.Percentile(99), 99.01, 1e-9);
  EXPECT_NEAR(s.Percentile(90), 90.1, 1e-9);
  EXPECT_DOUBLE_EQ(s.Mean(), 50.5);
  EXPECT_DOUBLE_EQ(s.Min(), 1);
  EXPECT_DOUBLE_EQ(s.Max(), 100);
}

TEST(SamplesTest, EmptyAndSingle) {
  Samples e;
  EXPECT_EQ(e.Percentile(50), 0);
  EXPECT_EQ(e.Mean(), 0);
  Samples one;
  one.Add(7);
  EXPECT_EQ(one.Percentile(1), 7);
  EXPECT_EQ(one.Percentile(99.9), 7);
  EXPECT_EQ(one.Stddev(), 0);
}

TEST(SamplesTest, AddAfterQueryResorts) {
  Samples s;
  s.Add(5);
  s.Add(1);
  EXPECT_EQ(s.Max(), 5);
  s.Add(10);
  EXPECT_EQ(s.Max(), 10);
  EXPECT_EQ(s.Percentile(50), 5);
}

TEST(SamplesTest, TailOfABimodalSet) {
  Samples s;
  for (int i = 0; i < 990; ++i) s.Add(0.010);
  for (int i = 0; i < 10; ++i) s.Add(1.0);
  EXPECT_DOUBLE_EQ(s.Percentile(50), 0.010);
  EXPECT_DOUBLE_EQ(s.Percentile(99.9), 1.0);
  EXPECT_NEAR(s.Mean(), 0.0199, 1e-9);
}

TEST(RunStatsTest, JsonHasRatesAndErrorKinds) {
  RunStats r;
  r.sent = 12;
  r.ok = 10;
  r.elapsed_s = 2;
  r.errors["http_503"] = 1;
  r.errors["reset"] = 1;
  for (int i = 0; i < 10; ++i) {
    r.e2e_s.Add(0.1);
    r.tokens.Add(5);
  }
  std::string j = RunStatsJson(r, "{\"x\":1}");
  EXPECT_NE(j.find("\"throughput_rps\":5.000"), std::string::npos) << j;
  EXPECT_NE(j.find("\"output_tokens_per_s\":25.000"), std::string::npos) << j;
  EXPECT_NE(j.find("\"errors_total\":2"), std::string::npos);
  EXPECT_NE(j.find("\"http_503\":1"), std::string::npos);
  EXPECT_NE(j.find("\"e2e_ms\":{\"count\":10,\"mean\":100"), std::string::npos) << j;
  EXPECT_NE(j.find("\"config\":{\"x\":1}"), std::string::npos);
}

TEST(RunStatsTest, TimelineBucketsByCompletionTime) {
  RunStats r;
  r.timeline_t0 = 100.0;
  r.MarkOk(100.05, 0.010);   // bucket 0
  r.MarkOk(100.09, 0.030);   // bucket 0, larger e2e wins
  r.AddError("http_503", 100.25);  // bucket 2
  r.MarkOk(100.31, 0.005);   // bucket 3
  EXPECT_EQ(r.errors["http_503"], 1u);
  ASSERT_EQ(r.tl_ok.size(), 4u);
  EXPECT_EQ(r.tl_ok[0], 2u);
  EXPECT_EQ(r.tl_ok[1], 0u);
  EXPECT_EQ(r.tl_errors[2], 1u);
  EXPECT_EQ(r.tl_ok[3], 1u);
  EXPECT_DOUBLE_EQ(r.tl_e2e_max_s[0], 0.030);
  std::string j = RunStatsJson(r, "");
  EXPECT_NE(j.find("\"timeline\":{\"bucket_ms\":100,\"ok\":[2,0,0,1],\"errors\":[0,0,1,0],"
                   "\"e2e_ms_max\":[30.000,0.000,0.000,5.000]}"),
            std::string::npos)
      << j;
}

TEST(WorkloadTest, RejectsBadDistribution) {
  for (const char* bad : {"fixed", "fixed:0", "uniform:10:5", "lognormal:x:1", "zipf:3"}) {
    WorkloadOptions o;
    o.prompt_dist = bad;
    Workload w(o, 1);
    std::string err;
    EXPECT_FALSE(w.Init(&err)) << bad;
    EXPECT_NE(err.find("--prompt-tokens"), std::string::npos);
  }
}

TEST(WorkloadTest, UniformStaysInRangeAndSpreads) {
  WorkloadOptions o;
  o.prompt_dist = "uniform:10:20";
  Workload w(o, 7);
  std::string err;
  ASSERT_TRUE(w.Init(&err));
  std::set<int> seen;
  for (int i = 0; i < 2000; ++i) {
    int n = w.SamplePromptTokens();
    ASSERT_GE(n, 10);
    ASSERT_LE(n, 20);
    seen.insert(n);
  }
  EXPECT_EQ(seen.size(), 11u);
}

TEST(WorkloadTest, LognormalMedianIsNearTarget) {
  WorkloadOptions o;
  o.prompt_dist = "lognormal:200:0.5";
  Workload w(o, 3);
  std::string err;
  ASSERT_TRUE(w.Init(&err));
  Samples s;
  for (int i = 0; i < 5000; ++i) s.Add(w.SamplePromptTokens());
  EXPECT_NEAR(s.Percentile(50), 200, 15);
}

TEST(WorkloadTest, SharedPrefixGroupsAndStreamMix) {
  WorkloadOptions o;
  o.prompt_dist = "fixed:8";
  o.prefix_groups = 3;
  o.prefix_tokens = 16;
  o.stream_ratio = 0.25;
  o.models = {"a", "b"};
  o.max_tokens = 9;
  Workload w(o, 11);
  std::string err;
  ASSERT_TRUE(w.Init(&err));
  std::set<std::string> prefixes, models;
  int streams = 0;
  for (int i = 0; i < 400; ++i) {
    BuiltRequest r;
    w.Next(&r);
    EXPECT_EQ(r.prompt_tokens, 24);
    size_t c = r.raw.find("\"content\":\"");
    ASSERT_NE(c, std::string::npos);
    prefixes.insert(r.raw.substr(c + 11, 16 * 4));
    models.insert(r.raw.substr(r.raw.find("\"model\":\"") + 9, 1));
    EXPECT_NE(r.raw.find("\"max_tokens\":9"), std::string::npos);
    if (r.stream) {
      ++streams;
      EXPECT_NE(r.raw.find("\"include_usage\":true"), std::string::npos);
    }
    size_t cl = r.raw.find("Content-Length: ");
    size_t body = r.raw.find("\r\n\r\n") + 4;
    EXPECT_EQ(std::stoul(r.raw.substr(cl + 16)), r.raw.size() - body);
  }
  EXPECT_EQ(prefixes.size(), 3u);
  EXPECT_EQ(models.size(), 2u);
  EXPECT_NEAR(streams, 100, 30);
}

TEST(BenchArgsTest, ParsesAndRejects) {
  const char* good[] = {"llmgw-bench", "--target", "127.0.0.1:9000", "--rate", "50", "--model", "x,y",
                        "--no-progress"};
  BenchArgs a;
  std::string err;
  ASSERT_TRUE(ParseBenchArgs(8, const_cast<char**>(good), &a, &err)) << err;
  EXPECT_EQ(a.load.port, 9000);
  EXPECT_EQ(a.load.rate, 50);
  EXPECT_EQ(a.work.models.size(), 2u);
  const char* no_mode[] = {"llmgw-bench", "--target", "127.0.0.1:9000"};
  BenchArgs b;
  EXPECT_FALSE(ParseBenchArgs(3, const_cast<char**>(no_mode), &b, &err));
  const char* bad_ratio[] = {"llmgw-bench", "--rate", "1", "--stream-ratio", "2"};
  BenchArgs c;
  EXPECT_FALSE(ParseBenchArgs(5, const_cast<char**>(bad_ratio), &c, &err));
  EXPECT_NE(err.find("--stream-ratio"), std::string::npos);
}

}  // namespace
TEST(RunStatsTest, WarmupSeparatesSteadyStateFigures) {
  RunStats r;
  r.timeline_t0 = 100.0;
  EXPECT_FALSE(r.Steady(150.0)) << "no --warmup: no steady-state series";
  std::string json = RunStatsJson(r, "{}");
  EXPECT_EQ(json.find("ttft_steady_ms"), std::string::npos);
  r.warmup_s = 2.0;
  EXPECT_FALSE(r.Steady(101.5));
  EXPECT_TRUE(r.Steady(102.0));
  EXPECT_TRUE(r.Steady(130.0));
  r.ttft_steady_s.Add(0.25);
  json = RunStatsJson(r, "{}");
  EXPECT_NE(json.find("\"ttft_steady_ms\":{\"count\":1"), std::string::npos) << json;
  EXPECT_NE(json.find("\"e2e_steady_ms\""), std::string::npos);
}

}  // namespace llmgw::bench
