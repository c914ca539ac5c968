// consistent_hash (see consistent_hash.h).
#include "common/routing/consistent_hash.h"

#include <algorithm>
#include <cmath>

namespace llmgw::routing {

HashRing::HashRing() : ring_(shm::kMaxModels), sig_(shm::kMaxModels, 0), cand_of_slot_(shm::kMaxBackends, -1) {}

void HashRing::OnModel(uint16_t model_slot, const shm::Snapshot& snap, std::span<const uint16_t> list,
                       uint32_t vnodes) {
  // Ring points depend on the backends' stable keys and weights, not their slots or
  // states; rebuild only when those change.
  uint64_t sig = Mix(vnodes + (list.empty() ? 0 : 1));
  for (uint16_t s : list) {
    const auto& b = snap.backends[s];
    sig = Mix(sig ^ b.key ^ (static_cast<uint64_t>(s) << 48));
    sig = Mix(sig ^ static_cast<uint64_t>(std::llround(RingWeight(b) * 1000.0)));
  }
  if (sig == sig_[model_slot]) return;
  sig_[model_slot] = sig;
  auto& ring = ring_[model_slot];
  ring.clear();
  if (list.empty()) return;
  // Virtual nodes in proportion to the configured weight, so a backend weighted for a
  // bigger GPU also owns a bigger share of the keys (weight 1 = `virtual_nodes`).
  for (uint16_t s : list) {
    uint64_t key = snap.backends[s].key;
    double scale = RingWeight(snap.backends[s]);
    uint32_t count = std::max<uint32_t>(1, static_cast<uint32_t>(std::lround(vnodes * scale)));
    for (uint32_t v = 0; v < count; ++v) ring.emplace_back(Mix(key ^ Mix(v + 1)), s);
  }
  std::sort(ring.begin(), ring.end());
}

int HashRing::Pick(uint16_t model_slot, const PickContext& ctx, uint64_t key_hash, uint64_t bound,
                   int skip_slot) {
  const auto& ring = ring_[model_slot];
  if (ring.empty()) return kNoBackend;
  size_t n = ctx.n();
  for (size_t i = 0; i < n; ++i) cand_of_slot_[ctx.cand[i].slot] = static_cast<int32_t>(i);
  if (skip_slot >= 0) cand_of_slot_[skip_slot] = -1;
  auto it = std::lower_bound(ring.begin(), ring.end(), key_hash,
                             [](const std::pair<uint64_t, uint16_t>& e, uint64_t h) { return e.first < h; });
  size_t pos = static_cast<size_t>(it - ring.begin());
  int chosen = kNoBackend;
  size_t checked = 0;
  for (size_t step = 0; step < ring.size() && checked < n; ++step) {
    uint16_t s = ring[(pos + step) % ring.size()].second;
    int32_t ci = cand_of_slot_[s];
    if (ci < 0) continue;  // ineligible, excluded, skipped, or already found full
    ++checked;
    if (ctx.cand[ci].load + 1u <= SlotLimit(bound, ctx.backend(s))) {
      chosen = s;
      break;
    }
    cand_of_slot_[s] = -1;
  }
  for (size_t i = 0; i < n; ++i) cand_of_slot_[ctx.cand[i].slot] = -1;
  return chosen;
}

}  // namespace llmgw::routing
