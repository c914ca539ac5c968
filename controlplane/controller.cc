// Controller: config lifecycle, health/scrape scheduling, policy state and publishing.
// See controller.h for the threading model and docs/CONTROLPLANE.md for the decisions.
#include "controlplane/controller.h"
#include "controlplane/fleet.h"

#include <arpa/inet.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <set>

#include "common/log.h"

namespace llmgw::cp {

namespace admin = ::llmgw::admin::v1;

// ---------------------------------------------------------------------------------------
WorkerPool::WorkerPool(size_t threads, size_t max_queue) : max_queue_(max_queue) {
  for (size_t i = 0; i < threads; ++i) threads_.emplace_back([this] { Loop(); });
}

WorkerPool::~WorkerPool() {
  {
    std::lock_guard<std::mutex> l(mu_);
    stop_ = true;
    q_.clear();
  }
  cv_.notify_all();
  for (auto& t : threads_) t.join();
}

bool WorkerPool::Submit(std::function<void()> job) {
  {
    std::lock_guard<std::mutex> l(mu_);
    if (stop_ || q_.size() >= max_queue_) return false;
    q_.push_back(std::move(job));
  }
  cv_.notify_one();
  return true;
}

size_t WorkerPool::queued() const {
  std::lock_guard<std::mutex> l(mu_);
  return q_.size();
}

void WorkerPool::Loop() {
  for (;;) {
    std::function<void()> job;
    {
      std::unique_lock<std::mutex> l(mu_);
      cv_.wait(l, [this] { return stop_ || !q_.empty(); });
      if (stop_) return;
      job = std::move(q_.front());
      q_.pop_front();
    }
    job();
  }
}

// ---------------------------------------------------------------------------------------
struct Controller::BackendRt {
  std::string id, url, model;
  int slot = -1;
  Engine configured_engine = Engine::kAuto;
  Engine engine = Engine::kAuto;  // configured, else detected
  double weight = 1;
  uint32_t max_concurrent = 0;
  HttpTarget target;
  // Active health.
  bool healthy = true;
  uint32_t consecutive_ok = 0, consecutive_fail = 0;
  bool probe_in_flight = false;
  uint64_t next_probe_ms = 0;
  bool use_models_fallback = false;  // health.path answered 404 once
  std::string last_error;
  // Scraping.
  bool scrape_in_flight = false;
  uint64_t next_scrape_ms = 0;
  uint64_t last_scrape_ok_ms = 0;
  bool scraped_once = false;
  EngineSignals sig;
  std::vector<std::pair<double, double>> prev_ttft_buckets;
  double scraped_ttft_sum = 0, scraped_ttft_count = 0;
  double ttft_p50_ms = 0, ttft_p99_ms = 0;
  // Passive signals from the data plane's stats.
  bool have_prev = false;
  shm::BackendTotals prev;
  double ewma_latency_ms = 0, ewma_ttft_ms = 0, error_rate = 0;
  bool passive_unhealthy = false;
  uint64_t fleet_in_flight = 0, requests_total = 0;
  uint64_t tick_successes = 0, tick_failures = 0;
  double tick_latency_ms = 0, tick_ttft_ms = 0;
  std::unique_ptr<CircuitBreaker> breaker;
  bool draining = false;
  double adaptive_weight = 0;
};

struct Controller::ModelRt {
  std::unique_ptr<routing::AdaptiveBandit> bandit;
  Policy policy = Policy::kLeastConnections;
};

struct Controller::ProbeResult {
  enum Kind { kProbe, kScrape } kind;
  std::string id;
  uint64_t epoch = 0;
  bool ok = false;
  bool fell_back = false;  // health.path 404 -> /v1/models used
  std::string error;
  PromParseResult parsed;
};

namespace {

uint64_t SteadyMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

double Ewma(double prev, double sample, double alpha, bool first) {
  return first ? sample : alpha * sample + (1 - alpha) * prev;
}

uint64_t Delta(uint64_t now, uint64_t before) { return now >= before ? now - before : now; }

// Failures that say the backend is broken (429 is overload, handled by load signals).
uint64_t BreakerFailures(const shm::BackendTotals& t) {
  using E = shm::UpstreamErr;
  return t.errors[static_cast<size_t>(E::kConnect)] + t.errors[static_cast<size_t>(E::kTimeout)] +
         t.errors[static_cast<size_t>(E::kReset)] + t.errors[static_cast<size_t>(E::kStatus5xx)] +
         t.errors[static_cast<size_t>(E::kProtocol)];
}

}  // namespace

Controller::Controller(ControllerOptions opts) : opts_(std::move(opts)), rng_(opts_.seed) {
  if (!opts_.clock_ms) opts_.clock_ms = SteadyMs;
  base_ = std::make_unique<shm::Snapshot>();
  published_ = std::make_unique<shm::Snapshot>();
  scratch_ = std::make_unique<shm::Snapshot>();
  std::memset(base_.get(), 0, sizeof(shm::Snapshot));
  std::memset(published_.get(), 0, sizeof(shm::Snapshot));
  std::memset(scratch_.get(), 0, sizeof(shm::Snapshot));
  pool_ = std::make_unique<WorkerPool>(std::max<size_t>(1, opts_.worker_threads), 4096);
}

Controller::~Controller() { Shutdown(); }

llmgw::Status Controller::Start(const std::string& config_path) {
  ConfigResult r = LoadConfigFile(config_path);
  if (!r.ok()) return Error(ErrorKind::kConfig, ErrorSide::kInternal, false, "%s", r.ErrorText().c_str());
  return StartWithConfig(std::move(r.config));
}

llmgw::Status Controller::StartWithConfig(Config cfg) {
  started_ms_ = Now();
  shm::Snapshot built;
  std::memset(&built, 0, sizeof(built));
  SlotAssigner slots;
  Status st = BuildSnapshot(cfg, &slots, &built);
  if (!st.ok()) return st;
  if (opts_.use_shm) {
    auto obj = shm::ShmObject::Open(cfg.ShmName());
    if (!obj.ok()) return obj.error();
    shm_ = std::move(obj.value());
    writer_ = std::make_unique<shm::SnapshotWriter>(shm_->region());
  }
  std::lock_guard<std::mutex> l(mu_);
  config_path_ = cfg.source_file;
  cfg_ = std::move(cfg);
  slots_ = slots;
  *base_ = built;
  config_version_ = 1;
  std::string summary;
  RebuildRuntime(cfg_, &summary);
  dirty_ = true;
  Publish(Now());
  LOG_INFO("llmcd started", {{"instance", cfg_.instance}, {"config", config_path_},
                             {"backends", static_cast<unsigned long>(backends_.size())}});
  return Status::Ok();
}

void Controller::Shutdown() {
  {
    std::lock_guard<std::mutex> l(mu_);
    if (shut_down_) return;
    shut_down_ = true;
  }
  cancel_io_ = true;  // in-flight probes/scrapes give up within ~50 ms, not their timeouts
  pool_.reset();      // joins workers
  std::lock_guard<std::mutex> l(mu_);
  writer_.reset();
  if (shm_) shm_->Close();
  shm_.reset();
}

// Rebuilds per-backend runtime state from cfg, keeping what is known about backends
// that stay (health, breaker, EWMAs, drain flag), so a reload loses no signal.
void Controller::RebuildRuntime(const Config& cfg, std::string* summary) {
  std::set<std::string> seen;
  for (const auto& m : cfg.models) {
    auto& mrt = models_[m.name];
    if (!mrt) mrt = std::make_unique<ModelRt>();
    if (!mrt->bandit || mrt->policy != m.policy)
      mrt->bandit = std::make_unique<routing::AdaptiveBandit>(cfg.routing.adaptive_exploration,
                                                               cfg.routing.adaptive_decay, rng_());
    mrt->policy = m.policy;
    for (const auto& b : m.backends) {
      seen.insert(b.id);
      auto& rt = backends_[b.id];
      bool added = !rt;
      if (added) {
        rt = std::make_unique<BackendRt>();
        rt->id = b.id;
        // Spread first probes over a tenth of the interval so a big fleet is not probed
        // in lock-step, yet health is known quickly after start.
        uint64_t spread = std::max<uint32_t>(1, cfg.health.interval_ms / 10);
        rt->next_probe_ms = Now() + rng_() % spread;
        rt->next_scrape_ms = Now() + rng_() % std::max<uint32_t>(1, cfg.health.scrape_interval_ms / 10);
        if (summary && config_version_ > 1) *summary += "added backend " + b.id + "\n";
      } else if (summary) {
        if (rt->weight != b.weight)
          *summary += "backend " + b.id + " weight " + std::to_string(rt->weight) + " -> " +
                      std::to_string(b.weight) + "\n";
        if (rt->url != b.url) *summary += "backend " + b.id + " url " + rt->url + " -> " + b.url + "\n";
      }
      if (!added && rt->url != b.url) {
        // Same id, different server: what was learnt about the old one no longer applies.
        rt->use_models_fallback = false;
        rt->have_prev = false;
        mrt->bandit->Forget(static_cast<uint32_t>(rt->slot));
      }
      rt->url = b.url;
      rt->model = m.name;
      rt->weight = b.weight;
      rt->max_concurrent = b.max_concurrent;
      rt->configured_engine = b.engine;
      if (b.engine != Engine::kAuto) rt->engine = b.engine;
      rt->slot = slots_.BackendSlot(b.id);
      const shm::BackendEntry& be = base_->backends[rt->slot];
      rt->target = HttpTarget{};
      if (be.family == AF_INET) {
        auto* sa = reinterpret_cast<sockaddr_in*>(&rt->target.addr);
        sa->sin_family = AF_INET;
        sa->sin_port = htons(be.port);
        std::memcpy(&sa->sin_addr, be.addr, 4);
        rt->target.addr_len = sizeof(sockaddr_in);
      } else {
        auto* sa = reinterpret_cast<sockaddr_in6*>(&rt->target.addr);
        sa->sin6_family = AF_INET6;
        sa->sin6_port = htons(be.port);
        std::memcpy(&sa->sin6_addr, be.addr, 16);
        rt->target.addr_len = sizeof(sockaddr_in6);
      }
      rt->target.host_header = be.host_header;
      rt->target.base_path = be.base_path;
      std::string id = b.id;
      if (!rt->breaker) {
        rt->breaker = std::make_unique<CircuitBreaker>(
            cfg.circuit_breaker, opts_.clock_ms,
            [this, id](CircuitState from, CircuitState to, std::string_view why) {
              // Called with mu_ held (breakers are only driven under it).
              std::string key = std::string(CircuitStateName(from)) + "->" + std::string(CircuitStateName(to));
              ++counters_.circuit_transitions[key];
              dirty_ = true;
              LOG_WARN("circuit breaker transition", {{"backend", id}, {"from", CircuitStateName(from)},
                                                      {"to", CircuitStateName(to)}, {"reason", why}});
            });
      } else {
        rt->breaker->Reconfigure(cfg.circuit_breaker);
      }
    }
  }
  for (auto it = backends_.begin(); it != backends_.end();) {
    if (!seen.count(it->first)) {
      if (summary) *summary += "removed backend " + it->first + "\n";
      // Its slot may later go to another backend: the bandit must not carry its history over.
      auto m = models_.find(it->second->model);
      if (m != models_.end() && m->second->bandit && it->second->slot >= 0)
        m->second->bandit->Forget(static_cast<uint32_t>(it->second->slot));
      it = backends_.erase(it);
    } else {
      ++it;
    }
  }
  for (auto it = models_.begin(); it != models_.end();) {
    bool keep = false;
    for (const auto& m : cfg.models) keep |= m.name == it->first;
    it = keep ? std::next(it) : models_.erase(it);
  }
}

ReloadOutcome Controller::Validate(const std::string& yaml, const std::string& filename) {
  ReloadOutcome o;
  ConfigResult r = ParseConfig(yaml, filename.empty() ? "<request>" : filename);
  o.ok = r.ok();
  for (const auto& e : r.errors) o.errors.push_back(e.ToString());
  return o;
}

ReloadOutcome Controller::ReloadFromFile() {
  std::string path;
  {
    std::lock_guard<std::mutex> l(mu_);
    path = config_path_;
  }
  return Apply(LoadConfigFile(path));
}

ReloadOutcome Controller::ReloadFromText(const std::string& yaml, const std::string& filename) {
  ConfigResult r = ParseConfig(yaml, filename);
  r.config.source_file = filename;
  return Apply(std::move(r));
}

ReloadOutcome Controller::Apply(ConfigResult parsed) {
  ReloadOutcome o;
  auto reject = [&](std::vector<std::string> errors) {
    std::lock_guard<std::mutex> l(mu_);
    ++counters_.config_reload_failures;
    o.ok = false;
    o.errors = std::move(errors);
    o.version = config_version_;
    for (const auto& e : o.errors) LOG_ERROR("config reload rejected; keeping the running config", {{"error", e}});
    return o;
  };
  if (!parsed.ok()) {
    std::vector<std::string> errs;
    for (const auto& e : parsed.errors) errs.push_back(e.ToString());
    return reject(std::move(errs));
  }
  SlotAssigner slots;
  std::string old_instance;
  {
    std::lock_guard<std::mutex> l(mu_);
    slots = slots_;
    old_instance = cfg_.instance;
  }
  if (parsed.config.instance != old_instance)
    return reject({parsed.config.source_file + ":0: instance: cannot change from '" + old_instance +
                   "' to '" + parsed.config.instance + "' on reload; restart llmcd"});
  // Built outside the lock: hostname resolution may block.
  auto built = std::make_unique<shm::Snapshot>();
  std::memset(built.get(), 0, sizeof(shm::Snapshot));
  Status st = BuildSnapshot(parsed.config, &slots, built.get());
  if (!st.ok()) return reject({parsed.config.source_file + ":0: models: " + std::string(st.error().message())});

  std::lock_guard<std::mutex> l(mu_);
  std::string summary;
  const Config& nc = parsed.config;
  auto note = [&](const char* what, bool changed) {
    if (changed) summary += std::string(what) + " changed\n";
  };
  note("health", nc.health.interval_ms != cfg_.health.interval_ms || nc.health.timeout_ms != cfg_.health.timeout_ms ||
                     nc.health.path != cfg_.health.path);
  note("circuit_breaker", nc.circuit_breaker.failure_threshold != cfg_.circuit_breaker.failure_threshold ||
                              nc.circuit_breaker.open_ms != cfg_.circuit_breaker.open_ms);
  note("admin (takes effect after restart)", nc.admin.grpc_listen != cfg_.admin.grpc_listen ||
                                                 nc.admin.metrics_listen != cfg_.admin.metrics_listen ||
                                                 nc.admin.token_file != cfg_.admin.token_file);
  for (const auto& m : nc.models) {
    const ModelConfig* old = cfg_.FindModel(m.name);
    if (!old) summary += "added model " + m.name + "\n";
    else if (old->policy != m.policy)
      summary += "model " + m.name + " policy " + std::string(PolicyName(old->policy)) + " -> " +
                 std::string(PolicyName(m.policy)) + "\n";
  }
  for (const auto& m : cfg_.models)
    if (!nc.FindModel(m.name)) summary += "removed model " + m.name + "\n";
  if (nc.source_file.empty()) parsed.config.source_file = config_path_;
  cfg_ = std::move(parsed.config);
  slots_ = slots;
  *base_ = *built;
  ++config_version_;
  ++epoch_;
  RebuildRuntime(cfg_, &summary);
  ++counters_.config_reloads;
  dirty_ = true;
  if (summary.empty()) summary = "no changes\n";
  LOG_INFO("config reloaded", {{"version", static_cast<unsigned long>(config_version_)}, {"changes", summary}});
  o.ok = true;
  o.version = config_version_;
  o.summary = summary;
  return o;
}

// ---------------------------------------------------------------------------------------
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
      b->probe_in_flight = pool_->Submit([this, target, path, timeout, epoch, bid] {
        ProbeResult r{ProbeResult::kProbe, bid, epoch};
        HttpResponse resp = HttpGet(target, path, timeout, 1u << 20, &cancel_io_);
        if (resp.ok() && resp.status == 404 && path != "/v1/models") {
          r.fell_back = true;
          resp = HttpGet(target, "/v1/models", timeout, 1u << 20, &cancel_io_);
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
      b->scrape_in_flight = pool_->Submit([this, target, path, timeout, epoch, bid] {
        ProbeResult r{ProbeResult::kScrape, bid, epoch};
        HttpResponse resp = HttpGet(target, path, timeout, 16u << 20, &cancel_io_);
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
      if (sig.has_ttft) {
        double dc = sig.ttft_count - b->scraped_ttft_count, ds = sig.ttft_sum_s - b->scraped_ttft_sum;
        if (b->scraped_once && dc > 0 && ds >= 0 && b->prev.ttft.count == 0)
          b->ewma_ttft_ms = Ewma(b->ewma_ttft_ms, ds / dc * 1000.0, cfg_.control.ewma_alpha, b->ewma_ttft_ms == 0);
        double q;
        if (HistogramQuantile(sig.ttft_buckets, b->scraped_once ? b->prev_ttft_buckets
                                                                  : std::vector<std::pair<double, double>>{},
                              0.5, &q))
          b->ttft_p50_ms = q * 1000;
        if (HistogramQuantile(sig.ttft_buckets, b->scraped_once ? b->prev_ttft_buckets
                                                                  : std::vector<std::pair<double, double>>{},
                              0.99, &q))
          b->ttft_p99_ms = q * 1000;
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

void Controller::UpdateFromStats(uint64_t now) {
  if (!shm_) return;
  uint64_t dead_after = std::max<uint64_t>(500, 3ull * cfg_.control.heartbeat_ms);
  shm::SumStats(*shm_->region(), base_->num_backends, shm::NowUnixMs(), dead_after, &stats_);
  bool alive = stats_.live_threads > 0;
  if (alive != dataplane_alive_) {
    if (alive) LOG_INFO("data plane attached", {{"threads", stats_.live_threads}});
    else if (dataplane_seen_) LOG_WARN("data plane heartbeat lost; no live llmgw thread", {});
    dataplane_alive_ = alive;
  }
  dataplane_seen_ |= alive;
  // Gateway-wide rates over the last second or so.
  uint64_t errs = 0;
  for (size_t i = 1; i < 32; ++i) errs += stats_.errors_by_kind[i];
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
    if (b->slot < 0 || static_cast<size_t>(b->slot) >= stats_.backends.size()) continue;
    const shm::BackendTotals& t = stats_.backends[b->slot];
    if (t.key != 0 && t.key != base_->backends[b->slot].key) continue;  // slot still counts for an old backend
    uint64_t prev_inflight = b->fleet_in_flight;
    b->fleet_in_flight = t.in_flight;
    for (const auto& [session, by_id] : remote_in_flight_) {  // the fleet's agents
      auto r = by_id.find(id);
      if (r != by_id.end()) b->fleet_in_flight += r->second;
    }
    b->requests_total = t.requests;
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
    b->prev = t;
    b->tick_successes = ok;
    b->tick_failures = fail;
    if (lat_n) {
      b->tick_latency_ms = lat_s / 1000.0 / lat_n;
      b->ewma_latency_ms = Ewma(b->ewma_latency_ms, b->tick_latency_ms, alpha, b->ewma_latency_ms == 0);
    }
    if (ttft_n) {
      b->tick_ttft_ms = ttft_s / 1000.0 / ttft_n;
      b->ewma_ttft_ms = Ewma(b->ewma_ttft_ms, b->tick_ttft_ms, alpha, b->ewma_ttft_ms == 0);
      b->ttft_p50_ms = t.ttft.QuantileUs(0.5) / 1000.0;
      b->ttft_p99_ms = t.ttft.QuantileUs(0.99) / 1000.0;
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

uint8_t Controller::PublishedState(const BackendRt& b) const {
  using S = shm::BackendState;
  // Operator intent first: a drained backend stays drained whatever its health.
  if (b.draining) return static_cast<uint8_t>(S::kDraining);
  if (!b.healthy || b.passive_unhealthy) return static_cast<uint8_t>(S::kUnhealthy);
  if (b.breaker->state() == CircuitState::kOpen) return static_cast<uint8_t>(S::kCircuitOpen);
  if (b.breaker->state() == CircuitState::kHalfOpen) return static_cast<uint8_t>(S::kHalfOpen);
  return static_cast<uint8_t>(S::kHealthy);
}

void Controller::Publish(uint64_t now) {
  shm::Snapshot& s = *scratch_;
  // Copy only the used ranges of the base, then overlay.
  s.num_backends = base_->num_backends;
  s.num_models = base_->num_models;
  s.limits = base_->limits;
  std::memcpy(s.models, base_->models, sizeof(shm::ModelEntry) * s.num_models);
  std::memcpy(s.backends, base_->backends, sizeof(shm::BackendEntry) * s.num_backends);
  for (auto& [id, b] : backends_) {
    shm::BackendEntry& e = s.backends[b->slot];
    e.state = PublishedState(*b);
    e.engine = static_cast<uint8_t>(b->engine);
    bool fresh = b->scraped_once && cfg_.health.scrape_metrics &&
                 now - b->last_scrape_ok_ms <= cfg_.health.metrics_stale_ms;
    e.metrics_fresh = fresh ? 1 : 0;
    // Stale numbers are zeroed, not kept: policies then fall back to the gateway's own load.
    e.running = fresh && b->sig.has_running ? static_cast<float>(b->sig.running) : 0;
    e.waiting = fresh && b->sig.has_waiting ? static_cast<float>(b->sig.waiting) : 0;
    e.kv_usage = fresh && b->sig.has_kv ? static_cast<float>(b->sig.kv_usage) : 0;
    e.ewma_latency_ms = static_cast<float>(b->ewma_latency_ms);
    e.ewma_ttft_ms = static_cast<float>(b->ewma_ttft_ms);
    e.error_rate = static_cast<float>(b->error_rate);
    e.fleet_in_flight = static_cast<uint32_t>(std::min<uint64_t>(b->fleet_in_flight, UINT32_MAX));
    e.adaptive_weight = static_cast<float>(b->adaptive_weight);
    e.half_open_budget = b->breaker->state() == CircuitState::kHalfOpen ? cfg_.circuit_breaker.half_open_requests : 0;
  }
  bool changed = dirty_ || s.num_backends != published_->num_backends || s.num_models != published_->num_models ||
                 std::memcmp(&s.limits, &published_->limits, sizeof(s.limits)) != 0 ||
                 std::memcmp(s.models, published_->models, sizeof(shm::ModelEntry) * s.num_models) != 0 ||
                 std::memcmp(s.backends, published_->backends, sizeof(shm::BackendEntry) * s.num_backends) != 0;
  bool heartbeat_due = now - last_publish_ms_ >= cfg_.control.heartbeat_ms;
  if (!changed && !heartbeat_due && last_publish_ms_ != 0) {
    if (writer_) writer_->Heartbeat();
    return;
  }
  s.published_unix_ms = shm::NowUnixMs();
  if (writer_) generation_ = writer_->Publish(&s);
  else ++generation_;
  // Keep an exact copy of what was published for the next comparison.
  published_->num_backends = s.num_backends;
  published_->num_models = s.num_models;
  published_->limits = s.limits;
  std::memcpy(published_->models, s.models, sizeof(shm::ModelEntry) * s.num_models);
  std::memcpy(published_->backends, s.backends, sizeof(shm::BackendEntry) * s.num_backends);
  published_->generation = generation_;
  last_publish_ms_ = now == 0 ? 1 : now;
  dirty_ = false;
  ++counters_.snapshots_published;
}

std::string Controller::PublishedSnapshotBytes(uint64_t* generation) const {
  std::lock_guard<std::mutex> l(mu_);
  *generation = last_publish_ms_ == 0 ? 0 : generation_;
  return last_publish_ms_ == 0 ? std::string() : EncodeSnapshot(*published_);
}

uint64_t Controller::published_generation() const {
  std::lock_guard<std::mutex> l(mu_);
  return last_publish_ms_ == 0 ? 0 : generation_;
}

void Controller::SetRemoteInFlight(uint64_t session, std::map<std::string, uint64_t> by_backend) {
  std::lock_guard<std::mutex> l(mu_);
  if (by_backend.empty()) remote_in_flight_.erase(session);
  else remote_in_flight_[session] = std::move(by_backend);
}

void Controller::Tick() {
  std::lock_guard<std::mutex> l(mu_);
  if (shut_down_) return;
  uint64_t now = Now();
  DrainMailbox(now);
  UpdateFromStats(now);
  for (auto& [id, b] : backends_) b->breaker->Advance();
  UpdateBandits();
  DispatchJobs(now);
  Publish(now);
}

void Controller::Run(const std::atomic<bool>& stop) {
  while (!stop.load()) {
    auto start = std::chrono::steady_clock::now();
    Tick();
    uint32_t tick_ms;
    {
      std::lock_guard<std::mutex> l(mu_);
      tick_ms = std::max<uint32_t>(cfg_.control.tick_ms, 5);
    }
    auto next = start + std::chrono::milliseconds(tick_ms);
    // Sleep in small steps so a stop request is honoured promptly.
    while (!stop.load() && std::chrono::steady_clock::now() < next)
      std::this_thread::sleep_for(std::min<std::chrono::steady_clock::duration>(
          std::chrono::milliseconds(20), next - std::chrono::steady_clock::now()));
  }
}

void Controller::MarkDirty() {
  std::lock_guard<std::mutex> l(mu_);
  dirty_ = true;
}

// ---------------------------------------------------------------------------------------
Controller::BackendRt* Controller::Find(const std::string& id) {
  auto it = backends_.find(id);
  return it == backends_.end() ? nullptr : it->second.get();
}

bool Controller::Drain(const std::string& id, admin::Backend* out) {
  std::lock_guard<std::mutex> l(mu_);
  BackendRt* b = Find(id);
  if (!b) return false;
  if (!b->draining) LOG_INFO("backend drained by operator", {{"backend", id}});
  b->draining = true;
  dirty_ = true;
  if (out) FillBackend(*b, out);
  return true;
}

bool Controller::Undrain(const std::string& id, admin::Backend* out) {
  std::lock_guard<std::mutex> l(mu_);
  BackendRt* b = Find(id);
  if (!b) return false;
  if (b->draining) LOG_INFO("backend undrained by operator", {{"backend", id}});
  b->draining = false;
  dirty_ = true;
  if (out) FillBackend(*b, out);
  return true;
}

bool Controller::ResetCircuit(const std::string& id, admin::Backend* out) {
  std::lock_guard<std::mutex> l(mu_);
  BackendRt* b = Find(id);
  if (!b) return false;
  b->breaker->Reset();
  b->passive_unhealthy = false;
  b->error_rate = 0;
  dirty_ = true;
  if (out) FillBackend(*b, out);
  return true;
}

void Controller::FillBackend(const BackendRt& b, admin::Backend* o) const {
  o->set_id(b.id);
  o->set_url(b.url);
  o->set_model(b.model);
  o->set_state(static_cast<admin::BackendState>(PublishedState(b)));
  o->set_weight(b.weight);
  o->set_in_flight(b.fleet_in_flight);
  bool fresh = b.scraped_once && Now() - b.last_scrape_ok_ms <= cfg_.health.metrics_stale_ms;
  o->set_running(b.sig.has_running ? b.sig.running : 0);
  o->set_waiting(b.sig.has_waiting ? b.sig.waiting : 0);
  o->set_kv_cache_usage(b.sig.has_kv ? b.sig.kv_usage : 0);
  o->set_metrics_stale(!fresh);
  o->set_ewma_latency_ms(b.ewma_latency_ms);
  o->set_ewma_ttft_ms(b.ewma_ttft_ms);
  o->set_ttft_p50_ms(b.ttft_p50_ms);
  o->set_ttft_p99_ms(b.ttft_p99_ms);
  o->set_error_rate(b.error_rate);
  o->set_requests_total(b.requests_total);
  o->set_max_concurrent(b.max_concurrent);
  o->set_engine(b.engine == Engine::kAuto ? "unknown" : std::string(EngineName(b.engine)));
  o->set_adaptive_weight(b.adaptive_weight);
  o->set_last_error(b.last_error);
}

admin::GetStatusResponse Controller::GetStatus() const {
  std::lock_guard<std::mutex> l(mu_);
  admin::GetStatusResponse s;
  s.set_version(LLMGW_VERSION_STRING);
  s.set_uptime_seconds((Now() - started_ms_) / 1000.0);
  s.set_snapshot_generation(generation_);
  uint32_t healthy = 0;
  for (const auto& [id, b] : backends_)
    healthy += PublishedState(*b) == static_cast<uint8_t>(shm::BackendState::kHealthy) ? 1 : 0;
  s.set_backends_healthy(healthy);
  s.set_backends_total(static_cast<uint32_t>(backends_.size()));
  s.set_requests_per_second(rps_);
  s.set_errors_per_second(eps_);
  s.set_requests_total(stats_.requests_total);
  s.set_active_requests(stats_.active_requests);
  s.set_dataplane_threads(stats_.live_threads);
  s.set_dataplane_alive(dataplane_alive_);
  s.set_instance(cfg_.instance);
  s.set_role(cfg_.fleet.role);
  s.set_config_file(config_path_);
  s.set_config_reloads(counters_.config_reloads);
  s.set_config_reload_failures(counters_.config_reload_failures);
  s.set_models(static_cast<uint32_t>(cfg_.models.size()));
  return s;
}

std::vector<admin::Backend> Controller::Backends(const std::string& model_filter) const {
  std::lock_guard<std::mutex> l(mu_);
  std::vector<admin::Backend> out;
  // Config order, so listings are stable and read like the file.
  for (const auto& m : cfg_.models) {
    bool match = model_filter.empty() || m.name == model_filter;
    for (const auto& a : m.aliases) match |= a == model_filter;
    if (!match) continue;
    for (const auto& bc : m.backends) {
      auto it = backends_.find(bc.id);
      if (it == backends_.end()) continue;
      FillBackend(*it->second, &out.emplace_back());
    }
  }
  return out;
}

bool Controller::GetBackend(const std::string& id, admin::Backend* out) const {
  std::lock_guard<std::mutex> l(mu_);
  auto it = backends_.find(id);
  if (it == backends_.end()) return false;
  FillBackend(*it->second, out);
  return true;
}

admin::GetConfigResponse Controller::ConfigView() const {
  std::lock_guard<std::mutex> l(mu_);
  admin::GetConfigResponse r;
  // Secrets never live in the YAML itself (token and keys come from files), so the text
  // is returned as loaded.
  r.set_yaml(cfg_.source_text);
  r.set_path(config_path_);
  r.set_version(config_version_);
  return r;
}

admin::GetRoutingStatsResponse Controller::RoutingStats() const {
  std::lock_guard<std::mutex> l(mu_);
  admin::GetRoutingStatsResponse r;
  for (const auto& m : cfg_.models) {
    auto* ms = r.add_models();
    ms->set_model(m.name);
    ms->set_policy(std::string(PolicyName(m.policy)));
    for (const auto& bc : m.backends) {
      auto* p = ms->add_picks();
      p->set_id(bc.id);
      auto it = backends_.find(bc.id);
      if (it != backends_.end() && it->second->slot >= 0 &&
          static_cast<size_t>(it->second->slot) < stats_.backends.size())
        p->set_picks(stats_.backends[it->second->slot].picks);
    }
    int mslot = -1;
    for (uint32_t i = 0; i < base_->num_models; ++i)
      if (base_->models[i].present && m.name == base_->models[i].name) mslot = static_cast<int>(i);
    if (mslot >= 0 && static_cast<size_t>(mslot) < stats_.models.size()) {
      const auto& mt = stats_.models[mslot];
      ms->set_retries(mt.retries);
      ms->set_fallbacks(mt.fallbacks);
      ms->set_requests(mt.RequestsTotal());
      ms->set_rejected(mt.rejected);
    }
  }
  return r;
}

Config Controller::CurrentConfig() const {
  std::lock_guard<std::mutex> l(mu_);
  return cfg_;
}

shm::StatsTotals Controller::StatsCopy() const {
  std::lock_guard<std::mutex> l(mu_);
  return stats_;
}

ControllerCounters Controller::Counters() const {
  std::lock_guard<std::mutex> l(mu_);
  return counters_;
}

std::map<std::string, Controller::CircuitInfo> Controller::Circuits() const {
  std::lock_guard<std::mutex> l(mu_);
  std::map<std::string, CircuitInfo> out;
  for (const auto& [id, b] : backends_) out[id] = {b->breaker->state(), b->breaker->failures_total()};
  return out;
}

std::vector<std::pair<std::string, int>> Controller::ModelSlots() const {
  std::lock_guard<std::mutex> l(mu_);
  std::vector<std::pair<std::string, int>> out;
  for (uint32_t i = 0; i < base_->num_models; ++i)
    if (base_->models[i].present) out.emplace_back(base_->models[i].name, static_cast<int>(i));
  return out;
}

uint64_t Controller::config_version() const {
  std::lock_guard<std::mutex> l(mu_);
  return config_version_;
}

}  // namespace llmgw::cp
