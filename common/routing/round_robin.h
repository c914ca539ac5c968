// round_robin: each model's backends in turn, skipping the ones that cannot take the
// request now. Also the fallback of weighted_round_robin when every weight is 0.
#pragma once

#include <cstdint>
#include <vector>

#include "common/routing/pick_context.h"

namespace llmgw::routing {

class RoundRobin {
 public:
  // Off the hot path. `same_members`: the model's backend list did not change, so the
  // rotation continues where it was (proportions stay exact across snapshots).
  void OnModel(uint16_t model_slot, bool same_members);
  // `list_len`: size of the model's whole backend list (candidates index into it).
  int Pick(uint16_t model_slot, size_t list_len, const PickContext& ctx);

 private:
  std::vector<uint32_t> cursor_ = std::vector<uint32_t>(shm::kMaxModels, 0);  // per model
};

}  // namespace llmgw::routing
