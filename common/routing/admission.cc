// AdmissionQueue: a fixed array scanned linearly (see the header for why).
#include "common/routing/admission.h"

#include <chrono>

namespace llmgw::routing {

uint64_t AdmissionQueue::SteadyClockMs(void* /*ctx*/) {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                   std::chrono::steady_clock::now().time_since_epoch())
                                   .count());
}

AdmissionQueue::AdmissionQueue(uint32_t capacity, uint32_t timeout_ms, Clock clock, void* clock_ctx)
    : capacity_(capacity), timeout_ms_(timeout_ms), clock_(clock ? clock : &SteadyClockMs),
      clock_ctx_(clock_ctx) {
  entries_.resize(capacity_);
}

// a is served before b.
static inline bool Before(int32_t pa, uint64_t sa, int32_t pb, uint64_t sb) {
  return pa != pb ? pa > pb : sa < sb;  // higher priority first (the key's level, 0..10)
}

int AdmissionQueue::BestIndex() const {
  int best = -1;
  for (uint32_t i = 0; i < size_; ++i) {
    const Entry& e = entries_[i];
    if (best < 0 || Before(e.priority, e.seq, entries_[best].priority, entries_[best].seq))
      best = static_cast<int>(i);
  }
  return best;
}

int AdmissionQueue::WorstIndex() const {
  int worst = -1;
  for (uint32_t i = 0; i < size_; ++i) {
    const Entry& e = entries_[i];
    if (worst < 0 || Before(entries_[worst].priority, entries_[worst].seq, e.priority, e.seq))
      worst = static_cast<int>(i);
  }
  return worst;
}

int AdmissionQueue::EarliestDeadlineIndex() const {
  int best = -1;
  for (uint32_t i = 0; i < size_; ++i) {
    const Entry& e = entries_[i];
    if (best < 0 || e.deadline < entries_[best].deadline ||
        (e.deadline == entries_[best].deadline && e.seq < entries_[best].seq))
      best = static_cast<int>(i);
  }
  return best;
}

void AdmissionQueue::RemoveAt(int i) {
  entries_[static_cast<uint32_t>(i)] = entries_[size_ - 1];
  --size_;
}

AdmissionQueue::PushResult AdmissionQueue::Push(uint64_t cookie, int32_t priority, uint64_t* evicted) {
  PushResult result = PushResult::kQueued;
  if (size_ == capacity_) {
    int worst = WorstIndex();
    // The newcomer (latest arrival) only displaces someone it would be served before.
    if (worst < 0 || !(priority > entries_[static_cast<uint32_t>(worst)].priority)) return PushResult::kFull;
    if (evicted) *evicted = entries_[static_cast<uint32_t>(worst)].cookie;
    RemoveAt(worst);
    result = PushResult::kQueuedEvicted;
  }
  entries_[size_++] = Entry{cookie, next_seq_++, now() + timeout_ms_, priority};
  return result;
}

bool AdmissionQueue::Pop(uint64_t* cookie) {
  uint64_t t = now();
  // Expired entries are skipped here (ExpireOne answers them); the best unexpired wins.
  int best = -1;
  for (uint32_t i = 0; i < size_; ++i) {
    const Entry& e = entries_[i];
    if (e.deadline <= t) continue;
    if (best < 0 || Before(e.priority, e.seq, entries_[best].priority, entries_[best].seq))
      best = static_cast<int>(i);
  }
  if (best < 0) return false;
  *cookie = entries_[static_cast<uint32_t>(best)].cookie;
  RemoveAt(best);
  return true;
}

bool AdmissionQueue::ExpireOne(uint64_t* cookie) {
  int i = EarliestDeadlineIndex();
  if (i < 0 || entries_[static_cast<uint32_t>(i)].deadline > now()) return false;
  *cookie = entries_[static_cast<uint32_t>(i)].cookie;
  RemoveAt(i);
  return true;
}

bool AdmissionQueue::Remove(uint64_t cookie) {
  for (uint32_t i = 0; i < size_; ++i) {
    if (entries_[i].cookie == cookie) {
      RemoveAt(static_cast<int>(i));
      return true;
    }
  }
  return false;
}

uint64_t AdmissionQueue::NextDeadlineMs() const {
  int i = EarliestDeadlineIndex();
  return i < 0 ? UINT64_MAX : entries_[static_cast<uint32_t>(i)].deadline;
}

uint32_t AdmissionQueue::RetryAfterSeconds() const {
  uint32_t s = (timeout_ms_ + 999) / 1000;
  return s ? s : 1;
}

}  // namespace llmgw::routing
