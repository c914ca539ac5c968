// Controller: operator actions (drain, undrain, reset circuit) and the read-only views the
// admin service and the Prometheus exposition take under the controller's mutex.
#include "common/log.h"
#include "controlplane/controller.h"
#include "controlplane/controller_internal.h"

namespace llmgw::cp {

namespace admin = ::llmgw::admin::v1;

Controller::BackendRt* Controller::Find(const std::string& id) {
  auto it = backends_.find(id);
  return it == backends_.end() ? nullptr : it->second.get();
}

bool Controller::Drain(const std::string& id, admin::Backend* out) { return SetDraining(id, true, out); }

bool Controller::Undrain(const std::string& id, admin::Backend* out) { return SetDraining(id, false, out); }

bool Controller::SetDraining(const std::string& id, bool draining, admin::Backend* out) {
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

bool Controller::ResetCircuit(const std::string& id, admin::Backend* out) {
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

void Controller::FillBackend(const BackendRt& b, admin::Backend* o) const {
  o->set_id(b.id);
  o->set_url(b.url);
  o->set_model(b.model);
  o->set_state(static_cast<admin::BackendState>(PublishedState(b)));
  o->set_weight(b.weight);
  o->set_in_flight(b.fleet_in_flight);
  bool fresh = b.scraped_once && Now() - b.last_scrape_ok_ms <= cfg_.health.metrics_stale_ms;
  o->set_running(b.sig.has_running ? b.sig.running : 0);
  o->set_waiting(b.sig.has_waiting ? b.sig.waiting : 0);
  o->set_kv_cache_usage(b.sig.has_kv ? b.sig.kv_usage : 0);
  o->set_metrics_stale(!fresh);
  o->set_ewma_latency_ms(b.ewma_latency_ms);
  o->set_ewma_ttft_ms(b.ewma_ttft_ms);
  o->set_ttft_p50_ms(b.ttft_p50_ms);
  o->set_ttft_p99_ms(b.ttft_p99_ms);
  o->set_error_rate(b.error_rate);
  o->set_requests_total(b.requests_total);
  o->set_max_concurrent(b.max_concurrent);
  o->set_engine(b.engine == Engine::kAuto ? "unknown" : std::string(EngineName(b.engine)));
  o->set_adaptive_weight(b.adaptive_weight);
  o->set_last_error(b.last_error);
}

admin::GetStatusResponse Controller::GetStatus() const {
  std::lock_guard<std::mutex> l(mu_);
  admin::GetStatusResponse s;
  s.set_version(LLMGW_VERSION_STRING);
  s.set_uptime_seconds((Now() - started_ms_) / 1000.0);
  s.set_snapshot_generation(generation_);
  uint32_t healthy = 0;
  for (const auto& [id, b] : backends_)
    healthy += PublishedState(*b) == static_cast<uint8_t>(shm::BackendState::kHealthy) ? 1 : 0;
  s.set_backends_healthy(healthy);
  s.set_backends_total(static_cast<uint32_t>(backends_.size()));
  s.set_requests_per_second(rps_);
  s.set_errors_per_second(eps_);
  s.set_requests_total(stats_.requests_total);
  s.set_active_requests(stats_.active_requests);
  s.set_dataplane_threads(stats_.live_threads);
  s.set_dataplane_alive(dataplane_alive_);
  s.set_instance(cfg_.instance);
  s.set_role(cfg_.fleet.role);
  s.set_config_file(config_path_);
  s.set_config_reloads(counters_.config_reloads);
  s.set_config_reload_failures(counters_.config_reload_failures);
  s.set_models(static_cast<uint32_t>(cfg_.models.size()));
  return s;
}

std::vector<admin::Backend> Controller::Backends(const std::string& model_filter) const {
  std::lock_guard<std::mutex> l(mu_);
  std::vector<admin::Backend> out;
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

bool Controller::GetBackend(const std::string& id, admin::Backend* out) const {
  std::lock_guard<std::mutex> l(mu_);
  auto it = backends_.find(id);
  if (it == backends_.end()) return false;
  FillBackend(*it->second, out);
  return true;
}

admin::GetConfigResponse Controller::ConfigView() const {
  std::lock_guard<std::mutex> l(mu_);
  admin::GetConfigResponse r;
  // Secrets never live in the YAML itself (token and keys come from files), so the text
  // is returned as loaded.
  r.set_yaml(cfg_.source_text);
  r.set_path(config_path_);
  r.set_version(config_version_);
  return r;
}

admin::GetRoutingStatsResponse Controller::RoutingStats() const {
  std::lock_guard<std::mutex> l(mu_);
  admin::GetRoutingStatsResponse r;
  for (const auto& m : cfg_.models) {
    auto* ms = r.add_models();
    ms->set_model(m.name);
    ms->set_policy(std::string(PolicyName(m.policy)));
    for (const auto& bc : m.backends) {
      auto* p = ms->add_picks();
      p->set_id(bc.id);
      auto it = backends_.find(bc.id);
      if (it != backends_.end() && it->second->slot >= 0 &&
          static_cast<size_t>(it->second->slot) < stats_.backends.size())
        p->set_picks(stats_.backends[it->second->slot].picks);
    }
    int mslot = -1;
    for (uint32_t i = 0; i < base_->num_models; ++i)
      if (base_->models[i].present && m.name == base_->models[i].name) mslot = static_cast<int>(i);
    if (mslot >= 0 && static_cast<size_t>(mslot) < stats_.models.size()) {
      const auto& mt = stats_.models[mslot];
      ms->set_retries(mt.retries);
      ms->set_fallbacks(mt.fallbacks);
      ms->set_requests(mt.RequestsTotal());
      ms->set_rejected(mt.rejected);
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
