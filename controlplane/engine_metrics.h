// Maps one engine's scraped /metrics to the few signals routing uses: running, waiting,
// KV-cache usage (absent for TGI and current llama.cpp) and the TTFT histogram. Names per
// engine and version are in ../shared/samples/metrics/README.md; docs/CONTROLPLANE.md
// has the table this code implements.
#pragma once

#include <cstdint>
#include <string_view>
#include <utility>
#include <vector>

#include "common/config.h"
#include "controlplane/prom_parser.h"

namespace llmgw::cp {

struct EngineSignals {
  Engine engine = Engine::kAuto;  // kAuto: not recognised
  bool has_running = false, has_waiting = false, has_kv = false, has_ttft = false;
  double running = 0;
  double waiting = 0;
  double kv_usage = 0;  // fraction 0..1
  // TTFT histogram summed over series: cumulative (upper bound seconds, count) pairs.
  double ttft_sum_s = 0;
  double ttft_count = 0;
  std::vector<std::pair<double, double>> ttft_buckets;
};

// Guesses the engine from metric-name prefixes; kAuto when none matches.
Engine DetectEngine(const std::vector<PromSample>& samples);

// Extracts the signals; `engine` kAuto means detect.
EngineSignals ExtractSignals(const std::vector<PromSample>& samples, Engine engine);

// Quantile q of a cumulative histogram's difference `now - before` (both as from
// EngineSignals::ttft_buckets), in seconds; returns false when no observations.
bool HistogramQuantile(const std::vector<std::pair<double, double>>& now,
                       const std::vector<std::pair<double, double>>& before, double q, double* out);

}  // namespace llmgw::cp
