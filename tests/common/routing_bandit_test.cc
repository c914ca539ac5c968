// AdaptiveBandit: converges on the better backend, follows a swap, penalises errors,
// keeps exploring.
#include <gtest/gtest.h>

#include <numeric>

#include "common/routing/bandit.h"

namespace llmgw::routing {
namespace {

// Two simulated backends; each tick 200 requests are split by the current weights and
// each backend answers with its current mean latency (plus deterministic jitter).
struct TwoBackends {
  double ttft_ms[2];
  double error_rate[2] = {0, 0};
  double tpot_ms[2] = {0, 0};  // decode time per output token (0: not reported)
  std::vector<ArmObservation> Tick(const std::vector<double>& w, int tick) {
    std::vector<ArmObservation> obs(2);
    for (int i = 0; i < 2; ++i) {
      uint64_t n = static_cast<uint64_t>(200 * w[i] + 0.5);
      obs[i].slot = static_cast<uint32_t>(10 + i);
      obs[i].failures = static_cast<uint64_t>(n * error_rate[i]);
      obs[i].successes = n - obs[i].failures;
      double jitter = 1.0 + 0.1 * (((tick * 7 + i * 3) % 5) - 2) / 2.0;
      if (obs[i].successes) {
        obs[i].ttft_ms = ttft_ms[i] * jitter;
        obs[i].latency_ms = ttft_ms[i] * 10 * jitter;
        obs[i].tpot_ms = tpot_ms[i] * jitter;
      }
    }
    return obs;
  }
};

TEST(AdaptiveBanditTest, ConvergesToBetterAndReconvergesAfterSwap) {
  AdaptiveBandit bandit(/*exploration=*/0.1, /*decay=*/0.8, /*seed=*/17);
  // The slower backend answers later and decodes slower (4x the time per token).
  TwoBackends sim{{100, 400}};
  sim.tpot_ms[0] = 10;
  sim.tpot_ms[1] = 40;
  std::vector<double> w = {0.5, 0.5};
  for (int t = 0; t < 30; ++t) w = bandit.Update(sim.Tick(w, t));
  // Rewards ~0.66 vs ~0.33 and decode speed 4x: value^2 x speed gives the better arm ~94%
  // of the learnt share, 0.9 x that plus half the 10% exploration.
  EXPECT_GT(w[0], 0.85);
  EXPECT_GT(w[0], 5 * w[1]);
  EXPECT_NEAR(w[0] + w[1], 1.0, 1e-9);
  EXPECT_GE(w[1], 0.05 - 1e-9) << "exploration keeps a share on the worse arm";

  std::swap(sim.ttft_ms[0], sim.ttft_ms[1]);
  std::swap(sim.tpot_ms[0], sim.tpot_ms[1]);
  int ticks_to_follow = -1;
  for (int t = 0; t < 60; ++t) {
    w = bandit.Update(sim.Tick(w, 100 + t));
    if (ticks_to_follow < 0 && w[1] > 0.85) ticks_to_follow = t + 1;
  }
  EXPECT_GT(w[1], 0.85);
  EXPECT_GT(w[1], 5 * w[0]);
  EXPECT_GT(ticks_to_follow, 0);
  EXPECT_LE(ticks_to_follow, 30) << "decay lets the weights follow within a few ticks";
}

TEST(AdaptiveBanditTest, ErrorsArePenalised) {
  AdaptiveBandit bandit(0.1, 0.8, 3);
  TwoBackends sim{{100, 150}};
  sim.error_rate[0] = 0.5;  // faster but failing half the time
  std::vector<double> w = {0.5, 0.5};
  for (int t = 0; t < 30; ++t) w = bandit.Update(sim.Tick(w, t));
  // Same hardware (no decode-speed difference): rewards ~0.33 vs ~0.57, value^2 -> ~3:1.
  EXPECT_GT(w[1], 0.65);
  EXPECT_GT(w[1], 2 * w[0]);
}

TEST(AdaptiveBanditTest, SlowerDecodingBackendGetsLessAtEqualTtft) {
  // Equal TTFT (e.g. both caches warm) but one decodes 4x slower: it must not get an
  // even share (TTFT alone would say the two are equal).
  AdaptiveBandit bandit(0.1, 0.8, 5);
  TwoBackends sim{{80, 80}};
  sim.tpot_ms[0] = 10;
  sim.tpot_ms[1] = 40;
  std::vector<double> w = {0.5, 0.5};
  for (int t = 0; t < 30; ++t) w = bandit.Update(sim.Tick(w, t));
  EXPECT_GT(w[0], 3 * w[1]);
  // Without decode-speed readings the two are equal.
  AdaptiveBandit plain(0.1, 0.8, 5);
  TwoBackends same{{80, 80}};
  w = {0.5, 0.5};
  for (int t = 0; t < 30; ++t) w = plain.Update(same.Tick(w, t));
  EXPECT_NEAR(w[0], w[1], 0.05);
}

TEST(AdaptiveBanditTest, EqualBackendsShareAndIneligibleGetZero) {
  AdaptiveBandit bandit(0.1, 0.8, 5);
  TwoBackends sim{{200, 200}};
  std::vector<double> w = {0.5, 0.5};
  double sum0 = 0;
  for (int t = 0; t < 40; ++t) {
    w = bandit.Update(sim.Tick(w, t));
    if (t >= 20) sum0 += w[0];
  }
  EXPECT_NEAR(sum0 / 20, 0.5, 0.2) << "no arm wins outright when they are equal";

  ArmObservation obs[3] = {{.slot = 0, .eligible = true}, {.slot = 1, .eligible = false},
                           {.slot = 2, .eligible = true}};
  auto w3 = bandit.Update(obs);
  ASSERT_EQ(w3.size(), 3u);
  EXPECT_EQ(w3[1], 0.0);
  EXPECT_NEAR(w3[0] + w3[2], 1.0, 1e-9);
  obs[0].eligible = obs[2].eligible = false;
  auto none = bandit.Update(obs);
  EXPECT_EQ(std::accumulate(none.begin(), none.end(), 0.0), 0.0);
}

TEST(AdaptiveBanditTest, DeterministicForASeed) {
  TwoBackends sim{{100, 130}};
  AdaptiveBandit a(0.1, 0.8, 99), b(0.1, 0.8, 99);
  std::vector<double> wa = {0.5, 0.5}, wb = wa;
  for (int t = 0; t < 10; ++t) {
    wa = a.Update(sim.Tick(wa, t));
    wb = b.Update(sim.Tick(wb, t));
  }
  EXPECT_EQ(wa, wb);
}

TEST(AdaptiveBanditTest, RewardFallsWithLatency) {
  EXPECT_GT(AdaptiveBandit::Reward(50, 500), AdaptiveBandit::Reward(100, 500));
  EXPECT_GT(AdaptiveBandit::Reward(50, 500), AdaptiveBandit::Reward(50, 5000));
  EXPECT_DOUBLE_EQ(AdaptiveBandit::Reward(0, 0), 1.0);
}

TEST(AdaptiveBanditTest, RewardIsTtftFirst) {
  // End-to-end latency mostly measures how long the answer is, not the backend; it only
  // breaks ties. A backend with a 3x better TTFT wins even with a 20x longer answer.
  EXPECT_GT(AdaptiveBandit::Reward(100, 20000), AdaptiveBandit::Reward(300, 1000));
}

}  // namespace
}  // namespace llmgw::routing
