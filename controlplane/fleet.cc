// Fleet: the controller's Fleet service and registry, and the agent. The snapshot wire
// form is common/snapshot_codec.h; auth is auth.h.
#include "controlplane/fleet.h"

#include <signal.h>
#include <unistd.h>

#include <cstdio>

#include <chrono>
#include <thread>

#include "common/log.h"
#include "common/snapshot_codec.h"
#include "controlplane/auth.h"
#include "controlplane/election.h"

namespace llmgw::cp {

namespace admin = ::llmgw::admin::v1;
using Clock = std::chrono::steady_clock;

// ---- controller side ------------------------------------------------------------------

namespace {
uint64_t SteadyMs() {
  return static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now().time_since_epoch()).count());
}
}  // namespace

FleetRegistry::FleetRegistry(Controller* c) : c_(c), self_(c->LocalGatewayName()) {
  // An agent that has not reported for three heartbeats (what it waits itself before it
  // takes the link for dead) is lost: its lease expires and its share is reclaimed.
  leaser_.set_expiry_ms(std::max<uint64_t>(1000, 3ull * c->CurrentConfig().control.heartbeat_ms));
}

std::vector<LimiterSpec> FleetRegistry::LeaseLocal(const std::vector<LimiterSpec>& specs,
                                                   const std::vector<HostUse>& use) {
  std::lock_guard<std::mutex> l(mu_);
  uint64_t now = SteadyMs();
  leaser_.Report(self_, now, local_acked_, use);
  leaser_.Tick(now, specs);
  HostLease lease = leaser_.Lease(self_);
  local_acked_ = lease.generation;  // applied by the caller in this same tick
  return ApplyLease(specs, lease);
}

bool FleetRegistry::AgentLease(uint64_t session, uint64_t after, admin::FleetLease* out) const {
  std::lock_guard<std::mutex> l(mu_);
  auto it = agents_.find(session);
  if (it == agents_.end() || leaser_.generation() <= after) return false;
  HostLease lease = leaser_.Lease(HostName(it->second));
  if (lease.generation == 0) return false;  // not reported yet
  out->set_generation(lease.generation);
  for (const HostShare& s : lease.shares) {
    auto* p = out->add_shares();
    p->set_limiter(s.limiter);
    p->set_identity(s.identity);
    p->set_capacity(s.capacity);
    p->set_refill_per_s(s.refill_per_s);
  }
  return true;
}

uint64_t FleetRegistry::Connect(const std::string& peer) {
  std::lock_guard<std::mutex> l(mu_);
  uint64_t id = next_session_++;
  auto now = Clock::now();
  agents_[id] = Agent{peer, {}, now, now, {}};
  return id;
}

void FleetRegistry::Update(uint64_t session, const admin::AgentStats& s) {
  std::string name;
  std::vector<HostUse> limiter_use;  // for the controller's keys view, outside mu_
  bool has_limiter_use = false;
  {
    std::lock_guard<std::mutex> l(mu_);
    auto it = agents_.find(session);
    if (it == agents_.end()) return;
    if (it->second.last.agent_id().empty() && !s.agent_id().empty())
      LOG_INFO("fleet agent connected", {{"agent_id", s.agent_id()}, {"peer", it->second.peer}});
    it->second.last = s;
    it->second.last.clear_totals();  // kept decoded in the controller, not twice
    it->second.last.clear_prefixes();
    it->second.seen = Clock::now();
    name = s.agent_id().empty() ? it->second.peer : s.agent_id();
    if (s.link_version() >= 3) {  // an agent that leases: its use is its demand
      std::vector<HostUse> use;
      use.reserve(static_cast<size_t>(s.limiter_use_size()));
      for (const auto& u : s.limiter_use()) use.push_back(HostUse{u.limiter(), u.identity(), u.spent(), u.denied(), u.checked()});
      leaser_.Report(name, SteadyMs(), s.lease_generation(), use);
      limiter_use = std::move(use);
      has_limiter_use = true;
    }
  }
  if (has_limiter_use) c_->ReportLimiterUse(name, std::move(limiter_use));
  if (s.has_totals()) {
    shm::StatsTotals t;
    std::string why;
    if (DecodeTotals(s.totals(), &t, &why)) {
      c_->ReportGateway(name, std::move(t));
    } else {
      std::lock_guard<std::mutex> l(mu_);
      auto it = agents_.find(session);
      if (it != agents_.end() && it->second.stats_error != why) {
        LOG_WARN("fleet agent's stats ignored", {{"agent_id", name}, {"error", why}});
        it->second.stats_error = why;
      }
    }
  }
  if (s.prefixes_size()) {
    std::vector<PrefixPick> picks;
    picks.reserve(static_cast<size_t>(s.prefixes_size()));
    for (const auto& p : s.prefixes())
      if (p.model_slot() < shm::kMaxModels && p.tag() != 0)
        picks.push_back(PrefixPick{static_cast<uint16_t>(p.model_slot()), p.tag(), p.picks()});
    c_->ReportPrefixes(picks);
  }
}

