// Controller: health probes and metric scrapes. Tick() dispatches them onto the worker
// pool (never blocking on a backend) and folds the results the workers leave in the
// mailbox into per-backend health and scraped signals on the next tick.
#include <algorithm>

#include "common/log.h"
#include "controlplane/controller.h"
#include "controlplane/controller_internal.h"

namespace llmgw::cp {

void Controller::DispatchJobs(uint64_t now) {
  const HealthConfig& h = cfg_.health;
  for (auto& [id, b] : backends_) {
    if (!b->probe_in_flight && now >= b->next_probe_ms) {
      // Jitter only shortens the interval, so "unhealthy within unhealthy_after
      // intervals" keeps holding while probes of many backends drift apart.
      uint64_t jitter = h.interval_ms >= 10 ? rng_() % (h.interval_ms / 10) : 0;
      b->next_probe_ms = now + h.interval_ms - jitter;
      std::string path = b->use_models_fallback ? "/v1/models" : h.path;
      HttpTarget target = b->target;
      uint32_t timeout = h.timeout_ms;
      uint64_t epoch = epoch_;
      std::string bid = id;
      Prober* prober = opts_.prober.get();
      b->probe_in_flight = pool_->Submit([this, prober, target, path, timeout, epoch, bid] {
        ProbeResult r{ProbeResult::kProbe, bid, epoch};
        HttpResponse resp = prober->Get(target, path, timeout, 1u << 20, &cancel_io_);
        if (resp.ok() && resp.status == 404 && path != "/v1/models") {
          r.fell_back = true;
          resp = prober->Get(target, "/v1/models", timeout, 1u << 20, &cancel_io_);
        }
        r.ok = resp.ok() && resp.status >= 200 && resp.status < 300;
        if (!r.ok)
          r.error = resp.ok() ? "probe " + path + ": HTTP " + std::to_string(resp.status) : "probe: " + resp.error;
        std::lock_guard<std::mutex> l(mailbox_mu_);
        mailbox_.push_back(std::move(r));
      });
      if (!b->probe_in_flight) ++counters_.jobs_dropped;
    }
    if (h.scrape_metrics && !b->scrape_in_flight && now >= b->next_scrape_ms) {
      b->next_scrape_ms = now + h.scrape_interval_ms;
      std::string path = b->engine == Engine::kTrtLlm ? "/prometheus/metrics" : "/metrics";
      HttpTarget target = b->target;
      uint32_t timeout = std::min(h.timeout_ms, std::max<uint32_t>(h.scrape_interval_ms, 100));
      uint64_t epoch = epoch_;
      std::string bid = id;
      Prober* prober = opts_.prober.get();
      b->scrape_in_flight = pool_->Submit([this, prober, target, path, timeout, epoch, bid] {
        ProbeResult r{ProbeResult::kScrape, bid, epoch};
        HttpResponse resp = prober->Get(target, path, timeout, 16u << 20, &cancel_io_);
        r.ok = resp.ok() && resp.status == 200;
        if (r.ok) r.parsed = ParsePrometheusText(resp.body);
        else r.error = resp.ok() ? "scrape " + path + ": HTTP " + std::to_string(resp.status) : "scrape: " + resp.error;
        std::lock_guard<std::mutex> l(mailbox_mu_);
        mailbox_.push_back(std::move(r));
      });
      if (!b->scrape_in_flight) ++counters_.jobs_dropped;
    }
  }
}

void Controller::DrainMailbox(uint64_t now) {
  std::vector<ProbeResult> results;
  {
    std::lock_guard<std::mutex> l(mailbox_mu_);
    results.swap(mailbox_);
  }
  const HealthConfig& h = cfg_.health;
  for (auto& r : results) {
    BackendRt* b = Find(r.id);
    if (!b) continue;
    if (r.kind == ProbeResult::kProbe) {
      b->probe_in_flight = false;
      if (r.epoch != epoch_) continue;  // config changed under it; next probe decides
      ++counters_.probes;
      if (r.fell_back) b->use_models_fallback = true;
      if (r.ok) {
        b->consecutive_fail = 0;
        ++b->consecutive_ok;
        if (!b->healthy && b->consecutive_ok >= h.healthy_after) {
          b->healthy = true;
          dirty_ = true;
          LOG_INFO("backend healthy", {{"backend", b->id}});
        }
        if (b->last_error.rfind("probe", 0) == 0) b->last_error.clear();
      } else {
        ++counters_.probe_failures;
        b->consecutive_ok = 0;
        ++b->consecutive_fail;
        b->last_error = r.error;
        if (b->healthy && b->consecutive_fail >= h.unhealthy_after) {
          b->healthy = false;
          dirty_ = true;
          LOG_WARN("backend unhealthy", {{"backend", b->id}, {"error", r.error},
                                         {"consecutive_failures", b->consecutive_fail}});
        }
      }
    } else {
      b->scrape_in_flight = false;
      if (r.epoch != epoch_) continue;
      ++counters_.scrapes;
      if (!r.ok) {
        ++counters_.scrape_failures;
        if (b->last_error.empty() || b->last_error.rfind("scrape", 0) == 0) b->last_error = r.error;
        continue;
      }
      EngineSignals sig = ExtractSignals(r.parsed.samples, b->configured_engine);
      if (sig.engine == Engine::kAuto) {
        ++counters_.scrape_failures;
        b->last_error = "scrape: no known engine metrics";
        continue;
      }
      b->engine = sig.engine;
      if (b->last_error.rfind("scrape", 0) == 0) b->last_error.clear();
      // TTFT from the backend's own histogram, over the observations since the last scrape.
      // Kept in scraped_* fields: the observed figures (ttft_p99_ms, ewma_ttft_ms) come from
      // the data plane alone; alternating the two sources made llmctl's TTFT99 jump.
      if (sig.has_ttft) {
        double q;
        if (HistogramQuantile(sig.ttft_buckets, b->scraped_once ? b->prev_ttft_buckets
                                                                  : std::vector<std::pair<double, double>>{},
                              0.5, &q))
          b->scraped_ttft_p50_ms = q * 1000;
        if (HistogramQuantile(sig.ttft_buckets, b->scraped_once ? b->prev_ttft_buckets
                                                                  : std::vector<std::pair<double, double>>{},
                              0.99, &q))
          b->scraped_ttft_p99_ms = q * 1000;
        b->prev_ttft_buckets = sig.ttft_buckets;
        b->scraped_ttft_count = sig.ttft_count;
        b->scraped_ttft_sum = sig.ttft_sum_s;
      }
      b->sig = std::move(sig);
      b->scraped_once = true;
      b->last_scrape_ok_ms = now;
      dirty_ = true;
    }
  }
}

}  // namespace llmgw::cp
