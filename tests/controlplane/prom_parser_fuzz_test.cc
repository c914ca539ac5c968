// libFuzzer entry for the scraped-metrics parser and the engine mappings: any input must
// parse without crashing, hanging or reading out of bounds.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "controlplane/engine_metrics.h"
#include "controlplane/prom_parser.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto r = llmgw::cp::ParsePrometheusText(text);
  auto sig = llmgw::cp::ExtractSignals(r.samples, llmgw::Engine::kAuto);
  double q;
  llmgw::cp::HistogramQuantile(sig.ttft_buckets, {}, 0.99, &q);
  return 0;
}