void FleetRegistry::Disconnect(uint64_t session) {
  std::string name;
  {
    std::lock_guard<std::mutex> l(mu_);
    auto it = agents_.find(session);
    if (it == agents_.end()) return;
    LOG_INFO("fleet agent disconnected", {{"agent_id", it->second.last.agent_id()}, {"peer", it->second.peer}});
    name = it->second.last.agent_id().empty() ? it->second.peer : it->second.last.agent_id();
    bool again = false;  // the same gateway on a newer session (a quick reconnect)
    for (const auto& [id, a] : agents_)
      if (id != session && a.last.agent_id() == it->second.last.agent_id()) again = true;
    agents_.erase(it);
    if (again) return;
  }
  c_->GatewayGone(name);
}

void FleetRegistry::Fill(const Agent& a, uint64_t gen, Clock::time_point now, admin::Gateway* g) const {
  g->set_agent_id(a.last.agent_id());
  g->set_peer(a.peer);
  g->set_last_seen_seconds_ago(std::chrono::duration<double>(now - a.seen).count());
  g->set_requests_total(a.last.requests_total());
  g->set_dataplane_threads(a.last.dataplane_threads());
  g->set_connected_seconds(std::chrono::duration<double>(now - a.connected).count());
  // Generations this gateway is behind: the controller's minus the last it applied.
  uint64_t applied = a.last.last_generation();
  g->set_lag_generations(applied && gen > applied ? gen - applied : 0);
  g->set_active_requests(a.last.active_requests());
  g->set_draining(a.drain);
  g->set_gateways_drained(a.last.gateways_drained());
}

admin::ListGatewaysResponse FleetRegistry::List() const {
  admin::ListGatewaysResponse r;
  r.set_is_controller(true);
  uint64_t gen = c_->published_generation();
  std::lock_guard<std::mutex> l(mu_);
  auto now = Clock::now();
  for (const auto& [id, a] : agents_) Fill(a, gen, now, r.add_gateways());
  return r;
}

bool FleetRegistry::RequestDrain(const std::string& agent_id, admin::Gateway* out) {
  uint64_t gen = c_->published_generation();
  std::lock_guard<std::mutex> l(mu_);
  bool found = false;
  for (auto& [id, a] : agents_) {
    if (a.last.agent_id() != agent_id) continue;
    if (!a.drain) LOG_INFO("fleet: draining gateway", {{"agent_id", agent_id}, {"peer", a.peer}});
    a.drain = true;
    if (!found && out) Fill(a, gen, Clock::now(), out);
    found = true;
  }
  return found;
}

bool FleetRegistry::DrainRequested(uint64_t session) const {
  std::lock_guard<std::mutex> l(mu_);
  auto it = agents_.find(session);
  return it != agents_.end() && it->second.drain;
}

namespace {

class FleetServiceImpl final : public admin::Fleet::Service {
 public:
  FleetServiceImpl(Controller* c, std::shared_ptr<FleetRegistry> reg, std::shared_ptr<const std::string> token,
                   std::shared_ptr<std::atomic<bool>> stopping, Leadership leadership)
      : c_(c),
        reg_(std::move(reg)),
        token_(std::move(token)),
        stopping_(std::move(stopping)),
        lead_(std::move(leadership)),
        self_(c->LocalGatewayName()) {}

  grpc::Status DrainGateway(grpc::ServerContext* ctx, const admin::DrainGatewayRequest* req,
                            admin::DrainGatewayResponse* out) override {
    if (!CallAuthorized(ctx, *token_)) return Unauth();
    if (req->agent_id().empty()) return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "agent_id is required");
    if (!Leading()) return NotLeader();
    if (!reg_->RequestDrain(req->agent_id(), out->mutable_gateway()))
      return grpc::Status(grpc::StatusCode::NOT_FOUND, "no gateway '" + req->agent_id() + "' attached");
    return grpc::Status::OK;
  }

