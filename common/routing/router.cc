// Interim routing: least connections over eligible backends, and an even-split bandit.
// The routing issue replaces these with the real policies behind the same interface.
#include "common/routing/router.h"

#include <algorithm>

namespace llmgw::routing {

Router::Router() = default;

void Router::OnSnapshot(const shm::Snapshot& snap) {
  snap_ = &snap;
  model_backends_.assign(shm::kMaxModels, {});
  rr_cursor_.assign(shm::kMaxModels, 0);
  for (uint32_t i = 0; i < snap.num_backends; ++i) {
    const auto& b = snap.backends[i];
    if (b.state == static_cast<uint8_t>(shm::BackendState::kEmpty)) continue;
    if (b.model_slot < shm::kMaxModels) model_backends_[b.model_slot].push_back(static_cast<uint16_t>(i));
  }
}

uint32_t Router::EstimatedInFlight(const shm::BackendEntry& b, const LocalLoad& l) {
  int64_t others = static_cast<int64_t>(b.fleet_in_flight) - static_cast<int64_t>(l.in_flight_at_snapshot);
  if (others < 0) others = 0;
  return static_cast<uint32_t>(others) + l.in_flight;
}

bool Router::Eligible(const shm::BackendEntry& b, const LocalLoad& l) const {
  auto st = static_cast<shm::BackendState>(b.state);
  if (st == shm::BackendState::kHalfOpen) return l.in_flight < b.half_open_budget;
  if (st != shm::BackendState::kHealthy) return false;
  return EstimatedInFlight(b, l) < b.max_concurrent;
}

bool Router::AllAtCapacity(uint16_t model_slot, std::span<const LocalLoad> local) const {
  if (!snap_ || model_slot >= model_backends_.size()) return false;
  bool any_healthy = false;
  for (uint16_t s : model_backends_[model_slot]) {
    const auto& b = snap_->backends[s];
    if (b.state != static_cast<uint8_t>(shm::BackendState::kHealthy)) continue;
    any_healthy = true;
    if (EstimatedInFlight(b, local[s]) < b.max_concurrent) return false;
  }
  return any_healthy;
}

int Router::Pick(uint16_t model_slot, const RequestInfo& /*req*/, std::span<const LocalLoad> local,
                 std::span<const uint16_t> exclude) {
  if (!snap_ || model_slot >= model_backends_.size()) return kNoBackend;
  int best = kNoBackend;
  uint32_t best_load = UINT32_MAX;
  const auto& list = model_backends_[model_slot];
  size_t n = list.size();
  // Start at a rotating cursor so ties spread instead of piling on the first backend.
  uint32_t start = n ? rr_cursor_[model_slot]++ % n : 0;
  for (size_t k = 0; k < n; ++k) {
    uint16_t s = list[(start + k) % n];
    if (std::find(exclude.begin(), exclude.end(), s) != exclude.end()) continue;
    const auto& b = snap_->backends[s];
    if (!Eligible(b, local[s])) continue;
    uint32_t load = EstimatedInFlight(b, local[s]);
    if (load < best_load) {
      best_load = load;
      best = s;
    }
  }
  return best;
}

AdaptiveBandit::AdaptiveBandit(double exploration, double decay, uint64_t seed)
    : exploration_(exploration), decay_(decay), seed_(seed) {}

std::vector<double> AdaptiveBandit::Update(std::span<const ArmObservation> arms) {
  std::vector<double> w(arms.size(), 0.0);
  size_t eligible = 0;
  for (const auto& a : arms) eligible += a.eligible ? 1 : 0;
  for (size_t i = 0; i < arms.size(); ++i)
    w[i] = arms[i].eligible && eligible ? 1.0 / static_cast<double>(eligible) : 0.0;
  return w;
}

}  // namespace llmgw::routing
