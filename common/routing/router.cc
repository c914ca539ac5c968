// The Router: per-model backend lists, eligibility and the dispatch to one policy per
// request. OnSnapshot precomputes everything a policy needs (per-model backend lists,
// smooth-WRR weights, hash rings, llmcd's prefix homes, scratch space); Pick then only
// reads the snapshot and the thread's LocalLoad, so it never allocates or throws. The
// policies themselves live in one file each (see router.h).
#include "common/routing/router.h"

#include <algorithm>

#include "common/routing/adaptive.h"
#include "common/routing/least_load.h"
#include "common/routing/p2c_kv.h"

namespace llmgw::routing {
namespace {

using shm::BackendState;

constexpr uint32_t kDefaultVirtualNodes = 160;

inline bool Excluded(std::span<const uint16_t> exclude, uint16_t s) {
  for (uint16_t e : exclude)
    if (e == s) return true;
  return false;
}

}  // namespace

void Router::SetPrefixReport(shm::PrefixReport* table, size_t entries) {
  prefix_affinity_.homes().SetReport(table, entries);
}

uint64_t Router::PrefixTag(uint64_t key_hash, uint16_t model_slot) {
  return PrefixHomeTable::Tag(key_hash, model_slot);
}

int Router::PrefixHomeOf(uint64_t key_hash, uint16_t model_slot, bool* pinned) const {
  uint64_t tag = PrefixTag(key_hash, model_slot);
  const PrefixHomeTable& homes = prefix_affinity_.homes();
  const PrefixHome& e = homes.Entry(tag);
  bool found = snap_ && e.key_hash == tag && PrefixHomeTable::Exists(e, *snap_, model_slot);
  if (pinned) *pinned = found && homes.Pinned(e);
  return found ? e.slot : -1;
}

double Router::AdaptiveShare(double learnt_share, size_t eligible) {
  return routing::AdaptiveShare(learnt_share, eligible);
}

uint64_t Router::HashKey(std::string_view key) { return Mix(shm::Fnv1a(key.data(), key.size())); }

Policy Router::PolicyOf(uint16_t model_slot) const {
  if (!snap_ || model_slot >= shm::kMaxModels) return Policy::kRoundRobin;
  uint8_t p = snap_->models[model_slot].policy;
  return p < static_cast<uint8_t>(Policy::kCount) ? static_cast<Policy>(p) : Policy::kRoundRobin;
}

void Router::OnSnapshot(const shm::Snapshot& snap) {
  snap_ = &snap;
  std::vector<std::vector<uint16_t>> lists(shm::kMaxModels);
  uint32_t nb = std::min(snap.num_backends, shm::kMaxBackends);
  for (uint32_t i = 0; i < nb; ++i) {
    const auto& b = snap.backends[i];
    if (b.state == static_cast<uint8_t>(BackendState::kEmpty)) continue;
    if (b.model_slot < shm::kMaxModels) lists[b.model_slot].push_back(static_cast<uint16_t>(i));
  }
  uint32_t vnodes = snap.limits.virtual_nodes ? snap.limits.virtual_nodes : kDefaultVirtualNodes;

  model_backends_.resize(shm::kMaxModels);
  size_t widest = 0;
  for (uint16_t m = 0; m < shm::kMaxModels; ++m) {
    auto& list = lists[m];
    widest = std::max(widest, list.size());
    // Rotation and smooth-WRR state carry across ticks when membership is unchanged, so
    // proportions stay exact across snapshot boundaries.
    bool same_members = list == model_backends_[m];
    round_robin_.OnModel(m, same_members);
    weighted_.OnModel(m, snap, list, same_members);
    ring_.OnModel(m, snap, list, vnodes);
    model_backends_[m] = std::move(list);
  }
  cand_.resize(std::max<size_t>(widest, 1));
  rate_skipped_.resize(cand_.size());
  rate_skipped_n_ = 0;
  prefix_affinity_.homes().ApplyPublished(snap);
}

uint32_t Router::EstimatedInFlight(const shm::BackendEntry& b, const LocalLoad& l) {
  int64_t others = static_cast<int64_t>(b.fleet_in_flight) - static_cast<int64_t>(l.in_flight_at_snapshot);
  if (others < 0) others = 0;
  return static_cast<uint32_t>(others) + l.in_flight;
}

bool Router::Eligible(const shm::BackendEntry& b, const LocalLoad& l) const {
  auto st = static_cast<BackendState>(b.state);
  if (st == BackendState::kHalfOpen) {
    // Half-open: only this thread's own trial budget counts; the fleet estimate may include
    // other threads' trials, which have their own budgets.
    return l.in_flight < b.half_open_budget && EstimatedInFlight(b, l) < b.max_concurrent;
  }
  if (st != BackendState::kHealthy) return false;
  return EstimatedInFlight(b, l) < b.max_concurrent;
}

bool Router::AllAtCapacity(uint16_t model_slot, std::span<const LocalLoad> local,
                           std::span<const uint16_t> exclude) const {
  if (!snap_ || model_slot >= model_backends_.size()) return false;
  bool any_healthy = false;
  for (uint16_t s : model_backends_[model_slot]) {
    if (std::find(exclude.begin(), exclude.end(), s) != exclude.end()) continue;
    const auto& b = snap_->backends[s];
    auto st = static_cast<BackendState>(b.state);
    if (st != BackendState::kHealthy && st != BackendState::kHalfOpen) continue;
    const auto& l = LoadAt(local, s);
    if (st == BackendState::kHalfOpen && l.in_flight >= b.half_open_budget) continue;
    if (AtRate(b, s)) continue;  // frees up with the next lease, not with a completion
    any_healthy = true;
    if (EstimatedInFlight(b, l) < b.max_concurrent) return false;
  }
  return any_healthy;
}

size_t Router::CollectEligible(uint16_t model_slot, std::span<const LocalLoad> local,
                               std::span<const uint16_t> exclude) {
  const auto& list = model_backends_[model_slot];
  size_t n = 0;
  rate_skipped_n_ = 0;
  for (size_t k = 0; k < list.size(); ++k) {
    uint16_t s = list[k];
    if (Excluded(exclude, s)) continue;
    const auto& b = snap_->backends[s];
    const auto& l = LoadAt(local, s);
    if (!Eligible(b, l)) continue;
    if (AtRate(b, s)) {
      if (rate_skipped_n_ < rate_skipped_.size()) rate_skipped_[rate_skipped_n_++] = s;
      continue;
    }
    cand_[n] = Candidate{s, static_cast<uint16_t>(k), EstimatedInFlight(b, l)};
    ++n;
  }
  return n;
}

std::string_view Router::CappedPrefix(std::string_view p) const {
  uint32_t cap = snap_->limits.prefix_bytes;
  return cap && p.size() > cap ? p.substr(0, cap) : p;
}

int Router::Pick(uint16_t model_slot, const RequestInfo& req, std::span<const LocalLoad> local,
                 std::span<const uint16_t> exclude) {
  rate_skipped_n_ = 0;
  if (!snap_ || model_slot >= model_backends_.size()) return kNoBackend;
  size_t n = CollectEligible(model_slot, local, exclude);
  if (n == 0) return kNoBackend;
  Policy policy = PolicyOf(model_slot);
  // Every policy agrees when there is one choice, but WRR still has to account for it.
  if (n == 1 && policy != Policy::kWeightedRoundRobin) return cand_[0].slot;
  PickContext ctx{*snap_, std::span<const Candidate>(cand_.data(), n), local};
  size_t list_len = model_backends_[model_slot].size();
  switch (policy) {
    case Policy::kRoundRobin: return round_robin_.Pick(model_slot, list_len, ctx);
    case Policy::kWeightedRoundRobin: return weighted_.Pick(model_slot, list_len, ctx, round_robin_);
    case Policy::kLeastConnections: return PickLeastLoad(ctx, req.random, LeastBy::kConnections);
    case Policy::kLeastQueue: return PickLeastLoad(ctx, req.random, LeastBy::kQueue);
    case Policy::kCapacity: return PickLeastLoad(ctx, req.random, LeastBy::kCapacity);
    case Policy::kP2cKv: return PickP2cKv(ctx, req.random);
    case Policy::kConsistentHash: {
      // No key: spread by the request's random bits (still bounded-load).
      uint64_t h = req.hash_key.empty() ? Mix(req.random) : HashKey(req.hash_key);
      int s = ring_.Pick(model_slot, ctx, h, RingBound(ctx));
      return s != kNoBackend ? s : PickLeastLoad(ctx, req.random, LeastBy::kConnections);
    }
    case Policy::kPrefixAffinity: {
      std::string_view p = CappedPrefix(req.prefix);
      int s = p.empty() ? kNoBackend
                        : prefix_affinity_.Pick(model_slot, ctx, HashKey(p), PlaceBy::kConfiguredWeight, ring_);
      // No prefix, or every candidate is above the bound: least load.
      return s != kNoBackend ? s : PickLeastLoad(ctx, req.random, LeastBy::kQueue);
    }
    case Policy::kAdaptive: {
      std::string_view p = CappedPrefix(req.prefix);
      return PickAdaptive(model_slot, ctx, req.random, p.empty() ? 0 : HashKey(p), prefix_affinity_, ring_);
    }
    case Policy::kCount: break;
  }
  return round_robin_.Pick(model_slot, list_len, ctx);
}

}  // namespace llmgw::routing
