// A token bucket with continuous refill: `capacity` tokens at most, refilled at
// `refill_per_s`. A per-minute limit L is a bucket of capacity L refilled at L/60 per
// second, so a full minute's worth may be spent in one burst after a quiet minute and the
// long-run rate is L per minute. Used by llmcd's quota leaser as the pool of each limit
// (common/ because the data plane's fail-static fallback refills the same way). Plain
// arithmetic on doubles: no allocation, no clock of its own (callers pass the time).
#pragma once

#include <algorithm>
#include <cstdint>
#include <limits>

namespace llmgw {

class TokenBucket {
 public:
  TokenBucket() = default;
  // Starts full at now_ms.
  TokenBucket(double capacity, double refill_per_s, uint64_t now_ms)
      : capacity_(capacity), rate_(refill_per_s), level_(capacity), last_ms_(now_ms) {}

  // New limit: the level is kept (clamped to the new capacity), so a reload never hands
  // out a fresh burst.
  void Reconfigure(double capacity, double refill_per_s) {
    capacity_ = capacity;
    rate_ = refill_per_s;
    level_ = std::min(level_, capacity_);
  }

  // Refills for the time since the last call, up to min(capacity, ceiling): the leaser's
  // ceiling is the capacity minus what the threads still hold, so pool + leases never
  // exceed the capacity. A level above the ceiling is left alone (only refill is capped).
  void Advance(uint64_t now_ms, double ceiling = std::numeric_limits<double>::infinity()) {
    if (now_ms > last_ms_) {
      double cap = std::min(capacity_, ceiling);
      double refilled = level_ + rate_ * static_cast<double>(now_ms - last_ms_) / 1000.0;
      if (level_ < cap) level_ = std::min(refilled, cap);
      last_ms_ = now_ms;
    }
  }

  // Takes n tokens if the level allows (after Advance); false and nothing taken otherwise.
  bool TryTake(double n) {
    if (level_ < n) return false;
    level_ -= n;
    return true;
  }
  // Takes up to `want` tokens; returns how many were taken (0 when empty or in debt).
  double TakeUpTo(double want) {
    double got = std::clamp(want, 0.0, std::max(0.0, level_));
    level_ -= got;
    return got;
  }
  // Takes n tokens whatever the level (tokens counted after the request was admitted): the
  // level may go below zero, and refill pays the debt before anything can be taken again.
  void Charge(double n) { level_ -= n; }
  // Gives tokens back (a lease nobody can spend any more), never above capacity.
  void Put(double n) { level_ = std::min(capacity_, level_ + n); }

  double level() const { return level_; }
  double capacity() const { return capacity_; }
  double refill_per_s() const { return rate_; }
  // Seconds until the level reaches n at the refill rate (0 if it already has; infinity
  // when nothing refills). The basis of Retry-After and x-ratelimit-reset-*.
  double SecondsUntil(double n) const {
    if (level_ >= n) return 0;
    if (rate_ <= 0) return std::numeric_limits<double>::infinity();
    return (n - level_) / rate_;
  }

 private:
  double capacity_ = 0;
  double rate_ = 0;
  double level_ = 0;
  uint64_t last_ms_ = 0;
};

}  // namespace llmgw
