// The routing library's contract: no I/O, no locks. One Router per data-plane thread
// picks a backend per request from the thread's snapshot copy plus the thread's own
// in-flight counts. llmcd uses the same library per tick (AdaptiveBandit, bandit.h) to
// compute the adaptive policy's weights it publishes in the snapshot.
//
// This header is the interface the data plane and the control plane build against. The
// Router keeps the per-model backend lists, decides which backends are eligible and
// dispatches to one policy per file, as HAProxy's lb_*.c and Pingora's selection/:
//   round_robin.h, weighted_round_robin.h, least_load.h (least_connections, least_queue,
//   capacity), p2c_kv.h, consistent_hash.h, prefix_affinity.h (with the prefix-home table
//   in prefix_homes.h) and adaptive.h; pick_context.h is what a policy sees of a pick.
// admission.h holds the per-thread wait queue and prefix.h the prompt-prefix extractor.
// See docs/ROUTING.md.
#pragma once

#include <cstdint>
#include <span>
#include <string_view>
#include <utility>
#include <vector>

#include "common/config.h"
#include "common/routing/consistent_hash.h"
#include "common/routing/pick_context.h"
#include "common/routing/prefix_affinity.h"
#include "common/routing/prefix_homes.h"
#include "common/routing/request_info.h"
#include "common/routing/round_robin.h"
#include "common/routing/weighted_round_robin.h"
#include "common/shm_layout.h"

namespace llmgw::routing {

class Router {
 public:
  Router() = default;
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

  // Where this thread reports the prefixes it routes (its stats slot), for llmcd's
  // gateway-wide prefix homes. `entries` must be a power of two. Optional (tests, sim).
  void SetPrefixReport(shm::PrefixReport* table, size_t entries);

  // The tag prefix homes are keyed by, in the snapshot and in the reports.
  static uint64_t PrefixTag(uint64_t key_hash, uint16_t model_slot);

  // Home of a prefix as this thread knows it (-1: none), and whether llmcd placed it
  // (tests, simulator).
  int PrefixHomeOf(uint64_t key_hash, uint16_t model_slot, bool* pinned = nullptr) const;

  // Adaptive: the share of traffic a backend is planned for, from its learnt share (0..1,
  // normalised over the model's eligible backends) mixed with an even floor so every
  // eligible backend keeps a trickle (exploration). One definition for the data plane's
  // picks, llmcd's prefix placement and the simulator.
  static double AdaptiveShare(double learnt_share, size_t eligible);

  // The policy the snapshot names for `model_slot` (round_robin when out of range).
  Policy PolicyOf(uint16_t model_slot) const;

  // The 64-bit hash consistent_hash and prefix_affinity place keys with (also used by
  // tests and the simulator to reason about placement).
  static uint64_t HashKey(std::string_view key);

  // True when backend `slot` may take one more request now (state, half-open budget,
  // max_concurrent).
  bool Eligible(const shm::BackendEntry& b, const LocalLoad& l) const;

  // True when every backend of the model is eligible-but-full (so admission should queue)
  // rather than ineligible (so the request should fail over or fail at once). Backends in
  // `exclude` (a stream continuation's failed ones) do not count either way. A backend at
  // its rate counts as neither: with only such backends left the request fails at once.
  bool AllAtCapacity(uint16_t model_slot, std::span<const LocalLoad> local,
                     std::span<const uint16_t> exclude = {}) const;

  // Per-backend rates (models[].backends[].rps): this thread's lease and use of each
  // backend's rate limiter, indexed by backend slot (ThreadLimiter's arrays from the
  // backend_rps base; they must outlive the router). A backend with an rps whose lease is
  // used up is skipped like a full one. Unset (tests, simulator): rates are not checked.
  void SetBackendRates(const uint64_t* grant, const uint64_t* spent) {
    rate_grant_ = grant;
    rate_spent_ = spent;
  }
  bool AtRate(const shm::BackendEntry& b, uint16_t slot) const {
    return b.rps && rate_grant_ && rate_spent_[slot] >= rate_grant_[slot];
  }
  // The backends the last Pick skipped because they were at their rate (the worker counts
  // them as refused by their limiter: llmcd reads refusals as demand).
  std::span<const uint16_t> RateSkipped() const { return {rate_skipped_.data(), rate_skipped_n_}; }

 private:
  size_t CollectEligible(uint16_t model_slot, std::span<const LocalLoad> local,
                         std::span<const uint16_t> exclude);
  // prefix_affinity's and adaptive's prefix: the request's, cut at limits.prefix_bytes.
  std::string_view CappedPrefix(std::string_view prefix) const;

  const shm::Snapshot* snap_ = nullptr;
  std::vector<std::vector<uint16_t>> model_backends_;  // per model slot: its backend slots
  // Per-policy state (the stateless policies are plain functions).
  RoundRobin round_robin_;
  SmoothWeightedRoundRobin weighted_;
  HashRing ring_;
  PrefixAffinity prefix_affinity_;  // owns the prefix-home table
  // Per-pick scratch, sized in OnSnapshot so Pick never allocates.
  std::vector<Candidate> cand_;
  const uint64_t* rate_grant_ = nullptr;
  const uint64_t* rate_spent_ = nullptr;
  std::vector<uint16_t> rate_skipped_;  // sized in OnSnapshot, like cand_
  size_t rate_skipped_n_ = 0;
};

}  // namespace llmgw::routing
