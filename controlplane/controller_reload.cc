// Controller: config validation and reload, and the rebuild of per-backend runtime state
// a new config drives (keeping what is known about backends that stay).
#include <arpa/inet.h>

#include <algorithm>
#include <cstring>
#include <set>

#include "common/config_keys.h"
#include "common/fleet_config.h"
#include "common/log.h"
#include "controlplane/controller.h"
#include "controlplane/controller_internal.h"

namespace llmgw::cp {

// How errors and logs name the config stored in etcd.
constexpr const char* kFleetConfigName = "<fleet config in etcd>";

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
    bool homes = m.policy == Policy::kPrefixAffinity || m.policy == Policy::kAdaptive;
    if (!homes) mrt->placer.reset();
    else if (!mrt->placer || mrt->policy != m.policy)
      mrt->placer = std::make_unique<routing::PrefixPlacer>(cfg.routing.bounded_load, m.policy == Policy::kAdaptive);
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
      rt->target.tls = b.parsed.tls();
      if (rt->target.tls && !b.tls.verify)  // on every load and reload: an operator should keep seeing it
        LOG_WARN("tls.verify is off: the backend's certificate is not checked", {{"backend", b.id}});
      rt->target.tls_options = HttpTlsOptions{b.tls.ca_file, b.tls.server_name, b.tls.verify,
                                              b.tls.client_cert_file, b.tls.client_key_file};
      {
        providers::ProviderKind kind = providers::ProviderKind::kOpenAiCompatible;
        providers::ParseProvider(b.provider, &kind);
        const providers::Provider& prov = providers::ProviderFor(kind);
        providers::ProviderParams params{b.api_key, b.organization, b.deployment, b.api_version, {}};
        char buf[4096];
        providers::OutBuf hdrs(buf, sizeof buf);
        prov.WriteAuthHeaders(params, &hdrs);
        std::string_view all = hdrs.view();
        for (size_t pos = 0; pos < all.size();) {
          size_t eol = all.find("\r\n", pos);
          if (eol == std::string_view::npos) break;
          rt->target.headers.emplace_back(all.substr(pos, eol - pos));
          pos = eol + 2;
        }
        rt->hosted = b.hosted();
        rt->scraped = prov.scraped();
        providers::OutBuf path(buf, sizeof buf);
        prov.WriteProbePath(params, &path);
        rt->probe_path = std::string(path.view());
      }
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
  std::string path, fleet;
  {
    std::lock_guard<std::mutex> l(mu_);
    path = config_path_;
    fleet = fleet_yaml_;
  }
  // A rotated key file is re-read. With a stored fleet config the local file changes only
  // what is local to this host; the fleet-wide keys stay the stored ones.
  if (!fleet.empty()) return Apply(LoadConfigWithFleet(path, fleet, kFleetConfigName, /*read_backend_keys=*/true));
  return Apply(LoadConfigFile(path, /*read_backend_keys=*/true));
}

void Controller::NoteFleetConfig(const std::string& yaml, int64_t revision) {
  std::lock_guard<std::mutex> l(mu_);
  fleet_yaml_ = yaml;
  fleet_revision_ = yaml.empty() ? 0 : revision;
}

int64_t Controller::fleet_config_revision() const {
  std::lock_guard<std::mutex> l(mu_);
  return fleet_revision_;
}

ReloadOutcome Controller::ApplyFleetConfig(const std::string& yaml, int64_t revision) {
  std::string path;
  {
    std::lock_guard<std::mutex> l(mu_);
    path = config_path_;
  }
  ReloadOutcome o = Apply(yaml.empty() ? LoadConfigFile(path, true)
                                       : LoadConfigWithFleet(path, yaml, kFleetConfigName, true));
  if (o.ok) NoteFleetConfig(yaml, revision);
  return o;
}

void Controller::SetFleetConfigStore(FleetConfigStore store) {
  std::lock_guard<std::mutex> l(mu_);
  fleet_store_ = std::move(store);
}

