// Shared-memory object lifecycle, the seqlock snapshot double buffer and stats slots
// (see shm.h and shm_layout.h for the contract).
//
// Snapshot copies use 8-byte atomic loads (acquire) and stores (release) instead of
// memcpy: a seqlock reader races with the writer by design, and word-wise atomics keep
// that race defined. Acquire/release on the data words (plain movs on x86) replace the
// usual seqlock fences, which TSan cannot model: a reader that sees any word of a newer
// write is guaranteed to see that writer's odd sequence number on its re-check.
#include "common/shm.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/statvfs.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <pwd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <thread>

#include "common/log.h"

namespace llmgw::shm {

uint64_t NowUnixMs() {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000 + static_cast<uint64_t>(ts.tv_nsec) / 1000000;
}

bool PidAlive(pid_t pid) {
  if (pid <= 0) return false;
  return ::kill(pid, 0) == 0 || errno == EPERM;
}

void Unlink(const std::string& name) { ::shm_unlink(name.c_str()); }

namespace {

constexpr int kOpenAttempts = 5;

// "uid 65534 (nobody)": the owner as an operator would want to read it.
std::string DescribeUid(uid_t uid) {
  std::string s = "uid " + std::to_string(uid);
  struct passwd pw {};
  struct passwd* found = nullptr;
  char buf[1024];
  if (::getpwuid_r(uid, &pw, buf, sizeof(buf), &found) == 0 && found && found->pw_name)
    s += std::string(" (") + found->pw_name + ")";
  return s;
}

// An existing object is trusted only when it is ours alone: owned by our effective user
// and closed to group and others. Anyone else who can write it can publish a snapshot
// that sends this host's requests (prompts, Authorization headers) to a server of their
// choice, or read them from the stats. /dev/shm is world-writable, so another local user
// can create /dev/shm/llmgw-<instance> before us: we refuse it rather than adopt it.
Status CheckOwnership(const std::string& name, const struct stat& st) {
  const uid_t me = ::geteuid();
  const unsigned mode = static_cast<unsigned>(st.st_mode & 07777);
  if (st.st_uid == me && (mode & 077) == 0) return Status();
  const std::string path = "/dev/shm" + name;
  char mode_text[8];
  std::snprintf(mode_text, sizeof(mode_text), "%04o", mode);
  // Error messages are short (no heap on the hot path); the remedy goes to the log.
  LOG_ERROR("refusing to attach a shared-memory object that is not this user's alone: another "
            "local user may have created it to redirect traffic. Stop whatever uses it, check who "
            "created it, remove it (rm " + path + ") and start again, or use another instance name",
            {{"path", path}, {"owner", DescribeUid(st.st_uid)}, {"mode", mode_text},
             {"required_owner", DescribeUid(me)}, {"required_mode", "0600 (no group/other bits)"}});
  return Error(ErrorKind::kShm, ErrorSide::kInternal, false,
               "refusing %s: owned by %s, mode %s; needs owner %s, mode 0600 (rm it and restart)",
               path.c_str(), DescribeUid(st.st_uid).c_str(), mode_text, DescribeUid(me).c_str());
}

bool AnyOtherLivePid(const ShmHeader& h) {
  pid_t self = ::getpid();
  for (const auto& a : h.attached) {
    auto pid = static_cast<pid_t>(a.load(std::memory_order_acquire));
    if (pid != 0 && pid != self && PidAlive(pid)) return true;
  }
  return false;
}

void RegisterPid(ShmHeader& h) {
  uint64_t self = static_cast<uint64_t>(::getpid());
  for (auto& a : h.attached)
    if (a.load() == self) return;
  for (int pass = 0; pass < 2; ++pass) {
    for (auto& a : h.attached) {
      uint64_t cur = a.load();
      bool free = cur == 0 || (pass == 1 && !PidAlive(static_cast<pid_t>(cur)));
      if (free && a.compare_exchange_strong(cur, self)) return;
    }
  }
  // Table full of live pids: the object still works, we just cannot be counted for cleanup.
  LOG_WARN("shm attach table full; this process will not take part in cleanup");
}

void UnregisterPid(ShmHeader& h) {
  uint64_t self = static_cast<uint64_t>(::getpid());
  for (auto& a : h.attached) {
    uint64_t cur = self;
    a.compare_exchange_strong(cur, 0);
  }
}

void InitHeader(ShmRegion* r) {
  ShmHeader& h = r->header;
  h.abi_version = kShmAbiVersion;
  h.total_size = sizeof(ShmRegion);
  h.snapshot_size = sizeof(Snapshot);
  h.stats_slot_size = sizeof(StatsSlot);
  h.max_backends = kMaxBackends;
  h.max_models = kMaxModels;
  h.max_stats_slots = kMaxStatsSlots;
  h.hist_buckets = kHistBuckets;
  h.generation.store(0, std::memory_order_relaxed);
  h.magic.store(kShmMagic, std::memory_order_release);
}

}  // namespace

Result<std::unique_ptr<ShmObject>> ShmObject::Open(const std::string& name) {
  if (name.size() < 2 || name[0] != '/' || name.find('/', 1) != std::string::npos)
    return Error(ErrorKind::kShm, ErrorSide::kInternal, false,
                 "shm name '%s' must look like /name", name.c_str());
  const size_t size = sizeof(ShmRegion);
  for (int attempt = 0; attempt < kOpenAttempts; ++attempt) {
    int fd = ::shm_open(name.c_str(), O_RDWR | O_CREAT | O_EXCL, 0600);
    if (fd >= 0) {
      // The object is sparse, but its pages get written as threads and backends are used;
      // on a /dev/shm smaller than the object (Docker's default is 64 MB) the write that
      // finds it full kills llmgw and llmcd with SIGBUS, without a log line, under load.
      // Refuse at start instead, saying what to do.
      struct statvfs fs;
      if (::fstatvfs(fd, &fs) == 0 && static_cast<uint64_t>(fs.f_bavail) * fs.f_frsize < size) {
        uint64_t free_mib = static_cast<uint64_t>(fs.f_bavail) * fs.f_frsize >> 20;
        ::close(fd);
        ::shm_unlink(name.c_str());
        return Error(ErrorKind::kShm, ErrorSide::kInternal, false,
                     "/dev/shm has %llu MiB free, %s needs %zu MiB: enlarge it (docker run --shm-size=256m)",
                     static_cast<unsigned long long>(free_mib), name.c_str(), (size + (1 << 20) - 1) >> 20);
      }
      if (::ftruncate(fd, static_cast<off_t>(size)) != 0) {
        int e = errno;
        ::close(fd);
        ::shm_unlink(name.c_str());
        return Error(ErrorKind::kShm, ErrorSide::kInternal, false, "ftruncate %s to %zu: %s",
                     name.c_str(), size, std::strerror(e));
      }
      void* p = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
      ::close(fd);
      if (p == MAP_FAILED)
        return Error(ErrorKind::kShm, ErrorSide::kInternal, false, "mmap %s: %s", name.c_str(),
                     std::strerror(errno));
      auto* r = static_cast<ShmRegion*>(p);
      RegisterPid(r->header);
      InitHeader(r);
      return std::unique_ptr<ShmObject>(new ShmObject(name, r, true));
    }
    if (errno != EEXIST)
      return Error(ErrorKind::kShm, ErrorSide::kInternal, false, "shm_open %s: %s", name.c_str(),
                   std::strerror(errno));
    // O_NOFOLLOW: /dev/shm is world-writable, a symlink planted there must not redirect us.
    fd = ::shm_open(name.c_str(), O_RDWR | O_NOFOLLOW, 0600);
    if (fd < 0) {
      int e = errno;
      if (e == ENOENT) continue;  // removed between our two opens: try to create again
      // Not even openable (another user's 0600 object, a symlink): say whose it is.
      struct stat lst {};
      if ((e == EACCES || e == ELOOP) && ::lstat(("/dev/shm" + name).c_str(), &lst) == 0) {
        Status own = CheckOwnership(name, lst);
        if (!own.ok()) return own.error();
      }
      return Error(ErrorKind::kShm, ErrorSide::kInternal, false, "shm_open %s: %s", name.c_str(),
                   std::strerror(e));
    }
    struct stat st {};
    if (::fstat(fd, &st) != 0) {
      int e = errno;
      ::close(fd);
      return Error(ErrorKind::kShm, ErrorSide::kInternal, false, "fstat %s: %s", name.c_str(),
                   std::strerror(e));
    }
    if (Status own = CheckOwnership(name, st); !own.ok()) {
      ::close(fd);
      return own.error();
    }
    // The creator may still be sizing and initialising it; give it a moment.
    bool ready = false;
    for (int i = 0; i < 200; ++i) {
      if (::fstat(fd, &st) == 0 && static_cast<size_t>(st.st_size) >= sizeof(ShmHeader)) {
        ready = true;
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    size_t map_size = ready ? static_cast<size_t>(st.st_size) : 0;
    if (!ready) {
      ::close(fd);
      LOG_WARN("removing a stale, never-initialised shm object", {{"name", name}});
      ::shm_unlink(name.c_str());
      continue;
    }
    void* p = ::mmap(nullptr, map_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    ::close(fd);
    if (p == MAP_FAILED)
      return Error(ErrorKind::kShm, ErrorSide::kInternal, false, "mmap %s: %s", name.c_str(),
                   std::strerror(errno));
    auto* h = static_cast<ShmHeader*>(p);
    bool magic_ok = false;
    for (int i = 0; i < 200; ++i) {
      if (h->magic.load(std::memory_order_acquire) == kShmMagic) {
        magic_ok = true;
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    bool layout_ok = magic_ok && h->abi_version == kShmAbiVersion && h->total_size == size &&
                     map_size == size && h->snapshot_size == sizeof(Snapshot) &&
                     h->stats_slot_size == sizeof(StatsSlot);
    if (layout_ok) {
      auto* r = static_cast<ShmRegion*>(p);
      RegisterPid(r->header);
      return std::unique_ptr<ShmObject>(new ShmObject(name, r, false));
    }
    bool in_use = magic_ok && map_size >= sizeof(ShmHeader) && AnyOtherLivePid(*h);
    uint32_t abi = magic_ok ? h->abi_version : 0;
    uint64_t their_size = magic_ok ? h->total_size : map_size;
    ::munmap(p, map_size);
    if (in_use)
      return Error(ErrorKind::kShm, ErrorSide::kInternal, false,
                   "shm %s has ABI v%u (%llu bytes) but this binary needs v%u (%zu bytes) and it "
                   "is in use by a live process; stop it or use another instance name",
                   name.c_str(), abi, static_cast<unsigned long long>(their_size), kShmAbiVersion, size);
    LOG_WARN("removing a stale shm object with another layout",
             {{"name", name}, {"abi", abi}, {"size", their_size}});
    ::shm_unlink(name.c_str());
  }
  return Error(ErrorKind::kShm, ErrorSide::kInternal, false,
               "could not create or attach shm %s after %d attempts", name.c_str(), kOpenAttempts);
}

ShmObject::~ShmObject() { Close(); }

void ShmObject::Close() {
  if (closed_) return;
  closed_ = true;
  UnregisterPid(region_->header);
  bool last = !AnyOtherLivePid(region_->header);
  ::munmap(region_, sizeof(ShmRegion));
  if (last) ::shm_unlink(name_.c_str());
}

// ---- snapshot ---------------------------------------------------------------------------

namespace {
inline size_t Words(size_t bytes) { return (bytes + 7) / 8; }

void StoreWords(void* dst, const void* src, size_t bytes) {
  auto* d = static_cast<uint64_t*>(dst);
  const auto* s = static_cast<const uint64_t*>(src);
  for (size_t i = 0, n = Words(bytes); i < n; ++i) __atomic_store_n(d + i, s[i], __ATOMIC_RELEASE);
}
void LoadWords(void* dst, const void* src, size_t bytes) {
  auto* d = static_cast<uint64_t*>(dst);
  const auto* s = static_cast<const uint64_t*>(src);
  for (size_t i = 0, n = Words(bytes); i < n; ++i)
    d[i] = __atomic_load_n(const_cast<uint64_t*>(s + i), __ATOMIC_ACQUIRE);
}
}  // namespace

SnapshotWriter::SnapshotWriter(ShmRegion* r) : r_(r) {
  r_->header.writer_pid.store(static_cast<uint64_t>(::getpid()), std::memory_order_relaxed);
}

void SnapshotWriter::Heartbeat() {
  r_->header.writer_heartbeat_unix_ms.store(NowUnixMs(), std::memory_order_release);
}

uint64_t SnapshotWriter::Publish(Snapshot* s) {
  ShmHeader& h = r_->header;
  uint64_t next = h.generation.load(std::memory_order_relaxed) + 1;
  if (s->num_backends > kMaxBackends) s->num_backends = kMaxBackends;
  if (s->num_models > kMaxModels) s->num_models = kMaxModels;
  if (s->num_prefix_homes > kMaxPrefixHomes) s->num_prefix_homes = kMaxPrefixHomes;
  if (s->num_keys > kMaxKeys) s->num_keys = kMaxKeys;
  s->generation = next;
  s->published_unix_ms = NowUnixMs();
  s->checksum = SnapshotChecksum(*s);
  SnapshotBuffer& b = r_->buffers[next & 1];
  uint64_t seq = b.seq.load(std::memory_order_relaxed);
  b.seq.store(seq + 1, std::memory_order_relaxed);
  StoreWords(&b.snap, s, offsetof(Snapshot, limits));
  ForEachUsedRange(*s, [&](size_t off, size_t len) {
    StoreWords(reinterpret_cast<char*>(&b.snap) + off, reinterpret_cast<const char*>(s) + off, len);
  });
  b.seq.store(seq + 2, std::memory_order_release);
  h.generation.store(next, std::memory_order_release);
  Heartbeat();
  return next;
}

bool SnapshotReader::Refresh(Snapshot* out) {
  const ShmHeader& h = r_->header;
  for (;;) {
    uint64_t g = h.generation.load(std::memory_order_acquire);
    if (g == 0) return false;
    const SnapshotBuffer& b = r_->buffers[g & 1];
    uint64_t s1 = b.seq.load(std::memory_order_acquire);
    if (s1 & 1) {
      ++torn_;
      continue;
    }
    // Header first, to learn how many rows are worth copying.
    LoadWords(out, &b.snap, offsetof(Snapshot, limits));
    uint32_t nb = out->num_backends <= kMaxBackends ? out->num_backends : kMaxBackends;
    uint32_t nm = out->num_models <= kMaxModels ? out->num_models : kMaxModels;
    uint32_t np = out->num_prefix_homes <= kMaxPrefixHomes ? out->num_prefix_homes : kMaxPrefixHomes;
    uint32_t nk = out->num_keys <= kMaxKeys ? out->num_keys : kMaxKeys;
    ForEachUsedRange(nm, nb, np, nk, [&](size_t off, size_t len) {
      LoadWords(reinterpret_cast<char*>(out) + off, reinterpret_cast<const char*>(&b.snap) + off, len);
    });
    if (b.seq.load(std::memory_order_relaxed) != s1) {
      ++torn_;
      continue;
    }
    out->num_backends = nb;
    out->num_models = nm;
    out->num_prefix_homes = np;
    out->num_keys = nk;
    last_ = out->generation;
    return true;
  }
}

// ---- stats ------------------------------------------------------------------------------

namespace {
// Gauges of a (re)claimed or released slot start from 0; counters keep counting.
#define LLMGW_NO_(...)
#define LLMGW_RESET_GAUGE_(field, ...) Set(s.field, 0);
#define LLMGW_RESET_GAUGES(LIST) LIST(LLMGW_NO_, LLMGW_RESET_GAUGE_, LLMGW_NO_, LLMGW_NO_)
void ResetGauges(StatsSlot* slot) {
  {
    StatsSlot& s = *slot;
    LLMGW_RESET_GAUGES(LLMGW_THREAD_STATS)
  }
  for (ModelStats& s : slot->models) {
    LLMGW_RESET_GAUGES(LLMGW_MODEL_STATS)
  }
  for (BackendStats& s : slot->backends) {
    LLMGW_RESET_GAUGES(LLMGW_BACKEND_STATS)
  }
  // A concurrency limiter's `spent` is the thread's in-flight count: a gauge.
  for (uint32_t i = 0; i < LimitKindSlots(LimitKind::kKeyConcurrency); ++i)
    Set(slot->limiter_use[LimiterIndex(LimitKind::kKeyConcurrency, i)].spent, 0);
}

// Adds one slot's row (in) to the totals (out), entry by entry of the list.
inline uint64_t Ld(const std::atomic<uint64_t>& a) { return a.load(std::memory_order_relaxed); }
#define LLMGW_SUM_SCALAR_(field, ...) out.field += Ld(in.field);
#define LLMGW_SUM_VEC_(field, size, ...) \
  for (size_t k = 0; k < (size); ++k) out.field[k] += Ld(in.field[k]);
#define LLMGW_SUM_HIST_(field, ...) out.field.Add(in.field);
#define LLMGW_SUM(LIST) LIST(LLMGW_SUM_SCALAR_, LLMGW_SUM_SCALAR_, LLMGW_SUM_VEC_, LLMGW_SUM_HIST_)
void AddRow(const StatsSlot& in, StatsTotals& out) { LLMGW_SUM(LLMGW_THREAD_STATS) }
void AddRow(const ModelStats& in, ModelTotals& out) { LLMGW_SUM(LLMGW_MODEL_STATS) }
void AddRow(const BackendStats& in, BackendTotals& out) { LLMGW_SUM(LLMGW_BACKEND_STATS) }
void AddRow(const KeyModelStats& in, KeyModelTotals& out) { LLMGW_SUM(LLMGW_KEY_MODEL_STATS) }
}  // namespace

StatsSlot* ClaimStatsSlot(ShmRegion* r, uint32_t thread_index, Error* err) {
  uint64_t me = (static_cast<uint64_t>(::getpid()) << 32) | thread_index;
  for (int pass = 0; pass < 2; ++pass) {
    for (auto& slot : r->slots) {
      uint64_t cur = slot.owner.load(std::memory_order_acquire);
      bool take = cur == 0 || (pass == 1 && !PidAlive(static_cast<pid_t>(cur >> 32)));
      if (take && slot.owner.compare_exchange_strong(cur, me, std::memory_order_acq_rel)) {
        ResetGauges(&slot);
        slot.heartbeat_unix_ms.store(NowUnixMs(), std::memory_order_relaxed);
        return &slot;
      }
    }
  }
  if (err)
    *err = Error(ErrorKind::kShm, ErrorSide::kInternal, false,
                 "all %u stats slots are taken by live threads", kMaxStatsSlots);
  return nullptr;
}

void ReleaseStatsSlot(StatsSlot* slot) {
  if (!slot) return;
  ResetGauges(slot);
  slot->owner.store(0, std::memory_order_release);
}

void HistogramTotals::Add(const Histogram& h) {
  for (uint32_t i = 0; i < kHistBuckets; ++i) buckets[i] += h.buckets[i].load(std::memory_order_relaxed);
  sum_us += h.sum_us.load(std::memory_order_relaxed);
  count += h.count.load(std::memory_order_relaxed);
}

void HistogramTotals::Add(const HistogramTotals& h) {
  for (uint32_t i = 0; i < kHistBuckets; ++i) buckets[i] += h.buckets[i];
  sum_us += h.sum_us;
  count += h.count;
}

#define LLMGW_ADD_SCALAR_(field, ...) out->field += in.field;
#define LLMGW_ADD_VEC_(field, size, ...) \
  for (size_t k = 0; k < (size); ++k) out->field[k] += in.field[k];
#define LLMGW_ADD_HIST_(field, ...) out->field.Add(in.field);
#define LLMGW_ADD(LIST) LIST(LLMGW_ADD_SCALAR_, LLMGW_ADD_SCALAR_, LLMGW_ADD_VEC_, LLMGW_ADD_HIST_)
void AddTotals(const BackendTotals& in, BackendTotals* out) {
  if (in.key != 0) out->key = in.key;
  LLMGW_ADD(LLMGW_BACKEND_STATS)
}
void AddTotals(const ModelTotals& in, ModelTotals* out) { LLMGW_ADD(LLMGW_MODEL_STATS) }

double HistogramTotals::QuantileUs(double q) const {
  uint64_t total = 0;
  for (uint64_t b : buckets) total += b;
  if (total == 0) return 0;
  double rank = q * static_cast<double>(total);
  uint64_t seen = 0;
  for (uint32_t i = 0; i < kHistBuckets; ++i) {
    uint64_t prev = seen;
    seen += buckets[i];
    if (static_cast<double>(seen) >= rank && buckets[i] > 0) {
      double lo = i == 0 ? 0 : static_cast<double>(kHistBoundsUs[i - 1]);
      double hi = i < kHistBuckets - 1 ? static_cast<double>(kHistBoundsUs[i]) : lo * 2;
      double frac = (rank - static_cast<double>(prev)) / static_cast<double>(buckets[i]);
      return lo + (hi - lo) * frac;  // linear inside the bucket, as Prometheus does
    }
  }
  return static_cast<double>(kHistBoundsUs[kHistBuckets - 2]);
}

uint64_t BackendTotals::ErrorsTotal() const {
  uint64_t t = 0;
  for (uint64_t e : errors) t += e;
  return t;
}

uint64_t ModelTotals::RequestsTotal() const {
  uint64_t t = 0;
  for (uint64_t c : requests_by_code) t += c;
  return t;
}

void SumStats(const ShmRegion& r, uint32_t num_backends, uint64_t now_ms, uint64_t dead_after_ms,
              StatsTotals* out) {
  if (num_backends > kMaxBackends) num_backends = kMaxBackends;
  *out = StatsTotals();
  out->models.resize(kMaxModels);
  out->backends.resize(num_backends);
  out->limiters.resize(kNumLimiters);
  auto ld = [](const std::atomic<uint64_t>& a) { return a.load(std::memory_order_relaxed); };
  for (const StatsSlot& s : r.slots) {
    uint64_t owner = ld(s.owner);
    uint64_t hb = ld(s.heartbeat_unix_ms);
    if (owner != 0) {
      ++out->claimed_slots;
      // A heartbeat newer than now_ms (written after the caller read the clock) is live.
      bool recent = hb >= now_ms || now_ms - hb <= dead_after_ms;
      if (PidAlive(static_cast<pid_t>(owner >> 32)) && recent) ++out->live_threads;
      if (hb > out->newest_heartbeat_ms) out->newest_heartbeat_ms = hb;
    }
    if (hb == 0) continue;  // never used
    AddRow(s, *out);
    for (uint32_t m = 0; m < kMaxModels; ++m) AddRow(s.models[m], out->models[m]);
    for (uint32_t b = 0; b < num_backends; ++b) {
      uint64_t key = ld(s.backends[b].key);
      if (key != 0) out->backends[b].key = key;
      AddRow(s.backends[b], out->backends[b]);
    }
    for (uint32_t i = 0; i < kNumLimiters; ++i) {
      const LimiterUse& u = s.limiter_use[i];
      StatsTotals::Limiter& l = out->limiters[i];
      l.spent += ld(u.spent);
      l.denied += ld(u.denied);
      l.checked += ld(u.checked);
    }
    for (const KeyModelStats& row : s.key_models) {
      if (row.tag.load(std::memory_order_acquire) == 0) continue;
      uint64_t key = ld(row.key_hash);
      uint32_t model = static_cast<uint32_t>(ld(row.model_slot));
      AddRow(row, out->key_models[{key, model}]);
    }
  }
}

}  // namespace llmgw::shm
