// The routing library's contract: no I/O, no locks. One Router per data-plane thread
// picks a backend per request from the thread's snapshot copy plus the thread's own
// in-flight counts. llmcd uses the same library per tick (AdaptiveBandit) to compute the
// adaptive policy's weights it publishes in the snapshot.
//
// This header is the interface the data plane and the control plane build against; the
// policies behind it are the routing issue's work (see docs/ROUTING.md when it lands).
#pragma once

#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

#include "common/shm_layout.h"

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
};

constexpr int kNoBackend = -1;

class Router {
 public:
  Router();
  // Rebuilds per-model state (eligible lists, hash rings, WRR state) from a new snapshot.
  // Off the hot path: may allocate. The snapshot must outlive the next OnSnapshot call.
  void OnSnapshot(const shm::Snapshot& snap);

  // Picks a backend slot for the model in `model_slot`, or kNoBackend when none is
  // eligible. `exclude` lists slots already tried for this request (retries).
  // Hot path: no allocation, no exceptions.
  int Pick(uint16_t model_slot, const RequestInfo& req, std::span<const LocalLoad> local,
           std::span<const uint16_t> exclude);

  // Estimated gateway-wide in-flight to backend `slot`: the fleet total of the last tick,
  // corrected by how this thread's own count moved since.
  static uint32_t EstimatedInFlight(const shm::BackendEntry& b, const LocalLoad& l);

  // True when backend `slot` may take one more request now (state, half-open budget,
  // max_concurrent).
  bool Eligible(const shm::BackendEntry& b, const LocalLoad& l) const;

  // True when every backend of the model is eligible-but-full (so admission should queue)
  // rather than ineligible (so the request should fail over or fail at once).
  bool AllAtCapacity(uint16_t model_slot, std::span<const LocalLoad> local) const;

 private:
  const shm::Snapshot* snap_ = nullptr;
  std::vector<std::vector<uint16_t>> model_backends_;  // per model slot: its backend slots
  std::vector<uint32_t> rr_cursor_;                    // per model slot
};

// The adaptive policy's learner, run by llmcd on every tick for each model.
struct ArmObservation {
  uint32_t slot = 0;        // backend slot
  bool eligible = true;
  uint64_t successes = 0;   // since the previous tick
  uint64_t failures = 0;    // since the previous tick
  double ttft_ms = 0;       // mean TTFT of the successes since the previous tick (0: none)
  double latency_ms = 0;    // mean end-to-end latency since the previous tick (0: none)
};

class AdaptiveBandit {
 public:
  AdaptiveBandit(double exploration, double decay, uint64_t seed = 1);
  // Feeds one tick of observations and returns the weight per observed arm (same order),
  // summing to 1 over eligible arms.
  std::vector<double> Update(std::span<const ArmObservation> arms);

 private:
  double exploration_;
  double decay_;
  uint64_t seed_;
  std::vector<double> score_;  // per slot
};

}  // namespace llmgw::routing
