// What the router is given per request and per backend: the types shared by Router
// (router.h, the data plane's interface) and the policies (pick_context.h).
#pragma once

#include <cstdint>
#include <string_view>

namespace llmgw::routing {

// What the router may look at of a request. Views into the request buffer; no copies.
struct RequestInfo {
  std::string_view hash_key;  // consistent_hash: configured header, else `user`; may be empty
  std::string_view prefix;    // prefix_affinity: leading prompt bytes (system prompt first)
  uint64_t random = 0;        // per-request random bits (p2c candidates, tie breaks)
};

// This thread's live view of one backend, kept by the data plane, indexed by backend slot.
struct LocalLoad {
  uint32_t in_flight = 0;              // this thread's requests in flight to the backend now
  uint32_t in_flight_at_snapshot = 0;  // this thread's in-flight when the snapshot arrived
  uint32_t awaiting = 0;               // of in_flight: no first byte back yet (queued or in prefill)
};

constexpr int kNoBackend = -1;

}  // namespace llmgw::routing
