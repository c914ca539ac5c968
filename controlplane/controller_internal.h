// Controller internals shared by the controller_*.cc files: the per-backend and per-model
// runtime records and the probe/scrape result a worker hands back through the mailbox.
// Private to controlplane/: nothing outside the Controller includes it.
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "common/config.h"
#include "common/routing/prefix_placer.h"
#include "common/routing/bandit.h"
#include "common/routing/router.h"
#include "controlplane/circuit_breaker.h"
#include "controlplane/controller.h"
#include "controlplane/engine_metrics.h"
#include "controlplane/http_client.h"
#include "controlplane/prom_parser.h"
#include "controlplane/recent_histogram.h"

namespace llmgw::cp {

struct Controller::BackendRt {
  std::string id, url, model;
  int slot = -1;
  Engine configured_engine = Engine::kAuto;
  Engine engine = Engine::kAuto;  // configured, else detected
  double weight = 1;
  uint32_t max_concurrent = 0;
  HttpTarget target;
  // Active health.
  bool healthy = true;
  uint32_t consecutive_ok = 0, consecutive_fail = 0;
  bool probe_in_flight = false;
  uint64_t next_probe_ms = 0;
  bool use_models_fallback = false;  // health.path answered 404 once
  std::string last_error;
  // Scraping.
  bool scrape_in_flight = false;
  uint64_t next_scrape_ms = 0;
  uint64_t last_scrape_ok_ms = 0;
  bool scraped_once = false;
  EngineSignals sig;
  std::vector<std::pair<double, double>> prev_ttft_buckets;
  double scraped_ttft_sum = 0, scraped_ttft_count = 0;
  double scraped_ttft_p50_ms = 0, scraped_ttft_p99_ms = 0;  // never mixed into the observed ones
  // Observed by the data plane, over the last 30 s (RecentHistogram): streams' TTFT and
  // attempt latency.
  RecentHistogram ttft_recent, latency_recent;
  double ttft_p50_ms = 0, ttft_p99_ms = 0, latency_p50_ms = 0, latency_p99_ms = 0;
  // Passive signals from the data plane's stats.
  bool have_prev = false;
  shm::BackendTotals prev;
  double ewma_latency_ms = 0, ewma_ttft_ms = 0, error_rate = 0;
  bool passive_unhealthy = false;
  uint64_t fleet_in_flight = 0, requests_total = 0;
  uint64_t tick_successes = 0, tick_failures = 0;
  double tick_latency_ms = 0, tick_ttft_ms = 0;
  double tick_tpot_ms = 0;  // mean time per output token after the first, this tick (0: unknown)
  std::unique_ptr<CircuitBreaker> breaker;
  bool draining = false;
  double adaptive_weight = 0;
};

struct Controller::ModelRt {
  std::unique_ptr<routing::AdaptiveBandit> bandit;
  // prefix_affinity and adaptive: gateway-wide prefix homes (null for other policies).
  std::unique_ptr<routing::PrefixPlacer> placer;
  Policy policy = Policy::kLeastConnections;
};

struct Controller::ProbeResult {
  enum Kind { kProbe, kScrape } kind;
  std::string id;
  uint64_t epoch = 0;
  bool ok = false;
  bool fell_back = false;  // health.path 404 -> /v1/models used
  std::string error;
  PromParseResult parsed;
};

// Exponentially weighted moving average; the first sample seeds it.
inline double Ewma(double prev, double sample, double alpha, bool first) {
  return first ? sample : alpha * sample + (1 - alpha) * prev;
}

}  // namespace llmgw::cp
