// The scraped-metrics parser and engine mappings on the real engines' samples in
// ../shared/samples/metrics (each was captured with 5 running, 3 waiting and 62 % KV
// usage where the engine exports it) and on garbage.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>

#include "controlplane/engine_metrics.h"
#include "controlplane/prom_parser.h"

namespace llmgw::cp {
namespace {

std::string SamplesDir() {
  for (const char* d : {"../shared/samples/metrics", "/work/shared/samples/metrics"})
    if (std::filesystem::exists(d)) return d;
  return "";
}

std::string ReadFile(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

struct Expect {
  const char* file;
  Engine engine;
  bool has_kv;
  bool has_ttft;
};

TEST(PromParserTest, EverySampleFileParsesWithoutBadLines) {
  std::string dir = SamplesDir();
  ASSERT_FALSE(dir.empty()) << "samples dir not found";
  int files = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    if (e.path().extension() != ".txt") continue;
    ++files;
    auto r = ParsePrometheusText(ReadFile(e.path()));
    EXPECT_EQ(r.bad_lines, 0u) << e.path();
    EXPECT_GT(r.samples.size(), 10u) << e.path();
    EXPECT_FALSE(r.truncated);
  }
  EXPECT_GE(files, 6);
}

TEST(PromParserTest, EngineSignalsFromEachSample) {
  std::string dir = SamplesDir();
  ASSERT_FALSE(dir.empty());
  const Expect cases[] = {
      {"vllm-v1.txt", Engine::kVllm, true, true},   {"vllm-v0.txt", Engine::kVllm, true, true},
      {"sglang.txt", Engine::kSglang, true, true},  {"tgi.txt", Engine::kTgi, false, false},
      {"llamacpp.txt", Engine::kLlamaCpp, false, false},
      {"trtllm.txt", Engine::kTrtLlm, true, true},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.file);
    auto r = ParsePrometheusText(ReadFile(dir + "/" + c.file));
    EXPECT_EQ(DetectEngine(r.samples), c.engine);
    auto s = ExtractSignals(r.samples, Engine::kAuto);
    EXPECT_EQ(s.engine, c.engine);
    EXPECT_TRUE(s.has_running);
    EXPECT_TRUE(s.has_waiting);
    EXPECT_DOUBLE_EQ(s.running, 5.0);
    EXPECT_DOUBLE_EQ(s.waiting, 3.0);
    EXPECT_EQ(s.has_kv, c.has_kv);
    if (c.has_kv) {
      EXPECT_NEAR(s.kv_usage, 0.62, 0.001);
    }
    EXPECT_EQ(s.has_ttft, c.has_ttft);
    if (c.has_ttft) {
      EXPECT_GT(s.ttft_count, 1000);
      EXPECT_GT(s.ttft_sum_s, 0);
      double p50 = 0, p99 = 0;
      ASSERT_TRUE(HistogramQuantile(s.ttft_buckets, {}, 0.5, &p50));
      ASSERT_TRUE(HistogramQuantile(s.ttft_buckets, {}, 0.99, &p99));
      EXPECT_GT(p50, 0);
      EXPECT_GE(p99, p50);
    }
  }
}

TEST(PromParserTest, ConfiguredEngineOverridesDetection) {
  auto r = ParsePrometheusText("vllm:num_requests_running 2\ntgi_queue_size 7\n");
  auto s = ExtractSignals(r.samples, Engine::kTgi);
  EXPECT_EQ(s.engine, Engine::kTgi);
  EXPECT_TRUE(s.has_waiting);
  EXPECT_DOUBLE_EQ(s.waiting, 7);
  EXPECT_FALSE(s.has_running);
}

TEST(PromParserTest, VllmOldKvNameAndSumOverEngines) {
  auto r = ParsePrometheusText(
      "vllm:num_requests_running{engine=\"0\"} 2\nvllm:num_requests_running{engine=\"1\"} 3\n"
      "vllm:gpu_cache_usage_perc{engine=\"0\"} 0.2\nvllm:gpu_cache_usage_perc{engine=\"1\"} 0.4\n");
  auto s = ExtractSignals(r.samples, Engine::kAuto);
  EXPECT_DOUBLE_EQ(s.running, 5);
  EXPECT_NEAR(s.kv_usage, 0.3, 1e-9);
  EXPECT_FALSE(s.has_waiting);
}

TEST(PromParserTest, LabelsEscapesTimestampsAndNumberForms) {
  auto r = ParsePrometheusText(
      "# HELP x y \n# TYPE x gauge\n\n"
      "a{l=\"q\\\"uote\\\\ \\n\",_b=\"2\",} 1.7893921874214146e+09 1700000000000\r\n"
      "b 6.1442531328e+010\nc +Inf\nd NaN\ne{le=\"0.00015000000000000001\"} 5\n");
  ASSERT_EQ(r.samples.size(), 5u);
  EXPECT_EQ(r.bad_lines, 0u);
  EXPECT_EQ(r.samples[0].Label("l"), "q\"uote\\ \n");
  EXPECT_EQ(r.samples[0].Label("_b"), "2");
  EXPECT_DOUBLE_EQ(r.samples[1].value, 6.1442531328e10);
  EXPECT_TRUE(std::isinf(r.samples[2].value));
  EXPECT_TRUE(std::isnan(r.samples[3].value));
}

TEST(PromParserTest, GarbageIsSkippedNotFatal) {
  const char* bad[] = {
      "}{}{", "name{", "name{a=\"1\"", "name{a=1} 2", "name 1 2 3", "1abc 2", "name 0x10",
      "name{a=\"unterminated} 1", "name  ", "\xff\xfe\x00garbage", "name{=\"\"} 1",
  };
  for (const char* b : bad) {
    auto r = ParsePrometheusText(b);
    EXPECT_TRUE(r.samples.empty()) << b;
  }
  auto mixed = ParsePrometheusText("junk line\nvllm:num_requests_waiting 4\n{{{\n");
  ASSERT_EQ(mixed.samples.size(), 1u);
  EXPECT_EQ(mixed.bad_lines, 2u);
}

TEST(PromParserTest, RandomBytesAndMutatedSamplesNeverCrash) {
  std::mt19937_64 rng(42);
  std::string base = "vllm:num_requests_running{engine=\"0\",model_name=\"m\"} 5.0\n"
                     "vllm:time_to_first_token_seconds_bucket{le=\"0.1\"} 3\n";
  for (int i = 0; i < 2000; ++i) {
    std::string s = base;
    int flips = 1 + static_cast<int>(rng() % 8);
    for (int j = 0; j < flips; ++j) s[rng() % s.size()] = static_cast<char>(rng() & 0xff);
    auto r = ParsePrometheusText(s);
    auto sig = ExtractSignals(r.samples, Engine::kAuto);
    double q;
    HistogramQuantile(sig.ttft_buckets, {}, 0.9, &q);
  }
  std::string noise(100000, '\0');
  for (auto& c : noise) c = static_cast<char>(rng() & 0xff);
  auto r = ParsePrometheusText(noise);
  EXPECT_LE(r.samples.size(), 100000u);
}

TEST(PromParserTest, CapsBoundWork) {
  std::string many;
  for (int i = 0; i < 100; ++i) many += "x 1\n";
  PromParseLimits lim;
  lim.max_samples = 10;
  auto r = ParsePrometheusText(many, lim);
  EXPECT_EQ(r.samples.size(), 10u);
  EXPECT_TRUE(r.truncated);
  std::string longline = "y{a=\"" + std::string(100000, 'z') + "\"} 1\n";
  EXPECT_TRUE(ParsePrometheusText(longline).samples.empty());
}

TEST(HistogramQuantileTest, UsesDeltaSinceLastScrape) {
  std::vector<std::pair<double, double>> before = {{0.1, 10}, {1, 10}, {INFINITY, 10}};
  std::vector<std::pair<double, double>> now = {{0.1, 10}, {1, 20}, {INFINITY, 20}};
  double q;
  ASSERT_TRUE(HistogramQuantile(now, before, 0.5, &q));
  EXPECT_GT(q, 0.1);  // all new observations fell in (0.1, 1]
  EXPECT_LE(q, 1.0);
  EXPECT_FALSE(HistogramQuantile(now, now, 0.5, &q));
}

}  // namespace
}  // namespace llmgw::cp
