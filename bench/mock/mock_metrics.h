// What llmgw-mock counts, and how it writes those counts as /metrics in the Prometheus
// text format of the engine it pretends to be (vLLM, SGLang, TGI or llama.cpp server), so
// the control plane's scraper mappings can be tested against each.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace llmgw::mock {

enum class EngineFlavor : uint8_t { kVllm, kSglang, kTgi, kLlamacpp };
bool ParseEngineFlavor(std::string_view s, EngineFlavor* out);

class Histogram {
 public:
  explicit Histogram(std::vector<double> bounds) : bounds_(std::move(bounds)), counts_(bounds_.size(), 0) {}
  void Observe(double v);
  const std::vector<double>& bounds() const { return bounds_; }
  const std::vector<uint64_t>& counts() const { return counts_; }  // not cumulative
  uint64_t count() const { return count_; }
  double sum() const { return sum_; }

 private:
  std::vector<double> bounds_;
  std::vector<uint64_t> counts_;
  uint64_t count_ = 0;
  double sum_ = 0;
};

struct MockMetrics {
  MockMetrics();
  Histogram ttft_seconds;
  Histogram inter_token_seconds;
  Histogram e2e_seconds;
  Histogram queue_seconds;
  uint64_t prompt_tokens_total = 0;
  uint64_t generation_tokens_total = 0;
  uint64_t success_stop = 0, success_length = 0, success_abort = 0;
  uint64_t errors_injected = 0;
};

// The gauges sampled at scrape time.
struct EngineGauges {
  int running = 0;
  int waiting = 0;
  double kv_usage = 0;          // 0-1
  int64_t kv_tokens_held = 0;
  uint64_t prefix_queries_tokens = 0, prefix_hit_tokens = 0;
  uint64_t prefix_queries_blocks = 0, prefix_hit_blocks = 0;
  uint64_t steps = 0;
};

void RenderMetrics(EngineFlavor flavor, std::string_view model, const MockMetrics& m,
                   const EngineGauges& g, std::string* out);

}  // namespace llmgw::mock