  grpc::Status ListGateways(grpc::ServerContext* ctx, const admin::ListGatewaysRequest*,
                            admin::ListGatewaysResponse* out) override {
    if (!CallAuthorized(ctx, *token_)) return Unauth();
    *out = reg_->List();
    if (lead_.describe) {
      lead_.describe(out);
    } else {
      out->set_is_leader(true);
      out->set_leader(self_);
    }
    return grpc::Status::OK;
  }

  // Stats come up on a reader thread; snapshots go down from here whenever the controller
  // published a new generation (at least every control.heartbeat_ms).
  grpc::Status Sync(grpc::ServerContext* ctx,
                    grpc::ServerReaderWriter<admin::FleetSnapshot, admin::AgentStats>* stream) override {
    if (!CallAuthorized(ctx, *token_)) {
      RefusedLog(ctx->peer());
      return Unauth();
    }
    if (!Leading()) return NotLeader();
    uint64_t session = reg_->Connect(ctx->peer());
    std::atomic<bool> reader_done{false};
    std::thread reader([&] {
      admin::AgentStats s;
      while (stream->Read(&s)) reg_->Update(session, s);
      reader_done = true;
    });
    uint64_t sent = 0, sent_config = 0, lease_sent = 0;
    bool lost_lead = false, drain_sent = false;
    while (!ctx->IsCancelled() && !stopping_->load() && !reader_done.load()) {
      if (!Leading()) {  // a standby now: the agent goes to the new leader
        lost_lead = true;
        break;
      }
      if (!drain_sent && reg_->DrainRequested(session)) {
        admin::FleetSnapshot d;
        d.set_link_version(kFleetLinkVersion);
        d.set_controller_id(self_);
        d.set_drain_gateway(true);
        if (!stream->Write(d)) break;
        drain_sent = true;
      }
      if (admin::FleetLease lease; reg_->AgentLease(session, lease_sent, &lease)) {
        admin::FleetSnapshot m;
        m.set_link_version(kFleetLinkVersion);
        m.set_controller_id(self_);
        lease_sent = lease.generation();
        *m.mutable_lease() = std::move(lease);
        if (!stream->Write(m)) break;
      }
      uint64_t gen = c_->published_generation();
      if (gen != 0 && gen != sent) {
        admin::FleetSnapshot f;
        f.set_shm_snapshot(c_->PublishedSnapshotBytes(&gen));
        f.set_generation(gen);
        f.set_link_version(kFleetLinkVersion);
        f.set_controller_id(self_);
        f.set_heartbeat_ms(c_->CurrentConfig().control.heartbeat_ms);
        if (c_->config_version() != sent_config) {  // the YAML only when it changed
          sent_config = c_->config_version();
          f.set_config_yaml(c_->ConfigView().yaml);
        }
        if (!stream->Write(f)) break;
        sent = gen;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    ctx->TryCancel();  // unblocks the reader's Read
    reader.join();
    reg_->Disconnect(session);
    return lost_lead ? NotLeader() : grpc::Status::OK;
  }

 private:
  static grpc::Status Unauth() { return Unauthenticated(); }
  bool Leading() const { return !lead_.is_leader || lead_.is_leader(); }
  static grpc::Status NotLeader() {
    return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION, "not the fleet leader; ask etcd for the leader");
  }
  // A gateway with a wrong token retries every 200 ms: one line per peer host a minute.
  void RefusedLog(const std::string& peer) {
    std::string host = peer.substr(0, peer.rfind(':'));
    auto now = Clock::now();
    std::lock_guard<std::mutex> l(log_mu_);
    auto it = refused_logged_.find(host);
    if (it != refused_logged_.end() && now - it->second < std::chrono::minutes(1)) return;
    refused_logged_[host] = now;
    LOG_WARN("fleet agent refused: missing or wrong admin token", {{"peer", peer}});
  }
  Controller* c_;
  std::shared_ptr<FleetRegistry> reg_;
  std::shared_ptr<const std::string> token_;
  std::shared_ptr<std::atomic<bool>> stopping_;
  Leadership lead_;
  std::string self_;
  std::mutex log_mu_;
  std::map<std::string, Clock::time_point> refused_logged_;
};

}  // namespace

