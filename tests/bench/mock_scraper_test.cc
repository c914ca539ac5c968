// The mock's /metrics, in every engine flavour, read by the project's own scraper
// (controlplane's Prometheus parser + engine mappings): what the mock reports is what
// llmcd will see, and the engine is detected from the names alone.
#include <gtest/gtest.h>

#include <string>

#include "bench/mock/mock_metrics.h"
#include "controlplane/engine_metrics.h"
#include "controlplane/prom_parser.h"

namespace llmgw {
namespace {

struct FlavorCase {
  mock::EngineFlavor flavor;
  Engine engine;
  bool has_kv;    // TGI and current llama.cpp export no KV usage
  bool has_ttft;  // TGI and llama.cpp export no TTFT histogram
};

class MockScraperTest : public ::testing::TestWithParam<FlavorCase> {};

TEST_P(MockScraperTest, ScraperReadsWhatTheMockReports) {
  const FlavorCase& fc = GetParam();
  mock::MockMetrics m;
  m.ttft_seconds.Observe(0.05);
  m.ttft_seconds.Observe(0.2);
  m.inter_token_seconds.Observe(0.02);
  m.e2e_seconds.Observe(1.2);
  m.prompt_tokens_total = 100;
  m.generation_tokens_total = 40;
  mock::EngineGauges g;
  g.running = 5;
  g.waiting = 3;
  g.kv_usage = 0.62;
  std::string text;
  mock::RenderMetrics(fc.flavor, "m1", m, g, &text);

  cp::PromParseResult parsed = cp::ParsePrometheusText(text);
  EXPECT_EQ(parsed.bad_lines, 0u) << text;
  EXPECT_FALSE(parsed.truncated);
  EXPECT_EQ(cp::DetectEngine(parsed.samples), fc.engine);

  cp::EngineSignals s = cp::ExtractSignals(parsed.samples, Engine::kAuto);
  EXPECT_EQ(s.engine, fc.engine);
  ASSERT_TRUE(s.has_running);
  ASSERT_TRUE(s.has_waiting);
  EXPECT_DOUBLE_EQ(s.running, 5);
  EXPECT_DOUBLE_EQ(s.waiting, 3);
  EXPECT_EQ(s.has_kv, fc.has_kv);
  if (fc.has_kv) {
    EXPECT_NEAR(s.kv_usage, 0.62, 1e-9);
  }
  EXPECT_EQ(s.has_ttft, fc.has_ttft);
  if (fc.has_ttft) {
    EXPECT_DOUBLE_EQ(s.ttft_count, 2);
    double p50 = 0;
    ASSERT_TRUE(cp::HistogramQuantile(s.ttft_buckets, {}, 0.5, &p50));
    EXPECT_GT(p50, 0.0);
    EXPECT_LE(p50, 0.25);
  }
}

INSTANTIATE_TEST_SUITE_P(
    Flavors, MockScraperTest,
    ::testing::Values(FlavorCase{mock::EngineFlavor::kVllm, Engine::kVllm, true, true},
                      FlavorCase{mock::EngineFlavor::kSglang, Engine::kSglang, true, true},
                      FlavorCase{mock::EngineFlavor::kTgi, Engine::kTgi, false, false},
                      FlavorCase{mock::EngineFlavor::kLlamacpp, Engine::kLlamaCpp, false, false}),
    [](const ::testing::TestParamInfo<FlavorCase>& i) {
      return std::string(EngineName(i.param.engine));
    });

}  // namespace
}  // namespace llmgw
