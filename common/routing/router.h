// The routing library's contract: no I/O, no locks. One Router per data-plane thread
// picks a backend per request from the thread's snapshot copy plus the thread's own
// in-flight counts. llmcd uses the same library per tick (AdaptiveBandit) to compute the
// adaptive policy's weights it publishes in the snapshot.
//
// This header is the interface the data plane and the control plane build against. The
// policies live in router.cc (per-request picks) and bandit.cc (the per-tick learner);
// admission.h holds the per-thread wait queue and prefix.h the prompt-prefix extractor.
// See docs/ROUTING.md.
#pragma once

#include <cstdint>
#include <span>
#include <string_view>
#include <utility>
#include <vector>

#include "common/config.h"
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
  uint32_t awaiting = 0;               // of in_flight: no first byte back yet (queued or in prefill)
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
  // rather than ineligible (so the request should fail over or fail at once).
  bool AllAtCapacity(uint16_t model_slot, std::span<const LocalLoad> local) const;

 private:
  // Candidates of one pick: eligible, not excluded, with their estimated load.
  struct Candidate {
    uint16_t slot;
    uint16_t index;  // position in model_backends_[model]
    uint32_t load;   // EstimatedInFlight
  };
  size_t CollectEligible(uint16_t model_slot, std::span<const LocalLoad> local,
                         std::span<const uint16_t> exclude);
  int PickRoundRobin(uint16_t model_slot, size_t n);
  int PickWeighted(uint16_t model_slot, size_t n);
  int PickLeastBy(uint16_t model_slot, size_t n, uint64_t random, int what,
                  std::span<const LocalLoad> local);
  int PickP2c(size_t n, uint64_t random, std::span<const LocalLoad> local);
  int PickRing(uint16_t model_slot, size_t n, uint64_t key_hash, int skip_slot = -1);
  int PickPrefix(uint16_t model_slot, size_t n, uint64_t key_hash);
  uint64_t RingBound(size_t n) const;
  int PlaceHome(size_t n, uint64_t key_hash, uint64_t bound, bool with_slack, int skip_slot,
                double rate);
  int PickAdaptive(uint16_t model_slot, size_t n, uint64_t random, uint64_t prefix_hash,
                   std::span<const LocalLoad> local);
  double BoundedLoadFactor() const;

  const shm::Snapshot* snap_ = nullptr;
  std::vector<std::vector<uint16_t>> model_backends_;  // per model slot: its backend slots
  std::vector<uint32_t> rr_cursor_;                    // per model slot
  // Smooth WRR: per model, per position in model_backends_: integer weight and current.
  std::vector<std::vector<int64_t>> wrr_weight_;
  std::vector<std::vector<int64_t>> wrr_current_;
  // Hash ring per model: (point, backend slot), sorted by point. Built from every
  // non-empty backend (eligible or not) so a backend turning ineligible moves only its keys.
  std::vector<std::vector<std::pair<uint64_t, uint16_t>>> ring_;
  std::vector<uint64_t> ring_sig_;  // per model: hash of what the ring was built from
  // prefix_affinity's per-thread memory of where each prefix lives (its "home"), so a
  // prefix is placed once by load and capacity rather than by where its hash happens to
  // fall. Fixed size, allocated in the constructor; a collision simply forgets the older
  // prefix (it is placed again).
  struct PrefixHome {
    uint64_t key_hash = 0;     // HashKey(prefix) mixed with the model slot; 0 = empty
    uint64_t backend_key = 0;  // BackendEntry::key of the home, so a reused slot is not trusted
    uint16_t slot = 0;
    uint16_t strikes = 0;      // net picks that found home above its share (see kRehomeStrikes)
    uint32_t epoch = 0;        // rate_epoch_ when `rate` was last brought up to date
    float rate = 0;            // picks of this prefix, halved every kRateHalfLifePicks picks
    uint32_t pinned = 0;       // == pin_epoch_: llmcd placed this home (snapshot prefix_homes)
  };
  static constexpr size_t kPrefixHomes = 4096;  // power of two
  std::vector<PrefixHome> prefix_home_;
  std::vector<uint32_t> homed_;  // per backend slot: entries of prefix_home_ living there
  // Per backend slot: the sum of `rate` over the prefixes homed there (the traffic its
  // prefixes bring), halved with them; and the clock of that halving.
  std::vector<double> homed_rate_;
  uint32_t rate_picks_ = 0;
  uint32_t rate_epoch_ = 0;
  void SetHome(PrefixHome& e, uint64_t tag, int slot);
  void AgeHome(PrefixHome& e) const;
  void CountHomePick(PrefixHome& e);
  // Placement weight of a backend: its configured weight (prefix_affinity), or its learnt
  // adaptive share while PickAdaptive runs the prefix homes (place_by_adaptive_).
  double PlaceWeight(const shm::BackendEntry& b, size_t n) const;
  double RatePerWeight(size_t n, double extra) const;
  double TrafficShare(uint16_t slot, size_t n, double extra, double rate_per_weight) const;
  bool HomeOverShare(const PrefixHome& e, size_t n) const;
  bool place_by_adaptive_ = false;
  uint32_t pin_epoch_ = 0;  // bumped per snapshot; entries it published carry the current one
  shm::PrefixReport* report_ = nullptr;
  size_t report_mask_ = 0;
  void ReportPick(uint64_t tag, uint16_t model_slot);
  bool HomeExists(const PrefixHome& e, uint16_t model_slot) const;
  // Per-pick scratch, sized in OnSnapshot so Pick never allocates.
  std::vector<Candidate> cand_;
  std::vector<int32_t> cand_of_slot_;  // slot -> index in cand_ for this pick, or -1
};