std::unique_ptr<grpc::Service> MakeFleetService(Controller* c, std::shared_ptr<FleetRegistry> registry,
                                                std::shared_ptr<const std::string> token,
                                                std::shared_ptr<std::atomic<bool>> stopping, Leadership leadership) {
  return std::make_unique<FleetServiceImpl>(c, std::move(registry), std::move(token), std::move(stopping),
                                            std::move(leadership));
}

// ---- agent side -----------------------------------------------------------------------

namespace {
int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now().time_since_epoch()).count();
}
}  // namespace

FleetAgent::FleetAgent(Config cfg, std::string controller_addr)
    : cfg_(std::move(cfg)), controller_(std::move(controller_addr)), last_(std::make_unique<shm::Snapshot>()) {
  agent_id_ = GatewayName(cfg_);
  creds_ = HostCredentials(cfg_.source_file, [this](const std::string& path) {  // mu_ held (Fill)
    if (std::string why; !key_watch_.Watch(path, &why))
      LOG_WARN("inotify watch failed; after rotating this key file send llmcd SIGHUP", {{"file", path}, {"error", why}});
  });
  local_leaser_.set_idle_floor_share(kFleetIdleFloorShare);
  local_leaser_.set_start_empty(true);
  if (controller_.empty() && !cfg_.fleet.etcd.endpoints.empty())
    etcd_ = std::make_unique<EtcdClient>(cfg_.fleet.etcd, 1000);
}

std::string FleetAgent::controller() const {
  std::lock_guard<std::mutex> l(mu_);
  return controller_;
}

std::string FleetAgent::controller_id() const {
  std::lock_guard<std::mutex> l(mu_);
  return controller_id_;
}

std::string FleetAgent::Resolve() {
  if (!etcd_) return controller();
  LeaderRecord r;
  std::string why;
  bool ok = ReadLeader(etcd_.get(), cfg_.fleet.etcd.prefix, &r, &why);
  std::lock_guard<std::mutex> l(mu_);
  if (!ok) {
    if (why != resolve_error_) LOG_WARN("fleet: no leader to attach to yet", {{"error", why}});
    resolve_error_ = why;
    return {};
  }
  resolve_error_.clear();
  if (r.addr != controller_) LOG_INFO("fleet: leader found in etcd", {{"leader", r.id}, {"addr", r.addr}});
  controller_ = r.addr;
  controller_id_ = r.id;
  return r.addr;
}

FleetAgent::~FleetAgent() { Shutdown(); }

Status FleetAgent::Start() {
  if (!cfg_.admin.token_file.empty()) {
    auto t = ReadTokenFile(cfg_.admin.token_file);
    if (!t.ok()) return t.error();
    token_ = t.value();
  }
  if (!cfg_.fleet.tls_ca_file.empty()) {
    std::FILE* f = std::fopen(cfg_.fleet.tls_ca_file.c_str(), "r");
    if (!f)
      return Error(ErrorKind::kConfig, ErrorSide::kInternal, false, "fleet.tls_ca_file: cannot read %s",
                   cfg_.fleet.tls_ca_file.c_str());
    char buf[4096];
    for (size_t n; (n = std::fread(buf, 1, sizeof(buf), f)) > 0;) tls_ca_.append(buf, n);
    std::fclose(f);
    if (tls_ca_.find("-----BEGIN CERTIFICATE-----") == std::string::npos)
      return Error(ErrorKind::kConfig, ErrorSide::kInternal, false, "fleet.tls_ca_file: %s holds no PEM certificate",
                   cfg_.fleet.tls_ca_file.c_str());
  }
  auto obj = shm::ShmObject::Open(cfg_.ShmName());
  if (!obj.ok()) return obj.error();
  shm_ = std::move(obj.value());
  writer_ = std::make_unique<shm::SnapshotWriter>(shm_->region());
  LOG_INFO("fleet agent started", {{"agent_id", agent_id_}, {"tls", !tls_ca_.empty()},
                                   {"controller", etcd_ ? "the leader in etcd" : controller_},
                                   {"instance", cfg_.instance}});
  return Status::Ok();
}

void FleetAgent::Shutdown() {
  writer_.reset();
  if (shm_) shm_->Close();
  shm_.reset();
}

