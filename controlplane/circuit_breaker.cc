// Circuit breaker state machine; see circuit_breaker.h for the transitions.
#include "controlplane/circuit_breaker.h"

namespace llmgw::cp {

std::string_view CircuitStateName(CircuitState s) {
  switch (s) {
    case CircuitState::kClosed: return "closed";
    case CircuitState::kOpen: return "open";
    case CircuitState::kHalfOpen: return "half_open";
  }
  return "unknown";
}

CircuitBreaker::CircuitBreaker(const CircuitBreakerConfig& cfg, Clock clock, OnTransition on_transition)
    : cfg_(cfg), clock_(std::move(clock)), on_transition_(std::move(on_transition)) {}

void CircuitBreaker::Prune(uint64_t now) {
  while (!window_.empty() && window_.front().first + cfg_.window_ms <= now) {
    window_sum_ -= window_.front().second;
    window_.pop_front();
  }
}

uint64_t CircuitBreaker::failures_in_window() {
  Prune(clock_());
  return window_sum_;
}

uint32_t CircuitBreaker::trials_left() const {
  if (state_ != CircuitState::kHalfOpen) return 0;
  return trials_used_ >= cfg_.half_open_requests ? 0 : cfg_.half_open_requests - trials_used_;
}

void CircuitBreaker::TransitionTo(CircuitState to, std::string_view why) {
  CircuitState from = state_;
  if (from == to) return;
  state_ = to;
  ++transitions_;
  window_.clear();
  window_sum_ = 0;
  half_open_successes_ = 0;
  trials_used_ = 0;
  if (to == CircuitState::kOpen) opened_at_ms_ = clock_();
  if (on_transition_) on_transition_(from, to, why);
}

void CircuitBreaker::CountBad(uint64_t n, std::string_view why) {
  if (n == 0) return;
  uint64_t now = clock_();
  switch (state_) {
    case CircuitState::kClosed:
      Prune(now);
      window_.emplace_back(now, n);
      window_sum_ += n;
      if (window_sum_ >= cfg_.failure_threshold) TransitionTo(CircuitState::kOpen, why);
      break;
    case CircuitState::kHalfOpen:
      // A trial failed: the backend is not back yet.
      TransitionTo(CircuitState::kOpen, why);
      break;
    case CircuitState::kOpen:
      break;  // stragglers from before the trip change nothing
  }
}

void CircuitBreaker::RecordFailure(uint64_t n) {
  failures_total_ += n;
  CountBad(n, "failures");
}

void CircuitBreaker::RecordSlow(uint64_t n) {
  failures_total_ += n;
  CountBad(n, "slow_calls");
}

void CircuitBreaker::RecordSuccess(uint64_t n) {
  if (state_ != CircuitState::kHalfOpen || n == 0) return;
  half_open_successes_ += static_cast<uint32_t>(n);
  if (half_open_successes_ >= cfg_.success_threshold) TransitionTo(CircuitState::kClosed, "recovered");
}

void CircuitBreaker::Advance() {
  if (state_ == CircuitState::kOpen && clock_() >= opened_at_ms_ + cfg_.open_ms)
    TransitionTo(CircuitState::kHalfOpen, "open_elapsed");
  else if (state_ == CircuitState::kClosed)
    Prune(clock_());
}

bool CircuitBreaker::TryAcquireTrial() {
  if (state_ != CircuitState::kHalfOpen || trials_used_ >= cfg_.half_open_requests) return false;
  ++trials_used_;
  return true;
}

void CircuitBreaker::Reset() { TransitionTo(CircuitState::kClosed, "reset"); window_.clear(); window_sum_ = 0; }

}  // namespace llmgw::cp
