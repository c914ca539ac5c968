// llmcd: the control plane daemon. Thin wrapper: parse flags, load config, start the
// controller, admin gRPC server (with the Fleet service) and metrics exporter, wiring
// them together here, then turn signals and config file changes into reloads or a clean
// exit.
#include <signal.h>

#include <map>
#include <set>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>

#include "common/config.h"
#include "common/env_overrides.h"
#include "common/fleet_config.h"
#include "common/log.h"
#include "common/shm.h"
#include "common/systemd_notify.h"
#include "common/writer_lock.h"
#include "controlplane/admin_service.h"
#include "controlplane/auth.h"
#include "controlplane/config_sync.h"
#include "controlplane/controller.h"
#include "controlplane/drain_sync.h"
#include "controlplane/election.h"
#include "controlplane/etcd_client.h"
#include "controlplane/file_watch.h"
#include "controlplane/fleet.h"
#include "controlplane/metrics_exporter.h"
#include "controlplane/tracing_service.h"

namespace {

void Usage(FILE* f) {
  std::fprintf(f,
               "usage: llmcd --config FILE [--log-level LEVEL] [--agent-of HOST:PORT]\n"
               "  Control plane of llmgw: health, scraping, circuit breakers, snapshots,\n"
               "  gRPC admin API (admin.grpc_listen) and Prometheus (admin.metrics_listen).\n"
               "  SIGHUP or a change to FILE reloads the config; SIGTERM exits cleanly.\n"
               "  --agent-of HOST:PORT: fleet agent of the controller llmcd at HOST:PORT (its\n"
               "  admin address): publish its snapshots into this host's shm (FILE's instance)\n"
               "  and report this host's data-plane stats to it (same as fleet.role: agent).\n");
}

// Waits up to 100 ms for one of the signals blocked in set; *sig is the one taken (or
// -1). True, after logging it, when it asks for shutdown (SIGTERM or SIGINT).
bool NextSignalIsShutdown(const sigset_t& set, int* sig) {
  timespec ts{0, 100 * 1000 * 1000};
  *sig = sigtimedwait(&set, nullptr, &ts);
  if (*sig != SIGTERM && *sig != SIGINT) return false;
  LOG_INFO("shutting down", {{"signal", *sig == SIGTERM ? "SIGTERM" : "SIGINT"}});
  return true;
}

// The agent role: no probes, scrapes or admin API of its own; the controller decides.
int RunAgent(llmgw::Config cfg, const std::string& controller, const sigset_t& set) {
  using namespace llmgw;
  std::string host, why;
  uint16_t port = 0;
  // No address: the leader is found in etcd (fleet.etcd.endpoints).
  if (!controller.empty() && !ParseHostPort(controller, &host, &port, &why)) {
    std::fprintf(stderr, "llmcd: --agent-of %s: %s\n", controller.c_str(), why.c_str());
    return 2;
  }
  TracingConfig tracing = cfg.tracing;
  std::string instance = cfg.instance;
  cp::FleetAgent agent(std::move(cfg), controller);
  Status st = agent.Start();
  if (!st.ok()) {
    LOG_ERROR("cannot start fleet agent", {{"error", st.error().message()}});
    return 1;
  }
  auto traces = cp::TracingService::Start(tracing, instance, agent.region());
  if (!traces.ok()) {
    LOG_ERROR("cannot start tracing", {{"error", traces.error().message()}});
    agent.Shutdown();
    return 1;
  }
  std::atomic<bool> stop{false};
  std::thread loop([&] { agent.Run(stop); });
  llmgw::NotifyReady("agent of " + (controller.empty() ? std::string("the fleet leader in etcd") : controller));
  // Backend keys are this host's (host_credentials.h): a rewritten key file, noticed
  // like llmcd notices its config file, or SIGHUP makes the agent read them again and
  // republish; the rest of the config is the controller's.
  uint64_t reread_due_ms = 0;
  auto now_ms = [] {
    return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                     std::chrono::steady_clock::now().time_since_epoch())
                                     .count());
  };
  for (;;) {
    int sig;
    if (NextSignalIsShutdown(set, &sig)) break;
    bool reread = false;
    if (sig == SIGHUP) {
      LOG_INFO("SIGHUP: re-reading backend keys (the rest of an agent's config comes from the controller)", {});
      reread = true;
    }
    if (agent.KeyFilesChanged()) reread_due_ms = now_ms() + 100;  // debounce bursts of writes
    if (reread_due_ms && now_ms() >= reread_due_ms) {
      reread_due_ms = 0;
      LOG_INFO("backend key file changed: re-reading backend keys", {});
      reread = true;
    }
    if (reread) agent.RefreshKeys();
  }
  stop = true;
  loop.join();
  traces.value().reset();
  agent.Shutdown();
  LOG_INFO("stopped", {});
  return 0;
}

