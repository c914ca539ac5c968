// Controller: overlays the live per-backend signals on the snapshot built from the config
// and publishes it into shared memory when it changed or a heartbeat is due; also hands
// the last published snapshot to the fleet.
#include <algorithm>
#include <cstring>

#include "common/snapshot_codec.h"
#include "controlplane/controller.h"
#include "controlplane/controller_internal.h"

namespace llmgw::cp {

void Controller::Publish(uint64_t now) {
  shm::Snapshot& s = *scratch_;
  // Copy only the used ranges of the base, then overlay.
  s.num_backends = base_->num_backends;
  s.num_models = base_->num_models;
  s.limits = base_->limits;
  // Keys change only with the config (a reload sets dirty_); copied so a key table never
  // goes out without its index.
  s.num_keys = base_->num_keys;
  if (s.num_keys) {
    std::memcpy(s.key_index, base_->key_index, sizeof(s.key_index));
    std::memcpy(s.keys, base_->keys, sizeof(shm::KeyEntry) * s.num_keys);
  }
  std::memcpy(s.models, base_->models, sizeof(shm::ModelEntry) * s.num_models);
  std::memcpy(s.backends, base_->backends, sizeof(shm::BackendEntry) * s.num_backends);
  // What llmgw needs to reach each backend (provider key, TLS settings, upstream model):
  // changes only with the config, like the keys. Without it llmgw saw no key and no TLS
  // settings for any backend.
  std::memcpy(s.upstreams, base_->upstreams, sizeof(shm::BackendUpstream) * s.num_backends);
  for (auto& [id, b] : backends_) {
    shm::BackendEntry& e = s.backends[b->slot];
    e.state = PublishedState(*b);
    e.engine = static_cast<uint8_t>(b->engine);
    bool fresh = b->scraped_once && cfg_.health.scrape_metrics &&
                 now - b->last_scrape_ok_ms <= cfg_.health.metrics_stale_ms;
    e.metrics_fresh = fresh ? 1 : 0;
    // Stale numbers are zeroed, not kept: policies then fall back to the gateway's own load.
    e.running = fresh && b->sig.has_running ? static_cast<float>(b->sig.running) : 0;
    e.waiting = fresh && b->sig.has_waiting ? static_cast<float>(b->sig.waiting) : 0;
    e.kv_usage = fresh && b->sig.has_kv ? static_cast<float>(b->sig.kv_usage) : 0;
    e.ewma_latency_ms = static_cast<float>(b->ewma_latency_ms);
    e.ewma_ttft_ms = static_cast<float>(b->ewma_ttft_ms);
    e.error_rate = static_cast<float>(b->error_rate);
    e.fleet_in_flight = static_cast<uint32_t>(std::min<uint64_t>(b->fleet_in_flight, UINT32_MAX));
    e.adaptive_weight = static_cast<float>(b->adaptive_weight);
    e.half_open_budget = b->breaker->state() == CircuitState::kHalfOpen ? cfg_.circuit_breaker.half_open_requests : 0;
  }
  s.num_prefix_homes = static_cast<uint32_t>(std::min<size_t>(prefix_homes_.size(), shm::kMaxPrefixHomes));
  if (s.num_prefix_homes)
    std::memcpy(s.prefix_homes, prefix_homes_.data(), sizeof(shm::PrefixHomeEntry) * s.num_prefix_homes);
  bool changed = dirty_ || s.num_prefix_homes != published_->num_prefix_homes || s.num_backends != published_->num_backends || s.num_models != published_->num_models ||
                 std::memcmp(&s.limits, &published_->limits, sizeof(s.limits)) != 0 ||
                 std::memcmp(s.models, published_->models, sizeof(shm::ModelEntry) * s.num_models) != 0 ||
                 std::memcmp(s.backends, published_->backends, sizeof(shm::BackendEntry) * s.num_backends) != 0;
  bool heartbeat_due = now - last_publish_ms_ >= cfg_.control.heartbeat_ms;
  if (!changed && !heartbeat_due && last_publish_ms_ != 0) {
    if (writer_) writer_->Heartbeat();
    return;
  }
  s.published_unix_ms = shm::NowUnixMs();
  if (writer_) generation_ = writer_->Publish(&s);
  else ++generation_;
  // Keep an exact copy of what was published for the next comparison.
  published_->num_backends = s.num_backends;
  published_->num_models = s.num_models;
  published_->limits = s.limits;
  published_->num_prefix_homes = s.num_prefix_homes;
  published_->num_keys = s.num_keys;
  if (s.num_keys) {
    std::memcpy(published_->key_index, s.key_index, sizeof(s.key_index));
    std::memcpy(published_->keys, s.keys, sizeof(shm::KeyEntry) * s.num_keys);
  }
  if (s.num_prefix_homes)
    std::memcpy(published_->prefix_homes, s.prefix_homes, sizeof(shm::PrefixHomeEntry) * s.num_prefix_homes);
  std::memcpy(published_->models, s.models, sizeof(shm::ModelEntry) * s.num_models);
  std::memcpy(published_->backends, s.backends, sizeof(shm::BackendEntry) * s.num_backends);
  // The upstream table too: the fleet's agents get theirs from this copy (TLS settings,
  // deployment, upstream model, where each key comes from); without it they had none.
  std::memcpy(published_->upstreams, s.upstreams, sizeof(shm::BackendUpstream) * s.num_backends);
  published_->generation = generation_;
  last_publish_ms_ = now == 0 ? 1 : now;
  dirty_ = false;
  ++counters_.snapshots_published;
}

std::string Controller::PublishedSnapshotBytes(uint64_t* generation) const {
  std::lock_guard<std::mutex> l(mu_);
  *generation = last_publish_ms_ == 0 ? 0 : generation_;
  return last_publish_ms_ == 0 ? std::string() : shm::EncodeSnapshot(*published_);
}

uint64_t Controller::published_generation() const {
  std::lock_guard<std::mutex> l(mu_);
  return last_publish_ms_ == 0 ? 0 : generation_;
}

bool Controller::Publishing() const {
  std::lock_guard<std::mutex> l(mu_);
  if (last_publish_ms_ == 0) return false;
  uint64_t now = Now();
  uint64_t limit = std::max<uint64_t>(2000, 3ull * cfg_.control.heartbeat_ms);
  return now < last_publish_ms_ || now - last_publish_ms_ <= limit;
}

void Controller::ReportGateway(const std::string& name, shm::StatsTotals totals) {
  std::lock_guard<std::mutex> l(mu_);
  const auto& gws = fleet_.gateways();
  auto it = gws.find(name);
  // A new gateway, a returning one, or one whose counters started over: its history is
  // not this tick's traffic.
  if (it == gws.end() || !it->second.connected || totals.requests_total < it->second.last.requests_total)
    fleet_rebaseline_ = true;
  fleet_.Report(name, std::move(totals), Now());
}

void Controller::GatewayGone(const std::string& name) {
  std::lock_guard<std::mutex> l(mu_);
  fleet_.Disconnected(name);
  // Its requests in flight are no longer anyone's; what it counted stays counted.
  auto use = agent_limiter_use_.find(name);
  if (use != agent_limiter_use_.end())
    for (HostUse& h : use->second)
      if (h.limiter >= shm::LimiterIndex(shm::LimitKind::kKeyConcurrency, 0) &&
          h.limiter < shm::LimiterIndex(shm::LimitKind::kKeyConcurrency, shm::kMaxKeys))
        h.spent = 0;
}

void Controller::ReportPrefixes(const std::vector<PrefixPick>& picks) {
  std::lock_guard<std::mutex> l(mu_);
  // Bounded: a controller whose prefix tick stalls does not grow without limit.
  size_t room = picks.size() + fleet_prefixes_.size() <= 65536 ? picks.size() : 65536 - std::min<size_t>(65536, fleet_prefixes_.size());
  fleet_prefixes_.insert(fleet_prefixes_.end(), picks.begin(), picks.begin() + static_cast<long>(room));
}

std::string Controller::LocalGatewayName() const {
  std::lock_guard<std::mutex> l(mu_);
  return GatewayName(cfg_);
}

std::vector<GatewayStatsView> Controller::GatewayStats() const {
  std::lock_guard<std::mutex> l(mu_);
  std::vector<GatewayStatsView> out;
  auto view = [](const std::string& name, const shm::StatsTotals& t, const shm::StatsTotals* base) {
    GatewayStatsView v;
    v.name = name;
    v.requests_answered = AnsweredRequests(t) + (base ? AnsweredRequests(*base) : 0);
    v.active_requests = t.active_requests;
    v.live_threads = t.live_threads;
    for (uint32_t k = 0; k < shm::kNumErrorKinds; ++k) {
      uint64_t n = t.errors_by_kind[k] + (base ? base->errors_by_kind[k] : 0);
      if (k != 0 && n) v.errors_by_kind.emplace_back(std::string(shm::ErrorKindLabel(k)), n);
    }
    return v;
  };
  GatewayStatsView local = view(GatewayName(cfg_), local_stats_, nullptr);
  local.local = true;
  local.connected = local_stats_.live_threads > 0;
  out.push_back(std::move(local));
  uint64_t now = Now();
  for (const auto& [name, g] : fleet_.gateways()) {
    GatewayStatsView v = view(name, g.last, &g.base);
    v.connected = g.connected;
    v.report_age_seconds = now >= g.reported_ms ? static_cast<double>(now - g.reported_ms) / 1000.0 : 0;
    out.push_back(std::move(v));
  }
  return out;
}

}  // namespace llmgw::cp
