// The fleet: one llmcd is the controller, every other gateway host runs `llmcd --agent-of
// HOST:PORT`. The agent streams the controller's snapshots (Fleet.Sync) into its local shm
// and streams its local data-plane totals and prompt prefixes back; the controller counts
// them in its own view and decisions (fleet_stats.h) and lists the agents in
// Fleet.ListGateways.
#pragma once

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "common/config.h"
#include "common/error.h"
#include "common/routing/prefix_placer.h"
#include "common/shm.h"
#include "controlplane/controller.h"
#include "controlplane/etcd_client.h"
#include "controlplane/fleet_leaser.h"
#include "controlplane/file_watch.h"
#include "controlplane/fleet_stats.h"
#include "controlplane/host_credentials.h"
#include "llmgw/admin/v1/admin.grpc.pb.h"

namespace llmgw::cp {

// Controller side: the connected agents, by session.
class FleetRegistry {
 public:
  // c must be started (its heartbeat sets how long a silent agent's lease lasts).
  explicit FleetRegistry(Controller* c);
  uint64_t Connect(const std::string& peer);
  void Update(uint64_t session, const admin::v1::AgentStats& s);
  // Forgets the session and its in-flight contribution.
  void Disconnect(uint64_t session);
  admin::v1::ListGatewaysResponse List() const;
  // llmctl fleet drain: marks the agent's sessions; Sync sends the drain down. False when
  // no attached agent has that id. *out: the gateway's row.
  bool RequestDrain(const std::string& agent_id, admin::v1::Gateway* out);
  // Whether the session's agent is to drain its gateway (Sync polls it).
  bool DrainRequested(uint64_t session) const;

  // Fleet-wide leases (fleet_leaser.h). LeaseLocal is the controller's tick (its
  // Controller::FleetLeaseHook): it counts this host's use, rebalances every limit over the
  // hosts and returns this host's specs. AgentLease: the session's agent's lease when its
  // generation is newer than `after` (Sync sends it down).
  std::vector<LimiterSpec> LeaseLocal(const std::vector<LimiterSpec>& specs, const std::vector<HostUse>& use);
  bool AgentLease(uint64_t session, uint64_t after, admin::v1::FleetLease* out) const;

