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

void Controller::SetRemoteInFlight(uint64_t session, std::map<std::string, uint64_t> by_backend) {
  std::lock_guard<std::mutex> l(mu_);
  if (by_backend.empty()) remote_in_flight_.erase(session);
  else remote_in_flight_[session] = std::move(by_backend);
}

}  // namespace llmgw::cp
