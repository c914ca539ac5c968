// ThreadLimiter (dataplane/thread_limiter.h): a thread admits only within the lease it
// copied, all-or-nothing over a request's limiters, reports checked / denied / spent in
// its stats slot, holds and releases concurrency slots, applies a new lease on Refresh
// and acknowledges its generation.
#include "dataplane/thread_limiter.h"

#include <gtest/gtest.h>

#include <memory>

namespace llmgw::dataplane {
namespace {

using shm::LimitKind;
using shm::LimiterIndex;
using Mode = ThreadLimiter::Mode;

struct Fixture {
  std::unique_ptr<shm::LimiterUse[]> use{new shm::LimiterUse[shm::kNumLimiters]()};
  std::unique_ptr<shm::LeaseSlot> lease{new shm::LeaseSlot()};
  std::atomic<uint64_t> seen{0};
  ThreadLimiter lim;
  Fixture() { lim.Attach(use.get(), lease.get(), &seen); }
  void Grant(uint32_t i, uint64_t v, uint64_t gen) {
    lease->grant[i].store(v);
    lease->generation.store(gen);
  }
};

const uint32_t kRpm = LimiterIndex(LimitKind::kKeyRpm, 3);
const uint32_t kTpm = LimiterIndex(LimitKind::kKeyTpm, 3);
const uint32_t kConc = LimiterIndex(LimitKind::kKeyConcurrency, 3);
const uint32_t kGlobal = LimiterIndex(LimitKind::kGlobalRps, 0);

TEST(ThreadLimiterTest, LimiterIndexesDoNotOverlap) {
  EXPECT_EQ(LimiterIndex(LimitKind::kGlobalRps, 0), 0u);
  EXPECT_EQ(LimiterIndex(LimitKind::kModelRps, 0), 1u);
  EXPECT_EQ(LimiterIndex(LimitKind::kBackendRps, 0), 1 + shm::kMaxModels);
  EXPECT_EQ(LimiterIndex(LimitKind::kKeyConcurrency, shm::kMaxKeys - 1) + 1, shm::kNumLimiters);
}

TEST(ThreadLimiterTest, SpendsOnlyItsLeaseAndAppliesANewOneOnRefresh) {
  Fixture f;
  EXPECT_EQ(f.lim.Admit({{kRpm, Mode::kTake}}), 0) << "no lease yet: refused";
  f.Grant(kRpm, 2, 1);
  EXPECT_EQ(f.lim.Admit({{kRpm, Mode::kTake}}), 0) << "not applied before Refresh";
  f.lim.Refresh();
  EXPECT_EQ(f.seen.load(), 1u);
  EXPECT_EQ(f.lim.Admit({{kRpm, Mode::kTake}}), -1);
  EXPECT_EQ(f.lim.Admit({{kRpm, Mode::kTake}}), -1);
  EXPECT_EQ(f.lim.Admit({{kRpm, Mode::kTake}}), 0);
  EXPECT_EQ(f.use[kRpm].spent.load(), 2u);
  EXPECT_EQ(f.use[kRpm].checked.load(), 5u);
  EXPECT_EQ(f.use[kRpm].denied.load(), 3u);
  f.Grant(kRpm, 5, 2);  // cumulative: three more
  f.lim.Refresh();
  EXPECT_EQ(f.lim.Remaining(kRpm), 3u);
}

TEST(ThreadLimiterTest, AllOrNothingOverARequestsLimiters) {
  Fixture f;
  f.Grant(kGlobal, 10, 1);
  f.Grant(kRpm, 10, 1);
  f.Grant(kConc, 1, 1);
  f.Grant(kTpm, 100, 1);
  f.lim.Refresh();
  ThreadLimiter::Check checks[] = {{kGlobal, Mode::kTake}, {kRpm, Mode::kTake}, {kTpm, Mode::kPositive},
                                   {kConc, Mode::kEnter}};
  EXPECT_EQ(f.lim.Admit(checks, 4), -1);
  EXPECT_EQ(f.lim.Admit(checks, 4), 3) << "the one concurrency slot is taken";
  EXPECT_EQ(f.use[kGlobal].spent.load(), 1u) << "a refused request takes nothing";
  EXPECT_EQ(f.use[kRpm].spent.load(), 1u);
  EXPECT_EQ(f.use[kConc].denied.load(), 1u);
  EXPECT_EQ(f.use[kRpm].denied.load(), 0u);
  f.lim.Leave(kConc);
  EXPECT_EQ(f.use[kConc].spent.load(), 0u);
  // Tokens are charged after admission and may overshoot; then the tpm check refuses.
  f.lim.Charge(kTpm, 150);
  EXPECT_EQ(f.lim.Remaining(kTpm), 0u);
  EXPECT_EQ(f.lim.Admit(checks, 4), 2);
  EXPECT_EQ(f.use[kTpm].spent.load(), 150u);
}

TEST(ThreadLimiterTest, AReusedSlotContinuesItsCounters) {
  Fixture f;
  f.use[kRpm].spent.store(40);
  f.lease->grant[kRpm].store(42);
  f.lease->generation.store(9);
  ThreadLimiter again;
  again.Attach(f.use.get(), f.lease.get(), &f.seen);
  EXPECT_EQ(f.seen.load(), 9u);
  EXPECT_EQ(again.Remaining(kRpm), 2u);
}

}  // namespace
}  // namespace llmgw::dataplane