// The adaptive policy's learner, run by llmcd on every tick for each model.
struct ArmObservation {
  uint32_t slot = 0;        // backend slot
  bool eligible = true;
  uint64_t successes = 0;   // since the previous tick
  uint64_t failures = 0;    // since the previous tick
  double ttft_ms = 0;       // mean TTFT of the successes since the previous tick (0: none)
  double latency_ms = 0;    // mean end-to-end latency since the previous tick (0: none)
  double tpot_ms = 0;       // mean time per output token after the first (decode speed; 0: unknown)
};

class AdaptiveBandit {
 public:
  // exploration: share of the weight spread evenly over eligible arms (0..1), so every
  // arm keeps getting a trickle of traffic and a recovered backend is noticed.
  // decay: per-tick factor applied to past evidence (0..1); lower follows change faster.
  AdaptiveBandit(double exploration, double decay, uint64_t seed = 1);
  // Feeds one tick of observations and returns the weight per observed arm (same order),
  // summing to 1 over eligible arms (0 for ineligible ones).
  std::vector<double> Update(std::span<const ArmObservation> arms);

  // Forgets everything learnt about `slot` (its backend was replaced by a reload).
  void Forget(uint32_t slot);

  // The reward one success with these timings earns (higher is better, 0..1]. Exposed for
  // tests and docs: reward = 1 / (1 + (ttft_ms + latency_ms / 1000) / kRewardScaleMs).
  // TTFT first: end-to-end latency mostly says how long the answers were; it breaks ties.
  static double Reward(double ttft_ms, double latency_ms);
  static constexpr double kRewardScaleMs = 200.0;

 private:
  struct Arm {
    double n = 0;       // decayed observation count
    double sum = 0;     // decayed sum of rewards
    double sum_sq = 0;  // decayed sum of squared rewards
    double tpot_n = 0;    // decayed count of ticks with a decode-speed reading
    double tpot_sum = 0;  // decayed sum of those readings (ms per output token)
  };

  double exploration_;
  double decay_;
  uint64_t seed_;  // the learner is deterministic today; kept for tie-breaking variants
  std::vector<double> score_;  // per slot: the last posterior mean (for stats)
  std::vector<Arm> arms_;      // per slot
};

}  // namespace llmgw::routing
