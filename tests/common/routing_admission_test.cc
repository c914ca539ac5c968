// AdmissionQueue: priority then FIFO order, the bound, eviction, timeouts.
#include <gtest/gtest.h>

#include "common/routing/admission.h"

namespace llmgw::routing {
namespace {

struct FakeClock {
  uint64_t now_ms = 1000;
  static uint64_t Read(void* ctx) { return static_cast<FakeClock*>(ctx)->now_ms; }
};

TEST(AdmissionQueueTest, PriorityThenFifo) {
  FakeClock clock;
  AdmissionQueue q(10, 5000, &FakeClock::Read, &clock);
  EXPECT_EQ(q.Push(1, 0), AdmissionQueue::PushResult::kQueued);
  EXPECT_EQ(q.Push(2, 5), AdmissionQueue::PushResult::kQueued);
  EXPECT_EQ(q.Push(3, 0), AdmissionQueue::PushResult::kQueued);
  EXPECT_EQ(q.Push(4, -1), AdmissionQueue::PushResult::kQueued);
  EXPECT_EQ(q.Push(5, 5), AdmissionQueue::PushResult::kQueued);
  std::vector<uint64_t> order;
  uint64_t c;
  while (q.Pop(&c)) order.push_back(c);
  EXPECT_EQ(order, (std::vector<uint64_t>{2, 5, 1, 3, 4}));  // higher first, FIFO within
  EXPECT_TRUE(q.empty());
}

TEST(AdmissionQueueTest, BoundedAndEvictsOnlyForBetterPriority) {
  FakeClock clock;
  AdmissionQueue q(3, 5000, &FakeClock::Read, &clock);
  EXPECT_EQ(q.Push(1, 2), AdmissionQueue::PushResult::kQueued);
  EXPECT_EQ(q.Push(2, 2), AdmissionQueue::PushResult::kQueued);
  EXPECT_EQ(q.Push(3, 2), AdmissionQueue::PushResult::kQueued);
  uint64_t evicted = 0;
  EXPECT_EQ(q.Push(4, 2, &evicted), AdmissionQueue::PushResult::kFull) << "equal priority waits its turn";
  EXPECT_EQ(q.Push(5, 0, &evicted), AdmissionQueue::PushResult::kFull) << "a lower priority never evicts";
  EXPECT_EQ(q.size(), 3u);
  EXPECT_EQ(q.Push(6, 3, &evicted), AdmissionQueue::PushResult::kQueuedEvicted);
  EXPECT_EQ(evicted, 3u) << "the worst-placed waiter (lowest priority, latest) goes";
  EXPECT_EQ(q.Push(7, 3, &evicted), AdmissionQueue::PushResult::kQueuedEvicted);
  EXPECT_EQ(evicted, 2u);
  EXPECT_EQ(q.size(), 3u);
  for (int i = 0; i < 100; ++i) EXPECT_NE(q.Push(100 + i, 1), AdmissionQueue::PushResult::kQueued);
  EXPECT_EQ(q.size(), 3u) << "never grows past its capacity";
  std::vector<uint64_t> order;
  uint64_t c;
  while (q.Pop(&c)) order.push_back(c);
  EXPECT_EQ(order, (std::vector<uint64_t>{6, 7, 1}));
}

TEST(AdmissionQueueTest, ZeroCapacityRefusesEverything) {
  FakeClock clock;
  AdmissionQueue q(0, 5000, &FakeClock::Read, &clock);
  EXPECT_EQ(q.Push(1, -100), AdmissionQueue::PushResult::kFull);
  uint64_t c;
  EXPECT_FALSE(q.Pop(&c));
}

TEST(AdmissionQueueTest, TimeoutExpiresInDeadlineOrder) {
  FakeClock clock;
  AdmissionQueue q(10, 2000, &FakeClock::Read, &clock);
  q.Push(1, 5);
  clock.now_ms += 500;
  q.Push(2, 0);
  clock.now_ms += 500;
  q.Push(3, 0);
  EXPECT_EQ(q.NextDeadlineMs(), 3000u);
  uint64_t c;
  EXPECT_FALSE(q.ExpireOne(&c)) << "nothing is due yet";
  clock.now_ms = 3000;  // 1's deadline
  ASSERT_TRUE(q.ExpireOne(&c));
  EXPECT_EQ(c, 1u);
  EXPECT_FALSE(q.ExpireOne(&c));
  EXPECT_EQ(q.NextDeadlineMs(), 3500u);
  clock.now_ms = 3600;  // 2 is due but not yet answered: Pop skips it
  ASSERT_TRUE(q.Pop(&c));
  EXPECT_EQ(c, 3u);
  ASSERT_TRUE(q.ExpireOne(&c));
  EXPECT_EQ(c, 2u);
  EXPECT_TRUE(q.empty());
  EXPECT_EQ(q.NextDeadlineMs(), UINT64_MAX);
  EXPECT_EQ(q.RetryAfterSeconds(), 2u);
}

TEST(AdmissionQueueTest, RemoveWhenClientLeaves) {
  FakeClock clock;
  AdmissionQueue q(4, 1000, &FakeClock::Read, &clock);
  q.Push(1, 0);
  q.Push(2, 0);
  q.Push(3, 0);
  EXPECT_TRUE(q.Remove(2));
  EXPECT_FALSE(q.Remove(2));
  uint64_t c;
  ASSERT_TRUE(q.Pop(&c));
  EXPECT_EQ(c, 1u);
  ASSERT_TRUE(q.Pop(&c));
  EXPECT_EQ(c, 3u);
}

TEST(AdmissionQueueTest, FifoSurvivesChurn) {
  // Property: with one priority, pops come out in push order whatever removals happen.
  FakeClock clock;
  AdmissionQueue q(64, 100000, &FakeClock::Read, &clock);
  uint64_t next = 0, expect = 0;
  for (int round = 0; round < 500; ++round) {
    while (q.size() < 64 && (round + next) % 3 != 0) q.Push(next++, 0);
    if (q.size() < 64) q.Push(next++, 0);
    uint64_t c;
    ASSERT_TRUE(q.Pop(&c));
    EXPECT_EQ(c, expect++);
  }
}

TEST(AdmissionQueueTest, RetryAfterIsAtLeastOneSecond) {
  AdmissionQueue q(1, 10);
  EXPECT_EQ(q.RetryAfterSeconds(), 1u);
  EXPECT_GT(q.now(), 0u);
}

}  // namespace
}  // namespace llmgw::routing