void FleetAgent::DrainLocalGateways() {
  // The llmgw processes attached to this host's shm (not this agent): SIGTERM makes each
  // close its listener, finish what is in flight within gateway.drain_ms and exit.
  const shm::ShmHeader& h = shm_->region()->header;
  uint32_t n = 0;
  for (const auto& a : h.attached) {
    pid_t pid = static_cast<pid_t>(a.load());
    if (pid <= 0 || pid == getpid() || !shm::PidAlive(pid)) continue;
    std::string comm;
    if (FILE* f = std::fopen(("/proc/" + std::to_string(pid) + "/comm").c_str(), "r")) {
      char buf[64] = {};
      if (std::fgets(buf, sizeof(buf), f)) comm = buf;
      std::fclose(f);
    }
    if (comm != "llmgw\n") continue;  // only the data plane; never some other attached tool
    if (kill(pid, SIGTERM) == 0) ++n;
  }
  drained_ += n;
  LOG_WARN("fleet: the controller drains this gateway; llmgw asked to stop listening", {{"llmgw_processes", n}});
}

HostLease FleetAgent::lease() const {
  std::lock_guard<std::mutex> l(mu_);
  return lease_;
}

void FleetAgent::LeaseTick() {
  std::vector<LimiterSpec> specs, counted;
  HostLease lease;
  {
    std::lock_guard<std::mutex> l(mu_);
    if (!have_last_) return;  // no snapshot yet: no limits known, nothing admitted anyway
    specs = LimiterSpecs(*last_);
    lease = lease_;
    // Reported too: the request counter of every key without an rpm limit (no lease, so
    // no spec), so the controller's `llmctl keys list` counts the key's requests here.
    counted = specs;
    for (uint32_t k = 0; k < last_->num_keys && k < shm::kMaxKeys; ++k)
      if (last_->keys[k].present && !last_->keys[k].rpm)
        counted.push_back({shm::LimiterIndex(shm::LimitKind::kKeyRpm, k), last_->keys[k].id_hash, 0, 0, false});
  }
  // Without a lease for a limit (none received yet, or one for a limit this host does not
  // know yet) its threads get nothing of it: the fleet's sum stays within the limit.
  ShmLeaseIo io(shm_->region());
  local_leaser_.Tick(static_cast<uint64_t>(NowMs()), ApplyLease(specs, lease), &io);
  std::vector<HostUse> use = SumHostUse(io, counted);
  std::lock_guard<std::mutex> l(mu_);
  lease_applied_ = lease.generation;
  lease_use_ = std::move(use);
}

void FleetAgent::Apply(const admin::FleetSnapshot& f) {
  if (f.has_lease()) {
    // The newest lease replaces the last; it stays in force while the controller is away.
    HostLease l;
    l.generation = f.lease().generation();
    for (const auto& p : f.lease().shares())
      l.shares.push_back(HostShare{p.limiter(), p.identity(), p.capacity(), p.refill_per_s()});
    std::lock_guard<std::mutex> g(mu_);
    lease_ = std::move(l);
  }
  if (f.drain_gateway() && !drain_done_) {
    drain_done_ = true;
    DrainLocalGateways();
  }
  if (f.shm_snapshot().empty()) return;
  auto snap = std::make_unique<shm::Snapshot>();
  std::string why;
  if (!shm::DecodeSnapshot(f.shm_snapshot(), snap.get(), &why)) {
    // Logged once per reason, not per snapshot: a controller of another llmgw version
    // sends one every heartbeat. The local llmgw keeps serving the last good snapshot.
    std::lock_guard<std::mutex> l(mu_);
    if (why != rejection_)
      LOG_ERROR("fleet snapshot refused; serving on the last good one", {{"error", why}, {"generation", f.generation()}});
    rejection_ = why;
    return;
  }
  std::lock_guard<std::mutex> l(mu_);
  rejection_.clear();
  // The YAML comes with the first snapshot of a link and after every reload of the
  // controller: this host reads its key files again then, as the controller did.
  if (!f.config_yaml().empty()) creds_.Invalidate();
  received_ = f.shm_snapshot();
  PublishLocked(std::move(snap));
  last_generation_ = f.generation();
  if (applied_.fetch_add(1) == 0)
    LOG_INFO("first snapshot from the controller published", {{"generation", f.generation()}});
}

void FleetAgent::PublishLocked(std::unique_ptr<shm::Snapshot> snap) {
  creds_.Fill(snap.get());
  writer_->Publish(snap.get());
  std::swap(last_, snap);
  have_last_ = true;
}

bool FleetAgent::KeyFilesChanged() {
  std::lock_guard<std::mutex> l(mu_);
  return key_watch_.Changed();
}

