// libFuzzer target for the scraped-metrics parser (controlplane/prom_parser.cc) and the
// engine mappings on top of it: a backend's /metrics may send anything, so any input must
// parse without crashing, hanging or reading out of bounds, and the parser's caps hold.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "controlplane/engine_metrics.h"
#include "controlplane/prom_parser.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  llmgw::cp::PromParseLimits lim;
  lim.max_samples = 1000;
  lim.max_labels = 8;
  auto r = llmgw::cp::ParsePrometheusText(text, lim);
  if (r.samples.size() > lim.max_samples) __builtin_trap();
  for (const auto& s : r.samples) {
    if (s.name.empty() || s.labels.size() > lim.max_labels) __builtin_trap();
  }
  for (int e = 0; e < static_cast<int>(llmgw::Engine::kCount); ++e) {
    auto sig = llmgw::cp::ExtractSignals(r.samples, static_cast<llmgw::Engine>(e));
    double q;
    llmgw::cp::HistogramQuantile(sig.ttft_buckets, {}, 0.99, &q);
  }
  llmgw::cp::DetectEngine(r.samples);
  double d;
  llmgw::cp::ParsePromDouble(text.substr(0, 64), &d);
  return 0;
}
