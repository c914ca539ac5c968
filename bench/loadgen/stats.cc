// Percentiles and JSON summaries for llmgw-bench.
#include "bench/loadgen/stats.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace llmgw::bench {

void Samples::Sort() {
  if (!sorted_) std::sort(v_.begin(), v_.end());
  sorted_ = true;
}

double Samples::Percentile(double p) {
  if (v_.empty()) return 0;
  Sort();
  if (p <= 0) return v_.front();
  if (p >= 100) return v_.back();
  double rank = p / 100.0 * static_cast<double>(v_.size() - 1);
  size_t lo = static_cast<size_t>(std::floor(rank));
  size_t hi = std::min(lo + 1, v_.size() - 1);
  double frac = rank - static_cast<double>(lo);
  return v_[lo] + (v_[hi] - v_[lo]) * frac;
}

double Samples::Mean() const {
  if (v_.empty()) return 0;
  double s = 0;
  for (double x : v_) s += x;
  return s / static_cast<double>(v_.size());
}

double Samples::Stddev() const {
  if (v_.size() < 2) return 0;
  double m = Mean(), s = 0;
  for (double x : v_) s += (x - m) * (x - m);
  return std::sqrt(s / static_cast<double>(v_.size() - 1));
}

double Samples::Min() {
  Sort();
  return v_.empty() ? 0 : v_.front();
}

double Samples::Max() {
  Sort();
  return v_.empty() ? 0 : v_.back();
}

namespace {

// Appends "a,b,c" to o. Written as separate appends (not `(i ? "," : "") + to_string(x)`),
// because GCC 12 at -O3 reports a false -Wrestrict on the temporary concatenation.
void AppendCounts(std::string& o, const std::vector<uint64_t>& v) {
  for (size_t i = 0; i < v.size(); ++i) {
    if (i) o += ',';
    o += std::to_string(v[i]);
  }
}

}  // namespace

std::vector<double> Samples::Top(size_t n) {
  Sort();
  std::vector<double> out;
  for (size_t i = v_.size(); i-- > 0 && out.size() < n;) out.push_back(v_[i]);
  return out;
}

std::string SummaryJson(Samples& s, double scale) {
  char buf[512];
  std::snprintf(buf, sizeof buf,
                "{\"count\":%zu,\"mean\":%.6g,\"min\":%.6g,\"p50\":%.6g,\"p90\":%.6g,\"p99\":%.6g,"
                "\"p999\":%.6g,\"max\":%.6g}",
                s.count(), s.Mean() * scale, s.Min() * scale, s.Percentile(50) * scale, s.Percentile(90) * scale,
                s.Percentile(99) * scale, s.Percentile(99.9) * scale, s.Max() * scale);
  return buf;
}

std::string RunStatsJson(RunStats& r, const std::string& config_json) {
  std::string o = "{\"config\":" + (config_json.empty() ? std::string("{}") : config_json);
  char buf[256];
  uint64_t errs = 0;
  for (auto& [k, v] : r.errors) errs += v;
  std::snprintf(buf, sizeof buf,
                ",\"elapsed_s\":%.3f,\"sent\":%llu,\"ok\":%llu,\"errors_total\":%llu,\"throughput_rps\":%.3f,"
                "\"output_tokens_per_s\":%.3f",
                r.elapsed_s, static_cast<unsigned long long>(r.sent), static_cast<unsigned long long>(r.ok),
                static_cast<unsigned long long>(errs), r.elapsed_s > 0 ? static_cast<double>(r.ok) / r.elapsed_s : 0,
                r.elapsed_s > 0 ? r.tokens.Mean() * static_cast<double>(r.tokens.count()) / r.elapsed_s : 0);
  o += buf;
  o += ",\"errors\":{";
  bool first = true;
  for (auto& [k, v] : r.errors) {
    if (!first) o += ",";
    first = false;
    o += "\"" + k + "\":" + std::to_string(v);
  }
  o += "},\"ttft_ms\":" + SummaryJson(r.ttft_s, 1000.0);
  o += ",\"inter_token_ms\":" + SummaryJson(r.inter_token_s, 1000.0);
  o += ",\"e2e_ms\":" + SummaryJson(r.e2e_s, 1000.0);
  o += ",\"tokens_per_request\":" + SummaryJson(r.tokens);
  // Streams resumed after a backend failure show as the longest per-stream gaps: the
  // scenario takes the top k (k = resumed streams) from this list.
  o += ",\"stream_max_gap_ms\":" + SummaryJson(r.stream_max_gap_s, 1000.0);
  o += ",\"stream_max_gaps_top_ms\":[";
  std::vector<double> top = r.stream_max_gap_s.Top(1000);
  for (size_t i = 0; i < top.size(); ++i) {
    std::snprintf(buf, sizeof buf, "%s%.3f", i ? "," : "", top[i] * 1000.0);
    o += buf;
  }
  o += "]";
  if (r.warmup_s > 0) {
    o += ",\"warmup_s\":" + std::to_string(r.warmup_s);
    o += ",\"ttft_steady_ms\":" + SummaryJson(r.ttft_steady_s, 1000.0);
    o += ",\"e2e_steady_ms\":" + SummaryJson(r.e2e_steady_s, 1000.0);
  }
  if (!r.sent_per_target.empty()) {
    o += ",\"sent_per_target\":[";
    AppendCounts(o, r.sent_per_target);
    o += "]";
  }
  o += ",\"timeline\":{\"bucket_ms\":100,\"ok\":[";
  AppendCounts(o, r.tl_ok);
  o += "],\"errors\":[";
  AppendCounts(o, r.tl_errors);
  o += "],\"e2e_ms_max\":[";
  for (size_t i = 0; i < r.tl_e2e_max_s.size(); ++i) {
    std::snprintf(buf, sizeof buf, "%s%.3f", i ? "," : "", r.tl_e2e_max_s[i] * 1000.0);
    o += buf;
  }
  o += "]}}";
  return o;
}

}  // namespace llmgw::bench
