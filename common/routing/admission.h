// The per-thread admission queue: where a request waits when every eligible backend of
// its model is at capacity. Bounded (never grows past its capacity, storage is reserved
// up front), ordered by priority then arrival, and every entry has a deadline after which
// the data plane answers 429 with Retry-After. Pure data structure: no I/O, no locks
// (one queue per data-plane thread), the clock is injected.
#pragma once

#include <cstdint>
#include <vector>

namespace llmgw::routing {

class AdmissionQueue {
 public:
  // Milliseconds from some fixed origin (steady clock in production, a counter in tests).
  using Clock = uint64_t (*)(void* ctx);
  static uint64_t SteadyClockMs(void* ctx);

  enum class PushResult : uint8_t {
    kQueued,          // waiting
    kQueuedEvicted,   // waiting; a lower-priority waiter was pushed out (answer it 429)
    kFull,            // not queued: the queue is full of equal or higher priority (429)
  };

  // capacity: most waiters at once (0 refuses everything). timeout_ms: longest wait.
  AdmissionQueue(uint32_t capacity, uint32_t timeout_ms, Clock clock = &SteadyClockMs,
                 void* clock_ctx = nullptr);

  // Queues `cookie` (the data plane's handle for the waiting request). A HIGHER priority
  // is served first (DESIGN.md: a key's level, 0..10); equal priorities first-in
  // first-out. The data plane bounds what a request may claim (see HandleRequest).
  // When full, a newcomer with a strictly better priority evicts the worst-placed waiter
  // (worst priority, latest arrival) and *evicted receives its cookie.
  PushResult Push(uint64_t cookie, int32_t priority, uint64_t* evicted = nullptr);

  // The next waiter to admit (best priority, earliest arrival) among those not expired.
  // Expired ones are left for ExpireOne, so each of them gets its 429.
  bool Pop(uint64_t* cookie);

  // Removes one waiter whose deadline has passed (earliest deadline first); false when
  // none has. Loop on it when the timer fires.
  bool ExpireOne(uint64_t* cookie);

  // Removes a specific waiter (its client went away). False when not queued.
  bool Remove(uint64_t cookie);

  // When the earliest deadline falls (for arming a timer); UINT64_MAX when empty.
  uint64_t NextDeadlineMs() const;

  // Seconds to put in Retry-After for a request refused now: the configured wait, at
  // least 1 — by then the queue has turned over at least once.
  uint32_t RetryAfterSeconds() const;

  uint32_t size() const { return size_; }
  uint32_t capacity() const { return capacity_; }
  bool empty() const { return size_ == 0; }
  uint64_t now() const { return clock_(clock_ctx_); }

 private:
  struct Entry {
    uint64_t cookie;
    uint64_t seq;       // arrival order
    uint64_t deadline;  // clock ms
    int32_t priority;
  };
  // Entries live unordered in a fixed array: capacities are a few hundred per thread, so
  // a linear scan is cheaper than keeping a heap and an expiry index consistent.
  int BestIndex() const;
  int WorstIndex() const;
  int EarliestDeadlineIndex() const;
  void RemoveAt(int i);

  uint32_t capacity_;
  uint32_t timeout_ms_;
  Clock clock_;
  void* clock_ctx_;
  uint32_t size_ = 0;
  uint64_t next_seq_ = 0;
  std::vector<Entry> entries_;
};

}  // namespace llmgw::routing
