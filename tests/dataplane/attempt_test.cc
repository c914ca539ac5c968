// Unit tests of Attempt: picks that skip what was tried, the fallback walk, the stale
// undo, and the one judgement of a failure (retry now / after a backoff / fail).
#include "dataplane/attempt.h"

#include <gtest/gtest.h>

#include <memory>

#include "tests/common/routing_test_util.h"

namespace llmgw::dataplane {
namespace {

using routing::testing::Fleet;

struct AttemptTest : ::testing::Test {
  Fleet f{Policy::kRoundRobin, 2};
  std::unique_ptr<shm::StatsSlot> slot = std::make_unique<shm::StatsSlot>();
  ThreadStats stats;
  Rng rng{42};
  Attempt at;
  void SetUp() override {
    stats.Attach(slot.get(), 1000);
    at.Reset();
    at.SetModel(0, false);
  }
  int Pick() {
    return at.Pick(f.router, *f.snap, f.local, &rng, &stats, [](uint16_t, routing::RequestInfo*) {});
  }
};

Error Retryable() { return Error(ErrorKind::kConnectFailed, ErrorSide::kUpstream, true, "connect failed"); }

TEST_F(AttemptTest, NeverPicksATriedBackendAgain) {
  int a = Pick();
  ASSERT_GE(a, 0);
  at.Started(a);
  int b = Pick();
  ASSERT_GE(b, 0);
  EXPECT_NE(a, b);
  at.Started(b);
  EXPECT_EQ(Pick(), routing::kNoBackend);
  EXPECT_EQ(at.attempts(), 2);
  EXPECT_EQ(at.backend(), b);
}

TEST_F(AttemptTest, StaleConnectionIsUndone) {
  int a = Pick();
  at.Started(a);
  at.Undo();  // the pooled connection had been closed by the server: try it again
  EXPECT_EQ(at.attempts(), 0);
  int again = Pick();
  EXPECT_GE(again, 0);
}

TEST_F(AttemptTest, FallbackModelWhenTheModelHasNoBackendLeft) {
  // Model 1 with its own backend; model 0 falls back to it.
  f.snap->num_models = 2;
  f.snap->models[1].present = 1;
  f.snap->models[1].policy = static_cast<uint8_t>(Policy::kRoundRobin);
  int fb = f.Add();
  f.b(fb).model_slot = 1;
  f.snap->models[0].num_fallbacks = 1;
  f.snap->models[0].fallbacks[0] = 1;
  f.Publish();
  at.Started(Pick());
  at.Started(Pick());
  EXPECT_FALSE(at.rewrite());
  int s = Pick();
  EXPECT_EQ(s, fb);
  EXPECT_EQ(at.model(), 1);
  EXPECT_EQ(at.orig_model(), 0);
  EXPECT_TRUE(at.rewrite());  // the fallback's name goes upstream
  EXPECT_EQ(slot->models[0].fallbacks.load(), 1u);
  at.Requeue();  // waiting in the queue: start over from the named model
  EXPECT_EQ(at.model(), 0);
  EXPECT_FALSE(at.rewrite());
}

TEST_F(AttemptTest, RetryDecisions) {
  at.Started(Pick());
  // Backoff 0: at once.
  EXPECT_EQ(at.OnFailure(Retryable(), 2, 0, false, 1000, &rng), Attempt::Next::kRetryNow);
  EXPECT_TRUE(at.failed());
  // Backoff 100 ms after the first attempt: 100..150 ms later.
  EXPECT_EQ(at.OnFailure(Retryable(), 2, 100, false, 1000, &rng), Attempt::Next::kRetryLater);
  EXPECT_GE(at.retry_at_ms(), 1100u);
  EXPECT_LE(at.retry_at_ms(), 1150u);
  EXPECT_FALSE(at.RetryDue(1099));
  EXPECT_TRUE(at.RetryDue(1150));
  EXPECT_EQ(at.retry_at_ms(), 0u);
  // The second attempt doubles it.
  at.Started(Pick());
  EXPECT_EQ(at.OnFailure(Retryable(), 2, 100, false, 0, &rng), Attempt::Next::kRetryLater);
  EXPECT_GE(at.retry_at_ms(), 200u);
  EXPECT_LE(at.retry_at_ms(), 300u);
}

TEST_F(AttemptTest, NoRetryWhenNotRetryableExhaustedOrDraining) {
  at.Started(Pick());
  Error timeout(ErrorKind::kTimeout, ErrorSide::kUpstream, false, "first byte timed out");
  EXPECT_EQ(at.OnFailure(timeout, 2, 0, false, 0, &rng), Attempt::Next::kFail);
  EXPECT_EQ(at.last_error().kind(), ErrorKind::kTimeout);
  EXPECT_EQ(at.OnFailure(Retryable(), 2, 0, /*draining=*/true, 0, &rng), Attempt::Next::kFail);
  EXPECT_EQ(at.OnFailure(Retryable(), /*retries_max=*/0, 0, false, 0, &rng), Attempt::Next::kFail);
  at.Reset();
  EXPECT_FALSE(at.failed());
  EXPECT_EQ(at.attempts(), 0);
}

}  // namespace
}  // namespace llmgw::dataplane
