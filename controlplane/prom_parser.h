// A Prometheus text-format (0.0.4, and the OpenMetrics subset engines send) parser for
// scraped backend /metrics. Backends may send anything, so it never throws, never reads
// out of bounds, skips lines it cannot understand and caps how much it keeps.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace llmgw::cp {

struct PromSample {
  std::string name;
  std::vector<std::pair<std::string, std::string>> labels;
  double value = 0;
  // Value of label `key`, or empty when absent.
  std::string_view Label(std::string_view key) const;
};

struct PromParseResult {
  std::vector<PromSample> samples;
  size_t bad_lines = 0;  // lines skipped because they were not valid samples
  bool truncated = false;  // stopped at the sample/byte caps
};

struct PromParseLimits {
  size_t max_samples = 200000;
  size_t max_line_bytes = 65536;
  size_t max_labels = 64;
};

// Parses `text`; comments (# HELP/# TYPE/# EOF) are skipped, every sample line kept.
PromParseResult ParsePrometheusText(std::string_view text, const PromParseLimits& limits = {});

// Parses a Prometheus float ("1.0", "2.30325e+06", "+Inf", "NaN"). False on anything else.
bool ParsePromDouble(std::string_view s, double* out);

}  // namespace llmgw::cp
