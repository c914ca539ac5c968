// The adaptive policy's learner, run by llmcd once per tick per model (the per-request
// half is adaptive.h): a UCB-style bandit over the model's backends whose weights llmcd
// publishes in the snapshot. No I/O; allocates (not for the data plane's hot path).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

namespace llmgw::routing {

// One tick's evidence about one backend (an arm of the bandit).
struct ArmObservation {
  uint32_t slot = 0;        // backend slot
  bool eligible = true;
  uint64_t successes = 0;   // since the previous tick
  uint64_t failures = 0;    // since the previous tick
  double ttft_ms = 0;       // mean TTFT of the successes since the previous tick (0: none)
  double latency_ms = 0;    // mean end-to-end latency since the previous tick (0: none)
  double tpot_ms = 0;       // mean time per output token after the first (decode speed; 0: unknown)
};

class AdaptiveBandit {
 public:
  // exploration: share of the weight spread evenly over eligible arms (0..1), so every
  // arm keeps getting a trickle of traffic and a recovered backend is noticed.
  // decay: per-tick factor applied to past evidence (0..1); lower follows change faster.
  AdaptiveBandit(double exploration, double decay, uint64_t seed = 1);
  // Feeds one tick of observations and returns the weight per observed arm (same order),
  // summing to 1 over eligible arms (0 for ineligible ones).
  std::vector<double> Update(std::span<const ArmObservation> arms);

  // Forgets everything learnt about `slot` (its backend was replaced by a reload).
  void Forget(uint32_t slot);

  // The reward one success with these timings earns (higher is better, 0..1]. Exposed for
  // tests and docs: reward = 1 / (1 + (ttft_ms + latency_ms / 1000) / kRewardScaleMs).
  // TTFT first: end-to-end latency mostly says how long the answers were; it breaks ties.
  static double Reward(double ttft_ms, double latency_ms);
  static constexpr double kRewardScaleMs = 200.0;

 private:
  struct Arm {
    double n = 0;       // decayed observation count
    double sum = 0;     // decayed sum of rewards
    double sum_sq = 0;  // decayed sum of squared rewards
    double tpot_n = 0;    // decayed count of ticks with a decode-speed reading
    double tpot_sum = 0;  // decayed sum of those readings (ms per output token)
  };

  double exploration_;
  double decay_;
  uint64_t seed_;  // the learner is deterministic today; kept for tie-breaking variants
  std::vector<double> score_;  // per slot: the last posterior mean (for stats)
  std::vector<Arm> arms_;      // per slot
};

}  // namespace llmgw::routing
