// Small text helpers shared by llmgw-bench's workload, argument parsing and runner
// (bench/loadgen/*.cc): splitting a flag's list and strict number parsing.
#pragma once

#include <cmath>
#include <cstdlib>
#include <string>
#include <vector>

namespace llmgw::bench {

inline std::vector<std::string> Split(const std::string& s, char sep) {
  std::vector<std::string> out;
  size_t start = 0;
  for (;;) {
    size_t p = s.find(sep, start);
    out.push_back(s.substr(start, p == std::string::npos ? std::string::npos : p - start));
    if (p == std::string::npos) break;
    start = p + 1;
  }
  return out;
}

// The whole string must be a finite number ("12x" and "nan" are refused).
inline bool ToDouble(const std::string& s, double* out) {
  char* end = nullptr;
  *out = std::strtod(s.c_str(), &end);
  return end != s.c_str() && *end == '\0' && std::isfinite(*out);
}

}  // namespace llmgw::bench
