// Quota leasing (DESIGN.md "Client API keys and limits"; docs/OPERATIONS.md "Keys and
// limits"). No data-plane thread touches another's counters or any lock: each spends from
// its own lease, and once a tick llmcd moves budget between the leases from what each
// thread reports it used and was refused. The leaser is the pure logic of that move; it
// reads and writes the threads through LeaseIo (shared memory in llmcd, a simulation in
// tests).
//
// Rates (requests/s, requests/min, tokens/min): each limit is one token bucket of
// `capacity` refilled at `refill_per_s`, held by the leaser as a pool. A thread's lease is
// a cumulative grant it may spend up to; grants only ever come out of the pool and the
// pool refills only up to capacity minus what the threads still hold, so what all threads
// together can take in any window of T seconds is at most capacity + refill_per_s * T:
// the sum over threads never exceeds the limit, whatever they report and however late.
// Each tick the pool is split by demand (admitted + refused): first every thread with
// demand gets its max-min fair share of the refill rate for the next `horizon_s`, then
// what is left of the pool goes to unmet demand (so a full bucket can be spent in one
// burst), then idle threads get a small floor (so a quiet key's first request is not
// refused). A thread that keeps a lease it no longer needs strands at most one horizon of
// its share; a thread that died returns its lease to the pool.
//
// Concurrency (in flight at once): a thread's lease is its share of the limit. Shares are
// the max-min fair split of the limit by demand (in flight + refused), the spare split
// evenly. A share is raised only from capacity no thread may still use: a thread whose
// share was lowered counts at its old share (or its in-flight count, if higher) until it
// acknowledges the generation that lowered it.
#pragma once

#include <cstdint>
#include <map>
#include <vector>

#include "common/token_bucket.h"

namespace llmgw::cp {

struct LimiterSpec {
  uint32_t index = 0;          // shm::LimiterIndex
  uint64_t identity = 0;       // what the limiter limits (key id hash, ...); a change resets it
  double capacity = 0;         // rates: bucket size; concurrency: the limit
  double refill_per_s = 0;     // rates only
  bool concurrency = false;
};

// The leaser's view of the data-plane threads (one per stats slot).
class LeaseIo {
 public:
  virtual ~LeaseIo() = default;
  virtual uint32_t Threads() const = 0;  // slots, live or not
  // A thread that may spend (a live owner). A slot whose owner exited or died is not live:
  // its lease is returned to the pool.
  virtual bool Live(uint32_t t) const = 0;
  virtual uint64_t Spent(uint32_t t, uint32_t limiter) const = 0;    // rates: cumulative; concurrency: in flight
  virtual uint64_t Denied(uint32_t t, uint32_t limiter) const = 0;   // cumulative
  virtual uint64_t Checked(uint32_t t, uint32_t limiter) const = 0;  // cumulative
  virtual uint64_t Grant(uint32_t t, uint32_t limiter) const = 0;    // as last published
  virtual uint64_t Acked(uint32_t t) const = 0;  // last lease generation the thread applied
  virtual void SetGrant(uint32_t t, uint32_t limiter, uint64_t v) = 0;
  // After a tick's SetGrant calls: makes them visible to thread t under `generation`.
  virtual void Publish(uint32_t t, uint64_t generation) = 0;
  // What the whole limit has left now (for x-ratelimit-remaining-*).
  virtual void SetLevel(uint32_t /*limiter*/, uint64_t /*level*/) {}
};

struct QuotaLeaserOptions {
  double horizon_s = 0.3;       // how long a thread's lease should last at its fair rate
  double demand_alpha = 0.5;    // EWMA weight of the latest tick's demand
  double idle_floor_share = 0.25;  // the idle floors together hold at most this share of capacity
  // A new limiter's bucket starts empty rather than full. A fleet agent's: the fleet's
  // bucket started full once, on the controller; an agent's share of it fills by refill
  // (else every agent joining, or starting after its lease arrived, brings a new burst).
  bool start_empty = false;
};

class QuotaLeaser {
 public:
  explicit QuotaLeaser(QuotaLeaserOptions o = {}) : o_(o) {}

