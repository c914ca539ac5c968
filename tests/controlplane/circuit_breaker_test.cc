// Every circuit breaker transition, driven by an injected clock.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "controlplane/circuit_breaker.h"

namespace llmgw::cp {
namespace {

class CircuitBreakerTest : public ::testing::Test {
 protected:
  CircuitBreakerTest() {
    cfg_.failure_threshold = 3;
    cfg_.success_threshold = 2;
    cfg_.open_ms = 1000;
    cfg_.half_open_requests = 2;
    cfg_.window_ms = 500;
    cfg_.slow_call_ms = 100;
  }
  CircuitBreaker Make() {
    return CircuitBreaker(cfg_, [this] { return now_; },
                          [this](CircuitState f, CircuitState t, std::string_view why) {
                            log_.push_back(std::string(CircuitStateName(f)) + "->" +
                                           std::string(CircuitStateName(t)) + ":" + std::string(why));
                          });
  }
  CircuitBreakerConfig cfg_;
  uint64_t now_ = 10000;
  std::vector<std::string> log_;
};

TEST_F(CircuitBreakerTest, StaysClosedBelowThreshold) {
  auto cb = Make();
  cb.RecordFailure(2);
  cb.RecordSuccess(10);
  EXPECT_EQ(cb.state(), CircuitState::kClosed);
  EXPECT_TRUE(log_.empty());
}

TEST_F(CircuitBreakerTest, ClosedToOpenOnFailuresWithinWindow) {
  auto cb = Make();
  cb.RecordFailure();
  now_ += 100;
  cb.RecordFailure();
  now_ += 100;
  cb.RecordFailure();
  EXPECT_EQ(cb.state(), CircuitState::kOpen);
  ASSERT_EQ(log_.size(), 1u);
  EXPECT_EQ(log_[0], "closed->open:failures");
  EXPECT_EQ(cb.transitions(), 1u);
}

TEST_F(CircuitBreakerTest, FailuresOutsideWindowDoNotTrip) {
  auto cb = Make();
  cb.RecordFailure(2);
  now_ += 600;  // older than window_ms
  cb.RecordFailure(2);
  EXPECT_EQ(cb.state(), CircuitState::kClosed);
  EXPECT_EQ(cb.failures_in_window(), 2u);
  now_ += 600;
  cb.Advance();
  EXPECT_EQ(cb.failures_in_window(), 0u);
}

TEST_F(CircuitBreakerTest, SlowCallsTrip) {
  auto cb = Make();
  cb.RecordSlow(3);
  EXPECT_EQ(cb.state(), CircuitState::kOpen);
  EXPECT_EQ(log_.back(), "closed->open:slow_calls");
}

TEST_F(CircuitBreakerTest, OpenStaysOpenUntilOpenMsThenHalfOpen) {
  auto cb = Make();
  cb.RecordFailure(3);
  now_ += 999;
  cb.Advance();
  EXPECT_EQ(cb.state(), CircuitState::kOpen);
  cb.RecordSuccess(5);  // stragglers change nothing while open
  EXPECT_EQ(cb.state(), CircuitState::kOpen);
  now_ += 1;
  cb.Advance();
  EXPECT_EQ(cb.state(), CircuitState::kHalfOpen);
  EXPECT_EQ(log_.back(), "open->half_open:open_elapsed");
}

TEST_F(CircuitBreakerTest, HalfOpenAdmitsOnlyTrialBudget) {
  auto cb = Make();
  EXPECT_FALSE(cb.TryAcquireTrial());  // closed: no trials needed
  cb.RecordFailure(3);
  now_ += 1000;
  cb.Advance();
  EXPECT_EQ(cb.trials_left(), 2u);
  EXPECT_TRUE(cb.TryAcquireTrial());
  EXPECT_TRUE(cb.TryAcquireTrial());
  EXPECT_FALSE(cb.TryAcquireTrial());
  EXPECT_EQ(cb.trials_left(), 0u);
}

TEST_F(CircuitBreakerTest, HalfOpenClosesAfterSuccessThreshold) {
  auto cb = Make();
  cb.RecordFailure(3);
  now_ += 1000;
  cb.Advance();
  cb.RecordSuccess();
  EXPECT_EQ(cb.state(), CircuitState::kHalfOpen);
  cb.RecordSuccess();
  EXPECT_EQ(cb.state(), CircuitState::kClosed);
  EXPECT_EQ(log_.back(), "half_open->closed:recovered");
  // The old window is forgotten: two new failures do not trip.
  cb.RecordFailure(2);
  EXPECT_EQ(cb.state(), CircuitState::kClosed);
}

TEST_F(CircuitBreakerTest, HalfOpenFailureReopensAndRestartsTimer) {
  auto cb = Make();
  cb.RecordFailure(3);
  now_ += 1000;
  cb.Advance();
  cb.RecordSuccess();
  now_ += 10;
  cb.RecordFailure();
  EXPECT_EQ(cb.state(), CircuitState::kOpen);
  EXPECT_EQ(log_.back(), "half_open->open:failures");
  now_ += 999;
  cb.Advance();
  EXPECT_EQ(cb.state(), CircuitState::kOpen);
  now_ += 1;
  cb.Advance();
  EXPECT_EQ(cb.state(), CircuitState::kHalfOpen);
}

TEST_F(CircuitBreakerTest, ResetClosesFromOpenAndHalfOpen) {
  auto cb = Make();
  cb.RecordFailure(3);
  cb.Reset();
  EXPECT_EQ(cb.state(), CircuitState::kClosed);
  EXPECT_EQ(log_.back(), "open->closed:reset");
  cb.RecordFailure(3);
  now_ += 1000;
  cb.Advance();
  cb.Reset();
  EXPECT_EQ(log_.back(), "half_open->closed:reset");
  EXPECT_EQ(cb.transitions(), 5u);
  EXPECT_EQ(cb.failures_total(), 6u);
}

}  // namespace
}  // namespace llmgw::cp
