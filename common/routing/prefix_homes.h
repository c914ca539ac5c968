// The per-thread prefix-home table of prefix_affinity and adaptive: where each prompt
// prefix lives (its "home"), how much traffic each prefix brings (a count halved every
// kRateHalfLifePicks picks) and, per backend, how many prefixes and how much of their
// traffic it homes. Fixed size, allocated in the constructor; a collision simply forgets
// the older prefix (it is placed again). Also where llmcd's gateway-wide homes (snapshot
// prefix_homes) are applied, and where the thread reports the prefixes it routes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "common/shm_layout.h"

namespace llmgw::routing {

struct PrefixHome {
  uint64_t key_hash = 0;     // PrefixHomeTable::Tag(HashKey(prefix), model); 0 = empty
  uint64_t backend_key = 0;  // BackendEntry::key of the home, so a reused slot is not trusted
  uint16_t slot = 0;
  uint16_t strikes = 0;      // net picks that found home above its share (prefix_affinity.cc)
  uint32_t epoch = 0;        // the table's rate epoch when `rate` was last brought up to date
  float rate = 0;            // picks of this prefix, halved every kRateHalfLifePicks picks
  uint32_t pinned = 0;       // == the table's pin epoch: llmcd placed this home
};

class PrefixHomeTable {
 public:
  static constexpr size_t kEntries = 4096;  // power of two
  // Prefix traffic counts halve every this many prefix picks (all models of the thread),
  // so a prefix's count is its recent share of the traffic. Long enough that a rare prefix
  // (1% of traffic) has a count of ~10, short enough to follow popularity that shifts.
  static constexpr uint32_t kRateHalfLifePicks = 1024;

  PrefixHomeTable();

  // The tag a prefix is keyed by, in this table, the snapshot and the reports.
  static uint64_t Tag(uint64_t key_hash, uint16_t model_slot);
  PrefixHome& Entry(uint64_t tag) { return entries_[tag & (kEntries - 1)]; }
  const PrefixHome& Entry(uint64_t tag) const { return entries_[tag & (kEntries - 1)]; }

  // True when the entry's home still is a live backend of the model (not a reused slot).
  static bool Exists(const PrefixHome& e, const shm::Snapshot& snap, uint16_t model_slot);
  bool Pinned(const PrefixHome& e) const { return e.pinned == pin_epoch_; }

  // Brings the entry's rate up to the current halving epoch.
  void Age(PrefixHome& e) const;
  // Makes `slot` (whose BackendEntry::key is backend_key) the home of `tag`, moving the
  // prefix's counts off its old home; a different prefix taking the entry starts at 0.
  void SetHome(PrefixHome& e, uint64_t tag, int slot, uint64_t backend_key);
  // Counts one pick of the entry's prefix at its home.
  void CountPick(PrefixHome& e);

  // Applies llmcd's published homes from a new snapshot (they become pinned); entries
  // that do not match the snapshot (a reused slot, another model) are ignored.
  void ApplyPublished(const shm::Snapshot& snap);

  // Reports one routed pick of `tag` into the thread's report table, if one is set.
  void SetReport(shm::PrefixReport* table, size_t entries);
  void Report(uint64_t tag, uint16_t model_slot);

  // Per backend slot: prefixes homed there, and the traffic they bring.
  uint32_t homed(uint16_t slot) const { return homed_[slot]; }
  double homed_rate(uint16_t slot) const { return homed_rate_[slot]; }

 private:
  std::vector<PrefixHome> entries_;
  std::vector<uint32_t> homed_;
  std::vector<double> homed_rate_;  // halved with the entries' rates
  uint32_t rate_picks_ = 0;
  uint32_t rate_epoch_ = 0;
  uint32_t pin_epoch_ = 0;  // bumped per snapshot; entries it published carry the current one
  shm::PrefixReport* report_ = nullptr;
  size_t report_mask_ = 0;
};

}  // namespace llmgw::routing
