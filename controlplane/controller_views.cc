// Controller: operator actions (drain, undrain, reset circuit) and the read-only views the
// admin service and the Prometheus exposition take under the controller's mutex.
#include "common/log.h"
#include "controlplane/controller.h"
#include "controlplane/controller_internal.h"

namespace llmgw::cp {

Controller::BackendRt* Controller::Find(const std::string& id) {
  auto it = backends_.find(id);
  return it == backends_.end() ? nullptr : it->second.get();
}

bool Controller::Drain(const std::string& id, BackendView* out) { return SetDraining(id, true, out); }

bool Controller::Undrain(const std::string& id, BackendView* out) { return SetDraining(id, false, out); }

bool Controller::SetDraining(const std::string& id, bool draining, BackendView* out) {
  std::lock_guard<std::mutex> l(mu_);
  BackendRt* b = Find(id);
  if (!b) return false;
  if (b->draining != draining)
    LOG_INFO(draining ? "backend drained by operator" : "backend undrained by operator", {{"backend", id}});
  b->draining = draining;
  dirty_ = true;
  if (out) FillBackend(*b, out);
  return true;
}

bool Controller::ResetCircuit(const std::string& id, BackendView* out) {
  std::lock_guard<std::mutex> l(mu_);
  BackendRt* b = Find(id);
  if (!b) return false;
  b->breaker->Reset();
  b->passive_unhealthy = false;
  b->error_rate = 0;
  dirty_ = true;
  if (out) FillBackend(*b, out);
  return true;
}

void Controller::FillBackend(const BackendRt& b, BackendView* o) const {
  o->id = b.id;
  o->url = b.url;
  o->model = b.model;
  o->state = static_cast<shm::BackendState>(PublishedState(b));
  o->weight = b.weight;
  o->in_flight = b.fleet_in_flight;
  bool fresh = b.scraped_once && Now() - b.last_scrape_ok_ms <= cfg_.health.metrics_stale_ms;
  o->running = b.sig.has_running ? b.sig.running : 0;
  o->waiting = b.sig.has_waiting ? b.sig.waiting : 0;
  o->kv_cache_usage = b.sig.has_kv ? b.sig.kv_usage : 0;
  o->metrics_stale = !fresh;
  o->ewma_latency_ms = b.ewma_latency_ms;
  o->ewma_ttft_ms = b.ewma_ttft_ms;
  o->ttft_p50_ms = b.ttft_p50_ms;
  o->ttft_p99_ms = b.ttft_p99_ms;
  o->latency_p50_ms = b.latency_p50_ms;
  o->latency_p99_ms = b.latency_p99_ms;
  o->scraped_ttft_p50_ms = b.scraped_ttft_p50_ms;
  o->scraped_ttft_p99_ms = b.scraped_ttft_p99_ms;
  o->error_rate = b.error_rate;
  o->requests_total = b.requests_total;
  o->max_concurrent = b.max_concurrent;
  o->engine = b.engine == Engine::kAuto ? "unknown" : std::string(EngineName(b.engine));
  o->adaptive_weight = b.adaptive_weight;
  o->last_error = b.last_error;
}

StatusView Controller::GetStatus() const {
  std::lock_guard<std::mutex> l(mu_);
  StatusView s;
  s.version = LLMGW_VERSION_STRING;
  s.uptime_seconds = (Now() - started_ms_) / 1000.0;
  s.snapshot_generation = generation_;
  uint32_t healthy = 0;
  for (const auto& [id, b] : backends_)
    healthy += PublishedState(*b) == static_cast<uint8_t>(shm::BackendState::kHealthy) ? 1 : 0;
  s.backends_healthy = healthy;
  s.backends_total = static_cast<uint32_t>(backends_.size());
  s.requests_per_second = rps_;
  s.errors_per_second = eps_;
  s.requests_total = stats_.requests_total;
  s.active_requests = stats_.active_requests;
  s.dataplane_threads = stats_.live_threads;
  s.dataplane_alive = dataplane_alive_;
  s.instance = cfg_.instance;
  s.role = cfg_.fleet.role;
  s.config_file = config_path_;
  s.config_reloads = counters_.config_reloads;
  s.config_reload_failures = counters_.config_reload_failures;
  s.models = static_cast<uint32_t>(cfg_.models.size());
  shm::HistogramTotals ttft = fleet_ttft_recent_.Recent(), lat = fleet_latency_recent_.Recent();
  s.ttft_p50_ms = ttft.QuantileUs(0.5) / 1000.0;
  s.ttft_p99_ms = ttft.QuantileUs(0.99) / 1000.0;
  s.latency_p50_ms = lat.QuantileUs(0.5) / 1000.0;
  s.latency_p99_ms = lat.QuantileUs(0.99) / 1000.0;
  return s;
}

std::vector<BackendView> Controller::Backends(const std::string& model_filter) const {
  std::lock_guard<std::mutex> l(mu_);
  std::vector<BackendView> out;
  // Config order, so listings are stable and read like the file.
  for (const auto& m : cfg_.models) {
    bool match = model_filter.empty() || m.name == model_filter;
    for (const auto& a : m.aliases) match |= a == model_filter;
    if (!match) continue;
    for (const auto& bc : m.backends) {
      auto it = backends_.find(bc.id);
      if (it == backends_.end()) continue;
      FillBackend(*it->second, &out.emplace_back());
    }
  }
  return out;
}

bool Controller::GetBackend(const std::string& id, BackendView* out) const {
  std::lock_guard<std::mutex> l(mu_);
  auto it = backends_.find(id);
  if (it == backends_.end()) return false;
  FillBackend(*it->second, out);
  return true;
}

ConfigText Controller::ConfigView() const {
  std::lock_guard<std::mutex> l(mu_);
  // Secrets never live in the YAML itself (token and keys come from files), so the text
  // is returned as loaded.
  return ConfigText{cfg_.source_text, config_path_, config_version_, fleet_revision_};
}

RoutingStatsView Controller::RoutingStats() const {
  std::lock_guard<std::mutex> l(mu_);
  RoutingStatsView r;
  for (const auto& m : cfg_.models) {
    auto* ms = &r.models.emplace_back();
    ms->model = m.name;
    ms->policy = std::string(PolicyName(m.policy));
    for (const auto& bc : m.backends) {
      auto* p = &ms->picks.emplace_back();
      p->id = bc.id;
      auto it = backends_.find(bc.id);
      if (it != backends_.end() && it->second->slot >= 0 &&
          static_cast<size_t>(it->second->slot) < stats_.backends.size())
        p->picks = stats_.backends[it->second->slot].picks;
    }
    int mslot = -1;
    for (uint32_t i = 0; i < base_->num_models; ++i)
      if (base_->models[i].present && m.name == base_->models[i].name) mslot = static_cast<int>(i);
    if (mslot >= 0 && static_cast<size_t>(mslot) < stats_.models.size()) {
      const auto& mt = stats_.models[mslot];
      ms->retries = mt.retries;
      ms->fallbacks = mt.fallbacks;
      ms->requests = mt.RequestsTotal();
      ms->rejected = mt.rejected;
    }
  }
  return r;
}

Config Controller::CurrentConfig() const {
  std::lock_guard<std::mutex> l(mu_);
  return cfg_;
}

shm::StatsTotals Controller::StatsCopy() const {
  std::lock_guard<std::mutex> l(mu_);
  return stats_;
}

ControllerCounters Controller::Counters() const {
  std::lock_guard<std::mutex> l(mu_);
  return counters_;
}

std::map<std::string, Controller::CircuitInfo> Controller::Circuits() const {
  std::lock_guard<std::mutex> l(mu_);
  std::map<std::string, CircuitInfo> out;
  for (const auto& [id, b] : backends_) out[id] = {b->breaker->state(), b->breaker->failures_total()};
  return out;
}

std::vector<std::pair<std::string, int>> Controller::ModelSlots() const {
  std::lock_guard<std::mutex> l(mu_);
  std::vector<std::pair<std::string, int>> out;
  for (uint32_t i = 0; i < base_->num_models; ++i)
    if (base_->models[i].present) out.emplace_back(base_->models[i].name, static_cast<int>(i));
  return out;
}

uint64_t Controller::config_version() const {
  std::lock_guard<std::mutex> l(mu_);
  return config_version_;
}

}  // namespace llmgw::cp
