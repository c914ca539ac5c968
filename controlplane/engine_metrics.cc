// Engine metric-name tables and the extraction of routing signals from parsed samples.
#include "controlplane/engine_metrics.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <string>

namespace llmgw::cp {
namespace {

struct EngineNames {
  Engine engine;
  std::string_view prefix;                      // detection
  std::vector<std::string_view> running;        // summed; first family present wins
  std::vector<std::string_view> waiting;        // every listed family present is summed
  std::vector<std::string_view> kv;             // averaged over series; first present wins
  std::string_view ttft;                        // histogram base name, empty: none
};

const std::vector<EngineNames>& Tables() {
  static const std::vector<EngineNames> t = {
      // vLLM V1 renamed gpu_cache_usage_perc to kv_cache_usage_perc; both are 0..1. V0's
      // swapped requests are preempted work waiting to come back, so they count as waiting.
      {Engine::kVllm, "vllm:", {"vllm:num_requests_running"},
       {"vllm:num_requests_waiting", "vllm:num_requests_swapped"},
       {"vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc"}, "vllm:time_to_first_token_seconds"},
      {Engine::kSglang, "sglang:", {"sglang:num_running_reqs"},
       {"sglang:num_queue_reqs", "sglang:num_grammar_queue_reqs"}, {"sglang:token_usage"},
       "sglang:time_to_first_token_seconds"},
      {Engine::kTgi, "tgi_", {"tgi_batch_current_size"}, {"tgi_queue_size"}, {}, ""},
      // llama.cpp removed its KV gauges in May 2025; older builds still send them.
      {Engine::kLlamaCpp, "llamacpp:", {"llamacpp:requests_processing"}, {"llamacpp:requests_deferred"},
       {"llamacpp:kv_cache_usage_ratio"}, ""},
      {Engine::kTrtLlm, "trtllm_", {"trtllm_num_requests_running", "trtllm_num_active_requests"},
       {"trtllm_num_requests_waiting", "trtllm_server_queue_length"}, {"trtllm_kv_cache_utilization"},
       "trtllm_time_to_first_token_seconds"},
  };
  return t;
}

bool Finite(double v) { return std::isfinite(v); }

}  // namespace

Engine DetectEngine(const std::vector<PromSample>& samples) {
  for (const auto& s : samples)
    for (const auto& t : Tables())
      if (s.name.compare(0, t.prefix.size(), t.prefix) == 0) return t.engine;
  return Engine::kAuto;
}

EngineSignals ExtractSignals(const std::vector<PromSample>& samples, Engine engine) {
  EngineSignals out;
  if (engine == Engine::kAuto) engine = DetectEngine(samples);
  const EngineNames* names = nullptr;
  for (const auto& t : Tables())
    if (t.engine == engine) names = &t;
  if (!names) return out;
  out.engine = engine;

  // Sum per family name first (series of one family: dp ranks, engines, pids).
  std::map<std::string_view, std::pair<double, int>> fam;  // name -> (sum, series)
  std::map<double, double> buckets;
  std::string ttft_bucket = std::string(names->ttft) + "_bucket";
  std::string ttft_sum = std::string(names->ttft) + "_sum";
  std::string ttft_count = std::string(names->ttft) + "_count";
  for (const auto& s : samples) {
    if (!Finite(s.value) && s.name != ttft_bucket) continue;
    if (!names->ttft.empty()) {
      if (s.name == ttft_bucket) {
        double le;
        if (!ParsePromDouble(s.Label("le"), &le) || !Finite(s.value) || s.value < 0) continue;
        buckets[le] += s.value;
        out.has_ttft = true;
        continue;
      }
      if (s.name == ttft_sum) { out.ttft_sum_s += s.value; out.has_ttft = true; continue; }
      if (s.name == ttft_count) { out.ttft_count += s.value; out.has_ttft = true; continue; }
    }
    auto& f = fam[s.name];
    f.first += s.value;
    f.second += 1;
  }
  for (auto name : names->running) {
    auto it = fam.find(name);
    if (it != fam.end()) { out.running = std::max(0.0, it->second.first); out.has_running = true; break; }
  }
  for (auto name : names->waiting) {
    auto it = fam.find(name);
    if (it != fam.end()) { out.waiting += std::max(0.0, it->second.first); out.has_waiting = true; }
  }
  for (auto name : names->kv) {
    auto it = fam.find(name);
    if (it != fam.end() && it->second.second > 0) {
      out.kv_usage = std::clamp(it->second.first / it->second.second, 0.0, 1.0);
      out.has_kv = true;
      break;
    }
  }
  out.ttft_buckets.assign(buckets.begin(), buckets.end());
  return out;
}

bool HistogramQuantile(const std::vector<std::pair<double, double>>& now,
                       const std::vector<std::pair<double, double>>& before, double q, double* out) {
  if (now.empty()) return false;
  std::vector<std::pair<double, double>> d;
  d.reserve(now.size());
  for (const auto& [le, c] : now) {
    double prev = 0;
    for (const auto& [ble, bc] : before)
      if (ble == le) prev = bc;
    d.emplace_back(le, std::max(0.0, c - prev));
  }
  double total = d.back().second;
  if (!(total > 0)) return false;
  double rank = q * total;
  double lo_bound = 0, lo_count = 0;
  for (const auto& [le, c] : d) {
    if (c >= rank) {
      if (!std::isfinite(le)) { *out = lo_bound; return true; }
      double span = c - lo_count;
      double frac = span > 0 ? (rank - lo_count) / span : 1.0;
      *out = lo_bound + (le - lo_bound) * std::clamp(frac, 0.0, 1.0);
      return true;
    }
    lo_bound = std::isfinite(le) ? le : lo_bound;
    lo_count = c;
  }
  *out = lo_bound;
  return true;
}

}  // namespace llmgw::cp
