// The adaptive policy's learner (llmcd, once per tick per model): a UCB-style bandit over
// the model's backends. Each arm keeps decayed sums of the rewards its requests earned
// (one observation per tick with completions); the published weight is a sharpened
// share of the arms' optimistic values, mixed with an even share for exploration. Decay
// makes old evidence fade so the weights follow a backend that slows down or recovers.
#include <algorithm>
#include <cmath>

#include "common/routing/bandit.h"

namespace llmgw::routing {
namespace {
constexpr double kOptimism = 1.0;      // UCB bonus in standard errors
constexpr double kPower = 2.0;         // weight ~ value^2 x decode speed: a 2x better arm gets 4x
constexpr double kPriorMean = 0.5;     // an arm never seen is assumed average...
constexpr double kPriorN = 0.5;        // ...with the weight of half an observation
constexpr double kMinVariance = 0.0025;  // reward sd >= 0.05: keeps the posterior honest
// One tick is one observation of an arm (its mean reward that tick), weighted by how many
// requests back it up to this many. Counting every request as independent would make the
// posterior so narrow that tick-to-tick noise between equal backends looks decisive and
// the weights would flap between them.
constexpr double kRequestsForFullTick = 3.0;
// Decode speed: an arm's weight is also scaled by (fastest arm's time per output token /
// its own)^kSpeedPower. TTFT-only rewards let a backend whose KV cache is warm (its
// prefixes' home) look better than an equally fast one and attract more prefixes (rich get
// richer), and rate a 4x slower backend by its TTFT alone; time per output token says how
// fast the hardware decodes at its current batch, whatever the cache holds.
constexpr double kSpeedPower = 1.0;
}  // namespace

AdaptiveBandit::AdaptiveBandit(double exploration, double decay, uint64_t seed)
    : exploration_(std::clamp(exploration, 0.0, 1.0)),
      decay_(std::clamp(decay, 0.0, 1.0)),
      seed_(seed ? seed : 1) {}

double AdaptiveBandit::Reward(double ttft_ms, double latency_ms) {
  double t = std::max(0.0, ttft_ms) + std::max(0.0, latency_ms) / 1000.0;
  return 1.0 / (1.0 + t / kRewardScaleMs);
}

void AdaptiveBandit::Forget(uint32_t slot) {
  if (slot < arms_.size()) arms_[slot] = Arm{};
  if (slot < score_.size()) score_[slot] = 0;
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
    double requests = static_cast<double>(o.successes + o.failures);
    if (requests > 0) {
      // Evidence decays per observation, not per tick: an arm whose requests take longer
      // than a tick to finish keeps what it last showed instead of sliding back to the
      // prior (which would make a slow, silent backend look attractive again).
      double r = o.successes ? Reward(o.ttft_ms, o.latency_ms) * static_cast<double>(o.successes) / requests : 0.0;
      double weight = std::min(1.0, requests / kRequestsForFullTick);
      double d = std::pow(decay_, weight);
      a.n = a.n * d + weight;
      a.sum = a.sum * d + weight * r;
      a.sum_sq = a.sum_sq * d + weight * r * r;
      if (o.tpot_ms > 0 && std::isfinite(o.tpot_ms)) {
        a.tpot_n = a.tpot_n * d + weight;
        a.tpot_sum = a.tpot_sum * d + weight * o.tpot_ms;
      }
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

  // Optimism (UCB): an arm's value is its posterior mean plus kOptimism standard errors,
  // so an arm with little evidence looks a bit better than its mean and keeps getting
  // tried. Weights are the values raised to kPower and normalised: a clearly better arm
  // takes nearly everything, equal arms share evenly, and since a real backend's reward
  // falls as it fills up, the weights settle where load is spread by what each backend
  // serves well. (A winner-take-all rule such as probability-of-best or a Hedge step
  // oscillates here: completions arrive seconds late and starve the arms it moved away
  // from of the evidence that would bring it back.)
  // Decode speed, relative to the fastest eligible arm with a reading (no reading: 1).
  double fastest = 0;
  for (const auto& o : arms) {
    const Arm& a = arms_[o.slot];
    if (o.eligible && a.tpot_n > 1e-9) {
      double t = a.tpot_sum / a.tpot_n;
      if (fastest == 0 || t < fastest) fastest = t;
    }
  }
  std::vector<double> value(arms.size(), 0.0);
  double vsum = 0;
  for (size_t i = 0; i < arms.size(); ++i) {
    if (!arms[i].eligible) continue;
    value[i] = std::pow(std::max(mean[i] + kOptimism * sd[i], 1e-9), kPower);
    const Arm& a = arms_[arms[i].slot];
    if (fastest > 0 && a.tpot_n > 1e-9) value[i] *= std::pow(fastest / (a.tpot_sum / a.tpot_n), kSpeedPower);
    vsum += value[i];
  }
  double even = 1.0 / static_cast<double>(eligible);
  for (size_t i = 0; i < arms.size(); ++i) {
    if (!arms[i].eligible) continue;
    w[i] = (1.0 - exploration_) * value[i] / vsum + exploration_ * even;
  }
  return w;
}

}  // namespace llmgw::routing
