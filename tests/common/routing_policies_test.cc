// Per-request policies: proportions, load ordering, eligibility, half-open budgets.
#include <gtest/gtest.h>

#include <map>
#include <type_traits>

#include "tests/common/routing_test_util.h"

namespace llmgw::routing {
namespace {

using testing::Fleet;
using testing::SplitMix;
using shm::BackendState;

constexpr Policy kAllPolicies[] = {Policy::kRoundRobin,     Policy::kWeightedRoundRobin, Policy::kLeastConnections,
                                   Policy::kLeastQueue,     Policy::kCapacity,           Policy::kP2cKv,
                                   Policy::kConsistentHash, Policy::kPrefixAffinity,     Policy::kAdaptive};

TEST(RoundRobinTest, RotatesOverEligibleBackends) {
  Fleet f(Policy::kRoundRobin, 3);
  std::vector<int> seq;
  for (int i = 0; i < 6; ++i) seq.push_back(f.Pick());
  EXPECT_EQ(seq, (std::vector<int>{0, 1, 2, 0, 1, 2}));
  f.SetState(1, BackendState::kDraining);
  f.Publish();
  std::map<int, int> n;
  for (int i = 0; i < 10; ++i) ++n[f.Pick()];
  EXPECT_EQ(n[0], 5);
  EXPECT_EQ(n[2], 5);
  EXPECT_EQ(n.count(1), 0u);
}

TEST(WeightedRoundRobinTest, ExactOverEveryCycleAndSmooth) {
  Fleet f(Policy::kWeightedRoundRobin, 3);
  f.b(0).weight = 5;
  f.b(1).weight = 1;
  f.b(2).weight = 2;
  f.Publish();
  for (int cycle = 0; cycle < 50; ++cycle) {
    std::map<int, int> n;
    int longest_run = 0, run = 0, prev = -1;
    for (int i = 0; i < 8; ++i) {
      int s = f.Pick();
      ++n[s];
      run = s == prev ? run + 1 : 1;
      longest_run = std::max(longest_run, run);
      prev = s;
    }
    EXPECT_EQ(n[0], 5) << "cycle " << cycle;
    EXPECT_EQ(n[1], 1);
    EXPECT_EQ(n[2], 2);
    EXPECT_LE(longest_run, 2) << "smooth WRR interleaves";
    if (cycle == 10) f.Publish();  // a new tick with the same membership keeps the state
  }
}

TEST(WeightedRoundRobinTest, FractionalWeightsAndIneligible) {
  Fleet f(Policy::kWeightedRoundRobin, 3);
  f.b(0).weight = 0.5f;
  f.b(1).weight = 1.5f;
  f.b(2).weight = 3;
  f.SetState(2, BackendState::kUnhealthy);
  f.Publish();
  std::map<int, int> n;
  for (int i = 0; i < 400; ++i) ++n[f.Pick()];
  EXPECT_EQ(n[0], 100);
  EXPECT_EQ(n[1], 300);
  EXPECT_EQ(n.count(2), 0u);
}

TEST(LeastConnectionsTest, UsesFleetEstimatePlusOwnInFlight) {
  Fleet f(Policy::kLeastConnections, 3);
  f.b(0).fleet_in_flight = 10;  // other gateway threads are busy on 0
  f.b(1).fleet_in_flight = 3;
  f.b(2).fleet_in_flight = 4;
  f.Publish();
  EXPECT_EQ(f.PickAndStart(), 1);  // 3 < 4 < 10
  EXPECT_EQ(f.PickAndStart(), 1);  // 4 (= 3 + our 1) ties 4: either 1 or 2
  // Our own in-flight counts: after the snapshot we sent two to 1, so it is at 5.
  EXPECT_EQ(Router::EstimatedInFlight(f.b(1), f.local[1]), 5u);
  EXPECT_EQ(f.Pick(), 2);
}

TEST(LeastConnectionsTest, EstimateSubtractsOwnCountAtSnapshot) {
  shm::BackendEntry b{};
  b.fleet_in_flight = 10;
  LocalLoad l{.in_flight = 2, .in_flight_at_snapshot = 6};  // 4 of ours finished since
  EXPECT_EQ(Router::EstimatedInFlight(b, l), 6u);
  l = {.in_flight = 9, .in_flight_at_snapshot = 20};  // never negative
  EXPECT_EQ(Router::EstimatedInFlight(b, l), 9u);
}

TEST(LeastQueueTest, WaitingPlusInFlight) {
  Fleet f(Policy::kLeastQueue, 2);
  for (int s : {0, 1}) f.b(s).metrics_fresh = 1;
  f.b(0).fleet_in_flight = 2;
  f.b(0).waiting = 9;
  f.b(1).fleet_in_flight = 6;
  f.b(1).waiting = 0;
  f.Publish();
  EXPECT_EQ(f.Pick(), 1);  // 6 < 11
  f.b(1).metrics_fresh = 0;  // stale waiting is ignored...
  f.b(0).metrics_fresh = 0;
  f.Publish();
  EXPECT_EQ(f.Pick(), 0);  // ...so 2 < 6
}

TEST(CapacityTest, RunningTimesThreePlusWaitingOverMaxConcurrent) {
  Fleet f(Policy::kCapacity, 2);
  for (int s : {0, 1}) f.b(s).metrics_fresh = 1;
  f.b(0).running = 4;  // (12 + 0) / 8 = 1.5
  f.b(0).max_concurrent = 8;
  f.b(1).running = 10;  // (30 + 6) / 32 = 1.125
  f.b(1).waiting = 6;
  f.b(1).max_concurrent = 32;
  f.Publish();
  EXPECT_EQ(f.Pick(), 1);
  f.b(1).waiting = 20;  // (30 + 20) / 32 = 1.56
  f.Publish();
  EXPECT_EQ(f.Pick(), 0);
}

TEST(CapacityTest, OwnRequestsSinceScrapeCountAsRunning) {
  Fleet f(Policy::kCapacity, 2);
  for (int s : {0, 1}) {
    f.b(s).metrics_fresh = 1;
    f.b(s).max_concurrent = 10;
  }
  f.Publish();
  // Equal scraped load: picks must alternate rather than herd on one backend.
  std::map<int, int> n;
  for (int i = 0; i < 10; ++i) ++n[f.PickAndStart({.random = static_cast<uint64_t>(i)})];
  EXPECT_EQ(n[0], 5);
  EXPECT_EQ(n[1], 5);
}

TEST(P2cKvTest, LowerScoreOfTwoWinsAndFallsBackWhenStale) {
  Fleet f(Policy::kP2cKv, 2);
  for (int s : {0, 1}) f.b(s).metrics_fresh = 1;
  f.b(0).kv_usage = 0.9f;  // 3.6
  f.b(1).waiting = 2;      // 2.0
  f.Publish();
  uint64_t x = 7;
  for (int i = 0; i < 20; ++i) EXPECT_EQ(f.Pick({.random = SplitMix(x)}), 1);
  f.b(1).metrics_fresh = 0;  // stale: compare in-flight instead
  f.b(1).fleet_in_flight = 5;
  f.Publish();
  for (int i = 0; i < 20; ++i) EXPECT_EQ(f.Pick({.random = SplitMix(x)}), 0);
}

TEST(P2cKvTest, NeverPicksIneligible) {
  // Property: over random fleets, states and loads, a pick is always an eligible backend.
  uint64_t x = 42;
  for (int round = 0; round < 300; ++round) {
    int n = 2 + static_cast<int>(SplitMix(x) % 9);
    Fleet f(Policy::kP2cKv, n, 4);
    for (int s = 0; s < n; ++s) {
      f.b(s).state = static_cast<uint8_t>(1 + SplitMix(x) % 5);  // healthy .. half-open
      f.b(s).metrics_fresh = SplitMix(x) % 2;
      f.b(s).waiting = static_cast<float>(SplitMix(x) % 10);
      f.b(s).kv_usage = static_cast<float>(SplitMix(x) % 100) / 100.0f;
      f.b(s).fleet_in_flight = static_cast<uint32_t>(SplitMix(x) % 5);
    }
    f.Publish();
    for (int i = 0; i < 20; ++i) {
      int s = f.PickAndStart({.random = SplitMix(x)});
      bool any = false;
      for (int k = 0; k < n; ++k) any |= f.router.Eligible(f.b(k), f.local[k]);
      if (s == kNoBackend) {
        // Recount after the picks above: nothing left may be eligible.
        EXPECT_FALSE(any);
        break;
      }
      --f.local[s].in_flight;
      EXPECT_TRUE(f.router.Eligible(f.b(s), f.local[s])) << "round " << round << " slot " << s;
      ++f.local[s].in_flight;
    }
  }
}

TEST(EveryPolicyTest, SkipsIneligibleAndAnswersNoBackendAtOnce) {
  for (Policy p : kAllPolicies) {
    SCOPED_TRACE(std::string(PolicyName(p)));
    Fleet f(p, 5, 2);
    f.SetState(0, BackendState::kUnhealthy);
    f.SetState(1, BackendState::kDraining);
    f.SetState(2, BackendState::kCircuitOpen);
    f.b(3).fleet_in_flight = 2;  // at max_concurrent
    for (int s = 0; s < 5; ++s) f.b(s).adaptive_weight = 0.2f;
    f.Publish();
    uint64_t x = 1;
    for (int i = 0; i < 50; ++i) {
      char key[8];
      int len = snprintf(key, sizeof key, "k%d", i);
      RequestInfo req{.hash_key = {key, static_cast<size_t>(len)}, .prefix = {key, static_cast<size_t>(len)},
                      .random = SplitMix(x)};
      EXPECT_EQ(f.Pick(req), 4);
    }
    const uint16_t ex[] = {4};
    EXPECT_EQ(f.Pick({}, ex), kNoBackend) << "excluded by a retry";
    f.SetState(4, BackendState::kEmpty);
    f.Publish();
    EXPECT_EQ(f.Pick(), kNoBackend);
    EXPECT_TRUE(f.router.AllAtCapacity(0, f.local)) << "backend 3 is full, not down";
    // A continuation that already tried backend 3: nothing left to wait for.
    const uint16_t tried3[] = {3};
    EXPECT_FALSE(f.router.AllAtCapacity(0, f.local, tried3)) << "the only full backend was tried";
    // Backend 4 back and free but tried (a continuation's failed backend): still at capacity.
    f.SetState(4, BackendState::kHealthy);
    f.Publish();
    EXPECT_FALSE(f.router.AllAtCapacity(0, f.local)) << "backend 4 is free";
    EXPECT_TRUE(f.router.AllAtCapacity(0, f.local, ex)) << "backend 4 was tried; 3 is full";
  }
}

TEST(EveryPolicyTest, HalfOpenBudgetRespected) {
  for (Policy p : kAllPolicies) {
    SCOPED_TRACE(std::string(PolicyName(p)));
    Fleet f(p, 1);
    f.SetState(0, BackendState::kHalfOpen);
    f.b(0).half_open_budget = 3;
    f.Publish();
    uint64_t x = 3;
    for (int i = 0; i < 3; ++i) EXPECT_EQ(f.PickAndStart({.random = SplitMix(x)}), 0);
    EXPECT_EQ(f.PickAndStart({.random = SplitMix(x)}), kNoBackend);
    EXPECT_FALSE(f.router.AllAtCapacity(0, f.local)) << "an exhausted trial is not capacity";
    --f.local[0].in_flight;  // one trial finished
    EXPECT_EQ(f.PickAndStart({.random = SplitMix(x)}), 0);
  }
}

TEST(EveryPolicyTest, MultipleModelsAreSeparate) {
  Fleet f(Policy::kRoundRobin, 2);
  int s = f.Add();
  f.b(s).model_slot = 1;
  f.snap->num_models = 2;
  f.snap->models[1].present = 1;
  f.snap->models[1].policy = static_cast<uint8_t>(Policy::kLeastConnections);
  f.Publish();
  for (int i = 0; i < 5; ++i) EXPECT_EQ(f.router.Pick(1, {}, f.local, {}), s);
  for (int i = 0; i < 5; ++i) EXPECT_NE(f.Pick(), s);
  EXPECT_EQ(f.router.Pick(7, {}, f.local, {}), kNoBackend);
  EXPECT_EQ(f.router.PolicyOf(1), Policy::kLeastConnections);
}

void SetLoadsAdaptive(Fleet& f, std::vector<uint32_t> loads) {
  for (size_t s = 0; s < loads.size(); ++s) f.b(static_cast<int>(s)).fleet_in_flight = loads[s];
  f.Publish();
}

TEST(AdaptiveTest, InFlightSharesFollowWeightsWithAFloor) {
  Fleet f(Policy::kAdaptive, 3);
  f.b(0).adaptive_weight = 0.7f;
  f.b(1).adaptive_weight = 0.3f;
  f.b(2).adaptive_weight = 0.0f;
  f.Publish();
  std::map<int, int> n;
  uint64_t x = 9;
  for (int i = 0; i < 1000; ++i) ++n[f.PickAndStart({.random = SplitMix(x)})];
  // Shares are (0.95 * w + 0.05 / 3): 68.2%, 30.2%, 1.7%.
  EXPECT_NEAR(n[0] / 1000.0, 0.682, 0.02);
  EXPECT_NEAR(n[1] / 1000.0, 0.302, 0.02);
  EXPECT_GT(n[2], 5) << "a zero weight still explores";
}

TEST(AdaptiveTest, NoWeightsYetMeansEven) {
  Fleet f(Policy::kAdaptive, 4);
  std::map<int, int> n;
  uint64_t x = 5;
  for (int i = 0; i < 400; ++i) ++n[f.PickAndStart({.random = SplitMix(x)})];
  for (int s = 0; s < 4; ++s) EXPECT_EQ(n[s], 100);
}

TEST(AdaptiveTest, QueuedRequestsWeighOnTheScore) {
  // Equal weights and in-flight; backend 0 has requests waiting for a batch slot.
  Fleet f(Policy::kAdaptive, 3);
  for (int s = 0; s < 3; ++s) {
    f.b(s).adaptive_weight = 1.0f / 3;
    f.b(s).metrics_fresh = 1;
    f.b(s).fleet_in_flight = 4;
  }
  f.b(0).waiting = 3;
  f.Publish();
  uint64_t x = 1;
  for (int i = 0; i < 30; ++i) EXPECT_NE(f.Pick({.random = SplitMix(x)}), 0);
}

TEST(AdaptiveTest, PrefixStaysHomeThenMovesToTheBestWhenHomeStaysWorse) {
  Fleet f(Policy::kAdaptive, 3);
  for (int s = 0; s < 3; ++s) {
    f.b(s).adaptive_weight = 1.0f / 3;
    f.b(s).fleet_in_flight = 4;
  }
  f.b(2).fleet_in_flight = 1;
  f.Publish();
  RequestInfo req{.prefix = "You are a helpful assistant.", .random = 5};
  ASSERT_EQ(f.Pick(req), 2) << "first seen: the best score";
  // Home a little busier than the best (within bounded_load x): still home.
  SetLoadsAdaptive(f, {3, 3, 4});
  for (int i = 0; i < 40; ++i) EXPECT_EQ(f.Pick(req), 2);
  // llmcd learns home is poor: its weight collapses. Home keeps the prefix for a while,
  // then it moves to the best backend and stays.
  f.b(2).adaptive_weight = 0.02f;
  f.b(0).adaptive_weight = 0.49f;
  f.b(1).adaptive_weight = 0.49f;
  f.Publish();
  int moved_at = -1, to = -1;
  for (int i = 0; i < 200 && moved_at < 0; ++i) {
    int s = f.Pick(req);
    if (s != 2) moved_at = i, to = s;
  }
  ASSERT_GE(moved_at, 0);
  EXPECT_GE(moved_at, 8);
  EXPECT_LE(moved_at, 64);
  for (int i = 0; i < 10; ++i) EXPECT_EQ(f.Pick(req), to);
  // Without a prefix the pick is the plain weighted least-load choice.
  EXPECT_NE(f.Pick({.random = 9}), 2);
}

TEST(AdaptiveTest, RequestLeavesAHomeThatIsNotAnsweringFirstTokens) {
  Fleet f(Policy::kAdaptive, 3);
  for (int s = 0; s < 3; ++s) f.b(s).adaptive_weight = 1.0f / 3;
  f.Publish();
  RequestInfo req{.prefix = "You are a helpful assistant.", .random = 5};
  int home = f.Pick(req);
  ASSERT_GE(home, 0);
  // Equal load everywhere (no strikes); only how many have had their first token differs.
  for (int s = 0; s < 3; ++s) f.local[s].in_flight = 2;
  // One of this thread's requests at home still waits for its first token: stay home.
  f.local[home].awaiting = 1;
  for (int i = 0; i < 20; ++i) EXPECT_EQ(f.Pick(req), home);
  // Two waiting there while the others have none: this request goes elsewhere, the
  // prefix stays home.
  f.local[home].awaiting = 2;
  for (int i = 0; i < 20; ++i) EXPECT_NE(f.Pick(req), home);
  bool pinned = false;
  EXPECT_EQ(f.router.PrefixHomeOf(Router::HashKey(req.prefix), 0, &pinned), home);
  // Every backend has requests waiting: affinity wins again.
  for (int s = 0; s < 3; ++s) f.local[s].awaiting = 2;
  for (int i = 0; i < 20; ++i) EXPECT_EQ(f.Pick(req), home);
  // First tokens came back: home.
  for (int s = 0; s < 3; ++s) f.local[s].awaiting = 0;
  EXPECT_EQ(f.Pick(req), home);
}

TEST(AdaptiveTest, PrefixLeavesAHomeThatStaysDown) {
  Fleet f(Policy::kAdaptive, 3);
  for (int s = 0; s < 3; ++s) f.b(s).adaptive_weight = 1.0f / 3;
  SetLoadsAdaptive(f, {4, 4, 1});
  RequestInfo req{.prefix = "You are a helpful assistant.", .random = 5};
  ASSERT_EQ(f.Pick(req), 2);
  // A retry that excludes home goes elsewhere once; home keeps the prefix.
  const uint16_t exclude[] = {2};
  EXPECT_NE(f.Pick(req, exclude), 2);
  EXPECT_EQ(f.Pick(req), 2);
  // Home drains for good: requests go to the best backend, and after a while the
  // prefix lives there, so it stays when the old home comes back.
  f.SetState(2, BackendState::kDraining);
  f.Publish();
  int last = -1;
  for (int i = 0; i < 100; ++i) {
    last = f.Pick(req);
    EXPECT_NE(last, 2);
  }
  f.SetState(2, BackendState::kHealthy);
  f.Publish();
  EXPECT_EQ(f.Pick(req), last);
}

TEST(AdaptiveTest, APrefixThatIsMostOfTheTrafficStaysPut) {
  // One system prompt for every request: it is over any single backend's share wherever
  // it lives, so moving it would only cost cold prefills. It stays on one backend.
  Fleet f(Policy::kAdaptive, 3);
  for (int s = 0; s < 3; ++s) f.b(s).adaptive_weight = 1.0f / 3;
  f.Publish();
  RequestInfo req{.prefix = "the only system prompt", .random = 1};
  int home = f.Pick(req);
  ASSERT_NE(home, kNoBackend);
  for (int i = 0; i < 3000; ++i) ASSERT_EQ(f.Pick(req), home) << "pick " << i;
}

TEST(AdaptiveTest, PrefixHomesBringTrafficInProportionToLearntShares) {
  // Many prompts of equal popularity, an idle fleet: where prefixes live (and so where
  // their traffic goes) follows llmcd's weights — no backend's prefixes bring more than
  // bounded_load x its share — and follows them again when they change.
  Fleet f(Policy::kAdaptive, 3);
  const float w1[] = {0.6f, 0.3f, 0.1f};
  for (int s = 0; s < 3; ++s) f.b(s).adaptive_weight = w1[s];
  f.Publish();
  uint64_t x = 3;
  auto run = [&](int n) {
    std::map<int, int> picks;
    for (int i = 0; i < n; ++i) {
      std::string p = "prompt " + std::to_string(SplitMix(x) % 60);
      ++picks[f.Pick({.prefix = p, .random = SplitMix(x)})];
    }
    return picks;
  };
  auto check = [&](std::map<int, int> picks, const float* w, int best) {
    for (int s = 0; s < 3; ++s) {
      double share = 0.95 * w[s] + 0.05 / 3;  // with the exploration floor
      EXPECT_LE(picks[s] / 6000.0, 1.25 * share + 0.02) << "backend " << s;
      if (s != best) {
        EXPECT_GT(picks[best], picks[s]) << "backend " << s;
      }
    }
  };
  run(6000);
  check(run(6000), w1, 0);
  // The learner turns around: backend 2 is now the best. Prefixes move over to it.
  const float w2[] = {0.1f, 0.3f, 0.6f};
  for (int s = 0; s < 3; ++s) f.b(s).adaptive_weight = w2[s];
  f.Publish();
  run(20000);
  check(run(6000), w2, 2);
}

// The data plane holds Routers by value inside its per-thread state; the split into
// policy files must not take copying or moving away (no policy holds a reference).
static_assert(std::is_copy_constructible_v<Router> && std::is_move_constructible_v<Router> &&
              std::is_move_assignable_v<Router>);

TEST(RouterTest, NoSnapshotMeansNoBackend) {
  Router r;
  std::vector<LocalLoad> local(4);
  EXPECT_EQ(r.Pick(0, {}, local, {}), kNoBackend);
  EXPECT_FALSE(r.AllAtCapacity(0, local));
}

// models[].backends[].rps: a backend whose rate lease this thread has used up is skipped
// like a full one (reported in RateSkipped, so the worker counts the refusal as demand);
// with only such backends left there is no pick and no queueing (the request fails).
TEST(BackendRateTest, BackendAtItsRateIsSkippedNotAnErrorUnlessAllAre) {
  for (Policy policy : {Policy::kRoundRobin, Policy::kLeastConnections, Policy::kConsistentHash}) {
    Fleet f(policy, 3);
    f.b(0).rps = 10;
    f.b(1).rps = 10;  // b2 has no rate limit
    f.Publish();
    std::vector<uint64_t> grant(shm::kMaxBackends, 0), spent(shm::kMaxBackends, 0);
    grant[0] = 5;
    spent[0] = 5;  // b0 at its rate
    grant[1] = 5;
    spent[1] = 2;  // b1 below it
    f.router.SetBackendRates(grant.data(), spent.data());
    for (int i = 0; i < 30; ++i) {
      RequestInfo req;
      std::string user = testing::Named("user-", static_cast<uint64_t>(i));
      req.hash_key = user;
      int s = f.router.Pick(0, req, f.local, {});
      EXPECT_NE(s, 0) << "picked a backend at its rate";
      EXPECT_NE(s, kNoBackend);
      ASSERT_EQ(f.router.RateSkipped().size(), 1u);
      EXPECT_EQ(f.router.RateSkipped()[0], 0);
    }
    EXPECT_FALSE(f.router.AllAtCapacity(0, f.local));
    // b1 at its rate too and b2 full: the one with room left is... none; b2 frees up with
    // a completion, so the request queues.
    spent[1] = 5;
    f.b(2).max_concurrent = 1;
    f.local[2].in_flight = 1;
    EXPECT_EQ(f.Pick(), kNoBackend);
    EXPECT_EQ(f.router.RateSkipped().size(), 2u);
    EXPECT_TRUE(f.router.AllAtCapacity(0, f.local));
    // b2 gone: only backends at their rate are left, nothing to wait for in the queue.
    f.SetState(2, BackendState::kUnhealthy);
    f.Publish();
    EXPECT_EQ(f.Pick(), kNoBackend);
    EXPECT_EQ(f.router.RateSkipped().size(), 2u);
    EXPECT_FALSE(f.router.AllAtCapacity(0, f.local));
    // A new lease: picked again.
    grant[0] = 10;
    EXPECT_EQ(f.Pick(), 0);
    EXPECT_TRUE(f.router.RateSkipped().size() == 1u && f.router.RateSkipped()[0] == 1);
  }
}

// Without rate arrays (simulator, tests) an rps is not checked.
TEST(BackendRateTest, WithoutRatesTheRouterIgnoresRps) {
  Fleet f(Policy::kRoundRobin, 1);
  f.b(0).rps = 1;
  f.Publish();
  for (int i = 0; i < 5; ++i) EXPECT_EQ(f.Pick(), 0);
  EXPECT_TRUE(f.router.RateSkipped().empty());
}

}  // namespace
}  // namespace llmgw::routing
