// Per-backend circuit breaker run by llmcd from the outcomes it observes (data-plane
// stats deltas and probe results). Time comes from an injected clock so every
// transition is unit-testable without sleeping.
//
//   closed --(failure_threshold failures or slow calls within window_ms)--> open
//   open --(open_ms elapsed, noticed by Advance())--> half_open
//   half_open --(success_threshold successes)--> closed
//   half_open --(any failure)--> open
//   any --(Reset(), the ResetCircuit RPC)--> closed
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <string>
#include <string_view>
#include <utility>

#include "common/config.h"

namespace llmgw::cp {

enum class CircuitState : uint8_t { kClosed = 0, kOpen = 1, kHalfOpen = 2 };
std::string_view CircuitStateName(CircuitState s);

class CircuitBreaker {
 public:
  using Clock = std::function<uint64_t()>;  // milliseconds, monotonic
  using OnTransition = std::function<void(CircuitState from, CircuitState to, std::string_view why)>;

  CircuitBreaker(const CircuitBreakerConfig& cfg, Clock clock, OnTransition on_transition = {});

  // Outcomes, `n` at a time (the controller feeds per-tick deltas).
  void RecordSuccess(uint64_t n = 1);
  void RecordFailure(uint64_t n = 1);
  // Calls slower than slow_call_ms count like failures while closed.
  void RecordSlow(uint64_t n = 1);
  // Moves open -> half_open once open_ms has passed. Call every tick.
  void Advance();
  // Half-open: claims one trial; false when half_open_requests trials are already out.
  bool TryAcquireTrial();
  // Back to closed, forgetting the window (operator action).
  void Reset();
  // Applies new thresholds (config reload) without changing the state.
  void Reconfigure(const CircuitBreakerConfig& cfg) { cfg_ = cfg; }

  CircuitState state() const { return state_; }
  uint64_t failures_in_window();
  uint64_t failures_total() const { return failures_total_; }
  uint64_t transitions() const { return transitions_; }
  uint32_t half_open_successes() const { return half_open_successes_; }
  uint32_t trials_left() const;

 private:
  void Prune(uint64_t now);
  void TransitionTo(CircuitState to, std::string_view why);
  void CountBad(uint64_t n, std::string_view why);

  CircuitBreakerConfig cfg_;
  Clock clock_;
  OnTransition on_transition_;
  CircuitState state_ = CircuitState::kClosed;
  std::deque<std::pair<uint64_t, uint64_t>> window_;  // (ms, failures) recorded then
  uint64_t window_sum_ = 0;
  uint64_t opened_at_ms_ = 0;
  uint32_t half_open_successes_ = 0;
  uint32_t trials_used_ = 0;
  uint64_t failures_total_ = 0;
  uint64_t transitions_ = 0;
};

}  // namespace llmgw::cp
