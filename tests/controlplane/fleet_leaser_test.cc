// Fleet-wide leasing (controlplane/fleet_leaser.h) against simulated gateway hosts: each
// host admits from a token bucket sized by the share it last applied (one tick late, as an
// agent applies a lease it received), reports its cumulative use and acknowledges the
// generation it applied. Demand moves between hosts; the fleet must never admit more than
// the limit (capacity + rate x window) and must reach 95% of the demand-capped limit; a
// silent host's share is reclaimed; hosts that lost the controller stay on their last
// lease and within it.
#include "controlplane/fleet_leaser.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "common/token_bucket.h"

namespace llmgw::cp {
namespace {

constexpr uint32_t kLimiter = 11;
constexpr uint64_t kStepMs = 100;

struct SimHost {
  std::string name;
  TokenBucket bucket{0, 0, 0};
  HostLease pending, applied;  // received, and in force
  uint64_t spent = 0, denied = 0, checked = 0;
  bool reporting = true;       // false: the link to the controller is down
  uint64_t admitted_total = 0;

  // One step: apply the lease received last step, serve `arrivals`, report.
  void Step(uint64_t now, double arrivals) {
    applied = pending;
    double cap = 0, rate = 0;
    for (const auto& s : applied.shares)
      if (s.limiter == kLimiter) {
        cap = s.capacity;
        rate = s.refill_per_s;
      }
    bucket.Reconfigure(cap, rate);
    bucket.Advance(now);
    for (uint64_t k = 0; k < static_cast<uint64_t>(arrivals); ++k) {
      ++checked;
      if (bucket.TryTake(1)) {
        ++spent;
        ++admitted_total;
      } else {
        ++denied;
      }
    }
  }
  std::vector<HostUse> Use() const { return {HostUse{kLimiter, 5, spent, denied, checked}}; }
};

class FleetSim {
 public:
  FleetSim(std::vector<std::string> names, double capacity, double rate) : spec_{kLimiter, 5, capacity, rate, false} {
    for (auto& n : names) hosts_.push_back(SimHost{n});
  }
  // Runs `steps` ticks with per-host demand in requests/s; returns admitted per step.
  std::vector<uint64_t> Run(int steps, const std::vector<double>& demand_per_s, bool controller_up = true) {
    std::vector<uint64_t> per_step;
    for (int i = 0; i < steps; ++i) {
      now_ += kStepMs;
      uint64_t before = Total();
      for (size_t h = 0; h < hosts_.size(); ++h) {
        SimHost& s = hosts_[h];
        s.Step(now_, demand_per_s[h] * kStepMs / 1000.0);
        if (controller_up && s.reporting) leaser_.Report(s.name, now_, s.applied.generation, s.Use());
      }
      if (controller_up) {
        leaser_.Tick(now_, {spec_});
        for (auto& s : hosts_)
          if (s.reporting) s.pending = leaser_.Lease(s.name);
        // The units of every host the leaser still counts never exceed the limit's.
        uint64_t sum = 0;
        for (auto& s : hosts_) sum += leaser_.Units(s.name, kLimiter);
        EXPECT_LE(sum, kRateUnits);
      }
      per_step.push_back(Total() - before);
    }
    return per_step;
  }
  uint64_t Total() const {
    uint64_t t = 0;
    for (auto& s : hosts_) t += s.admitted_total;
    return t;
  }
  SimHost& host(size_t i) { return hosts_[i]; }
  FleetLeaser& leaser() { return leaser_; }

