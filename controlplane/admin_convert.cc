// Controller views -> admin API messages (see admin_convert.h).
#include "controlplane/admin_convert.h"

namespace llmgw::cp {

namespace admin = ::llmgw::admin::v1;

admin::BackendState ToProto(shm::BackendState s) {
  switch (s) {
    case shm::BackendState::kHealthy: return admin::HEALTHY;
    case shm::BackendState::kUnhealthy: return admin::UNHEALTHY;
    case shm::BackendState::kDraining: return admin::DRAINING;
    case shm::BackendState::kCircuitOpen: return admin::CIRCUIT_OPEN;
    case shm::BackendState::kHalfOpen: return admin::HALF_OPEN;
    default: return admin::BACKEND_STATE_UNSPECIFIED;
  }
}

admin::Backend ToProto(const BackendView& b) {
  admin::Backend o;
  o.set_id(b.id);
  o.set_url(b.url);
  o.set_model(b.model);
  o.set_state(ToProto(b.state));
  o.set_weight(b.weight);
  o.set_in_flight(b.in_flight);
  o.set_running(b.running);
  o.set_waiting(b.waiting);
  o.set_kv_cache_usage(b.kv_cache_usage);
  o.set_metrics_stale(b.metrics_stale);
  o.set_ewma_latency_ms(b.ewma_latency_ms);
  o.set_ewma_ttft_ms(b.ewma_ttft_ms);
  o.set_ttft_p50_ms(b.ttft_p50_ms);
  o.set_ttft_p99_ms(b.ttft_p99_ms);
  o.set_latency_p50_ms(b.latency_p50_ms);
  o.set_latency_p99_ms(b.latency_p99_ms);
  o.set_scraped_ttft_p50_ms(b.scraped_ttft_p50_ms);
  o.set_scraped_ttft_p99_ms(b.scraped_ttft_p99_ms);
  o.set_error_rate(b.error_rate);
  o.set_requests_total(b.requests_total);
  o.set_max_concurrent(b.max_concurrent);
  o.set_engine(b.engine);
  o.set_adaptive_weight(b.adaptive_weight);
  o.set_last_error(b.last_error);
  return o;
}

std::vector<admin::Backend> ToProto(const std::vector<BackendView>& bs) {
  std::vector<admin::Backend> out;
  out.reserve(bs.size());
  for (const auto& b : bs) out.push_back(ToProto(b));
  return out;
}

admin::GetStatusResponse ToProto(const StatusView& v) {
  admin::GetStatusResponse s;
  s.set_version(v.version);
  s.set_uptime_seconds(v.uptime_seconds);
  s.set_snapshot_generation(v.snapshot_generation);
  s.set_backends_healthy(v.backends_healthy);
  s.set_backends_total(v.backends_total);
  s.set_requests_per_second(v.requests_per_second);
  s.set_errors_per_second(v.errors_per_second);
  s.set_requests_total(v.requests_total);
  s.set_active_requests(v.active_requests);
  s.set_dataplane_threads(v.dataplane_threads);
  s.set_dataplane_alive(v.dataplane_alive);
  s.set_instance(v.instance);
  s.set_role(v.role);
  s.set_config_file(v.config_file);
  s.set_config_reloads(v.config_reloads);
  s.set_config_reload_failures(v.config_reload_failures);
  s.set_models(v.models);
  s.set_ttft_p50_ms(v.ttft_p50_ms);
  s.set_ttft_p99_ms(v.ttft_p99_ms);
  s.set_latency_p50_ms(v.latency_p50_ms);
  s.set_latency_p99_ms(v.latency_p99_ms);
  return s;
}

admin::GetConfigResponse ToProto(const ConfigText& c) {
  admin::GetConfigResponse r;
  r.set_yaml(c.yaml);
  r.set_path(c.path);
  r.set_version(c.version);
  r.set_fleet_config_revision(c.fleet_config_revision);
  return r;
}

admin::GetRoutingStatsResponse ToProto(const RoutingStatsView& v) {
  admin::GetRoutingStatsResponse r;
  for (const auto& m : v.models) {
    auto* ms = r.add_models();
    ms->set_model(m.model);
    ms->set_policy(m.policy);
    for (const auto& p : m.picks) {
      auto* pp = ms->add_picks();
      pp->set_id(p.id);
      pp->set_picks(p.picks);
    }
    ms->set_retries(m.retries);
    ms->set_fallbacks(m.fallbacks);
    ms->set_requests(m.requests);
    ms->set_rejected(m.rejected);
  }
  return r;
}

admin::ApiKey ToProto(const KeyView& k) {
  admin::ApiKey p;
  p.set_id(k.id);
  for (const auto& m : k.models) p.add_models(m);
  p.set_priority(k.priority);
  p.set_rpm(k.rpm);
  p.set_tpm(k.tpm);
  p.set_max_concurrent(k.max_concurrent);
  p.set_source(k.source);
  p.set_in_keys_file(k.in_keys_file);
  p.set_key_sha256_prefix(k.key_sha256_prefix);
  p.set_requests_last_minute(k.requests_last_minute);
  p.set_tokens_last_minute(k.tokens_last_minute);
  p.set_in_flight(k.in_flight);
  p.set_requests_total(k.requests_total);
  p.set_rejected_total(k.rejected_total);
  return p;
}

admin::ListKeysResponse ToProto(const KeysView& k) {
  admin::ListKeysResponse p;
  for (const auto& key : k.keys) *p.add_keys() = ToProto(key);
  p.set_auth_required(k.auth_required);
  p.set_keys_file(k.keys_file);
  return p;
}

}  // namespace llmgw::cp
