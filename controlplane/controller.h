// The brain of llmcd: owns the running config, per-backend state (active health, scraped
// signals, passive health from data-plane stats, circuit breaker, EWMAs, drain flag),
// the adaptive bandits, and publishes the routing snapshot into shared memory on every
// tick when something changed or as a heartbeat.
//
// Threads: Tick() runs on the publish loop and never does I/O; probes and scrapes run on
// a bounded worker pool and hand their results back through a mailbox the next tick
// drains. Admin RPCs and the Prometheus exposition read views under the same mutex.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "common/config.h"
#include "common/routing/prefix_placer.h"
#include "common/routing/router.h"
#include "common/shm.h"
#include "common/snapshot_builder.h"
#include "controlplane/circuit_breaker.h"
#include "controlplane/controller_views.h"
#include "controlplane/engine_metrics.h"
#include "controlplane/fleet_stats.h"
#include "controlplane/http_client.h"
#include "controlplane/name_refresher.h"
#include "controlplane/prober.h"
#include "controlplane/fleet_leaser.h"
#include "controlplane/quota_leaser.h"
#include "controlplane/recent_histogram.h"

namespace llmgw::cp {

// A fixed pool of threads for blocking probe/scrape jobs. Submit never blocks; it refuses
// work when the queue is full so a fleet of hung backends cannot pile up jobs.
class WorkerPool {
 public:
  // threads 0: every job runs inside Submit (tests with a fake Prober: a tick's results
  // are in the mailbox when Tick returns, no thread timing involved).
  WorkerPool(size_t threads, size_t max_queue);
  ~WorkerPool();
  bool Submit(std::function<void()> job);
  size_t queued() const;

 private:
  void Loop();
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> q_;
  size_t max_queue_;
  bool stop_ = false;
  std::vector<std::thread> threads_;
};

struct ControllerOptions {
  std::function<uint64_t()> clock_ms;  // monotonic ms; default steady_clock
  std::shared_ptr<Prober> prober;      // probes and scrapes; default HttpProber
  size_t worker_threads = 8;           // 0: run probe jobs inline (tests with a fake prober)
  bool use_shm = true;                 // tests of the pure logic may run without shm
  uint64_t seed = 0x9e3779b97f4a7c15ull;  // probe jitter and bandit randomness
};

struct ReloadOutcome {
  bool ok = false;
  std::vector<std::string> errors;
  uint64_t version = 0;
  std::string summary;
};

// Controller-level counters, exported as llmcd_* metrics.
struct ControllerCounters {
  uint64_t config_reloads = 0, config_reload_failures = 0;
  uint64_t snapshots_published = 0, probes = 0, probe_failures = 0, scrapes = 0,
           scrape_failures = 0, jobs_dropped = 0;
  std::map<std::string, uint64_t> circuit_transitions;  // "from->to"
};

class Controller {
 public:
  explicit Controller(ControllerOptions opts = {});
  ~Controller();

  // Loads and validates the file, opens shm, builds and publishes the first snapshot.
  llmgw::Status Start(const std::string& config_path);
  // Same from an already-parsed config (tests).
  llmgw::Status StartWithConfig(Config cfg);
  // Releases shm (Close) and stops workers. Idempotent.
  void Shutdown();

  // One publish-loop iteration. Never blocks on a backend.
  void Tick();
  // Runs Tick() every control.tick_ms until stop is set.
  void Run(const std::atomic<bool>& stop);

  ReloadOutcome ReloadFromFile();
  ReloadOutcome ReloadFromText(const std::string& yaml, const std::string& filename);
  static ReloadOutcome Validate(const std::string& yaml, const std::string& filename);

  // The config stored in etcd for an HA fleet (common/fleet_config.h). ApplyFleetConfig
  // runs the local file merged with `yaml` (empty: the local file alone, the stored config
  // was deleted); when it is refused the running config stays, and so does the last good
  // stored one, which later reloads of the local file keep merging. revision is etcd's
  // mod_revision of the stored key (0: none).
  ReloadOutcome ApplyFleetConfig(const std::string& yaml, int64_t revision);
  // Before Start: the stored config the first config was merged with.
  void NoteFleetConfig(const std::string& yaml, int64_t revision);
  int64_t fleet_config_revision() const;
  // `llmctl config push`: checks `yaml` as every controller will run it (on its own, then
  // merged with this host's file, then built into a snapshot); only a config that passes
  // is handed to `store` (which puts it into etcd and returns its revision). *revision is
  // that revision; the summary is what it changes against the running config.
  using FleetConfigStore = std::function<llmgw::Result<int64_t>(const std::string& yaml)>;
  void SetFleetConfigStore(FleetConfigStore store);
  ReloadOutcome PushFleetConfig(const std::string& yaml, const std::string& filename, int64_t* revision);

