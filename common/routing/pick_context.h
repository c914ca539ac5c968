// What every per-request policy sees of one pick, and the small helpers they share. The
// Router fills a PickContext (the snapshot, this pick's eligible candidates with their
// estimated load, the thread's LocalLoad) and hands it to one policy; a policy reads it
// and its own per-model state, never allocates and never throws. Internal to
// common/routing/: the data plane builds against router.h only.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <span>

#include "common/routing/request_info.h"
#include "common/shm_layout.h"

namespace llmgw::routing {

// One candidate of a pick: eligible, not excluded, with its estimated load.
struct Candidate {
  uint16_t slot;
  uint16_t index;  // position in the model's backend list (Router's per-model list)
  uint32_t load;   // Router::EstimatedInFlight
};

struct PickContext {
  const shm::Snapshot& snap;
  std::span<const Candidate> cand;  // never empty when a policy is called
  std::span<const LocalLoad> local;
  size_t n() const { return cand.size(); }
  const shm::BackendEntry& backend(uint16_t slot) const { return snap.backends[slot]; }
};

// splitmix64's finaliser: spreads FNV's weak low bits so ring points and key hashes are
// uniform on the 64-bit circle.
inline uint64_t Mix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

inline const LocalLoad& LoadAt(std::span<const LocalLoad> local, uint16_t s) {
  static const LocalLoad kNoLoad{};
  return s < local.size() ? local[s] : kNoLoad;
}

// Requests this thread sent (positive) or finished (negative) since the snapshot's scrape:
// the scraped running/waiting do not know about them yet.
inline double LocalDelta(const LocalLoad& l) {
  return static_cast<double>(l.in_flight) - static_cast<double>(l.in_flight_at_snapshot);
}

// A backend's configured weight as the hash ring and prefix placement use it: 1 when unset
// or nonsense, capped so one entry cannot bloat the ring.
inline double RingWeight(const shm::BackendEntry& b) {
  float w = b.weight;
  return w > 0 && std::isfinite(w) ? std::min<double>(w, 64.0) : 1.0;
}

constexpr double kDefaultBoundedLoad = 1.25;
// Bounded load on an idle fleet would move a hot key after its first request (the mean is
// ~0). A backend using at most this fraction of its max_concurrent is never "saturated"
// for the bound; once the fleet carries real load, c x mean is the binding limit.
constexpr double kAffinitySlack = 0.25;

// The bounded-load factor c from the snapshot. The float is rounded back to the decimal
// the operator wrote (1.1f is 1.10000002), so a load exactly at c x mean does not round
// up to one more request.
inline double BoundedLoadFactor(const shm::Snapshot& snap) {
  double c = std::round(static_cast<double>(snap.limits.bounded_load) * 1e4) / 1e4;
  return c >= 1.0 ? c : kDefaultBoundedLoad;
}

// Bounded load (Mirrokni et al.): no backend may exceed ceil(c * (total + 1) / n) after
// taking this request, counting only backends that may take requests now (or the slack
// floor, see SlotLimit). The bound is on in-flight counts and is the same for every
// backend, whatever its weight: a faster backend finishes sooner, so equal in-flight
// already gives it more throughput (weighting the bound too was measured worse for TTFT
// p99 in routing_sim).
inline uint64_t RingBound(const PickContext& ctx) {
  double c = BoundedLoadFactor(ctx.snap);
  uint64_t total = 0;
  for (const Candidate& k : ctx.cand) total += k.load;
  return static_cast<uint64_t>(std::ceil(c * static_cast<double>(total + 1) / static_cast<double>(ctx.n()) - 1e-9));
}

// The bound for one backend: the shared bound, or its idle slack if that is higher.
inline uint64_t SlotLimit(uint64_t bound, const shm::BackendEntry& b) {
  return std::max<uint64_t>(bound, static_cast<uint64_t>(std::ceil(kAffinitySlack * b.max_concurrent)));
}

}  // namespace llmgw::routing