// Where agents reach this controller: admin.grpc_listen, a wildcard host replaced by the
// host name (agents on other hosts cannot dial 0.0.0.0).
std::string AdvertisedAddress(const std::string& listen) {
  std::string host, why;
  uint16_t port = 0;
  if (!llmgw::ParseHostPort(listen, &host, &port, &why)) return listen;
  if (host == "0.0.0.0" || host == "::" || host.empty()) {
    char name[256] = {};
    gethostname(name, sizeof(name) - 1);
    host = name;
  }
  return (host.find(':') != std::string::npos ? "[" + host + "]" : host) + ":" + std::to_string(port);
}

}  // namespace

int main(int argc, char** argv) {
  using namespace llmgw;
  std::string config_path, log_level, agent_of;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if ((a == "--config" || a == "-c") && i + 1 < argc) config_path = argv[++i];
    else if (a == "--log-level" && i + 1 < argc) log_level = argv[++i];
    else if (a == "--help" || a == "-h") { Usage(stdout); return 0; }
    else if (a == "--version") { std::printf("llmcd %s\n", LLMGW_VERSION_STRING); return 0; }
    else if (a == "--agent-of" && i + 1 < argc) agent_of = argv[++i];
    else {
      std::fprintf(stderr, "llmcd: unknown argument '%s'\n", a.c_str());
      Usage(stderr);
      return 2;
    }
  }
  if (config_path.empty()) {
    Usage(stderr);
    return 2;
  }
  SetLogComponent("llmcd");
  UseJournalPriorities();
  // Watch the directory, not the file: editors and config managers replace files by
  // rename, which would silently end a watch on the old inode. The keys file
  // (auth.keys_file) is watched the same way, and again whenever a reload names another.
  // The watches are in place before the files are read and before the first snapshot is
  // published: an edit made as soon as llmgw serves (a provisioning script adding a key)
  // must not fall between the read and the watch (KeysTest.KeysFileChangesApplyWithoutRestart
  // lost such an edit in ~1 of 6 runs on a loaded machine).
  cp::FileWatch files;
  auto watch = [&](const std::string& path) {
    if (std::string why; !files.Watch(path, &why))
      LOG_WARN("inotify watch failed; reload with SIGHUP or the ReloadConfig RPC", {{"file", path}, {"error", why}});
  };
  watch(config_path);
  ConfigResult cr = LoadConfigFile(config_path, /*read_backend_keys=*/true);
  if (!cr.ok()) {
    std::fprintf(stderr, "%s", cr.ErrorText().c_str());
    return 1;
  }
  std::string keys_file = cr.config.keys_file_path;
  watch(keys_file);
  LogLevel lvl;
  if (ParseLogLevel(log_level.empty() ? cr.config.log_level : log_level, &lvl)) SetLogLevel(lvl);
  for (const std::string& o : EnvOverridesInEffect())
    LOG_INFO("config override from the environment", {{"override", o}});

  // Signals are taken synchronously by the main thread (sigtimedwait), so every thread
  // started below inherits the blocked mask.
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGHUP);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  signal(SIGPIPE, SIG_IGN);

  // One snapshot writer per instance, controller or agent: a second llmcd refuses here,
  // before it touches the shm object.
  auto writer_lock = WriterLock::Acquire(cr.config.ShmName());
  if (!writer_lock.ok()) {
    LOG_ERROR("cannot start: one llmcd per instance (stop the other, or give this one another `instance:`)",
              {{"error", writer_lock.error().message()}});
    return 1;
  }

  if (agent_of.empty() && cr.config.fleet.role == "agent") agent_of = cr.config.fleet.controller;
  // An agent with fleet.tls_ca_file sends its token over TLS: nothing to warn about.
  bool agent_tls = (!agent_of.empty() || cr.config.fleet.role == "agent") && !cr.config.fleet.tls_ca_file.empty();
  if (std::string w = agent_tls ? "" : cp::PlaintextTokenWarning(cr.config.admin, agent_of); !w.empty())
    LOG_WARN(w, {{"grpc_listen", agent_of.empty() ? cr.config.admin.grpc_listen : agent_of}});
  if (!agent_of.empty() || cr.config.fleet.role == "agent") return RunAgent(std::move(cr.config), agent_of, set);

  // fleet.etcd: the client for the election, drains and the stored fleet config. A stored
  // config is merged in before the first snapshot, so a controller never publishes its
  // local file's models first; while etcd cannot be read it starts on its local file and
  // takes the stored config once etcd answers (ConfigSync below).
  const EtcdConfig etcd_cfg = cr.config.fleet.etcd;
  std::unique_ptr<cp::EtcdClient> etcd;
  std::string fleet_yaml;
  int64_t fleet_rev = 0;
  if (!etcd_cfg.endpoints.empty()) {
    etcd = std::make_unique<cp::EtcdClient>(etcd_cfg, std::min<uint32_t>(1000, etcd_cfg.lease_ms / 3));
    auto stored = etcd->Get(cp::FleetConfigKey(etcd_cfg.prefix));
    if (!stored.ok()) {
      LOG_WARN("fleet config: cannot read it from etcd at start; serving the local file until etcd answers",
               {{"error", stored.error().message()}});
    } else if (stored.value()) {
      ConfigResult merged = LoadConfigWithFleet(config_path, stored.value()->value, "<fleet config in etcd>", true);
      if (merged.ok()) {
        cr = std::move(merged);
        fleet_yaml = stored.value()->value;
        fleet_rev = stored.value()->mod_revision;
        LOG_INFO("fleet config from etcd merged with the local file", {{"revision", static_cast<long>(fleet_rev)}});
      } else {
        LOG_ERROR("fleet config in etcd does not apply here; serving the local file",
                  {{"revision", static_cast<long>(stored.value()->mod_revision)}, {"error", merged.errors.front().ToString()}});
      }
    }
  }
  AdminConfig admin_cfg = cr.config.admin;
  TracingConfig tracing_cfg = cr.config.tracing;
  std::string instance = cr.config.instance;
  cp::Controller controller;
  controller.NoteFleetConfig(fleet_yaml, fleet_rev);
  Status st = controller.StartWithConfig(std::move(cr.config));
  if (!st.ok()) {
    LOG_ERROR("cannot start", {{"error", st.error().message()}});
    return 1;
  }
  cp::AdminServer admin(&controller);
  // The controller role also serves llmgw.admin.v1.Fleet (agents' Sync, ListGateways) on
  // the admin listener, behind the same token. Wired here so that neither the admin
  // service nor the controller depends on the fleet.
  auto fleet_registry = std::make_shared<cp::FleetRegistry>(&controller);
  // fleet.etcd: this controller campaigns for the lead; it serves agents only while it
  // leads and keeps its state warm (config, probes, its own host's snapshots) meanwhile.
  std::shared_ptr<cp::Election> election;
  cp::Leadership leadership;
  if (etcd) {
    controller.SetFleetConfigStore([kv = etcd.get(), prefix = etcd_cfg.prefix](const std::string& yaml) {
      return cp::StoreFleetConfig(kv, prefix, yaml);
    });
    cp::ElectionOptions eo;
    eo.prefix = etcd_cfg.prefix;
    eo.id = controller.LocalGatewayName();
    eo.addr = AdvertisedAddress(admin_cfg.grpc_listen);
    eo.lease_ms = etcd_cfg.lease_ms;
    election = std::make_shared<cp::Election>(etcd.get(), eo);
    leadership.is_leader = [election] { return election->is_leader(); };
    leadership.describe = [election](llmgw::admin::v1::ListGatewaysResponse* r) {
      r->set_is_leader(election->is_leader());
      r->set_leader(election->leader().id);
      uint64_t now = shm::NowUnixMs();
      for (const auto& m : election->Members()) {
        auto* c = r->add_controllers();
        c->set_id(m.id);
        c->set_addr(m.addr);
        c->set_leader(m.leader);
        c->set_age_seconds(m.registered_unix_ms && now > m.registered_unix_ms
                               ? static_cast<double>(now - m.registered_unix_ms) / 1000.0
                               : 0);
      }
    };
    LOG_INFO("fleet: HA through etcd", {{"endpoints", etcd_cfg.endpoints.size()}, {"prefix", etcd_cfg.prefix},
                                         {"lease_ms", etcd_cfg.lease_ms}, {"id", eo.id}, {"addr", eo.addr}});
  }
  // Fleet-wide leases: this host's threads lease from its share of each limit. A standby
  // (fleet.etcd) leases nothing to agents and keeps the whole limits for its own host.
  controller.SetFleetLeaseHook([fleet_registry, leadership](const std::vector<cp::LimiterSpec>& specs,
                                                            const std::vector<cp::HostUse>& use) {
    if (leadership.is_leader && !leadership.is_leader()) return specs;
    return fleet_registry->LeaseLocal(specs, use);
  });
  admin.AddService([&controller, fleet_registry, leadership](auto token, auto stopping) {
    return cp::MakeFleetService(&controller, fleet_registry, std::move(token), std::move(stopping), leadership);
  });
  st = admin.Start(admin_cfg);
  if (!st.ok()) {
    LOG_ERROR("cannot start admin API", {{"error", st.error().message()}});
    controller.Shutdown();
    return 1;
  }
  cp::MetricsExporter metrics(&controller);
  if (!admin_cfg.token_file.empty()) {  // /dashboard is behind the admin token (read by admin.Start above)
    auto t = cp::ReadTokenFile(admin_cfg.token_file);
    if (!t.ok()) {  // never serve the dashboard open when a token is configured
      LOG_ERROR("cannot read admin.token_file for /dashboard", {{"error", t.error().message()}});
      admin.Stop();
      controller.Shutdown();
      return 1;
    }
    metrics.SetDashboardToken(t.value());
  }
  auto traces = cp::TracingService::Start(tracing_cfg, instance, controller.shm_region());
  if (!traces.ok()) {
    LOG_ERROR("cannot start tracing", {{"error", traces.error().message()}});
    admin.Stop();
    controller.Shutdown();
    return 1;
  }
  if (traces.value()) {
    cp::TracingService* t = traces.value().get();
    metrics.SetSpanCounters([t] { return t->counters(); });
  }
  if (!admin_cfg.metrics_listen.empty()) {
    st = metrics.Start(admin_cfg.metrics_listen);
    if (!st.ok()) {
      LOG_ERROR("cannot start metrics", {{"error", st.error().message()}});
      admin.Stop();
      controller.Shutdown();
      return 1;
    }
  }

  std::atomic<bool> stop{false};
  std::thread loop([&] { controller.Run(stop); });
  std::thread elect;
  if (election)
    elect = std::thread([&] {
      bool led = false;
      cp::DrainSync drains(etcd.get(), etcd_cfg.prefix, &controller);
      while (!stop.load()) {
        election->Step();
        bool leads = election->is_leader();
        drains.Step(leads);  // operator drains survive a failover
        if (leads && !led) controller.MarkDirty();  // a new leader publishes at once
        led = leads;
        for (uint32_t t = 0; t < election->step_ms() && !stop.load(); t += 10)
          std::this_thread::sleep_for(std::chrono::milliseconds(10));
      }
      election->Resign();  // a clean stop hands over without waiting for the lease
    });
  // The stored fleet config, leader and standbys alike, in its own thread: applying one
  // resolves backend host names, which must never delay the election's lease renewals.
  std::thread config_sync;
  if (etcd)
    config_sync = std::thread([&] {
      cp::ConfigSync configs(
          etcd.get(), etcd_cfg.prefix,
          [&controller](const std::string& yaml, int64_t rev) { return controller.ApplyFleetConfig(yaml, rev); },
          fleet_rev);
      uint32_t every = std::max<uint32_t>(50, etcd_cfg.lease_ms / 4);
      while (!stop.load()) {
        configs.Step();
        for (uint32_t t = 0; t < every && !stop.load(); t += 10) std::this_thread::sleep_for(std::chrono::milliseconds(10));
      }
    });
  auto now_ms = [] {
    return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                     std::chrono::steady_clock::now().time_since_epoch())
                                     .count());
  };
  // Backend host names re-resolved every control.resolve_interval_ms, in a thread of
  // their own: a lookup blocks (up to the resolver's timeouts) and must delay neither
  // the publish loop nor the election. Only a changed address is republished.
  std::thread names([&] {
    cp::NameRefresher refresher(SystemResolve);
    uint64_t last = now_ms();
    while (!stop.load()) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      uint32_t every = controller.resolve_interval_ms();
      if (every == 0 || now_ms() - last < every) continue;
      last = now_ms();
      uint64_t version = 0;
      std::vector<cp::BackendHost> hosts = controller.BackendHosts(&version);
      controller.ApplyResolvedAddresses(version, refresher.Refresh(hosts, &stop));
    }
  });
  NotifyReady("publishing; admin on " + admin_cfg.grpc_listen);

  uint64_t reload_due_ms = 0;
  int exit_code = 0;
  for (;;) {
    int sig;
    if (NextSignalIsShutdown(set, &sig)) break;
    admin.SetServing(controller.Publishing());  // grpc.health follows /healthz
    if (sig == SIGHUP) {
      LOG_INFO("SIGHUP: reloading config", {});
      controller.ReloadFromFile();
    }
    if (files.Changed()) reload_due_ms = now_ms() + 100;  // debounce bursts of writes
    if (reload_due_ms && now_ms() >= reload_due_ms) {
      reload_due_ms = 0;
      LOG_INFO("config file changed: reloading", {{"file", config_path}});
      controller.ReloadFromFile();
    }
    if (std::string k = controller.KeysFilePath(); k != keys_file) {
      keys_file = k;  // a reload named another keys file (or the first one)
      watch(keys_file);
    }
  }
  NotifyStopping();
  stop = true;
  loop.join();
  if (elect.joinable()) elect.join();
  if (config_sync.joinable()) config_sync.join();
  names.join();
  LOG_DEBUG("publish loop stopped", {});
  admin.Stop();
  LOG_DEBUG("admin API stopped", {});
  traces.value().reset();  // the data plane's last spans, one final export
  // Release shm before stopping the exposer, so the data plane sees the writer gone first.
  controller.Shutdown();
  LOG_DEBUG("shared memory released", {});
  metrics.Stop();
  LOG_INFO("stopped", {});
  return exit_code;
}
