// weighted_round_robin (see weighted_round_robin.h).
#include "common/routing/weighted_round_robin.h"

#include <cmath>

namespace llmgw::routing {

void SmoothWeightedRoundRobin::OnModel(uint16_t model_slot, const shm::Snapshot& snap,
                                       std::span<const uint16_t> list, bool same_members) {
  if (!same_members) current_[model_slot].assign(list.size(), 0);
  auto& w = weight_[model_slot];
  w.resize(list.size());
  for (size_t k = 0; k < list.size(); ++k) {
    float f = snap.backends[list[k]].weight;
    w[k] = f > 0 && std::isfinite(f) ? std::llround(static_cast<double>(f) * 1000.0) : 0;
  }
}

int SmoothWeightedRoundRobin::Pick(uint16_t model_slot, size_t list_len, const PickContext& ctx,
                                   RoundRobin& fallback) {
  // Every candidate gains its weight, the richest is chosen and pays the total back.
  auto& w = weight_[model_slot];
  auto& cur = current_[model_slot];
  size_t n = ctx.n();
  int64_t total = 0;
  for (size_t i = 0; i < n; ++i) total += w[ctx.cand[i].index];
  if (total == 0) return fallback.Pick(model_slot, list_len, ctx);
  size_t best = n;
  for (size_t i = 0; i < n; ++i) {
    uint16_t k = ctx.cand[i].index;
    if (w[k] == 0) continue;
    cur[k] += w[k];
    if (best == n || cur[k] > cur[ctx.cand[best].index]) best = i;
  }
  cur[ctx.cand[best].index] -= total;
  return ctx.cand[best].slot;
}

}  // namespace llmgw::routing
