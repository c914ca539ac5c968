// p2c_kv (see p2c_kv.h).
#include "common/routing/p2c_kv.h"

#include <algorithm>

namespace llmgw::routing {

int PickP2cKv(const PickContext& ctx, uint64_t random) {
  size_t n = ctx.n();
  size_t i = static_cast<size_t>(random % n);
  size_t j = static_cast<size_t>((random >> 32) % (n - 1));
  if (j >= i) ++j;
  const Candidate& a = ctx.cand[i];
  const Candidate& c = ctx.cand[j];
  const auto& ba = ctx.backend(a.slot);
  const auto& bc = ctx.backend(c.slot);
  if (!ba.metrics_fresh || !bc.metrics_fresh) {
    // Scraped numbers are stale for one of them: compare what we know for sure.
    return a.load <= c.load ? a.slot : c.slot;
  }
  const auto& lim = ctx.snap.limits;
  auto score = [&](const shm::BackendEntry& b, uint16_t slot) {
    // Our own requests since the scrape are not in `waiting` yet: count them as waiting.
    double waiting = std::max(0.0, b.waiting + LocalDelta(LoadAt(ctx.local, slot)));
    return lim.w_waiting * waiting + lim.w_running * b.running + lim.w_kv * b.kv_usage +
           lim.w_latency * b.ewma_latency_ms + lim.w_error * b.error_rate;
  };
  return score(ba, a.slot) <= score(bc, c.slot) ? a.slot : c.slot;
}

}  // namespace llmgw::routing
