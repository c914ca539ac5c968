// least_connections, least_queue and capacity: the candidate with the lowest load score
// wins, ties spread by the request's random bits. Stateless.
#pragma once

#include <cstdint>

#include "common/routing/pick_context.h"

namespace llmgw::routing {

enum class LeastBy : uint8_t {
  kConnections,  // estimated in-flight
  kQueue,        // estimated in-flight + scraped waiting
  kCapacity,     // (running x 3 + waiting) / max_concurrent
};

int PickLeastLoad(const PickContext& ctx, uint64_t random, LeastBy what);

}  // namespace llmgw::routing
