// Unit tests of the hash ring on its own (consistent_hash.h): virtual nodes by weight,
// the bounded-load walk and its skip, without a Router around it.
#include "common/routing/consistent_hash.h"

#include <gtest/gtest.h>

#include <memory>
#include <vector>

namespace llmgw::routing {
namespace {

class HashRingTest : public ::testing::Test {
 protected:
  HashRingTest() {
    snap->num_backends = 3;
    for (uint16_t s = 0; s < 3; ++s) {
      snap->backends[s].key = 1000 + s;
      snap->backends[s].weight = 1;
      snap->backends[s].max_concurrent = 100;
      cand.push_back({s, s, 0});
    }
    ring.OnModel(0, *snap, list, 10);
  }
  PickContext Ctx() const { return PickContext{*snap, cand, {}}; }
  std::unique_ptr<shm::Snapshot> snap = std::make_unique<shm::Snapshot>();
  std::vector<uint16_t> list{0, 1, 2};
  std::vector<Candidate> cand;
  HashRing ring;
};

TEST_F(HashRingTest, VirtualNodesFollowWeight) {
  EXPECT_EQ(ring.Points(0), 30u);
  snap->backends[1].weight = 2.5f;
  ring.OnModel(0, *snap, list, 10);
  EXPECT_EQ(ring.Points(0), 45u);
  snap->backends[1].weight = 0;  // unset: counts as 1
  ring.OnModel(0, *snap, list, 10);
  EXPECT_EQ(ring.Points(0), 30u);
  ring.OnModel(0, *snap, {}, 10);
  EXPECT_EQ(ring.Points(0), 0u);
  EXPECT_EQ(ring.Pick(0, Ctx(), 1, 100), kNoBackend);
}

TEST_F(HashRingTest, SameKeySameBackendAndAFullOneIsWalkedPast) {
  uint64_t key = 0x123456789abcdefull;
  int first = ring.Pick(0, Ctx(), key, 100);
  ASSERT_NE(first, kNoBackend);
  EXPECT_EQ(ring.Pick(0, Ctx(), key, 100), first);
  // Above the bound (and above its idle slack of 25 of 100): the ring's next backend.
  cand[first].load = 40;
  int second = ring.Pick(0, Ctx(), key, 10);
  ASSERT_NE(second, kNoBackend);
  EXPECT_NE(second, first);
  EXPECT_EQ(ring.Pick(0, Ctx(), key, 10), second);  // a consistent second choice
  // Skipping the second (prefix_affinity skips the home it spills from) gives the third.
  int third = ring.Pick(0, Ctx(), key, 10, second);
  EXPECT_NE(third, first);
  EXPECT_NE(third, second);
  EXPECT_NE(third, kNoBackend);
}

TEST_F(HashRingTest, EveryCandidateFullMeansNoBackend) {
  for (auto& c : cand) c.load = 30;  // above max(bound 10, slack 25)
  EXPECT_EQ(ring.Pick(0, Ctx(), 42, 10), kNoBackend);
  // The idle slack: a backend at 24 of 100 in flight is never "full" for a bound of 1.
  cand[2].load = 24;
  EXPECT_EQ(ring.Pick(0, Ctx(), 42, 1), 2);
}

TEST_F(HashRingTest, OnlyCandidatesArePicked) {
  // Backend 1 is not a candidate (ineligible or excluded): no key lands on it.
  std::vector<Candidate> two{cand[0], cand[2]};
  PickContext ctx{*snap, two, {}};
  for (uint64_t k = 0; k < 200; ++k) EXPECT_NE(ring.Pick(0, ctx, k * 0x9e3779b97f4a7c15ull, 100), 1);
}

}  // namespace
}  // namespace llmgw::routing