 private:
  LimiterSpec spec_;
  std::vector<SimHost> hosts_;
  FleetLeaser leaser_;
  uint64_t now_ = 1000;
};

// Admitted in every window of `w` steps is at most capacity + rate x window.
void ExpectWithinBucket(const std::vector<uint64_t>& per_step, double capacity, double rate, size_t w) {
  for (size_t i = 0; i + w <= per_step.size(); ++i) {
    uint64_t sum = 0;
    for (size_t k = i; k < i + w; ++k) sum += per_step[k];
    ASSERT_LE(static_cast<double>(sum), capacity + rate * static_cast<double>(w * kStepMs) / 1000.0 + 1)
        << "window starting at step " << i;
  }
}

uint64_t Sum(const std::vector<uint64_t>& v, size_t from, size_t to) {
  uint64_t s = 0;
  for (size_t i = from; i < to && i < v.size(); ++i) s += v[i];
  return s;
}

TEST(FleetLeaserTest, DemandMovingBetweenHostsStaysWithinAndNearTheLimit) {
  // 50 requests/s, burst 50; demand of 200/s moves A -> B -> C -> split A+C.
  const double cap = 50, rate = 50;
  FleetSim sim({"a", "b", "c"}, cap, rate);
  std::vector<uint64_t> all;
  auto phase = [&](std::vector<double> d) {
    auto v = sim.Run(200, d);  // 20 s
    // Each phase's steady part (after 2 s to move the shares): >= 95% of the rate.
    EXPECT_GE(static_cast<double>(Sum(v, 20, 200)), 0.95 * rate * 18.0);
    all.insert(all.end(), v.begin(), v.end());
    return v;
  };
  phase({200, 0, 0});
  phase({0, 200, 0});
  phase({0, 0, 200});
  phase({100, 0, 100});
  ExpectWithinBucket(all, cap, rate, 100);  // every 10 s window
  ExpectWithinBucket(all, cap, rate, 10);   // and every 1 s one
  // Over every 10 s window after the start, at least 95% of the limit (the moves included).
  for (size_t i = 0; i + 100 <= all.size(); i += 10)
    EXPECT_GE(static_cast<double>(Sum(all, i, i + 100)), 0.95 * rate * 10) << "window at step " << i;
}

TEST(FleetLeaserTest, DemandBelowTheLimitIsMetEverywhere) {
  FleetSim sim({"a", "b"}, 100, 100);
  auto v = sim.Run(200, {30, 40});
  // 70/s asked, 100/s allowed: all of it admitted once shares settled.
  EXPECT_GE(static_cast<double>(Sum(v, 20, 200)), 0.95 * 70 * 18.0);
  EXPECT_LE(static_cast<double>(Sum(v, 20, 200)), 70 * 18.0 + 1);
}

TEST(FleetLeaserTest, ALostHostsShareIsReclaimedAfterExpiry) {
  FleetSim sim({"a", "b"}, 50, 50);
  sim.Run(50, {200, 200});
  EXPECT_GT(sim.leaser().Units("b", kLimiter), kRateUnits / 4);
  sim.host(1).reporting = false;  // b's link is gone: no reports, no new leases
  sim.Run(20, {200, 200});        // 2 s < expiry (3 s): b still counted
  EXPECT_GT(sim.leaser().Units("b", kLimiter), 0u);
  EXPECT_LT(sim.leaser().Units("a", kLimiter), kRateUnits);
  auto v = sim.Run(50, {200, 0});  // past expiry
  EXPECT_EQ(sim.leaser().Units("b", kLimiter), 0u);
  EXPECT_EQ(sim.leaser().Units("a", kLimiter), kRateUnits);
  EXPECT_EQ(sim.leaser().Hosts(), std::vector<std::string>{"a"});
  // a alone now admits at the whole rate.
  EXPECT_GE(static_cast<double>(Sum(v, 30, 50)), 0.95 * 50 * 2.0);
}

TEST(FleetLeaserTest, AForgottenHostIsReclaimedAtOnce) {
  FleetSim sim({"a", "b"}, 50, 50);
  sim.Run(30, {200, 200});
  sim.host(1).reporting = false;
  sim.leaser().Forget("b");
  sim.Run(5, {200, 0});
  EXPECT_EQ(sim.leaser().Units("b", kLimiter), 0u);
  EXPECT_EQ(sim.leaser().Units("a", kLimiter), kRateUnits);
}

TEST(FleetLeaserTest, ControllerLossKeepsEveryHostOnItsLastLease) {
  const double cap = 50, rate = 50;
  FleetSim sim({"a", "b"}, cap, rate);
  sim.Run(100, {200, 60});
  HostLease la = sim.host(0).pending, lb = sim.host(1).pending;
  ASSERT_EQ(la.shares.size(), 1u);
  ASSERT_GT(la.shares[0].refill_per_s, 0);
  ASSERT_GT(lb.shares[0].refill_per_s, 0);
  EXPECT_LE(la.shares[0].refill_per_s + lb.shares[0].refill_per_s, rate + 1e-9);
  uint64_t a0 = sim.host(0).admitted_total, b0 = sim.host(1).admitted_total;
  // The controller is gone for 30 s; demand now far above everything on both.
  auto v = sim.Run(300, {500, 500}, /*controller_up=*/false);
  uint64_t a = sim.host(0).admitted_total - a0, b = sim.host(1).admitted_total - b0;
  // Each on its last lease: no more than its bucket allows, and it keeps serving.
  EXPECT_LE(static_cast<double>(a), la.shares[0].capacity + la.shares[0].refill_per_s * 30 + 1);
  EXPECT_LE(static_cast<double>(b), lb.shares[0].capacity + lb.shares[0].refill_per_s * 30 + 1);
  EXPECT_GE(static_cast<double>(a), 0.95 * la.shares[0].refill_per_s * 30);
  EXPECT_GE(static_cast<double>(b), 0.95 * lb.shares[0].refill_per_s * 30);
  ExpectWithinBucket(v, cap, rate, 100);
}

TEST(FleetLeaserTest, ConcurrencySharesNeverAddUpPastTheLimit) {
  FleetLeaser l;
  LimiterSpec spec{3, 9, 4, 0, true};
  uint64_t now = 1000, gen_a = 0, gen_b = 0;
  // a holds 4 in flight, b none; then b wants 4 and a drops to 0.
  for (int i = 0; i < 5; ++i) {
    l.Report("a", now, gen_a, {HostUse{3, 9, 4, 0, 0}});
    l.Report("b", now, gen_b, {HostUse{3, 9, 0, 0, 0}});
    l.Tick(now += 100, {spec});
    gen_a = gen_b = l.generation();
  }
  EXPECT_EQ(l.Units("a", 3), 4u);
  uint64_t denied_b = 0;
  for (int i = 0; i < 20; ++i) {
    denied_b += 10;
    // a does not acknowledge the lowering for the first 5 ticks: b must not get a's slots.
    l.Report("a", now, i < 5 ? 1 : gen_a, {HostUse{3, 9, i < 5 ? 4u : 0u, 0, 0}});
    l.Report("b", now, l.generation(), {HostUse{3, 9, 0, denied_b, denied_b}});
    l.Tick(now += 100, {spec});
    if (i >= 5) gen_a = l.generation();
    uint64_t a = l.Units("a", 3), b = l.Units("b", 3);
    EXPECT_LE(a + b, 4u);
    if (i < 5) {
      EXPECT_EQ(b, 0u) << "b raised before a acknowledged its lowering";
    }
  }
  EXPECT_GE(l.Units("b", 3), 2u);
}

// An agent that comes over from another controller acknowledges that controller's
// generations; they must not count as acknowledging this leaser's lowerings.
TEST(FleetLeaserTest, AnotherControllersGenerationAcknowledgesNothing) {
  FleetLeaser l;
  LimiterSpec spec{3, 9, 2, 0, true};
  uint64_t now = 1000;
  for (int i = 0; i < 3; ++i) {
    l.Report("a", now, l.generation(), {HostUse{3, 9, 2, 0, 0}});
    l.Report("b", now, l.generation(), {HostUse{3, 9, 0, 0, 0}});
    l.Tick(now += 100, {spec});
  }
  ASSERT_EQ(l.Units("a", 3), 2u);
  for (int i = 0; i < 5; ++i) {
    // a now idle but still on the old lease, reporting a huge generation from elsewhere.
    l.Report("a", now, 1000000, {HostUse{3, 9, 0, 0, 0}});
    l.Report("b", now, l.generation(), {HostUse{3, 9, 0, uint64_t(10 * (i + 1)), uint64_t(10 * (i + 1))}});
    l.Tick(now += 100, {spec});
    EXPECT_EQ(l.Units("b", 3), 0u) << "raised from a share a has not given up";
  }
}

TEST(FleetLeaserTest, ApplyLeaseReplacesTheSpecsAndRefusesWhatItDoesNotCover) {
  std::vector<LimiterSpec> specs = {{1, 7, 600, 10, false}, {2, 8, 5, 0, true}, {3, 9, 100, 100, false}};
  HostLease lease;
  lease.generation = 4;
  lease.shares = {{1, 7, 150, 2.5}, {2, 8, 2, 0}, {3, 1234, 50, 50}};  // 3: another identity
  auto out = ApplyLease(specs, lease);
  ASSERT_EQ(out.size(), 3u);
  EXPECT_DOUBLE_EQ(out[0].capacity, 150);
  EXPECT_DOUBLE_EQ(out[0].refill_per_s, 2.5);
  EXPECT_DOUBLE_EQ(out[1].capacity, 2);
  EXPECT_TRUE(out[1].concurrency);
  EXPECT_DOUBLE_EQ(out[2].capacity, 0);
  EXPECT_DOUBLE_EQ(out[2].refill_per_s, 0);
}

}  // namespace
}  // namespace llmgw::cp
