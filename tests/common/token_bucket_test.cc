// TokenBucket arithmetic: starts full, a whole minute's limit can go in one burst, refill
// is continuous and capped (by capacity and by the leaser's ceiling), debt from charges
// after admission is paid before anything is taken, a reload keeps the level.
#include "common/token_bucket.h"

#include <gtest/gtest.h>

#include <cmath>

namespace llmgw {
namespace {

TEST(TokenBucketTest, PerMinuteLimitMaySpendItsCapacityInOneBurst) {
  TokenBucket b(600, 600.0 / 60, 1000);  // rpm 600
  int taken = 0;
  while (b.TryTake(1)) ++taken;
  EXPECT_EQ(taken, 600);
  EXPECT_FALSE(b.TryTake(1));
  b.Advance(1000 + 100);  // 0.1 s refills one request at 10/s
  EXPECT_TRUE(b.TryTake(1));
  EXPECT_FALSE(b.TryTake(1));
}

TEST(TokenBucketTest, RefillIsContinuousAndCappedAtCapacity) {
  TokenBucket b(10, 2, 0);
  ASSERT_TRUE(b.TryTake(10));
  b.Advance(250);  // 0.5 token
  EXPECT_DOUBLE_EQ(b.level(), 0.5);
  EXPECT_FALSE(b.TryTake(1));
  b.Advance(500);
  EXPECT_DOUBLE_EQ(b.level(), 1.0);
  b.Advance(60000);
  EXPECT_DOUBLE_EQ(b.level(), 10.0);
  b.Advance(50000);  // time going back refills nothing
  EXPECT_DOUBLE_EQ(b.level(), 10.0);
}

TEST(TokenBucketTest, CeilingCapsRefillButTakesNothingAway) {
  TokenBucket b(100, 10, 0);
  ASSERT_TRUE(b.TryTake(100));
  b.Advance(10000, 30);  // 100 would refill; the threads hold 70, so the pool stops at 30
  EXPECT_DOUBLE_EQ(b.level(), 30.0);
  b.Advance(20000, 5);  // a lower ceiling does not take tokens back
  EXPECT_DOUBLE_EQ(b.level(), 30.0);
}

TEST(TokenBucketTest, ChargesBeyondTheLevelAreDebtPaidByRefill) {
  TokenBucket b(1000, 100, 0);
  b.Charge(1500);  // tokens counted after admission
  EXPECT_DOUBLE_EQ(b.level(), -500.0);
  EXPECT_DOUBLE_EQ(b.TakeUpTo(10), 0.0);
  EXPECT_DOUBLE_EQ(b.SecondsUntil(1), 5.01);
  b.Advance(5000);
  EXPECT_DOUBLE_EQ(b.level(), 0.0);
  b.Advance(6000);
  EXPECT_DOUBLE_EQ(b.TakeUpTo(1000), 100.0);
}

TEST(TokenBucketTest, PutNeverExceedsCapacityAndReconfigureKeepsTheLevel) {
  TokenBucket b(10, 1, 0);
  ASSERT_DOUBLE_EQ(b.TakeUpTo(4), 4.0);
  b.Put(100);
  EXPECT_DOUBLE_EQ(b.level(), 10.0);
  ASSERT_TRUE(b.TryTake(8));
  b.Reconfigure(100, 50);  // a raised limit is no fresh burst
  EXPECT_DOUBLE_EQ(b.level(), 2.0);
  b.Reconfigure(1, 1);
  EXPECT_DOUBLE_EQ(b.level(), 1.0);
  EXPECT_TRUE(std::isinf(TokenBucket(1, 0, 0).SecondsUntil(2)));
}

}  // namespace
}  // namespace llmgw