  // Operator actions; false when the id is unknown. Effective in the next snapshot.
  // `out` (optional) gets the backend's view after the action.
  bool Drain(const std::string& id, BackendView* out);
  bool Undrain(const std::string& id, BackendView* out);
  bool ResetCircuit(const std::string& id, BackendView* out);

  // Views: plain types (controller_views.h); admin_convert.h makes protobuf of them.
  StatusView GetStatus() const;
  std::vector<BackendView> Backends(const std::string& model_filter = "") const;
  bool GetBackend(const std::string& id, BackendView* out) const;
  ConfigText ConfigView() const;
  RoutingStatsView RoutingStats() const;
  Config CurrentConfig() const;
  shm::StatsTotals StatsCopy() const;
  ControllerCounters Counters() const;
  uint64_t config_version() const;
  // Per backend id: circuit state and failures counted by its breaker.
  struct CircuitInfo {
    CircuitState state = CircuitState::kClosed;
    uint64_t failures_total = 0;
  };
  std::map<std::string, CircuitInfo> Circuits() const;
  // (model name, model slot) for every configured model.
  std::vector<std::pair<std::string, int>> ModelSlots() const;
  // Fleet (controller role): the last published snapshot in its wire form, and its
  // generation (0 before the first publish).
  std::string PublishedSnapshotBytes(uint64_t* generation) const;
  uint64_t published_generation() const;
  // True while the publish loop runs: a publish (heartbeats included, at least every
  // control.heartbeat_ms) within the last 3 heartbeats (2 s at least). llmcd's /healthz.
  bool Publishing() const;
  // Fleet: the latest data-plane totals of gateway `name` (its agent's report). From the
  // next tick every gateway's totals count in the controller's stats (status, backends,
  // routing stats, /metrics) and its decisions (passive health, breakers, EWMAs, bandits,
  // fleet_in_flight). A gateway seen for the first time (or whose counters started over)
  // is a new baseline: its history is not taken for this tick's observations.
  void ReportGateway(const std::string& name, shm::StatsTotals totals);
  // The gateway's link closed: its gauges stop counting, its counters stay counted.
  void GatewayGone(const std::string& name);
  // Fleet: gateway `name`'s limiter use as its agent reported it (AgentStats.limiter_use,
  // cumulative since its llmgw started), so `llmctl keys list` counts the whole fleet's
  // use of each key, not only this host's (controller_keys.cc).
  void ReportLimiterUse(const std::string& name, std::vector<HostUse> use);
  // Prompt prefixes a gateway routed (model slot, tag, new picks): placed with the local
  // threads' reports at the next prefix tick, so prefix homes are the fleet's.
  void ReportPrefixes(const std::vector<PrefixPick>& picks);
  // Per gateway of the fleet (this controller's own data plane first) for /metrics.
  std::vector<GatewayStatsView> GatewayStats() const;
  // Name of this controller's own data plane among the fleet's gateways.
  std::string LocalGatewayName() const;
  // The local shared memory (llmcd's tracing drains its span rings); null without shm.
  shm::ShmRegion* shm_region() const { return shm_ ? shm_->region() : nullptr; }
  // Forces the next tick to publish (tests, operator actions).
  void MarkDirty();
  // Backend host names re-resolved while running (name_refresher.h): every configured
  // backend with its slot, host and published address, and the config version they
  // belong to. ApplyResolvedAddresses takes the changes found for that version (none when
  // a reload came between: its own build resolved afresh); a changed address goes out in
  // the next tick's snapshot. Returns how many changed.
  std::vector<BackendHost> BackendHosts(uint64_t* version) const;
  size_t ApplyResolvedAddresses(uint64_t version, const std::vector<AddrChange>& changes);
  uint32_t resolve_interval_ms() const;
  // Fleet-wide leasing (fleet_leaser.h): called every tick with the limits and this host's
  // use of them (summed over its threads); returns the specs this host's threads lease
  // from (its share of each limit). Unset: the whole limits. Set before Run.
  using FleetLeaseHook =
      std::function<std::vector<LimiterSpec>(const std::vector<LimiterSpec>& specs, const std::vector<HostUse>& use)>;
  void SetFleetLeaseHook(FleetLeaseHook h);

  // Client API keys (controller_keys.cc). AddKey generates the secret, appends its SHA-256
  // to auth.keys_file and reloads; RevokeKey removes a key from that file and reloads. A
  // reload that fails puts the file back as it was.
  KeysView ListKeys() const;
  std::string KeysFilePath() const;  // auth.keys_file as resolved; empty when not set
  // The snapshot as built from the config (limits, models, backends, keys: the used
  // ranges; the exposition labels the limiters with it). *out is zeroed first.
  void CopyConfiguredSnapshot(shm::Snapshot* out) const;
  KeyEditResult AddKey(const KeyConfig& key);
  KeyEditResult RevokeKey(const std::string& id);

 private:
  struct BackendRt;
  struct ModelRt;
  struct ProbeResult;

