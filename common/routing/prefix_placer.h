// Gateway-wide prefix homes, computed by llmcd once per tick. Every data-plane thread
// reports the prompt prefixes it routed (shm::PrefixReport, written by Router); llmcd sums
// them here over all threads, places each prefix on one backend with the same rule a
// Router uses for its own prefixes (traffic per weight + prefixes per KV cache), moves
// prefixes off backends that stay overloaded, and publishes the result in the snapshot
// (shm::PrefixHomeEntry). Routers then treat a published home as authoritative, so a
// prompt prefix warms one KV cache however many threads and gateway processes see it.
// Without this each thread placed prefixes by its own view and a prefix could have one
// home per thread (measured: prefix-cache hit 54% with one llmgw thread, 36% with two).
//
// No I/O; llmcd and the routing simulator drive it. Not for the data plane's hot path
// (it allocates).
#pragma once

#include <cstdint>
#include <span>
#include <unordered_map>
#include <vector>

#include "common/shm_layout.h"

namespace llmgw::routing {

// What the placer knows of one backend of the model at this tick.
struct PlacerBackend {
  uint16_t slot = 0;
  uint64_t key = 0;          // BackendEntry::key
  bool eligible = true;      // healthy (not draining, down, circuit open or half-open)
  double weight = 1;         // placement weight: configured weight, or the adaptive share
  uint32_t in_flight = 0;    // gateway-wide in flight now
  uint32_t max_concurrent = 0;
};

struct PlacedHome {
  uint64_t tag = 0;
  uint16_t slot = 0;
  uint64_t backend_key = 0;
  double rate = 0;  // the prefix's recent traffic, in picks per half-life
};

class PrefixPlacer {
 public:
  // bounded_load: the c of routing.bounded_load (a backend above c x its share sheds
  // prefixes). shares_as_weights: adaptive (a backend with a small learnt share is also
  // expected to hold fewer prefixes).
  explicit PrefixPlacer(double bounded_load = 1.25, bool shares_as_weights = false);

  // Picks of prefix `tag` since the previous tick (summed over threads by the caller or
  // not: Observe adds up).
  void Observe(uint64_t tag, double picks);

  // One tick of `elapsed_ms`: ages traffic, forgets prefixes gone quiet, drops homes on
  // ineligible or vanished backends, places prefixes without a home (busiest first), and
  // moves one prefix off a backend that has been over its share for kMoveAfterMs.
  void Tick(std::span<const PlacerBackend> backends, uint64_t elapsed_ms);

  // The homes to publish, busiest first, at most `max` of them.
  void Homes(size_t max, std::vector<PlacedHome>* out) const;

  // Home of `tag`, or -1 (tests).
  int HomeOf(uint64_t tag) const;
  size_t size() const { return prefixes_.size(); }
  uint64_t moves() const { return moves_; }
  void set_shares_as_weights(bool v) { shares_as_weights_ = v; }

  // Traffic half-life: long enough that a prefix with 1% of the traffic is not forgotten
  // between its requests, short enough to follow popularity that shifts.
  static constexpr double kHalfLifeMs = 10000;
  // A backend just over its share (traffic or in-flight) this long sheds one prefix; one
  // further over sheds sooner (kMoveAfterMs / severity^2), but not before kMinMoveMs.
  static constexpr uint64_t kMoveAfterMs = 4000;
  static constexpr uint64_t kMinMoveMs = 500;

 private:
  struct Prefix {
    double rate = 0;
    int slot = -1;
    uint64_t backend_key = 0;
  };
  struct Load {
    double rate = 0;       // traffic of the prefixes homed there
    double count = 0;      // prefixes homed there
    uint64_t over_ms = 0;  // how long it has been over its share
  };
  // Sums over the eligible backends that every score of one placement shares.
  struct Totals {
    double rate = 0, weight = 0, count = 0, n = 0;
  };
  Totals TotalsOf(const std::vector<PlacerBackend>& el) const;
  double Score(const PlacerBackend& b, const Totals& t, double extra) const;

  double c_;
  bool shares_as_weights_;
  std::unordered_map<uint64_t, Prefix> prefixes_;
  std::unordered_map<uint16_t, Load> load_;  // by backend slot, recomputed per tick (over_ms kept)
  uint64_t moves_ = 0;
};

// Reads every stats slot's prefix reports and turns the monotonic pick counters into
// per-tick deltas (an entry whose tag changed starts from 0). One per llmcd.
class PrefixReportCollector {
 public:
  // Calls f(model_slot, tag, delta_picks) for every entry that moved since the last call.
  template <typename F>
  void Collect(const shm::ShmRegion& r, F&& f) {
    if (last_.empty()) last_.resize(static_cast<size_t>(shm::kMaxStatsSlots) * shm::kPrefixReportEntries);
    for (uint32_t s = 0; s < shm::kMaxStatsSlots; ++s) {
      const shm::StatsSlot& slot = r.slots[s];
      if (slot.heartbeat_unix_ms.load(std::memory_order_relaxed) == 0) continue;
      for (uint32_t i = 0; i < shm::kPrefixReportEntries; ++i) {
        const shm::PrefixReport& e = slot.prefix_report[i];
        uint64_t tag = e.tag.load(std::memory_order_acquire);
        Seen& seen = last_[static_cast<size_t>(s) * shm::kPrefixReportEntries + i];
        if (tag == 0) continue;
        uint64_t picks = e.picks.load(std::memory_order_relaxed);
        uint64_t model = e.model_slot.load(std::memory_order_relaxed);
        uint64_t before = seen.tag == tag ? seen.picks : 0;
        seen.tag = tag;
        seen.picks = picks;
        if (picks > before && model < shm::kMaxModels) f(static_cast<uint16_t>(model), tag, picks - before);
      }
    }
  }

 private:
  struct Seen {
    uint64_t tag = 0;
    uint64_t picks = 0;
  };
  std::vector<Seen> last_;
};

}  // namespace llmgw::routing
