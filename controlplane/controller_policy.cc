// Controller: per-backend policy state from the data plane's stats (EWMAs, error rate,
// passive health, circuit breaker feed), the adaptive bandits, and the state each backend
// is published with.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "common/log.h"
#include "controlplane/controller.h"
#include "controlplane/controller_internal.h"

namespace llmgw::cp {

namespace {

uint64_t Delta(uint64_t now, uint64_t before) { return now >= before ? now - before : now; }

// Failures that say the backend is broken (429 is overload, handled by load signals).
uint64_t BreakerFailures(const shm::BackendTotals& t) {
  using E = shm::UpstreamErr;
  return t.errors[static_cast<size_t>(E::kConnect)] + t.errors[static_cast<size_t>(E::kTimeout)] +
         t.errors[static_cast<size_t>(E::kReset)] + t.errors[static_cast<size_t>(E::kStatus5xx)] +
         t.errors[static_cast<size_t>(E::kProtocol)];
}

}  // namespace

void Controller::UpdateFromStats(uint64_t now) {
  uint64_t dead_after = std::max<uint64_t>(500, 3ull * cfg_.control.heartbeat_ms);
  if (shm_) {
    shm::SumStats(*shm_->region(), base_->num_backends, shm::NowUnixMs(), dead_after, &local_stats_);
  } else {  // tests of the pure logic: only the fleet's gateways count
    local_stats_ = shm::StatsTotals();
    local_stats_.models.resize(shm::kMaxModels);
    local_stats_.backends.resize(base_->num_backends);
  }
  bool alive = local_stats_.live_threads > 0;
  if (alive != dataplane_alive_) {
    if (alive) LOG_INFO("data plane attached", {{"threads", local_stats_.live_threads}});
    else if (dataplane_seen_) LOG_WARN("data plane heartbeat lost; no live llmgw thread", {});
    dataplane_alive_ = alive;
  }
  dataplane_seen_ |= alive;
  // The fleet's view: this host's data plane plus every agent's gateway (fleet_stats.h).
  stats_ = local_stats_;
  std::map<uint64_t, size_t> key_to_row;
  for (uint32_t i = 0; i < base_->num_backends && i < stats_.backends.size(); ++i)
    if (base_->backends[i].id[0]) key_to_row[base_->backends[i].key] = i;
  fleet_.AddTo(key_to_row, &stats_);
  bool rebaseline = fleet_rebaseline_;
  if (fleet_rebaseline_) {
    // A gateway joined with its history: re-seed every delta instead of taking that
    // history for this tick's observations (breakers, EWMAs, bandits, rates).
    fleet_rebaseline_ = false;
    for (auto& [id, b] : backends_) b->have_prev = false;
    rate_window_.clear();
  }
  // The whole fleet's TTFT and latency over the recent window (status, dashboard).
  if (rebaseline) {
    fleet_ttft_recent_.Rebaseline(stats_.ttft);
    fleet_latency_recent_.Rebaseline(stats_.latency);
  }
  fleet_ttft_recent_.Record(now, stats_.ttft);
  fleet_latency_recent_.Record(now, stats_.latency);
  // Gateway-wide rates over the last second or so.
  uint64_t errs = 0;
  for (size_t i = 1; i < std::size(stats_.errors_by_kind); ++i) errs += stats_.errors_by_kind[i];
  rate_window_.push_back({now, {stats_.requests_total, errs}});
  while (rate_window_.size() > 2 && rate_window_.front().first + 1000 < now) rate_window_.pop_front();
  if (rate_window_.size() >= 2 && rate_window_.back().first > rate_window_.front().first) {
    double dt = (rate_window_.back().first - rate_window_.front().first) / 1000.0;
    rps_ = Delta(rate_window_.back().second.first, rate_window_.front().second.first) / dt;
    eps_ = Delta(rate_window_.back().second.second, rate_window_.front().second.second) / dt;
  }
  double alpha = cfg_.control.ewma_alpha;
  for (auto& [id, b] : backends_) {
    b->tick_successes = b->tick_failures = 0;
    b->tick_latency_ms = b->tick_ttft_ms = 0;
    b->tick_tpot_ms = 0;
    if (b->slot < 0 || static_cast<size_t>(b->slot) >= stats_.backends.size()) continue;
    const shm::BackendTotals& t = stats_.backends[b->slot];
    if (t.key != 0 && t.key != base_->backends[b->slot].key) continue;  // slot still counts for an old backend
    uint64_t prev_inflight = b->fleet_in_flight;
    b->fleet_in_flight = t.in_flight;  // every gateway's threads: stats_ is the fleet's
    b->requests_total = t.requests;
    // Quantiles over the recent window, recomputed every tick (they fall to 0 when the
    // window holds no observation, instead of keeping a stale figure).
    if (rebaseline) {  // a joining gateway's history is not the last 30 s
      b->ttft_recent.Rebaseline(t.ttft);
      b->latency_recent.Rebaseline(t.latency);
    }
    b->ttft_recent.Record(now, t.ttft);
    b->latency_recent.Record(now, t.latency);
    {
      shm::HistogramTotals rt = b->ttft_recent.Recent(), rl = b->latency_recent.Recent();
      b->ttft_p50_ms = rt.QuantileUs(0.5) / 1000.0;
      b->ttft_p99_ms = rt.QuantileUs(0.99) / 1000.0;
      b->latency_p50_ms = rl.QuantileUs(0.5) / 1000.0;
      b->latency_p99_ms = rl.QuantileUs(0.99) / 1000.0;
    }
    if (prev_inflight != b->fleet_in_flight) dirty_ = true;
    if (!b->have_prev) {
      b->prev = t;
      b->have_prev = true;
      continue;
    }
    uint64_t reqs = Delta(t.requests, b->prev.requests);
    uint64_t ok = Delta(t.successes, b->prev.successes);
    uint64_t fail = Delta(BreakerFailures(t), BreakerFailures(b->prev));
    uint64_t slow = Delta(t.slow_calls, b->prev.slow_calls);
    uint64_t lat_n = Delta(t.latency.count, b->prev.latency.count);
    uint64_t lat_s = Delta(t.latency.sum_us, b->prev.latency.sum_us);
    uint64_t ttft_n = Delta(t.ttft.count, b->prev.ttft.count);
    uint64_t ttft_s = Delta(t.ttft.sum_us, b->prev.ttft.sum_us);
    uint64_t tokens = Delta(t.completion_tokens, b->prev.completion_tokens);
    b->prev = t;
    // Decode speed: (latency - TTFT) over the tokens after each request's first, for ticks
    // whose requests reported usage and all had a TTFT (streamed). Unknown otherwise.
    if (lat_n && ttft_n == lat_n && tokens > lat_n && lat_s > ttft_s)
      b->tick_tpot_ms = static_cast<double>(lat_s - ttft_s) / 1000.0 / static_cast<double>(tokens - lat_n);
    b->tick_successes = ok;
    b->tick_failures = fail;
    if (lat_n) {
      b->tick_latency_ms = lat_s / 1000.0 / lat_n;
      b->ewma_latency_ms = Ewma(b->ewma_latency_ms, b->tick_latency_ms, alpha, b->ewma_latency_ms == 0);
    }
    if (ttft_n) {
      b->tick_ttft_ms = ttft_s / 1000.0 / ttft_n;
      b->ewma_ttft_ms = Ewma(b->ewma_ttft_ms, b->tick_ttft_ms, alpha, b->ewma_ttft_ms == 0);
    }
    if (ok + fail > 0) {
      b->error_rate = Ewma(b->error_rate, static_cast<double>(fail) / static_cast<double>(ok + fail), alpha, false);
    } else if (reqs == 0) {
      b->error_rate *= (1 - alpha / 10);  // no traffic: old failures fade so it can win traffic back
    }
    bool passive = b->error_rate >= cfg_.health.passive_error_rate && fail >= 1;
    if (b->passive_unhealthy && b->error_rate < cfg_.health.passive_error_rate / 2) passive = false;
    else if (b->passive_unhealthy) passive = true;
    if (passive != b->passive_unhealthy) {
      b->passive_unhealthy = passive;
      dirty_ = true;
      LOG_WARN(passive ? "backend failing passively (data-plane errors)" : "backend passive errors cleared",
               {{"backend", id}, {"error_rate", b->error_rate}});
    }
    if (ok) b->breaker->RecordSuccess(ok);
    if (fail) b->breaker->RecordFailure(fail);
    if (slow) b->breaker->RecordSlow(slow);
  }
}

void Controller::UpdateBandits() {
  for (auto& [name, mrt] : models_) {
    std::vector<routing::ArmObservation> arms;
    std::vector<BackendRt*> rts;
    for (auto& [id, b] : backends_) {
      if (b->model != name) continue;
      routing::ArmObservation a;
      a.slot = static_cast<uint32_t>(b->slot);
      uint8_t st = PublishedState(*b);
      a.eligible = st == static_cast<uint8_t>(shm::BackendState::kHealthy) ||
                   st == static_cast<uint8_t>(shm::BackendState::kHalfOpen);
      a.successes = b->tick_successes;
      a.failures = b->tick_failures;
      a.ttft_ms = b->tick_ttft_ms;
      a.latency_ms = b->tick_latency_ms;
      a.tpot_ms = b->tick_tpot_ms;
      arms.push_back(a);
      rts.push_back(b.get());
    }
    if (arms.empty()) continue;
    std::vector<double> w = mrt->bandit->Update(arms);
    for (size_t i = 0; i < rts.size() && i < w.size(); ++i) {
      if (std::fabs(rts[i]->adaptive_weight - w[i]) > 1e-6) dirty_ = true;
      rts[i]->adaptive_weight = std::isfinite(w[i]) ? w[i] : 0;
    }
  }
}

void Controller::UpdatePrefixHomes(uint64_t now) {
  // Gateway-wide prefix homes (docs/ROUTING.md): every data-plane thread reports the
  // prefixes it routed; one placer per prefix_affinity/adaptive model places them on its
  // backends, and the homes go out with the snapshot so every thread agrees.
  uint64_t elapsed = last_prefix_tick_ms_ ? now - last_prefix_tick_ms_ : cfg_.control.tick_ms;
  last_prefix_tick_ms_ = now;
  std::vector<ModelRt*> by_slot(shm::kMaxModels, nullptr);
  for (uint32_t m = 0; m < base_->num_models && m < shm::kMaxModels; ++m) {
    if (!base_->models[m].present) continue;
    auto it = models_.find(base_->models[m].name);
    if (it != models_.end() && it->second->placer) by_slot[m] = it->second.get();
  }
  if (shm_) {
    prefix_reports_.Collect(*shm_->region(), [&](uint16_t model, uint64_t tag, uint64_t picks) {
      if (ModelRt* m = by_slot[model]) m->placer->Observe(tag, static_cast<double>(picks));
    });
  }
  // The fleet's gateways report theirs through their agents: homes are the fleet's.
  for (const PrefixPick& p : fleet_prefixes_)
    if (p.model_slot < shm::kMaxModels)
      if (ModelRt* m = by_slot[p.model_slot]) m->placer->Observe(p.tag, static_cast<double>(p.picks));
  fleet_prefixes_.clear();
  std::vector<shm::PrefixHomeEntry> homes;
  std::vector<routing::PlacedHome> placed;
  for (uint32_t m = 0; m < shm::kMaxModels; ++m) {
    ModelRt* mrt = by_slot[m];
    if (!mrt) continue;
    std::vector<routing::PlacerBackend> bs;
    std::vector<double> learnt;  // adaptive_weight of each entry of bs
    double share_sum = 0;
    size_t eligible = 0;
    for (auto& [id, b] : backends_) {
      if (b->slot < 0 || base_->backends[b->slot].model_slot != m) continue;
      routing::PlacerBackend pb;
      pb.slot = static_cast<uint16_t>(b->slot);
      pb.key = base_->backends[b->slot].key;
      pb.eligible = PublishedState(*b) == static_cast<uint8_t>(shm::BackendState::kHealthy);
      pb.weight = b->weight;
      pb.in_flight = static_cast<uint32_t>(std::min<uint64_t>(b->fleet_in_flight, UINT32_MAX));
      pb.max_concurrent = base_->backends[b->slot].max_concurrent;
      double aw = std::isfinite(b->adaptive_weight) && b->adaptive_weight > 0 ? b->adaptive_weight : 0;
      if (pb.eligible) {
        ++eligible;
        share_sum += aw;
      }
      bs.push_back(pb);
      learnt.push_back(aw);
    }
    if (mrt->policy == Policy::kAdaptive) {
      // The learnt share with the data plane's exploration floor (Router::PlaceWeight).
      for (size_t i = 0; i < bs.size(); ++i) {
        double w = share_sum > 0 ? learnt[i] / share_sum : 1.0 / static_cast<double>(std::max<size_t>(eligible, 1));
        bs[i].weight = routing::Router::AdaptiveShare(w, eligible);
      }
    }
    mrt->placer->Tick(bs, elapsed);
    mrt->placer->Homes(shm::kMaxPrefixHomes - homes.size(), &placed);
    for (const auto& h : placed)
      homes.push_back(shm::PrefixHomeEntry{h.tag, h.backend_key, h.slot, static_cast<uint16_t>(m), 0});
  }
  // Kept in tag order (routers look homes up by tag, the order means nothing to them), so
  // a home changed exactly when the lists differ; busiest-first order would change with
  // every rate and publish snapshots for nothing.
  std::sort(homes.begin(), homes.end(),
            [](const shm::PrefixHomeEntry& x, const shm::PrefixHomeEntry& y) { return x.tag < y.tag; });
  if (homes.size() != prefix_homes_.size() ||
      (!homes.empty() && std::memcmp(homes.data(), prefix_homes_.data(), homes.size() * sizeof(homes[0])) != 0)) {
    dirty_ = true;
    prefix_homes_ = std::move(homes);
  }
}

uint8_t Controller::PublishedState(const BackendRt& b) const {
  using S = shm::BackendState;
  // Operator intent first: a drained backend stays drained whatever its health.
  if (b.draining) return static_cast<uint8_t>(S::kDraining);
  if (!b.healthy || b.passive_unhealthy) return static_cast<uint8_t>(S::kUnhealthy);
  if (b.breaker->state() == CircuitState::kOpen) return static_cast<uint8_t>(S::kCircuitOpen);
  if (b.breaker->state() == CircuitState::kHalfOpen) return static_cast<uint8_t>(S::kHalfOpen);
  return static_cast<uint8_t>(S::kHealthy);
}

}  // namespace llmgw::cp
