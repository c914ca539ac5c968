// Quota leasing (controlplane/quota_leaser.h) against simulated data-plane threads: each
// thread admits only within the lease it last copied, reports what it took and was
// refused, and applies new leases one step late (as a real thread does on its next loop
// iteration). Demand moves between threads; the sum over threads must never exceed the
// limit (a token bucket: capacity + rate x window) and must reach at least 95% of the
// demand-capped limit.
#include "controlplane/quota_leaser.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <functional>
#include <numeric>
#include <vector>

namespace llmgw::cp {
namespace {

constexpr uint32_t kLimiter = 7;

// Threads as the leaser sees them (shared-memory stand-in) plus each one's local copy.
class SimThreads : public LeaseIo {
 public:
  explicit SimThreads(uint32_t n) : t_(n) {}
  struct T {
    uint64_t spent = 0, denied = 0, checked = 0;  // what the thread reports
    uint64_t grant = 0;                           // what llmcd published
    uint64_t published_gen = 0, acked = 0;
    uint64_t local_grant = 0;                     // what the thread spends against
    bool live = true;
  };
  uint32_t Threads() const override { return static_cast<uint32_t>(t_.size()); }
  bool Live(uint32_t t) const override { return t_[t].live; }
  uint64_t Spent(uint32_t t, uint32_t) const override { return t_[t].spent; }
  uint64_t Denied(uint32_t t, uint32_t) const override { return t_[t].denied; }
  uint64_t Checked(uint32_t t, uint32_t) const override { return t_[t].checked; }
  uint64_t Grant(uint32_t t, uint32_t) const override { return t_[t].grant; }
  uint64_t Acked(uint32_t t) const override { return t_[t].acked; }
  void SetGrant(uint32_t t, uint32_t, uint64_t v) override { t_[t].grant = v; }
  void Publish(uint32_t t, uint64_t g) override { t_[t].published_gen = g; }

  // The thread's loop: copy the lease if a new one was published, then serve `arrivals`
  // requests of `units` each (rate limiter). Returns units admitted.
  uint64_t ServeRate(uint32_t i, uint64_t arrivals, uint64_t units = 1) {
    T& t = t_[i];
    Refresh(t);
    uint64_t admitted = 0;
    for (uint64_t k = 0; k < arrivals; ++k) {
      ++t.checked;
      if (t.spent < t.local_grant) {  // admitted while the lease is not used up
        t.spent += units;            // tokens are charged after admission: may overshoot
        admitted += units;
      } else {
        ++t.denied;
      }
    }
    return admitted;
  }
  void Refresh(T& t) {
    if (t.published_gen != t.acked) {
      t.local_grant = t.grant;
      t.acked = t.published_gen;
    }
  }
  T& operator[](uint32_t i) { return t_[i]; }

