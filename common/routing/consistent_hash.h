// consistent_hash: a hash ring per model with virtual nodes in proportion to weight, and
// bounded load (a key whose backend is above c x mean takes the ring's next backend, a
// consistent second choice that keeps the overflow warm too). prefix_affinity uses the
// ring as its last resort when no placement is under the bound.
#pragma once

#include <cstdint>
#include <span>
#include <utility>
#include <vector>

#include "common/routing/pick_context.h"

namespace llmgw::routing {

class HashRing {
 public:
  HashRing();
  // Off the hot path: rebuilds the model's ring when its members' keys, slots or weights
  // changed (snapshots arrive every tick; a thousand backends are 160k points to sort).
  void OnModel(uint16_t model_slot, const shm::Snapshot& snap, std::span<const uint16_t> list,
               uint32_t virtual_nodes);
  // The first candidate at or after key_hash on the ring whose load + 1 is within its
  // SlotLimit(bound); skips `skip_slot`; kNoBackend when every candidate is above.
  int Pick(uint16_t model_slot, const PickContext& ctx, uint64_t key_hash, uint64_t bound,
           int skip_slot = -1);
  // The ring's points of a model (tests).
  size_t Points(uint16_t model_slot) const { return ring_[model_slot].size(); }

 private:
  // Per model: (point, backend slot), sorted by point. Built from every non-empty backend
  // (eligible or not) so a backend turning ineligible moves only its keys.
  std::vector<std::vector<std::pair<uint64_t, uint16_t>>> ring_;
  std::vector<uint64_t> sig_;          // per model: hash of what the ring was built from
  std::vector<int32_t> cand_of_slot_;  // per-pick scratch: slot -> candidate index or -1
};

}  // namespace llmgw::routing
