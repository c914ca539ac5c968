// consistent_hash and prefix_affinity: stability under membership change, bounded load,
// prefix stickiness until saturation.
#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <set>
#include <string>

#include "tests/common/routing_test_util.h"

namespace llmgw::routing {
namespace {

using testing::Fleet;
using testing::Named;
using testing::SplitMix;
using shm::BackendState;

std::vector<int> MapKeys(Fleet& f, int keys) {
  std::vector<int> out;
  for (int k = 0; k < keys; ++k) {
    std::string key = "user-" + std::to_string(k);
    out.push_back(f.Pick({.hash_key = key}));
  }
  return out;
}

TEST(ConsistentHashTest, SameKeySameBackend) {
  Fleet f(Policy::kConsistentHash, 5);
  auto a = MapKeys(f, 200);
  auto b = MapKeys(f, 200);
  EXPECT_EQ(a, b);
  std::map<int, int> n;
  for (int s : a) ++n[s];
  EXPECT_EQ(n.size(), 5u) << "keys spread over every backend";
}

TEST(ConsistentHashTest, BackendLeavingMovesAboutOneNthOfKeys) {
  for (auto leave : {BackendState::kEmpty, BackendState::kDraining, BackendState::kUnhealthy}) {
    Fleet f(Policy::kConsistentHash, 10);
    const int kKeys = 20000;
    auto before = MapKeys(f, kKeys);
    f.SetState(3, leave);
    f.Publish();
    auto after = MapKeys(f, kKeys);
    int moved = 0;
    for (int k = 0; k < kKeys; ++k) {
      if (before[k] == after[k]) continue;
      ++moved;
      EXPECT_EQ(before[k], 3) << "only the leaving backend's keys move";
      EXPECT_NE(after[k], 3);
    }
    double frac = static_cast<double>(moved) / kKeys;
    EXPECT_GT(frac, 0.06);
    EXPECT_LT(frac, 0.14);
    // And they come back when it returns.
    f.SetState(3, BackendState::kHealthy);
    f.Publish();
    EXPECT_EQ(MapKeys(f, kKeys), before);
  }
}

TEST(ConsistentHashTest, BackendJoiningTakesAboutOneNth) {
  Fleet f(Policy::kConsistentHash, 9);
  const int kKeys = 20000;
  auto before = MapKeys(f, kKeys);
  int added = f.Add();
  f.Publish();
  auto after = MapKeys(f, kKeys);
  int moved = 0;
  for (int k = 0; k < kKeys; ++k) {
    if (before[k] == after[k]) continue;
    ++moved;
    EXPECT_EQ(after[k], added) << "keys only move to the newcomer";
  }
  EXPECT_NEAR(static_cast<double>(moved) / kKeys, 0.1, 0.04);
}

// Property: under a random mix of arrivals (skewed keys) and completions, no pick leaves
// the chosen backend above max(ceil(c * total / n), the slack floor).
void CheckBoundedLoad(Policy p, double c) {
  Fleet f(p, 6, 40);  // slack floor: ceil(0.25 * 40) = 10
  f.snap->limits.bounded_load = static_cast<float>(c);
  f.Publish();
  uint64_t x = 11;
  uint32_t total = 0;
  for (int i = 0; i < 20000; ++i) {
    if (total > 0 && SplitMix(x) % 100 < 45) {  // a completion somewhere
      int s = static_cast<int>(SplitMix(x) % 6);
      while (f.local[s].in_flight == 0) s = (s + 1) % 6;
      --f.local[s].in_flight;
      --total;
      continue;
    }
    // 80% of the traffic is one hot key.
    std::string key = SplitMix(x) % 10 < 8 ? std::string("hot") : Named("k", SplitMix(x) % 50);
    RequestInfo req{.hash_key = key, .prefix = key, .random = SplitMix(x)};
    int s = f.PickAndStart(req);
    if (s == kNoBackend) continue;  // the whole fleet is at max_concurrent
    ++total;
    uint32_t bound = static_cast<uint32_t>(std::ceil(c * total / 6.0 - 1e-9));
    ASSERT_LE(f.Load(s), std::max(bound, 10u)) << "pick " << i << " total " << total;
  }
}

TEST(ConsistentHashTest, BoundedLoadNeverExceeded) {
  CheckBoundedLoad(Policy::kConsistentHash, 1.25);
  CheckBoundedLoad(Policy::kConsistentHash, 1.1);
}

TEST(PrefixAffinityTest, BoundedLoadNeverExceeded) { CheckBoundedLoad(Policy::kPrefixAffinity, 1.25); }

TEST(PrefixAffinityTest, SharedPrefixStaysOnOneBackendUntilSaturated) {
  Fleet f(Policy::kPrefixAffinity, 4, 16);  // slack floor 4
  // Background load elsewhere so the bound is c x mean, not the floor: 8 on each backend.
  for (int s = 0; s < 4; ++s) f.b(s).fleet_in_flight = 8;
  f.Publish();
  std::string prefix = "You are a helpful assistant.\nSummarise this";
  RequestInfo req{.prefix = prefix, .random = 1};
  int home = f.Pick(req);
  ASSERT_NE(home, kNoBackend);
  std::vector<int> seq;
  for (int i = 0; i < 12; ++i) seq.push_back(f.PickAndStart(req));
  // Stays home while home + 1 <= ceil(1.25 * (total + 1) / 4); total starts at 32.
  int stayed = 0;
  while (stayed < 12 && seq[stayed] == home) ++stayed;
  EXPECT_GE(stayed, 3);
  for (int i = 0; i < stayed; ++i) EXPECT_EQ(seq[i], home);
  // After saturating, overflow goes to one consistent second choice, never above bound.
  ASSERT_LT(stayed, 12);
  int second = seq[stayed];
  EXPECT_NE(second, home);
  // Once home drains, the prefix returns to it.
  f.local[home].in_flight = 0;
  EXPECT_EQ(f.Pick(req), home);
  // Different prefixes spread over the fleet (once nothing is above the bound).
  for (int s = 0; s < 4; ++s) f.local[s].in_flight = 0;
  std::map<int, int> n;
  for (int k = 0; k < 400; ++k) {
    std::string p = "system prompt " + std::to_string(k);
    ++n[f.Pick({.prefix = p})];
  }
  EXPECT_EQ(n.size(), 4u);
}

// Sets every backend's fleet-wide in-flight (this thread has nothing in flight).
void SetLoads(Fleet& f, std::vector<uint32_t> loads) {
  for (size_t s = 0; s < loads.size(); ++s) f.b(static_cast<int>(s)).fleet_in_flight = loads[s];
  f.Publish();
}

TEST(PrefixAffinityTest, NewPrefixGoesToLeastLoadedAndStaysThere) {
  Fleet f(Policy::kPrefixAffinity, 4);  // max_concurrent 1000: the idle slack never binds here
  SetLoads(f, {8, 2, 8, 8});
  RequestInfo req{.prefix = "You are a terse assistant.", .random = 7};
  EXPECT_EQ(f.Pick(req), 1) << "placed where it costs least now, not where its hash falls";
  // Loads move, but home stays under c x mean: the prefix stays (plain least load would not).
  SetLoads(f, {6, 9, 6, 6});
  for (int i = 0; i < 10; ++i) EXPECT_EQ(f.Pick(req), 1);
}

TEST(PrefixAffinityTest, NewPrefixesAreSpreadByCountOnAnEvenFleet) {
  // Equal loads: placement balances how many prefixes each backend is home to, so every
  // backend's KV cache holds its share of the distinct prefixes.
  Fleet f(Policy::kPrefixAffinity, 4);
  std::map<int, int> n;
  for (int k = 0; k < 400; ++k) {
    std::string p = "system prompt " + std::to_string(k);
    ++n[f.Pick({.prefix = p})];
  }
  // Not exactly 100 each: the memory is a fixed direct-mapped table, and a prefix that
  // collides with an older one takes over its entry (the older one's count is released).
  for (int s = 0; s < 4; ++s) EXPECT_NEAR(n[s], 100, 6) << "backend " << s;
}

TEST(PrefixAffinityTest, ThreadsWithTheSameViewPlaceAlike) {
  // Ties are broken by the prefix's hash, not the request's random bits, so two gateway
  // threads that see the same loads home a prefix on the same backend.
  Fleet f(Policy::kPrefixAffinity, 5);
  Router other;
  other.OnSnapshot(*f.snap);
  for (int k = 0; k < 50; ++k) {
    std::string p = "prompt " + std::to_string(k);
    EXPECT_EQ(f.Pick({.prefix = p, .random = 1}), other.Pick(0, {.prefix = p, .random = 999}, f.local, {}));
  }
}

TEST(PrefixAffinityTest, PrefixMovesWholeWhenHomeStaysAboveTheBound) {
  Fleet f(Policy::kPrefixAffinity, 4);
  SetLoads(f, {8, 2, 8, 8});
  RequestInfo req{.prefix = "shared system prompt", .random = 3};
  ASSERT_EQ(f.Pick(req), 1);
  // Home now carries far more than c x mean (but is under max_concurrent and the slack):
  // it keeps the prefix for a while (a brief peak must not move it), then gives it up.
  SetLoads(f, {8, 30, 8, 8});
  int moved_at = -1, to = -1;
  for (int i = 0; i < 200 && moved_at < 0; ++i) {
    int s = f.Pick(req);
    if (s != 1) moved_at = i, to = s;
  }
  ASSERT_GE(moved_at, 0) << "the prefix never left its overloaded home";
  EXPECT_GE(moved_at, 8) << "one busy moment is not enough to move a prefix";
  EXPECT_LE(moved_at, 64);
  // It moved for good: home's load is back to normal, the prefix stays at its new home.
  SetLoads(f, {8, 8, 8, 8});
  for (int i = 0; i < 10; ++i) EXPECT_EQ(f.Pick(req), to);
}

TEST(PrefixAffinityTest, BriefPeaksDoNotMoveAPrefix) {
  // Alternating above and below c x mean: the strike counter leaks back, the prefix stays.
  Fleet f(Policy::kPrefixAffinity, 4);
  SetLoads(f, {8, 2, 8, 8});
  RequestInfo req{.prefix = "shared system prompt", .random = 3};
  ASSERT_EQ(f.Pick(req), 1);
  for (int i = 0; i < 300; ++i) {
    SetLoads(f, {8, i % 2 ? 30u : 8u, 8, 8});
    EXPECT_EQ(f.Pick(req), 1) << "pick " << i;
  }
}

TEST(PrefixAffinityTest, HomeThatLeavesIsReplaced) {
  Fleet f(Policy::kPrefixAffinity, 4);
  SetLoads(f, {8, 2, 8, 8});
  RequestInfo req{.prefix = "shared system prompt", .random = 3};
  ASSERT_EQ(f.Pick(req), 1);
  f.SetState(1, BackendState::kEmpty);  // removed by a reload
  f.Publish();
  int next = f.Pick(req);
  EXPECT_NE(next, 1);
  EXPECT_NE(next, kNoBackend);
  for (int i = 0; i < 10; ++i) EXPECT_EQ(f.Pick(req), next);
}

// Zipf(1) over `groups` prefixes: the popularity shape of system prompts in routing_sim.
int ZipfPick(uint64_t& x, int groups) {
  double norm = 0;
  for (int g = 1; g <= groups; ++g) norm += 1.0 / g;
  double u = static_cast<double>(SplitMix(x) >> 11) / 9007199254740992.0 * norm;
  int g = 1;
  for (; g < groups && (u -= 1.0 / g) > 0; ++g) {}
  return g - 1;
}

TEST(PrefixAffinityTest, HomesBringTrafficInProportionToWeightAndSpreadByCount) {
  // Backends of speeds 1, 1, 0.5, 0.25 (weighted so), 32 prompts of Zipf popularity. The
  // fleet is idle (the bound never binds), so only placement decides: each backend's
  // prefixes should bring traffic near its weight's share, and every KV cache should hold
  // a fair number of distinct prefixes (placing by in-flight alone gave the 0.25 backend
  // one or two prompts and piled a dozen onto another).
  Fleet f(Policy::kPrefixAffinity, 4);
  const float weights[] = {1, 1, 0.5f, 0.25f};
  for (int s = 0; s < 4; ++s) f.b(s).weight = weights[s];
  f.Publish();
  uint64_t x = 21;
  std::map<int, int> picks;
  std::map<int, std::set<int>> groups_on;
  for (int i = 0; i < 30000; ++i) {
    int g = ZipfPick(x, 32);
    int s = f.Pick({.prefix = "system prompt #" + std::to_string(g), .random = SplitMix(x)});
    ASSERT_NE(s, kNoBackend);
    if (i < 10000) continue;  // placement settles
    ++picks[s];
    groups_on[s].insert(g);
  }
  for (int s = 0; s < 4; ++s) {
    double share = picks[s] / 20000.0, fair = weights[s] / 2.75;
    EXPECT_GT(share, 0.5 * fair) << "backend " << s;
    EXPECT_LT(share, 1.5 * fair) << "backend " << s;
    EXPECT_GE(groups_on[s].size(), 4u) << "backend " << s;
    EXPECT_LE(groups_on[s].size(), 12u) << "backend " << s;
  }
}

TEST(PrefixAffinityTest, SpillOfABusyPrefixAvoidsASmallBackend) {
  // Home is over the hard bound: the request spills to the best placement among the
  // others, where the prefix's traffic fits the backend's weight, not to a backend
  // weighted a tenth of the others (whatever the ring says).
  Fleet f(Policy::kPrefixAffinity, 3, 16);  // slack floor 4
  f.b(2).weight = 0.1f;
  f.Publish();
  for (int k = 0; k < 300; ++k) f.Pick({.prefix = Named("p", k % 30)});
  std::string hot;
  int home = 2;
  for (int k = 0; home == 2; ++k) {
    hot = "hot prompt " + std::to_string(k);
    home = f.Pick({.prefix = hot});
  }
  for (int i = 0; i < 50; ++i) ASSERT_EQ(f.Pick({.prefix = hot}), home);
  int other_fast = 1 - home;
  SetLoads(f, {0, 0, 0});
  f.b(home).fleet_in_flight = 12;  // above ceil(1.25 * 13 / 3) = 6 and the floor of 4
  f.Publish();
  for (int i = 0; i < 20; ++i) EXPECT_EQ(f.Pick({.prefix = hot}), other_fast) << "spill " << i;
}

TEST(PrefixAffinityTest, OnlyLeadingPrefixBytesMatter) {
  Fleet f(Policy::kPrefixAffinity, 8);
  f.snap->limits.prefix_bytes = 16;
  f.Publish();
  std::string a = "0123456789abcdefTAIL-ONE", b = "0123456789abcdefTAIL-TWO-DIFFERENT";
  for (int i = 0; i < 20; ++i) {
    std::string pa = "0123456789abcde" + std::to_string(i % 10) + "tail";
    std::string pb = "0123456789abcde" + std::to_string(i % 10) + "other tail";
    EXPECT_EQ(f.Pick({.prefix = pa}), f.Pick({.prefix = pb}));
  }
  EXPECT_EQ(f.Pick({.prefix = a}), f.Pick({.prefix = b}));
}

TEST(PrefixAffinityTest, NoPrefixMeansLeastLoad) {
  Fleet f(Policy::kPrefixAffinity, 3);
  f.b(0).fleet_in_flight = 5;
  f.b(1).fleet_in_flight = 1;
  f.b(2).fleet_in_flight = 3;
  f.Publish();
  EXPECT_EQ(f.Pick({}), 1);
}

}  // namespace
}  // namespace llmgw::routing
