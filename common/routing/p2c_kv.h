// p2c_kv: power of two choices on a KV-aware score (waiting, running, KV-cache usage,
// latency, error rate, weighted by the snapshot's limits). Stateless; needs n >= 2.
#pragma once

#include <cstdint>

#include "common/routing/pick_context.h"

namespace llmgw::routing {

int PickP2cKv(const PickContext& ctx, uint64_t random);

}  // namespace llmgw::routing
