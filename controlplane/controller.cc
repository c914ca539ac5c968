// Controller core: the worker pool, start/shutdown and the publish loop (Tick/Run).
// The rest of the Controller is split by responsibility:
//   controller_reload.cc   config validation, reload and the runtime rebuild it drives
//   controller_probe.cc    health probes and metric scrapes (dispatch and mailbox)
//   controller_policy.cc   per-backend policy state from data-plane stats (EWMA, passive
//                          health, breakers) and the adaptive bandits
//   controller_publish.cc  snapshot overlay and publishing (shm and fleet)
//   controller_views.cc    operator actions and the read-only views for admin/metrics
// See controller.h for the threading model and docs/CONTROLPLANE.md for the decisions.
#include "controlplane/controller.h"

#include <algorithm>
#include <chrono>
#include <cstring>

#include "common/log.h"
#include "controlplane/controller_internal.h"

namespace llmgw::cp {

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
  if (threads_.empty()) {
    {
      std::lock_guard<std::mutex> l(mu_);
      if (stop_) return false;
    }
    job();
    return true;
  }
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

namespace {

uint64_t SteadyMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

}  // namespace

Controller::Controller(ControllerOptions opts) : opts_(std::move(opts)), rng_(opts_.seed) {
  if (!opts_.clock_ms) opts_.clock_ms = SteadyMs;
  if (!opts_.prober) opts_.prober = std::make_shared<HttpProber>();
  base_ = std::make_unique<shm::Snapshot>();
  published_ = std::make_unique<shm::Snapshot>();
  scratch_ = std::make_unique<shm::Snapshot>();
  std::memset(base_.get(), 0, sizeof(shm::Snapshot));
  std::memset(published_.get(), 0, sizeof(shm::Snapshot));
  std::memset(scratch_.get(), 0, sizeof(shm::Snapshot));
  pool_ = std::make_unique<WorkerPool>(opts_.worker_threads, 4096);
}

Controller::~Controller() { Shutdown(); }

llmgw::Status Controller::Start(const std::string& config_path) {
  ConfigResult r = LoadConfigFile(config_path, /*read_backend_keys=*/true);
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

void Controller::Tick() {
  std::lock_guard<std::mutex> l(mu_);
  if (shut_down_) return;
  uint64_t now = Now();
  DrainMailbox(now);
  UpdateFromStats(now);
  if (shm_) {
    // Leases follow the configured limits (base_: a reload changes them at once).
    ShmLeaseIo io(shm_->region());
    std::vector<LimiterSpec> specs = LimiterSpecs(*base_);
    if (fleet_lease_) {
      std::vector<LimiterSpec> mine = fleet_lease_(specs, SumHostUse(io, specs));
      bool shared = false;  // another gateway holds part of some limit
      for (size_t i = 0; i < mine.size() && i < specs.size(); ++i)
        if (mine[i].capacity < specs[i].capacity) shared = true;
      leaser_.set_idle_floor_share(shared ? kFleetIdleFloorShare : QuotaLeaserOptions().idle_floor_share);
      specs = std::move(mine);
    }
    leaser_.Tick(now, specs, &io);
  }
  for (auto& [id, b] : backends_) b->breaker->Advance();
  UpdateBandits();
  UpdatePrefixHomes(now);
  UpdateKeyUsage(now);
  DispatchJobs(now);
  Publish(now);
}

std::vector<BackendHost> Controller::BackendHosts(uint64_t* version) const {
  std::lock_guard<std::mutex> l(mu_);
  *version = config_version_;
  std::map<uint64_t, int> slot_of;  // BackendEntry::key -> slot
  for (uint32_t i = 0; i < base_->num_backends && i < shm::kMaxBackends; ++i)
    if (base_->backends[i].id[0]) slot_of[base_->backends[i].key] = static_cast<int>(i);
  std::vector<BackendHost> out;
  for (const auto& m : cfg_.models)
    for (const auto& b : m.backends) {
      auto it = slot_of.find(BackendKey(b.id));
      if (it == slot_of.end()) continue;
      const shm::BackendEntry& e = base_->backends[it->second];
      BackendHost h;
      h.slot = it->second;
      h.key = e.key;
      h.id = b.id;
      h.host = b.parsed.host;
      h.port = b.parsed.port;
      h.addr.family = e.family;
      std::memcpy(h.addr.addr, e.addr, sizeof(h.addr.addr));
      out.push_back(std::move(h));
    }
  return out;
}

size_t Controller::ApplyResolvedAddresses(uint64_t version, const std::vector<AddrChange>& changes) {
  std::lock_guard<std::mutex> l(mu_);
  if (version != config_version_) return 0;
  size_t n = 0;
  for (const AddrChange& c : changes) {
    if (c.slot < 0 || static_cast<uint32_t>(c.slot) >= base_->num_backends) continue;
    shm::BackendEntry& e = base_->backends[c.slot];
    if (e.key != c.key) continue;
    ResolvedAddr now;
    now.family = e.family;
    std::memcpy(now.addr, e.addr, sizeof(now.addr));
    if (SameAddr(now, c.addr)) continue;
    e.family = c.addr.family;
    std::memcpy(e.addr, c.addr.addr, sizeof(e.addr));
    ++n;
  }
  if (n) dirty_ = true;  // published by the next tick
  return n;
}

uint32_t Controller::resolve_interval_ms() const {
  std::lock_guard<std::mutex> l(mu_);
  return cfg_.control.resolve_interval_ms;
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

void Controller::SetFleetLeaseHook(FleetLeaseHook h) {
  std::lock_guard<std::mutex> l(mu_);
  fleet_lease_ = std::move(h);
}

void Controller::MarkDirty() {
  std::lock_guard<std::mutex> l(mu_);
  dirty_ = true;
}

}  // namespace llmgw::cp