void FleetAgent::RefreshKeys() {
  std::lock_guard<std::mutex> l(mu_);
  creds_.Invalidate();
  if (!have_last_ || !writer_) return;
  auto snap = std::make_unique<shm::Snapshot>();
  std::string why;
  if (!shm::DecodeSnapshot(received_, snap.get(), &why)) return;  // applied once, so it decodes
  PublishLocked(std::move(snap));
}

std::vector<std::string> FleetAgent::key_files() const {
  std::lock_guard<std::mutex> l(mu_);
  return creds_.files();
}

std::map<std::string, std::string> FleetAgent::key_problems() const {
  std::lock_guard<std::mutex> l(mu_);
  return creds_.problems();
}

std::string FleetAgent::last_rejection() const {
  std::lock_guard<std::mutex> l(mu_);
  return rejection_;
}

admin::AgentStats FleetAgent::CollectStats(uint64_t sequence) {
  admin::AgentStats s;
  s.set_agent_id(agent_id_);
  s.set_instance(cfg_.instance);
  s.set_sequence(sequence);
  std::lock_guard<std::mutex> l(mu_);
  uint32_t n = have_last_ ? last_->num_backends : 0;
  shm::StatsTotals t;
  shm::SumStats(*shm_->region(), n, shm::NowUnixMs(), std::max<uint64_t>(500, 3ull * cfg_.control.heartbeat_ms), &t);
  s.set_requests_total(t.requests_total);
  s.set_dataplane_threads(t.live_threads);
  s.set_active_requests(t.active_requests);
  s.set_link_version(kFleetLinkVersion);
  s.set_snapshots_applied(applied_.load());
  s.set_last_generation(last_generation_);
  s.set_gateways_drained(drained_.load());
  s.set_lease_generation(lease_applied_);
  for (const HostUse& u : lease_use_) {
    auto* p = s.add_limiter_use();
    p->set_limiter(u.limiter);
    p->set_identity(u.identity);
    p->set_spent(u.spent);
    p->set_denied(u.denied);
    p->set_checked(u.checked);
  }
  // A row no thread has stamped with its backend's key yet counts for the backend the
  // snapshot has in that slot (the controller matches rows by key).
  for (uint32_t i = 0; i < n && i < t.backends.size(); ++i)
    if (t.backends[i].key == 0 && last_->backends[i].id[0]) t.backends[i].key = last_->backends[i].key;
  EncodeTotals(t, s.mutable_totals());
  // Prefixes this host's threads routed since the last report, for fleet-wide homes.
  prefix_reports_.Collect(*shm_->region(), [&](uint16_t model, uint64_t tag, uint64_t picks) {
    auto* p = s.add_prefixes();
    p->set_model_slot(model);
    p->set_tag(tag);
    p->set_picks(picks);
  });
  for (uint32_t i = 0; i < n && i < t.backends.size(); ++i) {
    const shm::BackendEntry& e = last_->backends[i];
    const shm::BackendTotals& b = t.backends[i];
    if (e.id[0] == 0 || (b.key != 0 && b.key != e.key)) continue;  // empty slot, or counts of an old backend
    auto* l = s.add_backends();
    l->set_id(e.id);
    l->set_in_flight(b.in_flight);
    l->set_requests_total(b.requests);
    l->set_errors_total(b.ErrorsTotal());
    l->set_latency_sum_us(b.latency.sum_us);
    l->set_latency_count(b.latency.count);
    l->set_ttft_sum_us(b.ttft.sum_us);
    l->set_ttft_count(b.ttft.count);
  }
  return s;
}