  // One rebalancing. `specs` are the limiters with a limit now (others are forgotten).
  void Tick(uint64_t now_ms, const std::vector<LimiterSpec>& specs, LeaseIo* io);

  // The pool of a rate limiter (tests, llmctl views); 0 for unknown limiters.
  double Pool(uint32_t index) const;
  uint64_t generation() const { return generation_; }
  // A host holding only a share of a fleet-wide limit keeps its idle floors small: a
  // floor left with an idle thread when the host's share moves away is spent later on
  // top of the share the other hosts got (fleet_leaser.h).
  void set_idle_floor_share(double s) { o_.idle_floor_share = s; }
  void set_start_empty(bool e) { o_.start_empty = e; }

 private:
  struct ThreadState {
    uint64_t last_spent = 0, last_denied = 0, last_checked = 0;
    double demand_per_s = 0;   // EWMA of (admitted + refused) units per second
    double grant = 0;          // rates: cumulative grant (exact; published rounded down)
    uint64_t share = 0;        // concurrency: published share
    uint64_t held_share = 0;   // concurrency: share still usable until the lowering is acked
    uint64_t lowered_at = 0;   // generation that lowered the share (0: none pending)
    bool seen = false;
  };
  struct LimiterState {
    uint64_t identity = 0;
    TokenBucket pool;  // rates: the limit's bucket minus what the threads hold
    double units_per_request = 1;  // tokens per admitted request (demand of a refused one)
    std::vector<ThreadState> threads;
    bool fresh = true;
  };
  void TickRate(uint64_t now_ms, double dt_s, const LimiterSpec& spec, LimiterState& st, LeaseIo* io);
  void TickConcurrency(const LimiterSpec& spec, LimiterState& st, LeaseIo* io);

  QuotaLeaserOptions o_;
  std::map<uint32_t, LimiterState> limiters_;
  uint64_t last_ms_ = 0;
  uint64_t generation_ = 0;
};

// Max-min fair split of `total` over `demand` (each gets at most its demand; what the
// satisfied leave is split among the rest). Exposed for tests.
std::vector<double> FairSplit(double total, const std::vector<double>& demand);

}  // namespace llmgw::cp

#include "common/shm_layout.h"

namespace llmgw::cp {

// The leaser over llmcd's shared memory: thread t is stats slot t and lease slot t.
class ShmLeaseIo : public LeaseIo {
 public:
  explicit ShmLeaseIo(shm::ShmRegion* r) : r_(r) {}
  uint32_t Threads() const override { return shm::kMaxStatsSlots; }
  bool Live(uint32_t t) const override;
  uint64_t Spent(uint32_t t, uint32_t i) const override { return Ld(r_->slots[t].limiter_use[i].spent); }
  uint64_t Denied(uint32_t t, uint32_t i) const override { return Ld(r_->slots[t].limiter_use[i].denied); }
  uint64_t Checked(uint32_t t, uint32_t i) const override { return Ld(r_->slots[t].limiter_use[i].checked); }
  uint64_t Grant(uint32_t t, uint32_t i) const override { return Ld(r_->leases[t].grant[i]); }
  uint64_t Acked(uint32_t t) const override { return r_->slots[t].lease_seen.load(std::memory_order_acquire); }
  void SetGrant(uint32_t t, uint32_t i, uint64_t v) override {
    r_->leases[t].grant[i].store(v, std::memory_order_relaxed);
  }
  void Publish(uint32_t t, uint64_t g) override { r_->leases[t].generation.store(g, std::memory_order_release); }
  void SetLevel(uint32_t i, uint64_t v) override { r_->limiter_level[i].store(v, std::memory_order_relaxed); }

 private:
  static uint64_t Ld(const std::atomic<uint64_t>& a) { return a.load(std::memory_order_relaxed); }
  shm::ShmRegion* r_;
};

// The limiters a snapshot asks for (every limit that is set), as the leaser's specs.
std::vector<LimiterSpec> LimiterSpecs(const shm::Snapshot& s);

}  // namespace llmgw::cp
