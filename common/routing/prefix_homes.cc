// The prefix-home table (see prefix_homes.h).
#include "common/routing/prefix_homes.h"

#include <algorithm>
#include <cmath>

#include "common/routing/pick_context.h"

namespace llmgw::routing {

PrefixHomeTable::PrefixHomeTable()
    : entries_(kEntries), homed_(shm::kMaxBackends, 0), homed_rate_(shm::kMaxBackends, 0.0) {}

uint64_t PrefixHomeTable::Tag(uint64_t key_hash, uint16_t model_slot) {
  return Mix(key_hash ^ (static_cast<uint64_t>(model_slot) << 40)) | 1u;
}

bool PrefixHomeTable::Exists(const PrefixHome& e, const shm::Snapshot& snap, uint16_t model_slot) {
  if (e.slot >= shm::kMaxBackends) return false;
  const auto& b = snap.backends[e.slot];
  return b.key == e.backend_key && b.state != static_cast<uint8_t>(shm::BackendState::kEmpty) &&
         b.model_slot == model_slot;
}

void PrefixHomeTable::Age(PrefixHome& e) const {
  uint32_t age = rate_epoch_ - e.epoch;
  e.rate = age >= 64 ? 0.0f : std::ldexp(e.rate, -static_cast<int>(age));
  e.epoch = rate_epoch_;
}

void PrefixHomeTable::SetHome(PrefixHome& e, uint64_t tag, int slot, uint64_t backend_key) {
  Age(e);
  if (e.key_hash != 0) {
    if (homed_[e.slot] > 0) --homed_[e.slot];
    homed_rate_[e.slot] = std::max(0.0, homed_rate_[e.slot] - e.rate);
  }
  if (e.key_hash != tag) {  // a different prefix took the entry over
    e.rate = 0;
    e.pinned = 0;
  }
  ++homed_[slot];
  homed_rate_[slot] += e.rate;
  e.key_hash = tag;
  e.slot = static_cast<uint16_t>(slot);
  e.backend_key = backend_key;
  e.strikes = 0;
}

void PrefixHomeTable::CountPick(PrefixHome& e) {
  Age(e);
  e.rate += 1.0f;
  homed_rate_[e.slot] += 1.0;
  if (++rate_picks_ >= kRateHalfLifePicks) {
    // Halve every prefix's traffic count: backends' sums now, entries when next touched.
    rate_picks_ = 0;
    ++rate_epoch_;
    for (double& r : homed_rate_) r *= 0.5;
  }
}

void PrefixHomeTable::ApplyPublished(const shm::Snapshot& snap) {
  // Gateway-wide prefix homes from llmcd: authoritative for the prefixes they name (the
  // thread still spills a request when the home is full, but does not move the prefix).
  if (++pin_epoch_ == 0) ++pin_epoch_;
  uint32_t nb = std::min(snap.num_backends, shm::kMaxBackends);
  uint32_t np = std::min(snap.num_prefix_homes, shm::kMaxPrefixHomes);
  for (uint32_t i = 0; i < np; ++i) {
    const shm::PrefixHomeEntry& h = snap.prefix_homes[i];
    if (h.tag == 0 || h.backend_slot >= nb || h.model_slot >= shm::kMaxModels) continue;
    const auto& b = snap.backends[h.backend_slot];
    if (b.key != h.backend_key || b.model_slot != h.model_slot ||
        b.state == static_cast<uint8_t>(shm::BackendState::kEmpty))
      continue;
    PrefixHome& e = Entry(h.tag);
    if (e.key_hash != h.tag || e.slot != h.backend_slot || e.backend_key != h.backend_key)
      SetHome(e, h.tag, h.backend_slot, b.key);
    e.pinned = pin_epoch_;
  }
}

void PrefixHomeTable::SetReport(shm::PrefixReport* table, size_t entries) {
  report_ = entries && (entries & (entries - 1)) == 0 ? table : nullptr;
  report_mask_ = report_ ? entries - 1 : 0;
}

void PrefixHomeTable::Report(uint64_t tag, uint16_t model_slot) {
  if (!report_) return;
  shm::PrefixReport& r = report_[tag & report_mask_];
  if (r.tag.load(std::memory_order_relaxed) != tag) {
    // Count and model first, tag last (release): see shm::PrefixReport.
    shm::Set(r.picks, 0);
    shm::Set(r.model_slot, model_slot);
    r.tag.store(tag, std::memory_order_release);
  }
  shm::Bump(r.picks);
}

}  // namespace llmgw::routing
