// prefix_affinity: requests that share a prompt prefix go to the prefix's home, so one KV
// cache keeps it warm. Homes are placed by traffic per weight and prefixes per cache,
// spilled from when full, and moved whole when they stay over their share (see Pick).
// The adaptive policy runs the same homes with its learnt shares as placement weights.
#pragma once

#include <cstdint>

#include "common/routing/consistent_hash.h"
#include "common/routing/pick_context.h"
#include "common/routing/prefix_homes.h"

namespace llmgw::routing {

// What a backend's placement weight is.
enum class PlaceBy : uint8_t {
  kConfiguredWeight,  // prefix_affinity
  kAdaptiveShare,     // adaptive: the learnt share with the exploration floor
};

class PrefixAffinity {
 public:
  // prefix_affinity and adaptive: net strikes (a pick that finds the prefix's home above
  // its share is +1, one that finds it fine is -1) before the prefix moves for good. High
  // enough that a short burst does not move a prefix (each move costs a cold prefill), low
  // enough that a backend carrying too much sheds prefixes within a few seconds of traffic.
  static constexpr uint16_t kRehomeStrikes = 32;
  // Prefix placement: how much an even number of prefixes per KV cache weighs against an
  // even share of traffic per weight (see PlaceHome).
  static constexpr double kCountWeight = 2.0;

  // The backend for a request whose prefix hashes to key_hash, or kNoBackend when every
  // candidate is above the hard bound. Counts and reports the pick. `ring`: the last
  // resort when no placement is under the bound.
  int Pick(uint16_t model_slot, const PickContext& ctx, uint64_t key_hash, PlaceBy by, HashRing& ring);

  // The thread's prefix homes (owned here; the Router applies llmcd's and reports).
  PrefixHomeTable& homes() { return homes_; }
  const PrefixHomeTable& homes() const { return homes_; }

 private:
  int PlaceHome(const PickContext& ctx, uint64_t key_hash, uint64_t bound, bool with_slack,
                int skip_slot, double rate) const;
  double PlaceWeight(const shm::BackendEntry& b, size_t n) const;
  double RatePerWeight(const PickContext& ctx, double extra) const;
  double TrafficShare(const PickContext& ctx, uint16_t slot, double extra, double rate_per_weight) const;
  bool HomeOverShare(const PickContext& ctx, const PrefixHome& e) const;

  PrefixHomeTable homes_;
  PlaceBy by_ = PlaceBy::kConfiguredWeight;  // of the pick in progress
};

}  // namespace llmgw::routing
