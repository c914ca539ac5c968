// Latency statistics for llmgw-bench: exact percentiles over the recorded samples (a run
// records at most a few million numbers, so keeping them all is cheaper than being wrong
// in the tail), plus error counts by kind.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace llmgw::bench {

class Samples {
 public:
  void Add(double v) {
    v_.push_back(v);
    sorted_ = false;
  }
  size_t count() const { return v_.size(); }
  // Percentile p in [0, 100] with linear interpolation between closest ranks (the
  // definition numpy uses by default). Returns 0 for an empty set.
  double Percentile(double p);
  double Mean() const;
  double Min();
  double Max();
  double Stddev() const;
  // The n largest values, largest first.
  std::vector<double> Top(size_t n);

 private:
  void Sort();
  std::vector<double> v_;
  bool sorted_ = true;
};

// Summary of one series as a JSON object: count, mean, min, p50, p90, p99, p999, max.
std::string SummaryJson(Samples& s, double scale = 1.0);

struct RunStats {
  Samples ttft_s;         // streaming requests: send -> first token event
  Samples inter_token_s;  // gaps between token events
  Samples stream_max_gap_s;  // per successful stream: its longest gap between token events
  Samples e2e_s;          // send -> complete response
  Samples tokens;         // output tokens per successful request
  // Steady state: the same for requests sent at least warmup_s after the start (--warmup),
  // so a cold start (empty KV caches, routers still learning) can be told from the rest.
  double warmup_s = 0;
  Samples ttft_steady_s, e2e_steady_s;
  bool Steady(double start_s) const { return warmup_s > 0 && start_s - timeline_t0 >= warmup_s; }
  std::map<std::string, uint64_t> errors;  // kind -> count ("http_503", "reset", "timeout", ...)
  uint64_t sent = 0, ok = 0;
  double elapsed_s = 0;
  std::vector<uint64_t> sent_per_target;  // oracle mode only (--affinity-targets order)

  // Timeline in 100 ms buckets by completion time since timeline_t0, so a scenario can see
  // when errors start and stop and when latency recovers (bench/scenarios/e_*).
  static constexpr double kBucketS = 0.1;
  double timeline_t0 = 0;
  std::vector<uint64_t> tl_ok, tl_errors;
  std::vector<double> tl_e2e_max_s;
  size_t Bucket(double now) {
    double d = (now - timeline_t0) / kBucketS;
    size_t b = d < 0 ? 0 : static_cast<size_t>(d);
    if (b >= tl_ok.size()) {
      tl_ok.resize(b + 1, 0);
      tl_errors.resize(b + 1, 0);
      tl_e2e_max_s.resize(b + 1, 0);
    }
    return b;
  }
  void MarkOk(double now, double e2e_s) {
    size_t b = Bucket(now);
    ++tl_ok[b];
    if (e2e_s > tl_e2e_max_s[b]) tl_e2e_max_s[b] = e2e_s;
  }
  void AddError(const std::string& kind, double now) {
    ++errors[kind];
    ++tl_errors[Bucket(now)];
  }
};

std::string RunStatsJson(RunStats& r, const std::string& config_json);

}  // namespace llmgw::bench