 private:
  struct Agent {
    std::string peer;
    admin::v1::AgentStats last;
    std::chrono::steady_clock::time_point seen, connected;
    std::string stats_error;  // why its stats were last ignored (logged once per reason)
    bool drain = false;       // llmctl fleet drain asked for it
  };
  void Fill(const Agent& a, uint64_t generation, std::chrono::steady_clock::time_point now,
            admin::v1::Gateway* g) const;
  static std::string HostName(const Agent& a) { return a.last.agent_id().empty() ? a.peer : a.last.agent_id(); }
  Controller* c_;
  mutable std::mutex mu_;
  uint64_t next_session_ = 1;
  std::map<uint64_t, Agent> agents_;
  std::string self_;          // this controller's own gateway host among the leased ones
  FleetLeaser leaser_;        // guarded by mu_
  uint64_t local_acked_ = 0;  // the lease generation this host's threads lease from
};

// Who leads an HA fleet (fleet.etcd). Without it (empty functions) this controller leads.
struct Leadership {
  std::function<bool()> is_leader;
  // Fills leader, is_leader and controllers of a ListGateways answer.
  std::function<void(admin::v1::ListGatewaysResponse*)> describe;
};

// llmgw.admin.v1.Fleet on the controller's admin listener. A standby refuses Sync with
// FAILED_PRECONDITION (the agent then asks etcd again), and a leader that loses the lead
// ends its streams the same way.
std::unique_ptr<grpc::Service> MakeFleetService(Controller* c, std::shared_ptr<FleetRegistry> registry,
                                                std::shared_ptr<const std::string> token,
                                                std::shared_ptr<std::atomic<bool>> stopping,
                                                Leadership leadership = {});

// Agent side: owns the local shm object; Run() keeps one Sync stream to the controller
// open (reconnecting with backoff) until stop. Without a controller the last snapshot
// stays published, so the local llmgw keeps serving (fail-static).
class FleetAgent {
 public:
  // cfg supplies the instance (local shm) and admin.token_file (sent to the controller).
  // controller_addr empty: the leader is looked up in etcd (fleet.etcd), before every
  // connection attempt, so the agent re-attaches to whichever controller leads.
  FleetAgent(Config cfg, std::string controller_addr);
  ~FleetAgent();
  Status Start();
  void Run(const std::atomic<bool>& stop);
  void Shutdown();
  const std::string& agent_id() const { return agent_id_; }
  // The controller it is attached to (or tries to be) and its id, as etcd or the flag says.
  std::string controller() const;
  std::string controller_id() const;
  uint64_t snapshots_applied() const { return applied_.load(); }
  // The fleet lease the local threads lease from (tests, views).
  HostLease lease() const;
  // llmgw processes it sent SIGTERM on the controller's drain (llmctl fleet drain).
  uint32_t gateways_drained() const { return drained_.load(); }
  // Why the controller's last snapshot was refused (another shm ABI version, damage);
  // empty once one is applied again.
  std::string last_rejection() const;
  shm::ShmRegion* region() const { return shm_ ? shm_->region() : nullptr; }  // tests
  // Backend keys: each snapshot's are read on this host (host_credentials.h), every key
  // file watched before it is read. KeyFilesChanged: whether one changed since the last
  // call (never blocks); RefreshKeys reads them again and republishes the last snapshot
  // with them (a key file changed, SIGHUP); key_problems: backend id -> why this host has
  // no key for it (the backend is not used here).
  bool KeyFilesChanged();
  void RefreshKeys();
  std::vector<std::string> key_files() const;
  std::map<std::string, std::string> key_problems() const;

 private:
  void Apply(const admin::v1::FleetSnapshot& f);
  // Fills this host's backend keys into snap and publishes it as the current snapshot. mu_ held.
  void PublishLocked(std::unique_ptr<shm::Snapshot> snap);
  // This host's threads' leases from its fleet lease (every tick, controller or not).
  void LeaseTick();
  admin::v1::AgentStats CollectStats(uint64_t sequence);
  // The address to dial next: the flag's, or the leader etcd names ("" when none).
  std::string Resolve();

  Config cfg_;
  std::string controller_, agent_id_, token_;
  std::string tls_ca_;            // PEM of fleet.tls_ca_file: the link uses TLS when set
  std::unique_ptr<EtcdKv> etcd_;  // set when the leader is found through etcd
  std::string controller_id_;     // guarded by mu_, as is controller_ in etcd mode
  std::string resolve_error_;     // last reason etcd named no leader (logged on change)
  std::unique_ptr<shm::ShmObject> shm_;
  std::unique_ptr<shm::SnapshotWriter> writer_;
  mutable std::mutex mu_;  // guards last_ and rejection_ (written by the stream reader)
  std::unique_ptr<shm::Snapshot> last_;  // as published here (this host's keys filled in)
  std::string received_;                 // the controller's last snapshot, as it came (no keys)
  FileWatch key_watch_;  // the key files creds_ read
  HostCredentials creds_{""};
  std::string rejection_;
  bool have_last_ = false;
  uint64_t last_generation_ = 0;                   // guarded by mu_
  routing::PrefixReportCollector prefix_reports_;  // guarded by mu_
  std::atomic<uint64_t> applied_{0};
  std::atomic<uint32_t> drained_{0};
  bool drain_done_ = false;  // the drain is done once per agent run (reader thread only)
  // Fleet-wide leases: the controller's last lease (kept without a controller:
  // fail-static), the generation the threads lease from, and this host's use. Guarded by mu_.
  HostLease lease_;
  uint64_t lease_applied_ = 0;
  std::vector<HostUse> lease_use_;
  QuotaLeaser local_leaser_;  // LeaseTick's thread only
  void DrainLocalGateways();
};

}  // namespace llmgw::cp