void FleetAgent::Run(const std::atomic<bool>& stop) {
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000);
  std::string dialled;  // the address channel and stub are for
  std::shared_ptr<grpc::Channel> channel;
  std::unique_ptr<admin::Fleet::Stub> stub;
  uint64_t sequence = 0;
  std::atomic<bool> was_connected{false};
  bool refused_logged = false;
  auto tick = std::chrono::milliseconds(std::max<uint32_t>(20, cfg_.control.tick_ms));
  // Until the controller says its heartbeat, the agent's own config's (3 of them, >= 1 s).
  std::atomic<int64_t> silence_ms{std::max<int64_t>(1000, 3ll * cfg_.control.heartbeat_ms)};
  auto sleep_for = [&](std::chrono::milliseconds d) {
    for (auto end = Clock::now() + d; Clock::now() < end && !stop.load();)
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
  };
  // The local threads' leases are rebalanced every tick whether the controller is there
  // or not (fail-static: on the last lease without it).
  std::thread leases([&] {
    while (!stop.load()) {
      LeaseTick();
      sleep_for(tick);
    }
  });
  while (!stop.load()) {
    std::string addr = Resolve();  // the flag's address, or the leader etcd names now
    if (addr.empty()) {
      writer_->Heartbeat();
      sleep_for(std::chrono::milliseconds(200));
      continue;
    }
    if (addr != dialled) {
      std::shared_ptr<grpc::ChannelCredentials> creds = grpc::InsecureChannelCredentials();
      if (!tls_ca_.empty()) {  // fleet.tls_ca_file: the controller's certificate is verified
        grpc::SslCredentialsOptions o;
        o.pem_root_certs = tls_ca_;
        creds = grpc::SslCredentials(o);
      }
      channel = grpc::CreateCustomChannel(addr, creds, args);
      stub = admin::Fleet::NewStub(channel);
      dialled = addr;
    }
    grpc::ClientContext ctx;
    if (!token_.empty()) ctx.AddMetadata("authorization", "Bearer " + token_);
    std::atomic<bool> done{false};
    // The controller sends a snapshot at least every heartbeat; silence for several means
    // the link is dead without a reset (a partition), and the agent looks again.
    std::atomic<int64_t> last_rx_ms{NowMs()};
    // The watch runs on its own thread from before the call starts: opening the stream, a
    // Write (on a link that died without a reset the call never starts) and Read all block
    // in gRPC, so the loop below cannot be the one that notices silence or a stop. It
    // cancels the call on either, which unblocks them all (a cancel before the call starts
    // is kept by the context and applied when it does). A stop that waited for a blocked
    // call made llmcd's SIGTERM exit slow under load.
    std::atomic<bool> silent{false}, finished{false};
    std::thread watch([&] {
      while (!finished.load() && !done.load()) {
        if (stop.load()) {
          ctx.TryCancel();
          return;
        }
        if (NowMs() - last_rx_ms.load() > silence_ms) {
          silent = true;
          ctx.TryCancel();
          return;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
      }
    });
    auto stream = stub->Sync(&ctx);
    std::thread reader([&] {
      admin::FleetSnapshot f;
      while (stream->Read(&f)) {
        last_rx_ms = NowMs();
        if (f.heartbeat_ms()) silence_ms = std::max<int64_t>(1000, 3ll * f.heartbeat_ms());
        if (!was_connected.exchange(true)) {
          LOG_INFO("connected to the fleet controller", {{"controller", addr}, {"controller_id", f.controller_id()}});
        }
        if (!f.controller_id().empty()) {
          std::lock_guard<std::mutex> l(mu_);
          controller_id_ = f.controller_id();
        }
        Apply(f);
      }
      done = true;
    });
    while (!stop.load() && !done.load() && !silent.load()) {
      if (!stream->Write(CollectStats(++sequence))) break;
      writer_->Heartbeat();
      for (auto end = Clock::now() + tick; Clock::now() < end && !stop.load() && !done.load() && !silent.load();)
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    finished = true;
    watch.join();
    // The controller ended the call (done): its status says why (a refused token, a
    // standby), which a cancel would overwrite. Otherwise cancel to unblock the reader.
    if (!done.load()) ctx.TryCancel();
    reader.join();
    // A silent link's connection is dead without the kernel knowing: the next call must
    // not ride the same channel (gRPC would wait for TCP's retransmission timeout, up to
    // minutes) but dial afresh, even when etcd still names the same controller.
    if (silent.load()) dialled.clear();
    grpc::Status st = stream->Finish();
    if (stop.load()) break;
    if (st.error_code() == grpc::StatusCode::UNAUTHENTICATED) {
      if (!refused_logged)
        LOG_ERROR("the fleet controller refused this agent's admin token (admin.token_file)", {{"controller", addr}});
      refused_logged = true;
    } else {
      refused_logged = false;
    }
    if (was_connected.exchange(false))
      LOG_WARN("lost the fleet controller; serving on the last snapshot",
               {{"error", silent.load() ? std::string("no snapshot for ") + std::to_string(silence_ms.load()) + " ms" : st.error_message()}});
    writer_->Heartbeat();
    sleep_for(std::chrono::milliseconds(200));
  }
  leases.join();
}

}  // namespace llmgw::cp
