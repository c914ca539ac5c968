// adaptive: weighted least load on the shares llmcd's learner (bandit.h) publishes per
// backend, with an exploration floor, plus prefix homes placed by those shares when the
// request has a prompt prefix, and a spill away from a home that is not answering first
// tokens. The learner runs in llmcd; this is the per-request half.
#pragma once

#include <cstddef>
#include <cstdint>

#include "common/routing/pick_context.h"
#include "common/routing/prefix_affinity.h"

namespace llmgw::routing {

// Share of the traffic spread evenly whatever the learnt weights say, so the data plane
// itself keeps exploring even when llmcd publishes a near-0 weight.
constexpr double kAdaptiveFloor = 0.05;
// This thread's requests still waiting for their first token at a prefix's home before a
// request for that prefix goes to an idle backend instead (see PickAdaptive).
constexpr uint32_t kAwaitingSpill = 2;

// A backend's planned share from its learnt share (0..1, normalised over the model's
// eligible backends) and the floor. Router::AdaptiveShare is this.
inline double AdaptiveShare(double learnt_share, size_t eligible) {
  return (1.0 - kAdaptiveFloor) * learnt_share + kAdaptiveFloor / static_cast<double>(eligible > 0 ? eligible : 1);
}

// prefix_hash 0: the request has no prompt prefix.
int PickAdaptive(uint16_t model_slot, const PickContext& ctx, uint64_t random, uint64_t prefix_hash,
                 PrefixAffinity& prefixes, HashRing& ring);

}  // namespace llmgw::routing
