// The adaptive policy's learner (llmcd, once per tick per model): Thompson sampling over
// the model's backends. Each arm keeps decayed sums of the rewards its requests earned;
// the published weight of an arm is the probability that it is the best arm under the
// posterior, mixed with an even share for exploration. Decay makes old evidence fade so
// the weights follow a backend that slows down or recovers.
#include <algorithm>
#include <cmath>

#include "common/routing/router.h"

namespace llmgw::routing {
namespace {
constexpr int kDraws = 512;            // posterior samples per tick and arm
constexpr double kPriorMean = 0.5;     // an arm never seen is assumed average...
constexpr double kPriorN = 1.0;        // ...with the weight of one observation
constexpr double kMinVariance = 0.0025;  // reward sd >= 0.05: keeps the posterior honest
// One tick is one observation of an arm (its mean reward that tick), weighted by how many
// requests back it up to this many. Counting every request as independent would make the
// posterior so narrow that tick-to-tick noise between equal backends looks decisive and
// the weights would flap between them.
constexpr double kRequestsForFullTick = 10.0;
}  // namespace

AdaptiveBandit::AdaptiveBandit(double exploration, double decay, uint64_t seed)
    : exploration_(std::clamp(exploration, 0.0, 1.0)),
      decay_(std::clamp(decay, 0.0, 1.0)),
      seed_(seed ? seed : 1) {}

double AdaptiveBandit::Reward(double ttft_ms, double latency_ms) {
  double t = std::max(0.0, ttft_ms) + std::max(0.0, latency_ms) / 10.0;
  return 1.0 / (1.0 + t / kRewardScaleMs);
}

void AdaptiveBandit::Forget(uint32_t slot) {
  if (slot < arms_.size()) arms_[slot] = Arm{};
  if (slot < score_.size()) score_[slot] = 0;
}

double AdaptiveBandit::NextUniform() {
  // xorshift64*: deterministic per seed, so tests and llmcd runs are reproducible.
  seed_ ^= seed_ >> 12;
  seed_ ^= seed_ << 25;
  seed_ ^= seed_ >> 27;
  uint64_t r = seed_ * 0x2545F4914F6CDD1Dull;
  return (static_cast<double>(r >> 11) + 0.5) * (1.0 / 9007199254740992.0);
}

double AdaptiveBandit::NextGaussian() {
  double u1 = NextUniform(), u2 = NextUniform();
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
}

std::vector<double> AdaptiveBandit::Update(std::span<const ArmObservation> arms) {
  std::vector<double> w(arms.size(), 0.0);
  for (const auto& a : arms) {
    if (a.slot >= arms_.size()) {
      arms_.resize(a.slot + 1);
      score_.resize(a.slot + 1, 0.0);
    }
  }
  // Fold in this tick: old evidence decays first, then the tick's mean reward is added,
  // where a failure earns 0 (the penalty) and a success its latency's reward.
  std::vector<double> mean(arms.size(), 0.0), sd(arms.size(), 0.0);
  size_t eligible = 0;
  for (size_t i = 0; i < arms.size(); ++i) {
    const auto& o = arms[i];
    Arm& a = arms_[o.slot];
    a.n *= decay_;
    a.sum *= decay_;
    a.sum_sq *= decay_;
    double requests = static_cast<double>(o.successes + o.failures);
    if (requests > 0) {
      double r = o.successes ? Reward(o.ttft_ms, o.latency_ms) * static_cast<double>(o.successes) / requests : 0.0;
      double weight = std::min(1.0, requests / kRequestsForFullTick);
      a.n += weight;
      a.sum += weight * r;
      a.sum_sq += weight * r * r;
    }
    double n = a.n + kPriorN;
    double m = (a.sum + kPriorN * kPriorMean) / n;
    double var = std::max(kMinVariance, (a.sum_sq + kPriorN * kPriorMean * kPriorMean) / n - m * m);
    mean[i] = m;
    sd[i] = std::sqrt(var / n);
    score_[o.slot] = m;
    if (o.eligible) ++eligible;
  }
  if (eligible == 0) return w;

  // Probability of being best, estimated by sampling the posteriors.
  std::vector<double> wins(arms.size(), 0.0);
  for (int d = 0; d < kDraws; ++d) {
    size_t best = arms.size();
    double best_v = 0;
    for (size_t i = 0; i < arms.size(); ++i) {
      if (!arms[i].eligible) continue;
      double v = mean[i] + sd[i] * NextGaussian();
      if (best == arms.size() || v > best_v) {
        best = i;
        best_v = v;
      }
    }
    wins[best] += 1.0;
  }
  double even = 1.0 / static_cast<double>(eligible);
  for (size_t i = 0; i < arms.size(); ++i) {
    if (!arms[i].eligible) continue;
    w[i] = (1.0 - exploration_) * wins[i] / kDraws + exploration_ * even;
  }
  return w;
}

}  // namespace llmgw::routing
