// adaptive (see adaptive.h).
#include "common/routing/adaptive.h"

#include <algorithm>
#include <cmath>

namespace llmgw::routing {

int PickAdaptive(uint16_t model_slot, const PickContext& ctx, uint64_t random, uint64_t prefix_hash,
                 PrefixAffinity& prefixes, HashRing& ring) {
  // Weighted least connections on the learnt weights: the backend with the least in-flight
  // per unit of weight wins, so in-flight shares follow the weights while a backend that
  // fills up stops attracting traffic before llmcd's next tick. A floor keeps every
  // eligible backend in play (exploration); all-zero weights mean "not learnt yet": even.
  size_t n = ctx.n();
  double sum = 0;
  for (const Candidate& c : ctx.cand) {
    float w = ctx.backend(c.slot).adaptive_weight;
    if (w > 0 && std::isfinite(w)) sum += w;
  }
  size_t start = static_cast<size_t>(random % n);
  int best = kNoBackend, best_idle = kNoBackend;  // best_idle: best with no request awaiting a first token
  double best_score = 0, best_idle_score = 0;
  for (size_t k = 0; k < n; ++k) {
    const Candidate& c = ctx.cand[(start + k) % n];
    const auto& b = ctx.backend(c.slot);
    float w = b.adaptive_weight;
    double share = sum > 0 ? (w > 0 && std::isfinite(w) ? w / sum : 0.0) : 1.0 / static_cast<double>(n);
    share = AdaptiveShare(share, n);
    // Requests queued at the backend for a batch slot are what TTFT waits on: count them
    // twice (they are in `load` too), corrected by this thread's requests since the scrape.
    double queued = b.metrics_fresh ? std::max(0.0, b.waiting + LocalDelta(LoadAt(ctx.local, c.slot))) : 0.0;
    double score = (static_cast<double>(c.load) + queued + 1.0) / share;
    if (best == kNoBackend || score < best_score) {
      best = c.slot;
      best_score = score;
    }
    if (LoadAt(ctx.local, c.slot).awaiting == 0 && (best_idle == kNoBackend || score < best_idle_score)) {
      best_idle = c.slot;
      best_idle_score = score;
    }
  }
  if (prefix_hash == 0) return best;
  // With a prompt prefix (the data plane extracts one for adaptive models too), requests
  // that share it keep reusing one KV cache: prefix homes as in prefix_affinity, with the
  // learnt shares in place of the configured weights, so prefixes (and the traffic they
  // bring) are placed where the learner says requests are served well, and move when a
  // home's share collapses. (Without homes adaptive scattered shared prefixes over every
  // cache and its p99 TTFT was ~2x prefix_affinity's; with homes placed by the plain
  // weighted least-load score it still lost 1.3-1.5x at 80-90% load in routing_sim, the
  // learner favouring warm caches until they queued.)
  int s = prefixes.Pick(model_slot, ctx, prefix_hash, PlaceBy::kAdaptiveShare, ring);
  if (s == kNoBackend) return best;
  // Latency before affinity: when this thread already has kAwaitingSpill requests at the
  // prefix's home that have not seen their first token (queued for a batch slot or in a
  // prefill) and another backend has none, this request goes to the best such backend. A
  // warm cache saves one prefill; a backend that is not answering first tokens costs more.
  // It needs no learning, so it also covers the cold start, before llmcd has any evidence
  // about which backends are slow. (The prefix stays home; its demand was counted.)
  if (best_idle != kNoBackend && best_idle != s &&
      LoadAt(ctx.local, static_cast<uint16_t>(s)).awaiting >= kAwaitingSpill)
    return best_idle;
  return s;
}

}  // namespace llmgw::routing