  ReloadOutcome Apply(ConfigResult parsed);
  // The checks of Apply without applying: errors, or the snapshot it would build.
  std::vector<std::string> Prepare(const ConfigResult& parsed, SlotAssigner* slots, shm::Snapshot* built) const;
  void RebuildRuntime(const Config& cfg, std::string* summary);
  void DispatchJobs(uint64_t now);
  void DrainMailbox(uint64_t now);
  void UpdateFromStats(uint64_t now);
  void UpdateBandits();
  void UpdatePrefixHomes(uint64_t now);
  void UpdateKeyUsage(uint64_t now);  // controller_keys.cc: the last minute's use per key
  KeyView MakeKeyView(const KeyConfig& k) const;  // with mu_ held
  void Publish(uint64_t now);
  uint8_t PublishedState(const BackendRt& b) const;
  void FillBackend(const BackendRt& b, BackendView* out) const;
  bool SetDraining(const std::string& id, bool draining, BackendView* out);  // Drain/Undrain
  BackendRt* Find(const std::string& id);
  uint64_t Now() const { return opts_.clock_ms(); }

  ControllerOptions opts_;
  mutable std::mutex mu_;
  Config cfg_;
  std::string config_path_;
  std::string fleet_yaml_;       // the stored fleet config merged into cfg_ ("" = none)
  int64_t fleet_revision_ = 0;
  FleetConfigStore fleet_store_;
  uint64_t config_version_ = 0;
  SlotAssigner slots_;
  std::unique_ptr<shm::Snapshot> base_;       // as built from the config
  std::unique_ptr<shm::Snapshot> published_;  // last published (with overlays)
  std::unique_ptr<shm::Snapshot> scratch_;
  std::map<std::string, std::unique_ptr<BackendRt>> backends_;  // by id
  std::map<std::string, std::unique_ptr<ModelRt>> models_;      // by name
  uint64_t epoch_ = 0;  // bumped per reload; stale job results are dropped
  std::unique_ptr<shm::ShmObject> shm_;
  std::unique_ptr<shm::SnapshotWriter> writer_;
  shm::StatsTotals stats_;
  routing::PrefixReportCollector prefix_reports_;
  std::vector<shm::PrefixHomeEntry> prefix_homes_;  // published with the next snapshot
  uint64_t last_prefix_tick_ms_ = 0;
  uint64_t last_publish_ms_ = 0;
  uint64_t generation_ = 0;
  bool dirty_ = true;
  bool dataplane_alive_ = false;
  bool dataplane_seen_ = false;
  std::deque<std::pair<uint64_t, std::pair<uint64_t, uint64_t>>> rate_window_;  // (ms, (req, err))
  double rps_ = 0, eps_ = 0;
  uint64_t started_ms_ = 0;
  ControllerCounters counters_;
  std::mt19937_64 rng_;

  std::mutex mailbox_mu_;
  std::vector<ProbeResult> mailbox_;
  std::unique_ptr<WorkerPool> pool_;
  std::atomic<bool> cancel_io_{false};
  FleetStats fleet_;                 // the agents' gateways (guarded by mu_)
  // Every gateway's (this host's and the agents') TTFT and latency, last 30 s.
  RecentHistogram fleet_ttft_recent_, fleet_latency_recent_;
  bool fleet_rebaseline_ = false;    // a gateway joined: re-seed the per-backend deltas
  shm::StatsTotals local_stats_;     // this host's data plane alone (stats_ is the fleet's)
  std::vector<PrefixPick> fleet_prefixes_;  // agents' prefix picks (guarded by mu_)
  std::map<uint64_t, std::map<std::string, uint64_t>> remote_in_flight_;  // by agent session
  // Per key slot: (ms, requests spent, tokens spent) samples about a second apart over
  // the last minute, for ListKeys' "last minute" figures.
  // The agents' last reported limiter use, by gateway name (guarded by mu_); a gone
  // gateway's in-flight count is zeroed, its counters stay.
  std::map<std::string, std::vector<HostUse>> agent_limiter_use_;
  struct KeyUse {
    uint64_t spent = 0, denied = 0, checked = 0;
  };
  // Limiter `kind` of key slot `slot`: this host's threads plus every agent's report for
  // the same key (matched by limiter and the key's id hash). With mu_ held.
  KeyUse FleetKeyUse(shm::LimitKind kind, uint32_t slot) const;
  struct KeyUsageSample {
    uint64_t ms = 0;
    std::vector<std::pair<uint64_t, uint64_t>> by_slot;  // kMaxKeys entries
  };
  std::deque<KeyUsageSample> key_usage_;
  QuotaLeaser leaser_;  // rebalances the data-plane threads' leases every tick
  FleetLeaseHook fleet_lease_;  // this host's share of the fleet's limits (controller role)
  std::mutex keys_edit_mu_;  // one AddKey/RevokeKey at a time (each is read, write, reload)
  bool shut_down_ = false;
};

}  // namespace llmgw::cp
