// least_connections / least_queue / capacity (see least_load.h).
#include "common/routing/least_load.h"

#include <algorithm>

namespace llmgw::routing {

int PickLeastLoad(const PickContext& ctx, uint64_t random, LeastBy what) {
  // Start the scan at a random offset so ties spread over the tied backends.
  size_t n = ctx.n();
  size_t start = static_cast<size_t>(random % n);
  int best = kNoBackend;
  double best_score = 0;
  for (size_t k = 0; k < n; ++k) {
    const Candidate& c = ctx.cand[(start + k) % n];
    const auto& b = ctx.backend(c.slot);
    double score = c.load;
    if (what == LeastBy::kQueue) {
      if (b.metrics_fresh) score += b.waiting;
    } else if (what == LeastBy::kCapacity) {
      double mc = b.max_concurrent ? b.max_concurrent : 1;
      if (b.metrics_fresh) {
        double running = std::max(0.0, b.running + LocalDelta(LoadAt(ctx.local, c.slot)));
        score = (running * 3 + b.waiting) / mc;
      } else {
        score = c.load * 3.0 / mc;
      }
    }
    if (best == kNoBackend || score < best_score) {
      best = c.slot;
      best_score = score;
    }
  }
  return best;
}

}  // namespace llmgw::routing
