// ThreadLimiter: one data-plane thread's side of the rate and concurrency limits. The
// thread spends only from its own lease (LeaseSlot, written by llmcd's quota leaser) and
// reports its use in its own stats slot (LimiterUse): no atomic read-modify-write, no lock,
// no other thread's memory on the hot path. Refresh() is one acquire load per loop
// iteration; the lease row is copied only when llmcd published a new one (the copy is
// thread-local, so checks are plain loads). See controlplane/quota_leaser.h for how the
// leases add up to the limit.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <initializer_list>

#include "common/shm_layout.h"

namespace llmgw::dataplane {

class ThreadLimiter {
 public:
  // How a request meets one limiter.
  enum class Mode : uint8_t {
    kTake,      // a rate counted in requests: takes one unit
    kPositive,  // a rate counted in tokens: admitted while the lease is not used up (the
                // tokens are charged later with Charge)
    kEnter,     // a concurrency limit: holds one slot until Leave
    kCount,     // no limit set: counted (checked, spent) for the key's use figures, never refused
  };
  struct Check {
    uint32_t limiter;  // shm::LimiterIndex
    Mode mode;
  };

  // use: the thread's StatsSlot::limiter_use; lease: its LeaseSlot; seen: its
  // StatsSlot::lease_seen. Counters of a reused slot continue where they were.
  // level: the region's limiter_level (what each whole limit has left; optional).
  void Attach(shm::LimiterUse* use, const shm::LeaseSlot* lease, std::atomic<uint64_t>* seen,
              const std::atomic<uint64_t>* level = nullptr) {
    use_ = use;
    lease_ = lease;
    seen_ = seen;
    level_src_ = level;
    for (uint32_t i = 0; i < shm::kNumLimiters; ++i) spent_[i] = use_[i].spent.load(std::memory_order_relaxed);
    generation_ = ~uint64_t{0};
    Refresh();
  }

  // Applies a lease llmcd published since the last call (one acquire load otherwise).
  // The row is copied entry by entry; each entry is a value llmcd wrote, so a copy that
  // races a rewrite mixes old and new leases, each valid. The generation acknowledged is
  // the one read before the copy: never newer than what the thread applied.
  void Refresh() {
    uint64_t g = lease_->generation.load(std::memory_order_acquire);
    if (g == generation_) return;
    for (uint32_t i = 0; i < shm::kNumLimiters; ++i) grant_[i] = lease_->grant[i].load(std::memory_order_relaxed);
    if (level_src_) {
      for (uint32_t i = 0; i < shm::kNumLimiters; ++i) level_[i] = level_src_[i].load(std::memory_order_relaxed);
      spent_at_level_ = spent_;
    }
    generation_ = g;
    seen_->store(g, std::memory_order_release);
  }

  // Admits a request against all its limiters at once: nothing is taken unless every one
  // allows it. Returns -1 when admitted, else the index in `checks` of the limiter that
  // refused. Each limiter evaluated counts the request as checked; the refusing one counts
  // it as denied (llmcd reads refusals as unmet demand).
  int Admit(const Check* checks, uint32_t n) {
    for (uint32_t k = 0; k < n; ++k) {
      const Check& c = checks[k];
      Bump(use_[c.limiter].checked);
      if (!Allows(c)) {
        Bump(use_[c.limiter].denied);
        return static_cast<int>(k);
      }
    }
    for (uint32_t k = 0; k < n; ++k)
      if (checks[k].mode != Mode::kPositive) Add(checks[k].limiter, 1);
    return -1;
  }
  int Admit(std::initializer_list<Check> checks) {
    return Admit(checks.begin(), static_cast<uint32_t>(checks.size()));
  }

  // A request turned away from this limiter without an Admit (the router skipping a
  // backend at its rate): counted as checked and refused, which llmcd reads as demand.
  void Refuse(uint32_t limiter) {
    Bump(use_[limiter].checked);
    Bump(use_[limiter].denied);
  }
  // The thread's copy of its leases and its use, by limiter (the router's rate view).
  const uint64_t* grants() const { return grant_.data(); }
  const uint64_t* spents() const { return spent_.data(); }

  // Units taken after admission (tokens as they are counted); may exceed the lease, which
  // llmcd then pays from the limit's bucket.
  void Charge(uint32_t limiter, uint64_t units) { Add(limiter, units); }
  // A request admitted with kEnter is done.
  void Leave(uint32_t limiter) {
    if (spent_[limiter] > 0) {
      --spent_[limiter];
      use_[limiter].spent.store(spent_[limiter], std::memory_order_relaxed);
    }
  }

  // What the lease still allows (0 when used up or in debt): x-ratelimit-remaining-*.
  uint64_t Remaining(uint32_t limiter) const {
    return grant_[limiter] > spent_[limiter] ? grant_[limiter] - spent_[limiter] : 0;
  }
  // What the whole limit has left (llmcd's last figure, less what this thread took since):
  // x-ratelimit-remaining-*. Without a level source, this thread's lease.
  uint64_t LimitRemaining(uint32_t limiter) const {
    if (!level_src_) return Remaining(limiter);
    uint64_t since = spent_[limiter] > spent_at_level_[limiter] ? spent_[limiter] - spent_at_level_[limiter] : 0;
    return level_[limiter] > since ? level_[limiter] - since : 0;
  }
  uint64_t spent(uint32_t limiter) const { return spent_[limiter]; }
  uint64_t grant(uint32_t limiter) const { return grant_[limiter]; }

 private:
  bool Allows(const Check& c) const { return c.mode == Mode::kCount || spent_[c.limiter] < grant_[c.limiter]; }
  void Add(uint32_t limiter, uint64_t units) {
    spent_[limiter] += units;
    use_[limiter].spent.store(spent_[limiter], std::memory_order_relaxed);
  }
  static void Bump(std::atomic<uint64_t>& c) {
    c.store(c.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);  // single writer
  }

  shm::LimiterUse* use_ = nullptr;
  const shm::LeaseSlot* lease_ = nullptr;
  std::atomic<uint64_t>* seen_ = nullptr;
  uint64_t generation_ = 0;
  std::array<uint64_t, shm::kNumLimiters> grant_{};  // the lease as last copied
  std::array<uint64_t, shm::kNumLimiters> spent_{};  // mirrors use_[i].spent (we are its only writer)
  const std::atomic<uint64_t>* level_src_ = nullptr;
  std::array<uint64_t, shm::kNumLimiters> level_{};           // limiter_level as last copied
  std::array<uint64_t, shm::kNumLimiters> spent_at_level_{};  // spent_ when it was copied
};

}  // namespace llmgw::dataplane
