// weighted_round_robin: nginx's smooth weighted round robin over the configured weights.
// Over sum(weights) picks each backend gets exactly its weight, interleaved rather than
// in bursts; the state carries across snapshots while the model's members are unchanged.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "common/routing/pick_context.h"
#include "common/routing/round_robin.h"

namespace llmgw::routing {

class SmoothWeightedRoundRobin {
 public:
  // Off the hot path: takes the weights of the model's backends (`list`: their slots).
  void OnModel(uint16_t model_slot, const shm::Snapshot& snap, std::span<const uint16_t> list,
               bool same_members);
  // Every candidate's weight 0: plain rotation by `fallback`.
  int Pick(uint16_t model_slot, size_t list_len, const PickContext& ctx, RoundRobin& fallback);

 private:
  // Per model, per position in the model's list: integer weight (x1000) and current.
  std::vector<std::vector<int64_t>> weight_ = std::vector<std::vector<int64_t>>(shm::kMaxModels);
  std::vector<std::vector<int64_t>> current_ = std::vector<std::vector<int64_t>>(shm::kMaxModels);
};

}  // namespace llmgw::routing