 private:
  std::vector<T> t_;
};

struct RateRun {
  std::vector<uint64_t> admitted;  // per step
  std::vector<uint64_t> demand;    // per step
};

// Steps of 10 ms, a leaser tick every 10 steps (100 ms). demand(step, thread) = arrivals.
RateRun RunRate(uint32_t threads, double capacity, double rate, int seconds,
                const std::function<uint64_t(int, uint32_t)>& demand, SimThreads* sim = nullptr,
                const std::function<void(int, SimThreads&)>& event = {}) {
  SimThreads local(threads);
  SimThreads& s = sim ? *sim : local;
  QuotaLeaser leaser;
  std::vector<LimiterSpec> specs = {{kLimiter, 42, capacity, rate, false}};
  RateRun r;
  uint64_t now_ms = 1000;
  for (int step = 0; step < seconds * 100; ++step) {
    if (step % 10 == 0) leaser.Tick(now_ms, specs, &s);
    if (event) event(step, s);
    uint64_t a = 0, d = 0;
    for (uint32_t t = 0; t < threads; ++t) {
      uint64_t n = demand(step, t);
      if (!s[t].live) n = 0;
      d += n;
      a += s.ServeRate(t, n);
    }
    r.admitted.push_back(a);
    r.demand.push_back(d);
    now_ms += 10;
  }
  return r;
}

uint64_t Sum(const std::vector<uint64_t>& v, size_t from, size_t to) {
  return std::accumulate(v.begin() + static_cast<long>(from), v.begin() + static_cast<long>(to), uint64_t{0});
}

// Never above: in every window of every length checked, admitted <= capacity + rate x window.
void ExpectNeverAbove(const RateRun& r, double capacity, double rate) {
  for (size_t len : {10u, 100u, 1000u, 6000u}) {  // 0.1 s, 1 s, 10 s, 60 s
    if (len > r.admitted.size()) continue;
    uint64_t sum = Sum(r.admitted, 0, len);
    for (size_t a = 0;; ++a) {
      double bound = capacity + rate * static_cast<double>(len) / 100.0;
      ASSERT_LE(static_cast<double>(sum), bound + 1e-9) << "window of " << len << " steps from step " << a;
      if (a + len >= r.admitted.size()) break;
      sum += r.admitted[a + len];
      sum -= r.admitted[a];
    }
  }
}

// At least 95% of the demand-capped limit over every 60 s window after the first minute.
void ExpectUtilisation(const RateRun& r, double rate) {
  for (size_t a = 6000; a + 6000 <= r.admitted.size(); a += 500) {
    double admitted = static_cast<double>(Sum(r.admitted, a, a + 6000));
    double capped = std::min(static_cast<double>(Sum(r.demand, a, a + 6000)), rate * 60);
    EXPECT_GE(admitted, 0.95 * capped) << "60 s window from " << a / 100 << " s: " << admitted << " of " << capped;
  }
}

TEST(QuotaLeaserTest, FairSplitIsMaxMin) {
  auto f = FairSplit(10, {1, 100, 100, 0});
  EXPECT_DOUBLE_EQ(f[0], 1);
  EXPECT_DOUBLE_EQ(f[1], 4.5);
  EXPECT_DOUBLE_EQ(f[2], 4.5);
  EXPECT_DOUBLE_EQ(f[3], 0);
  f = FairSplit(10, {2, 3});
  EXPECT_DOUBLE_EQ(f[0], 2);
  EXPECT_DOUBLE_EQ(f[1], 3);
}

// rpm 600 (10/s, bucket 600), four threads, demand of 30/s all on one thread, moving to
// the next thread every 10 s, for 10 minutes.
TEST(QuotaLeaserTest, DemandMovingBetweenThreadsStaysWithinAndUsesTheLimit) {
  const double cap = 600, rate = 10;
  auto demand = [](int step, uint32_t t) -> uint64_t {
    uint32_t hot = static_cast<uint32_t>(step / 1000) % 4;
    return t == hot && step % 10 < 3 ? 1 : 0;  // 30 per second
  };
  RateRun r = RunRate(4, cap, rate, 600, demand);
  ExpectNeverAbove(r, cap, rate);
  ExpectUtilisation(r, rate);
  // The full bucket was available at the start: the first second admits a burst well
  // beyond one second's refill.
  EXPECT_GT(Sum(r.admitted, 0, 100), 20u);
}

// Demand split unevenly and shifting, below the limit in total: all of it is served.
TEST(QuotaLeaserTest, DemandBelowTheLimitIsServed) {
  const double cap = 1200, rate = 20;
  auto demand = [](int step, uint32_t t) -> uint64_t {
    int phase = step / 1500;
    uint32_t a = static_cast<uint32_t>(phase) % 3, b = (a + 1) % 3;
    if (t == a) return step % 10 < 1 ? 1 : 0;            // 10/s
    if (t == b) return step % 20 == 0 ? 1 : 0;           // 5/s
    return 0;
  };
  RateRun r = RunRate(3, cap, rate, 300, demand);
  ExpectNeverAbove(r, cap, rate);
  ExpectUtilisation(r, rate);
  EXPECT_GE(static_cast<double>(Sum(r.admitted, 0, r.admitted.size())),
            0.99 * static_cast<double>(Sum(r.demand, 0, r.demand.size())));
}

// Everyone hammers at once: the admitted total follows the refill rate, fair across threads.
TEST(QuotaLeaserTest, AllThreadsOverTheLimitShareIt) {
  const double cap = 100, rate = 50;
  SimThreads sim(4);
  RateRun r = RunRate(4, cap, rate, 120, [](int, uint32_t) -> uint64_t { return 1; }, &sim);  // 400/s
  ExpectNeverAbove(r, cap, rate);
  ExpectUtilisation(r, rate);
  uint64_t lo = UINT64_MAX, hi = 0;
  for (uint32_t t = 0; t < 4; ++t) {
    lo = std::min(lo, sim[t].spent);
    hi = std::max(hi, sim[t].spent);
  }
  EXPECT_GE(static_cast<double>(lo), 0.8 * static_cast<double>(hi)) << "shares should be near equal";
}

// A thread that dies holding a big lease gives it back; the others carry on within the limit.
TEST(QuotaLeaserTest, ALostThreadsLeaseReturnsToThePool) {
  const double cap = 600, rate = 10;
  SimThreads sim(2);
  auto demand = [](int step, uint32_t t) -> uint64_t {
    if (step < 500) return t == 0 && step % 2 == 0 ? 1 : 0;  // thread 0 bursts, then dies
    return t == 1 && step % 2 == 0 ? 1 : 0;
  };
  RateRun r = RunRate(2, cap, rate, 180, demand, &sim, [](int step, SimThreads& s) {
    if (step == 10) s[0].live = false;  // dies right after its first big lease
  });
  ExpectNeverAbove(r, cap, rate);
  // Thread 1 got the bucket thread 0 could no longer use: well over the refill of 3 minutes.
  EXPECT_GT(sim[1].spent, static_cast<uint64_t>(rate * 180 + 0.5 * cap));
}

// Tokens are charged after admission and may overshoot a lease: the debt is paid from the
// bucket, so over time the charged total still follows the limit.
TEST(QuotaLeaserTest, OvershootIsPaidBack) {
  const double cap = 6000, rate = 100;  // "tpm" 6000
  SimThreads sim(2);
  QuotaLeaser leaser;
  std::vector<LimiterSpec> specs = {{kLimiter, 42, cap, rate, false}};
  uint64_t now = 1000, charged = 0;
  for (int step = 0; step < 60 * 100; ++step) {
    if (step % 10 == 0) leaser.Tick(now, specs, &sim);
    for (uint32_t t = 0; t < 2; ++t) charged += sim.ServeRate(t, step % 5 == 0 ? 1 : 0, 250);  // 250 tokens a request
    now += 10;
  }
  // One request's worth of overshoot per thread at most beyond the bucket's bound.
  EXPECT_LE(static_cast<double>(charged), cap + rate * 60 + 2 * 250);
  EXPECT_GE(static_cast<double>(charged), 0.95 * (cap + rate * 60) - 2 * 250);
}

// A fleet agent's leaser starts a new limiter's bucket empty (the fleet's burst is the
// controller's): in the first second only the refill is admitted, not the capacity.
TEST(QuotaLeaserTest, StartEmptyGivesNoBurstAtStart) {
  for (bool empty : {false, true}) {
    SimThreads sim(2);
    QuotaLeaser leaser;
    leaser.set_start_empty(empty);
    std::vector<LimiterSpec> specs = {{kLimiter, 42, 600, 10, false}};
    uint64_t now = 1000, admitted = 0;
    for (int step = 0; step < 100; ++step) {  // 1 s, everything asked for
      if (step % 10 == 0) leaser.Tick(now, specs, &sim);
      for (uint32_t t = 0; t < 2; ++t) admitted += sim.ServeRate(t, 5);
      now += 10;
    }
    if (empty) EXPECT_LE(admitted, 10u + 1) << "a burst out of a bucket that should start empty";
    else EXPECT_GE(admitted, 300u) << "a fresh limit allows a burst";
  }
}

// max_concurrent 16 over four threads; requests hold a slot for 50 steps; demand (40 in
// flight wanted) moves between threads. The in-flight sum over threads never exceeds 16,
// and is at least 95% of it on average once rebalanced.
TEST(QuotaLeaserTest, ConcurrencySharesNeverExceedTheLimit) {
  const uint32_t n = 4, limit = 16;
  SimThreads sim(n);
  QuotaLeaser leaser;
  std::vector<LimiterSpec> specs = {{kLimiter, 9, static_cast<double>(limit), 0, true}};
  std::vector<std::vector<int>> ends(n);  // step at which each admitted request ends
  uint64_t now = 1000;
  double inflight_sum = 0;
  int measured = 0;
  for (int step = 0; step < 60 * 100; ++step) {
    if (step % 10 == 0) leaser.Tick(now, specs, &sim);
    uint32_t hot = static_cast<uint32_t>(step / 1000) % n, warm = (hot + 1) % n;
    uint64_t total = 0;
    for (uint32_t t = 0; t < n; ++t) {
      auto& T = sim[t];
      sim.Refresh(T);
      auto& e = ends[t];
      e.erase(std::remove_if(e.begin(), e.end(), [&](int end) { return end <= step; }), e.end());
      // A thread wants 30 (hot) or 10 (warm) in flight; it tries one more when below.
      size_t want = t == hot ? 30 : t == warm ? 10 : 0;
      if (e.size() < want) {
        ++T.checked;
        if (e.size() < T.local_grant) e.push_back(step + 50);
        else ++T.denied;
      }
      T.spent = e.size();
      total += e.size();
    }
    ASSERT_LE(total, limit) << "step " << step;
    if (step % 1000 >= 200) {  // 2 s after each move
      inflight_sum += static_cast<double>(total);
      ++measured;
    }
    now += 10;
  }
  EXPECT_GE(inflight_sum / measured, 0.95 * limit);
}

}  // namespace
}  // namespace llmgw::cp
