// round_robin (see round_robin.h).
#include "common/routing/round_robin.h"

namespace llmgw::routing {

void RoundRobin::OnModel(uint16_t model_slot, bool same_members) {
  if (!same_members) cursor_[model_slot] = 0;
}

int RoundRobin::Pick(uint16_t model_slot, size_t list_len, const PickContext& ctx) {
  // The cursor walks the model's full list so a backend that is skipped once does not shift
  // everyone else's turn; the first eligible one at or after the cursor wins.
  uint32_t cur = static_cast<uint32_t>(cursor_[model_slot] % list_len);
  size_t chosen = 0;
  for (size_t i = 0; i < ctx.n(); ++i) {
    if (ctx.cand[i].index >= cur) {
      chosen = i;
      break;
    }
  }
  cursor_[model_slot] = ctx.cand[chosen].index + 1u;
  return ctx.cand[chosen].slot;
}

}  // namespace llmgw::routing
