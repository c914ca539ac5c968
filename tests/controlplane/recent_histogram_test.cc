// Unit tests of RecentHistogram: quantiles over the last window only, not since start.
#include "controlplane/recent_histogram.h"

#include <gtest/gtest.h>

namespace llmgw::cp {
namespace {

// Adds n observations of `us` to a cumulative histogram.
void Observe(shm::HistogramTotals* h, uint64_t us, uint64_t n) {
  h->buckets[shm::HistBucketFor(us)] += n;
  h->sum_us += us * n;
  h->count += n;
}

TEST(RecentHistogramTest, EmptyUntilTwoSamples) {
  RecentHistogram r(10000);
  EXPECT_EQ(r.QuantileMs(0.99), 0);
  shm::HistogramTotals h;
  Observe(&h, 40000, 10);
  r.Record(1000, h);
  EXPECT_EQ(r.Recent().count, 0u) << "one sample has no difference yet";
}

TEST(RecentHistogramTest, OldObservationsLeaveTheWindow) {
  RecentHistogram r(10000);
  shm::HistogramTotals h;
  r.Record(0, h);
  Observe(&h, 900000, 1000);  // a burst of 900 ms answers at the start
  r.Record(1000, h);
  EXPECT_GT(r.QuantileMs(0.99), 500);
  // Then 48 ms streams for 20 s: the old burst must be gone from the figure.
  for (uint64_t t = 2000; t <= 22000; t += 100) {
    Observe(&h, 48000, 5);
    r.Record(t, h);
  }
  // About 10 s of 5 per 100 ms (the baseline is the last sample at or before t - 10 s).
  uint64_t n = r.Recent().count;
  EXPECT_GE(n, 5u * 95u);
  EXPECT_LE(n, 5u * 105u);
  double p99 = r.QuantileMs(0.99);
  EXPECT_GT(p99, 25);
  EXPECT_LE(p99, 50);
}

TEST(RecentHistogramTest, SinceStartWouldMixButWindowDoesNot) {
  // The bug of issue 16: a since-start p99 keeps the early slow answers for good.
  RecentHistogram r(5000);
  shm::HistogramTotals h;
  r.Record(0, h);
  Observe(&h, 960000, 200);  // 3% of all answers: since start they own the p99
  r.Record(500, h);
  for (uint64_t t = 1000; t <= 60000; t += 1000) {
    Observe(&h, 48000, 100);
    r.Record(t, h);
  }
  EXPECT_GT(h.QuantileUs(0.99) / 1000, 500) << "since start: the early burst dominates p99";
  EXPECT_LE(r.QuantileMs(0.99), 50);
  EXPECT_EQ(r.Recent().count, 500u);  // five 1-s steps of 100
}

TEST(RecentHistogramTest, ResetCountsStartOver) {
  RecentHistogram r(10000);
  shm::HistogramTotals h;
  Observe(&h, 1000, 100);
  r.Record(0, h);
  Observe(&h, 1000, 10);
  r.Record(1000, h);
  EXPECT_EQ(r.Recent().count, 10u);
  shm::HistogramTotals fresh;  // the stats went backwards
  Observe(&fresh, 1000, 3);
  r.Record(2000, fresh);
  EXPECT_EQ(r.Recent().count, 0u) << "no negative counts";
}

// A fleet gateway joins with hours of slow history: the controller's cumulative histogram
// jumps by it, and without the re-baseline the window would show it as the last 30 s.
TEST(RecentHistogramTest, RebaselineKeepsAJoiningGatewaysHistoryOutOfTheWindow) {
  RecentHistogram r(10000);
  shm::HistogramTotals h;
  r.Record(0, h);
  Observe(&h, 48000, 100);
  r.Record(1000, h);
  shm::HistogramTotals joined = h;
  Observe(&joined, 2000000, 50000);  // the gateway's since-start history: 2 s answers
  r.Rebaseline(joined);
  r.Record(2000, joined);
  EXPECT_EQ(r.Recent().count, 100u);
  EXPECT_LT(r.QuantileMs(0.99), 100);
  // New observations after it count as usual, fast or slow.
  Observe(&joined, 1500000, 100);
  r.Record(3000, joined);
  EXPECT_EQ(r.Recent().count, 200u);
  EXPECT_GT(r.QuantileMs(0.99), 1000);
  // Without the re-baseline the history would have been the figure.
  RecentHistogram plain(10000);
  shm::HistogramTotals p;
  plain.Record(0, p);
  Observe(&p, 48000, 100);
  plain.Record(1000, p);
  Observe(&p, 2000000, 50000);
  plain.Record(2000, p);
  EXPECT_GT(plain.QuantileMs(0.5), 1000);
}

TEST(RecentHistogramTest, RebaselineOnCountsThatWentBackwardsStartsOver) {
  RecentHistogram r(10000);
  shm::HistogramTotals h;
  Observe(&h, 48000, 100);
  r.Record(0, h);
  Observe(&h, 48000, 100);
  r.Record(1000, h);
  r.Rebaseline(shm::HistogramTotals{});
  EXPECT_EQ(r.Recent().count, 0u);
  r.Rebaseline(shm::HistogramTotals{});  // on nothing: no-op
}

}  // namespace
}  // namespace llmgw::cp
