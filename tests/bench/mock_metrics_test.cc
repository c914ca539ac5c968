// Unit tests: every engine flavor of the mock's /metrics parses as Prometheus text and
// carries the names the scraper maps (see /work/shared/samples/metrics/README.md).
#include "bench/mock/mock_metrics.h"

#include <gtest/gtest.h>

#include "tests/bench/prom_text_check.h"

namespace llmgw::mock {
namespace {

struct Rendered {
  testing::PromParse parse;
  std::string text;
};

Rendered Render(EngineFlavor f) {
  MockMetrics m;
  m.ttft_seconds.Observe(0.05);
  m.ttft_seconds.Observe(3);
  m.inter_token_seconds.Observe(0.02);
  m.e2e_seconds.Observe(1.2);
  m.prompt_tokens_total = 100;
  m.generation_tokens_total = 40;
  m.success_stop = 2;
  EngineGauges g;
  g.running = 5;
  g.waiting = 3;
  g.kv_usage = 0.62;
  g.prefix_queries_tokens = 100;
  g.prefix_hit_tokens = 25;
  g.prefix_queries_blocks = 4;
  g.prefix_hit_blocks = 1;
  Rendered r;
  RenderMetrics(f, "m1", m, g, &r.text);
  std::string err;
  EXPECT_TRUE(testing::ParsePrometheusText(r.text, &r.parse, &err)) << err;
  return r;
}

TEST(MockMetricsTest, VllmNamesAndValues) {
  auto r = Render(EngineFlavor::kVllm);
  EXPECT_EQ(r.parse.Value("vllm:num_requests_running", "model_name=\"m1\""), 5);
  EXPECT_EQ(r.parse.Value("vllm:num_requests_waiting"), 3);
  EXPECT_DOUBLE_EQ(r.parse.Value("vllm:kv_cache_usage_perc"), 0.62);
  EXPECT_DOUBLE_EQ(r.parse.Value("vllm:gpu_cache_usage_perc"), 0.62);
  EXPECT_DOUBLE_EQ(r.parse.Value("vllm:gpu_prefix_cache_hit_rate"), 0.25);
  EXPECT_EQ(r.parse.types["vllm:time_to_first_token_seconds"], "histogram");
  EXPECT_EQ(r.parse.types["vllm:inter_token_latency_seconds"], "histogram");
  EXPECT_EQ(r.parse.Value("vllm:time_to_first_token_seconds_count"), 2);
  EXPECT_EQ(r.parse.Value("vllm:time_to_first_token_seconds_bucket", "le=\"0.06\""), 1);
  EXPECT_EQ(r.parse.Value("vllm:prompt_tokens_total"), 100);
  EXPECT_EQ(r.parse.Value("vllm:generation_tokens_total"), 40);
  EXPECT_EQ(r.parse.Value("vllm:request_success_total", "finished_reason=\"stop\""), 2);
}

TEST(MockMetricsTest, SglangNames) {
  auto r = Render(EngineFlavor::kSglang);
  EXPECT_EQ(r.parse.Value("sglang:num_running_reqs"), 5);
  EXPECT_EQ(r.parse.Value("sglang:num_queue_reqs"), 3);
  EXPECT_DOUBLE_EQ(r.parse.Value("sglang:token_usage"), 0.62);
  EXPECT_DOUBLE_EQ(r.parse.Value("sglang:cache_hit_rate"), 0.25);
  EXPECT_EQ(r.parse.types["sglang:time_to_first_token_seconds"], "histogram");
  EXPECT_EQ(r.text.find("vllm:"), std::string::npos);
}

TEST(MockMetricsTest, TgiNames) {
  auto r = Render(EngineFlavor::kTgi);
  EXPECT_EQ(r.parse.Value("tgi_batch_current_size"), 5);
  EXPECT_EQ(r.parse.Value("tgi_queue_size"), 3);
  EXPECT_EQ(r.parse.types["tgi_request_count"], "counter");
  EXPECT_EQ(r.parse.types["tgi_request_mean_time_per_token_duration"], "histogram");
}

TEST(MockMetricsTest, LlamacppNames) {
  auto r = Render(EngineFlavor::kLlamacpp);
  EXPECT_EQ(r.parse.Value("llamacpp:requests_processing"), 5);
  EXPECT_EQ(r.parse.Value("llamacpp:requests_deferred"), 3);
  EXPECT_EQ(r.parse.Value("llamacpp:prompt_tokens_cached_total"), 25);
  EXPECT_EQ(r.parse.Value("llamacpp:prompt_tokens_total"), 75);  // excludes cached
}

TEST(MockMetricsTest, CheckerRejectsBrokenText) {
  testing::PromParse p;
  std::string err;
  EXPECT_FALSE(testing::ParsePrometheusText("x 1\n", &p, &err));  // no TYPE
  testing::PromParse p2;
  EXPECT_FALSE(testing::ParsePrometheusText("# TYPE x gauge\nx{a=1} 1\n", &p2, &err));
  testing::PromParse p3;
  EXPECT_FALSE(testing::ParsePrometheusText(
      "# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\nh_count 1\n", &p3, &err));
}

TEST(MockMetricsTest, ParsesEngineFlavors) {
  EngineFlavor f;
  EXPECT_TRUE(ParseEngineFlavor("tgi", &f));
  EXPECT_EQ(f, EngineFlavor::kTgi);
  EXPECT_FALSE(ParseEngineFlavor("triton", &f));
}

}  // namespace
}  // namespace llmgw::mock
