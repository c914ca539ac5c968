// prefix_affinity (see prefix_affinity.h).
#include "common/routing/prefix_affinity.h"

#include <algorithm>
#include <cmath>

#include "common/routing/adaptive.h"

namespace llmgw::routing {

double PrefixAffinity::PlaceWeight(const shm::BackendEntry& b, size_t n) const {
  if (by_ == PlaceBy::kConfiguredWeight) return RingWeight(b);
  // Adaptive: the learnt share, with the same exploration floor as the plain pick; no
  // weights yet (all 0) means even.
  float w = b.adaptive_weight;
  double share = w > 0 && std::isfinite(w) ? std::min<double>(w, 1.0) : 0.0;
  return AdaptiveShare(share, n);
}

double PrefixAffinity::RatePerWeight(const PickContext& ctx, double extra) const {
  double rate_sum = 0, weight_sum = 0;
  for (const Candidate& c : ctx.cand) {
    rate_sum += homes_.homed_rate(c.slot);
    weight_sum += PlaceWeight(ctx.backend(c.slot), ctx.n());
  }
  // Smoothed by one pick per unit of weight, so an idle fleet reads as balanced (1.0
  // everywhere) rather than dividing by nothing.
  return (rate_sum + extra + weight_sum) / weight_sum;
}

double PrefixAffinity::TrafficShare(const PickContext& ctx, uint16_t slot, double extra,
                                    double rate_per_weight) const {
  double w = PlaceWeight(ctx.backend(slot), ctx.n());
  return (homes_.homed_rate(slot) + extra + w) / w / rate_per_weight;
}

bool PrefixAffinity::HomeOverShare(const PickContext& ctx, const PrefixHome& e) const {
  // The second reason to strike: home's prefixes bring more than c x the traffic its
  // weight (or learnt share) asks for, and this prefix would fit better elsewhere. This is
  // what corrects placements made before the traffic was known (first sight counts 0) and
  // follows a learner whose shares moved, even when nothing is queueing. (Comparing with
  // the other backends rather than with 1.0 keeps a prefix that is most of the traffic by
  // itself from wandering: it is over any backend's share.)
  double rpw = RatePerWeight(ctx, 0.0);
  double home = TrafficShare(ctx, e.slot, 0.0, rpw);
  double c = BoundedLoadFactor(ctx.snap);
  if (home <= c) return false;
  for (const Candidate& k : ctx.cand) {
    if (k.slot != e.slot && c * TrafficShare(ctx, k.slot, e.rate, rpw) < home) return true;
  }
  return false;
}

int PrefixAffinity::PlaceHome(const PickContext& ctx, uint64_t key_hash, uint64_t bound, bool with_slack,
                              int skip_slot, double rate) const {
  // Where a prefix should live: among backends under the bound, the lowest
  //   traffic term: (traffic of the prefixes homed there + this one's) / weight, relative
  //                 to the fleet's (1.0 = exactly its share), and
  //   count term:   kCountWeight x (prefixes homed there + 1) / mean, relative to the mean,
  // so each backend's prefixes bring traffic in proportion to its weight (its speed) and
  // every KV cache holds a similar number of distinct prefixes. Ties (an idle fleet) go to
  // the least in-flight, then to an offset derived from the prefix's hash, so threads that
  // see the same state place a prefix alike.
  //
  // Measured in routing_sim: placing by in-flight alone starved the 0.25-speed backend of
  // prefixes (a slow backend always has more in flight per unit of traffic) and piled 11-15
  // prefixes onto one 6-prefix cache; the hit rate was 84-98% of the oracle. Traffic per
  // weight plus count: 90-99%. The count term's weight matters little between 1.5 and 3.
  size_t n = ctx.n();
  size_t start = static_cast<size_t>(Mix(key_hash ^ 0x5bd1e995u) % n);
  double homed_sum = 0, weight_sum = 0;
  for (const Candidate& c : ctx.cand) {
    homed_sum += homes_.homed(c.slot);
    weight_sum += PlaceWeight(ctx.backend(c.slot), n);
  }
  double homed_mean = homed_sum / static_cast<double>(n) + 1.0;
  double rate_per_weight = RatePerWeight(ctx, 0.0);  // `rate` is in the sums already, or 0
  int best = kNoBackend;
  double best_score = 0;
  uint32_t best_load = 0;
  for (size_t k = 0; k < n; ++k) {
    const Candidate& c = ctx.cand[(start + k) % n];
    if (c.slot == skip_slot) continue;
    uint64_t limit = with_slack ? SlotLimit(bound, ctx.backend(c.slot)) : bound;
    if (c.load + 1u > limit) continue;
    double count = (homes_.homed(c.slot) + 1.0) / homed_mean;
    if (by_ == PlaceBy::kAdaptiveShare) {
      // Adaptive: a backend the learner gives less than an even share is expected to hold
      // proportionally fewer prefixes (a near-zero share should not keep a quarter of them).
      double even = PlaceWeight(ctx.backend(c.slot), n) * static_cast<double>(n) / weight_sum;
      count /= std::max(1e-3, std::min(1.0, even));
    }
    double score = TrafficShare(ctx, c.slot, rate, rate_per_weight) + kCountWeight * count;
    bool better = best == kNoBackend || score < best_score - 1e-9 ||
                  (score <= best_score + 1e-9 && c.load < best_load);
    if (better) {
      best = c.slot;
      best_score = score;
      best_load = c.load;
    }
  }
  return best;
}

int PrefixAffinity::Pick(uint16_t model_slot, const PickContext& ctx, uint64_t key_hash, PlaceBy by,
                         HashRing& ring) {
  // Each prefix has a home remembered by this thread, placed by PlaceHome when the prefix
  // is first seen rather than where its hash falls on the ring (with a few dozen hot
  // prefixes the ring's luck decides which backends are hot). While home is under the
  // hard bound the prefix goes there; above it, this request spills to the best other
  // placement (a backend with traffic headroom and few prefixes, so the cold prefill does
  // not land on a slow or crowded cache; the prefix's ring successor if none is under the
  // bound), and the prefix comes back home when home drains.
  //
  // Balance over time comes from moving whole prefixes, not single requests: every pick
  // that finds home above c x mean in-flight (the bound without the idle slack) is a
  // strike, and so is a pick that finds home's prefixes bringing more than c x the traffic
  // its weight asks for (HomeOverShare); every other pick takes one back. At
  // kRehomeStrikes the prefix moves for good to the best placement. A backend that is only
  // briefly busy keeps its prefixes (the counter leaks back), one that carries more than
  // its share sheds its busiest prefixes first (they are picked, and so strike, most
  // often), and each move costs one cold prefill instead of a cache split forever.
  by_ = by;
  uint64_t tag = PrefixHomeTable::Tag(key_hash, model_slot);
  PrefixHome& e = homes_.Entry(tag);
  uint64_t bound = RingBound(ctx);
  auto set_home = [&](int slot) { homes_.SetHome(e, tag, slot, ctx.backend(static_cast<uint16_t>(slot)).key); };
  int chosen = kNoBackend;
  if (e.key_hash == tag && PrefixHomeTable::Exists(e, ctx.snap, model_slot)) {
    // A home llmcd placed for the whole gateway is served and spilled from like any other,
    // but only llmcd moves it: no strikes here.
    bool pinned = homes_.Pinned(e);
    homes_.Age(e);
    const auto& hb = ctx.backend(e.slot);
    bool served_home = false;
    for (const Candidate& c : ctx.cand) {
      if (c.slot != e.slot) continue;
      uint32_t load = c.load;
      if (load + 1u > SlotLimit(bound, hb)) break;  // above the hard bound: spill
      served_home = true;
      chosen = e.slot;
      if (pinned) break;
      bool over = load + 1u > bound;
      if (!over) over = HomeOverShare(ctx, e);
      if (!over) {
        if (e.strikes > 0) --e.strikes;
      } else if (++e.strikes >= kRehomeStrikes) {
        int better = PlaceHome(ctx, key_hash, bound, false, e.slot, e.rate);
        if (better != kNoBackend) {
          set_home(better);
          chosen = better;
        } else {
          e.strikes = 0;
        }
      }
      break;
    }
    if (!served_home) {
      // Home is above the hard bound, or ineligible right now (down, draining, excluded).
      chosen = PlaceHome(ctx, key_hash, bound, true, e.slot, e.rate);
      if (chosen == kNoBackend) chosen = ring.Pick(model_slot, ctx, key_hash, bound, e.slot);
      if (!pinned && chosen != kNoBackend && ++e.strikes >= kRehomeStrikes) set_home(chosen);
    }
  } else {
    // First sight (or the home left the model).
    chosen = PlaceHome(ctx, key_hash, bound, true, -1, 0.0);
    if (chosen != kNoBackend) set_home(chosen);
  }
  if (chosen != kNoBackend) {
    homes_.CountPick(e);
    homes_.Report(tag, model_slot);
  }
  by_ = PlaceBy::kConfiguredWeight;
  return chosen;
}

}  // namespace llmgw::routing