ReloadOutcome Controller::PushFleetConfig(const std::string& yaml, const std::string& filename, int64_t* revision) {
  ReloadOutcome o;
  std::string path;
  FleetConfigStore store;
  {
    std::lock_guard<std::mutex> l(mu_);
    path = config_path_;
    store = fleet_store_;
  }
  if (!store) {
    o.errors.push_back("this llmcd has no fleet.etcd: a config can be pushed only to a controller of an HA fleet");
    return o;
  }
  // Errors name the pushed file as the operator knows it.
  std::string name = filename.empty() ? std::string(kFleetConfigName) : filename;
  ConfigResult merged = LoadConfigWithFleet(path, yaml, name, true);
  for (const auto& e : merged.errors) o.errors.push_back(e.ToString());
  if (!o.errors.empty()) return o;
  SlotAssigner slots;
  auto built = std::make_unique<shm::Snapshot>();
  std::memset(built.get(), 0, sizeof(shm::Snapshot));
  o.errors = Prepare(merged, &slots, built.get());
  if (!o.errors.empty()) return o;
  {
    std::lock_guard<std::mutex> l(mu_);
    o.summary = ConfigChangesSummary(DiffConfigs(cfg_, merged.config));
    o.version = config_version_;
  }
  auto rev = store(yaml);
  if (!rev.ok()) {
    o.errors.push_back("cannot store the config in etcd: " + std::string(rev.error().message()));
    return o;
  }
  if (revision) *revision = rev.value();
  LOG_INFO("fleet config stored in etcd", {{"revision", static_cast<long>(rev.value())}, {"file", name}});
  o.ok = true;
  return o;
}

std::vector<std::string> Controller::Prepare(const ConfigResult& parsed, SlotAssigner* slots,
                                             shm::Snapshot* built) const {
  if (!parsed.ok()) {
    std::vector<std::string> errs;
    for (const auto& e : parsed.errors) errs.push_back(e.ToString());
    return errs;
  }
  std::string old_instance;
  {
    std::lock_guard<std::mutex> l(mu_);
    *slots = slots_;
    old_instance = cfg_.instance;
  }
  if (parsed.config.instance != old_instance)
    return {parsed.config.source_file + ":0: instance: cannot change from '" + old_instance + "' to '" +
            parsed.config.instance + "' on reload; restart llmcd"};
  // Outside the lock: hostname resolution may block.
  Status st = BuildSnapshot(parsed.config, slots, built);
  if (!st.ok()) return {parsed.config.source_file + ":0: models: " + std::string(st.error().message())};
  return {};
}

ReloadOutcome Controller::ReloadFromText(const std::string& yaml, const std::string& filename) {
  ConfigResult r = ParseConfig(yaml, filename);
  r.config.source_file = filename;
  if (r.ok()) ResolveBackendKeys(&r.config, &r.errors);
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
  SlotAssigner slots;
  auto built = std::make_unique<shm::Snapshot>();
  std::memset(built.get(), 0, sizeof(shm::Snapshot));
  if (auto errs = Prepare(parsed, &slots, built.get()); !errs.empty()) return reject(std::move(errs));

  std::lock_guard<std::mutex> l(mu_);
  // Every changed key, model field and backend field, from the config key tables.
  std::string summary = ConfigChangesSummary(DiffConfigs(cfg_, parsed.config));
  const Config& nc = parsed.config;
  if (nc.source_file.empty()) parsed.config.source_file = config_path_;
  cfg_ = std::move(parsed.config);
  slots_ = slots;
  *base_ = *built;
  ++config_version_;
  ++epoch_;
  RebuildRuntime(cfg_, nullptr);
  ++counters_.config_reloads;
  dirty_ = true;
  LOG_INFO("config reloaded", {{"version", static_cast<unsigned long>(config_version_)}, {"changes", summary}});
  o.ok = true;
  o.version = config_version_;
  o.summary = summary;
  return o;
}

}  // namespace llmgw::cp
