// Shared-memory contract: torn snapshots are never accepted (threads and a forked
// process read while a writer publishes 100,000 snapshots), ABI mismatches are refused
// while in use and replaced when stale, stats slots sum correctly, cleanup unlinks.
#include "common/shm.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

namespace llmgw::shm {
namespace {

std::string TestName(const char* tag) {
  return "/llmgw-test-" + std::string(tag) + "-" + std::to_string(::getpid());
}

bool ShmExists(const std::string& name) {
  int fd = ::shm_open(name.c_str(), O_RDONLY, 0);
  if (fd < 0) return false;
  ::close(fd);
  return true;
}

// Fills a snapshot with data derived from a seed so any mix of two snapshots is detected.
void Fill(Snapshot* s, uint64_t seed) {
  std::mt19937_64 rng(seed);
  s->num_backends = 1 + static_cast<uint32_t>(rng() % 48);
  s->num_models = 1 + static_cast<uint32_t>(rng() % 4);
  s->limits.max_body_bytes = rng();
  s->limits.connect_ms = static_cast<uint32_t>(seed);
  for (uint32_t m = 0; m < s->num_models; ++m) {
    std::snprintf(s->models[m].name, kNameLen, "model-%llu-%u", static_cast<unsigned long long>(seed), m);
    s->models[m].present = 1;
  }
  for (uint32_t b = 0; b < s->num_backends; ++b) {
    BackendEntry& e = s->backends[b];
    std::snprintf(e.id, kUrlLen, "http://10.0.%u.%u:8000", static_cast<unsigned>(seed % 250), b);
    e.key = rng();
    e.running = static_cast<float>(rng() % 100);
    e.kv_usage = static_cast<float>(rng() % 1000) / 1000.0f;
    e.max_concurrent = static_cast<uint32_t>(rng());
    e.fleet_in_flight = static_cast<uint32_t>(seed);
  }
}

// Reads until `last` is seen; returns the number of bad copies (checksum mismatch or a
// generation going backwards). Accepted copies are counted in *accepted.
uint64_t ReadUntil(const ShmRegion* r, uint64_t last, uint64_t* accepted) {
  auto snap = std::make_unique<Snapshot>();
  SnapshotReader reader(r);
  uint64_t bad = 0, prev = 0;
  *accepted = 0;
  for (;;) {
    if (!reader.Changed()) {
      std::this_thread::yield();
      continue;
    }
    if (!reader.Refresh(snap.get())) continue;
    ++*accepted;
    if (SnapshotChecksum(*snap) != snap->checksum) ++bad;
    if (snap->limits.connect_ms != static_cast<uint32_t>(snap->generation)) ++bad;
    if (snap->generation < prev) ++bad;
    prev = snap->generation;
    if (snap->generation >= last) break;
  }
  return bad;
}

TEST(ShmTest, NoTornSnapshotIsEverAccepted) {
  const std::string name = TestName("torn");
  Unlink(name);
  auto obj = ShmObject::Open(name);
  ASSERT_TRUE(obj.ok()) << obj.error().message();
  ShmRegion* r = obj.value()->region();
  constexpr uint64_t kPublishes = 100000;

  // A forked reader process attaches by name and reports bad copies in its exit code.
  pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    auto mine = ShmObject::Open(name);
    if (!mine.ok()) _exit(100);
    uint64_t accepted = 0;
    uint64_t bad = ReadUntil(mine.value()->region(), kPublishes, &accepted);
    _exit(bad == 0 ? (accepted > 0 ? 0 : 101) : 1);
  }

  std::atomic<uint64_t> bad_total{0}, accepted_total{0};
  std::vector<std::thread> readers;
  for (int i = 0; i < 2; ++i) {
    readers.emplace_back([&] {
      uint64_t accepted = 0;
      bad_total += ReadUntil(r, kPublishes, &accepted);
      accepted_total += accepted;
    });
  }
  SnapshotWriter writer(r);
  auto snap = std::make_unique<Snapshot>();
  for (uint64_t g = 1; g <= kPublishes; ++g) {
    std::memset(snap.get(), 0, sizeof(Snapshot));
    Fill(snap.get(), g);
    EXPECT_EQ(writer.Publish(snap.get()), g);
  }
  for (auto& t : readers) t.join();
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0) << "forked reader saw torn snapshots (or failed to attach)";
  EXPECT_EQ(bad_total.load(), 0u);
  EXPECT_GT(accepted_total.load(), 2u);
  obj.value()->Close();
  EXPECT_FALSE(ShmExists(name)) << "the last process out must remove the object";
}

TEST(ShmTest, ReaderSeesNothingBeforeFirstPublishThenChanges) {
  const std::string name = TestName("first");
  Unlink(name);
  auto obj = ShmObject::Open(name);
  ASSERT_TRUE(obj.ok());
  ShmRegion* r = obj.value()->region();
  SnapshotReader reader(r);
  auto snap = std::make_unique<Snapshot>();
  EXPECT_FALSE(reader.Changed());
  EXPECT_FALSE(reader.Refresh(snap.get()));
  auto w = std::make_unique<Snapshot>();
  Fill(w.get(), 7);
  SnapshotWriter(r).Publish(w.get());
  EXPECT_TRUE(reader.Changed());
  ASSERT_TRUE(reader.Refresh(snap.get()));
  EXPECT_FALSE(reader.Changed());
  EXPECT_EQ(snap->generation, 1u);
  EXPECT_EQ(snap->num_backends, w->num_backends);
  EXPECT_STREQ(snap->backends[0].id, w->backends[0].id);
}

TEST(ShmTest, SecondOpenAttachesToTheSameObject) {
  const std::string name = TestName("attach");
  Unlink(name);
  auto a = ShmObject::Open(name);
  ASSERT_TRUE(a.ok());
  EXPECT_TRUE(a.value()->created());
  auto b = ShmObject::Open(name);
  ASSERT_TRUE(b.ok());
  EXPECT_FALSE(b.value()->created());
  a.value()->region()->header.writer_heartbeat_unix_ms.store(1234);
  EXPECT_EQ(b.value()->region()->header.writer_heartbeat_unix_ms.load(), 1234u);
  a.value()->Close();
  b.value()->Close();
  EXPECT_FALSE(ShmExists(name));
}

// Writes a header with another ABI version into a fresh object named `name`.
void PlantForeignObject(const std::string& name, uint32_t abi, pid_t attached_pid) {
  int fd = ::shm_open(name.c_str(), O_RDWR | O_CREAT | O_EXCL, 0600);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::ftruncate(fd, sizeof(ShmHeader) + 4096), 0);
  void* p = ::mmap(nullptr, sizeof(ShmHeader), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  ::close(fd);
  ASSERT_NE(p, MAP_FAILED);
  auto* h = static_cast<ShmHeader*>(p);
  h->abi_version = abi;
  h->total_size = sizeof(ShmHeader) + 4096;
  h->attached[0].store(static_cast<uint64_t>(attached_pid));
  h->magic.store(kShmMagic);
  ::munmap(p, sizeof(ShmHeader));
}

TEST(ShmTest, AbiMismatchInUseIsRefusedWithClearError) {
  const std::string name = TestName("abi");
  Unlink(name);
  // A live process (our parent, which outlives the test) "uses" the foreign object.
  PlantForeignObject(name, kShmAbiVersion + 1, ::getppid());
  auto obj = ShmObject::Open(name);
  ASSERT_FALSE(obj.ok());
  std::string msg = obj.error().message();
  EXPECT_NE(msg.find("ABI v" + std::to_string(kShmAbiVersion + 1)), std::string::npos) << msg;
  EXPECT_NE(msg.find("in use"), std::string::npos) << msg;
  EXPECT_TRUE(ShmExists(name)) << "an object in use must not be removed";
  Unlink(name);
}

TEST(ShmTest, StaleObjectFromCrashedRunIsReplaced) {
  const std::string name = TestName("stale");
  Unlink(name);
  pid_t dead = ::fork();
  if (dead == 0) _exit(0);
  ::waitpid(dead, nullptr, 0);  // now a pid that is not alive
  PlantForeignObject(name, kShmAbiVersion + 7, dead);
  auto obj = ShmObject::Open(name);
  ASSERT_TRUE(obj.ok()) << obj.error().message();
  EXPECT_TRUE(obj.value()->created());
  EXPECT_EQ(obj.value()->region()->header.abi_version, kShmAbiVersion);
}

// An attacker's object: a fully initialised region (so only ownership can tell it apart),
// then given `mode` and, when uid is not -1, another owner.
std::unique_ptr<ShmObject> PlantOthersObject(const std::string& name, mode_t mode, uid_t uid) {
  auto obj = ShmObject::Open(name);
  EXPECT_TRUE(obj.ok());
  if (!obj.ok()) return nullptr;
  int fd = ::shm_open(name.c_str(), O_RDWR, 0);
  EXPECT_GE(fd, 0);
  EXPECT_EQ(::fchmod(fd, mode), 0);
  if (uid != static_cast<uid_t>(-1)) {
    EXPECT_EQ(::fchown(fd, uid, static_cast<gid_t>(-1)), 0);
  }
  ::close(fd);
  return std::move(obj.value());
}

// Issue 17, defect 3: anyone who can write the object can route this host's requests.
TEST(ShmTest, ObjectOpenToOthersIsRefusedWithOwnerAndMode) {
  const std::string name = TestName("mode");
  Unlink(name);
  auto planted = PlantOthersObject(name, 0666, static_cast<uid_t>(-1));
  ASSERT_NE(planted, nullptr);
  auto obj = ShmObject::Open(name);
  ASSERT_FALSE(obj.ok()) << "attached an object writable by every local user";
  EXPECT_EQ(obj.error().kind(), ErrorKind::kShm);
  std::string msg = obj.error().message();
  EXPECT_NE(msg.find("/dev/shm" + name), std::string::npos) << msg;
  EXPECT_NE(msg.find("mode 0666"), std::string::npos) << msg;
  EXPECT_NE(msg.find("uid " + std::to_string(::geteuid())), std::string::npos) << msg;
  EXPECT_TRUE(ShmExists(name)) << "a refused object is left for the operator to inspect";
  Unlink(name);
}

TEST(ShmTest, GroupReadableObjectIsRefused) {
  const std::string name = TestName("grp");
  Unlink(name);
  auto planted = PlantOthersObject(name, 0640, static_cast<uid_t>(-1));
  ASSERT_NE(planted, nullptr);
  auto obj = ShmObject::Open(name);
  ASSERT_FALSE(obj.ok());
  EXPECT_NE(std::string(obj.error().message()).find("mode 0640"), std::string::npos)
      << obj.error().message();
  Unlink(name);
}

TEST(ShmTest, ObjectOwnedByAnotherUserIsRefused) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to give the object another owner";
  const std::string name = TestName("owner");
  Unlink(name);
  // Mode 0600 and root can open anything: only the owner check stops the attach.
  auto planted = PlantOthersObject(name, 0600, 65534);
  ASSERT_NE(planted, nullptr);
  auto obj = ShmObject::Open(name);
  ASSERT_FALSE(obj.ok()) << "attached an object owned by uid 65534";
  std::string msg = obj.error().message();
  EXPECT_NE(msg.find("uid 65534"), std::string::npos) << msg;
  EXPECT_NE(msg.find("mode 0600"), std::string::npos) << msg;
  Unlink(name);
}

TEST(ShmTest, OwnObjectIsCreated0600AndAttached) {
  const std::string name = TestName("own");
  Unlink(name);
  ::mode_t old = ::umask(0);  // the mode must not depend on the caller's umask
  auto a = ShmObject::Open(name);
  ::umask(old);
  ASSERT_TRUE(a.ok());
  int fd = ::shm_open(name.c_str(), O_RDONLY, 0);
  ASSERT_GE(fd, 0);
  struct stat st {};
  ASSERT_EQ(::fstat(fd, &st), 0);
  ::close(fd);
  EXPECT_EQ(st.st_mode & 07777, 0600u);
  EXPECT_EQ(st.st_uid, ::geteuid());
  auto b = ShmObject::Open(name);
  ASSERT_TRUE(b.ok()) << b.error().message();
}

TEST(ShmTest, BadNameIsRefused) {
  auto obj = ShmObject::Open("no-slash");
  ASSERT_FALSE(obj.ok());
  EXPECT_NE(std::string(obj.error().message()).find("/name"), std::string::npos);
}

TEST(ShmTest, StatsSlotsWrittenByThreadsSumCorrectly) {
  const std::string name = TestName("stats");
  Unlink(name);
  auto obj = ShmObject::Open(name);
  ASSERT_TRUE(obj.ok());
  ShmRegion* r = obj.value()->region();
  constexpr int kThreads = 4;
  constexpr uint64_t kPer = 20000;
  std::vector<std::thread> ts;
  std::atomic<bool> go{false};
  std::atomic<int> claimed{0};
  for (int t = 0; t < kThreads; ++t) {
    ts.emplace_back([&, t] {
      Error err;
      StatsSlot* s = ClaimStatsSlot(r, static_cast<uint32_t>(t), &err);
      ASSERT_NE(s, nullptr) << err.message();
      ++claimed;
      while (!go) std::this_thread::yield();
      for (uint64_t i = 0; i < kPer; ++i) {
        Bump(s->requests_total);
        Bump(s->backends[3].requests);
        Bump(s->backends[3].bytes_out, 10);
        Bump(s->models[1].requests_by_code[StatusCodeIndex(200)]);
        Observe(s->latency, 1000 * (1 + i % 10));
      }
      Bump(s->backends[3].in_flight, 2);  // a gauge left standing
      s->heartbeat_unix_ms.store(NowUnixMs());
    });
  }
  while (claimed < kThreads) std::this_thread::yield();
  go = true;
  for (auto& th : ts) th.join();
  StatsTotals tot;
  SumStats(*r, 8, NowUnixMs(), 5000, &tot);
  EXPECT_EQ(tot.requests_total, kThreads * kPer);
  EXPECT_EQ(tot.backends[3].requests, kThreads * kPer);
  EXPECT_EQ(tot.backends[3].bytes_out, kThreads * kPer * 10);
  EXPECT_EQ(tot.backends[3].in_flight, static_cast<uint64_t>(kThreads) * 2);
  EXPECT_EQ(tot.models[1].RequestsTotal(), kThreads * kPer);
  EXPECT_EQ(tot.latency.count, kThreads * kPer);
  EXPECT_EQ(tot.claimed_slots, static_cast<uint32_t>(kThreads));
  EXPECT_EQ(tot.live_threads, static_cast<uint32_t>(kThreads));
  // p50 of 1..10 ms uniformly: between 2.5 and 10 ms buckets.
  double p50 = tot.latency.QuantileUs(0.5);
  EXPECT_GE(p50, 2500);
  EXPECT_LE(p50, 10000);
}

TEST(ShmTest, ReleasedSlotKeepsCountersMonotonicAndResetsGauges) {
  const std::string name = TestName("slot");
  Unlink(name);
  auto obj = ShmObject::Open(name);
  ASSERT_TRUE(obj.ok());
  ShmRegion* r = obj.value()->region();
  StatsSlot* s = ClaimStatsSlot(r, 0, nullptr);
  ASSERT_NE(s, nullptr);
  Bump(s->requests_total, 5);
  Bump(s->active_requests, 3);
  ReleaseStatsSlot(s);
  StatsSlot* again = ClaimStatsSlot(r, 1, nullptr);
  ASSERT_NE(again, nullptr);
  StatsTotals tot;
  SumStats(*r, 1, NowUnixMs(), 5000, &tot);
  EXPECT_EQ(tot.requests_total, 5u);
  EXPECT_EQ(tot.active_requests, 0u);
}

TEST(ShmTest, SlotsOfDeadProcessesAreReclaimed) {
  const std::string name = TestName("reclaim");
  Unlink(name);
  auto obj = ShmObject::Open(name);
  ASSERT_TRUE(obj.ok());
  ShmRegion* r = obj.value()->region();
  pid_t dead = ::fork();
  if (dead == 0) _exit(0);
  ::waitpid(dead, nullptr, 0);
  for (auto& slot : r->slots) slot.owner.store((static_cast<uint64_t>(dead) << 32) | 1);
  Error err;
  StatsSlot* s = ClaimStatsSlot(r, 0, &err);
  ASSERT_NE(s, nullptr) << err.message();
  EXPECT_EQ(s->owner.load() >> 32, static_cast<uint64_t>(::getpid()));
  for (auto& slot : r->slots) slot.owner.store((static_cast<uint64_t>(::getpid()) << 32) | 9);
  EXPECT_EQ(ClaimStatsSlot(r, 0, &err), nullptr);
  EXPECT_NE(std::string(err.message()).find("stats slots"), std::string::npos);
  for (auto& slot : r->slots) slot.owner.store(0);
}

// Walks the stat lists of shm_layout.h: every entry (every element of a vector, every
// histogram) written in two slots must come out of SumStats as the sum of the two, and a
// released slot's gauges (and only its gauges) read 0. A stat added to a list is covered
// here without touching this test.
uint64_t Ld(const std::atomic<uint64_t>& a) { return a.load(std::memory_order_relaxed); }

struct FillSlot {
  uint64_t* seq;
  uint64_t k;  // 1 or 2: which slot
  void operator()(const StatInfo&, std::atomic<uint64_t>& a) const { Set(a, ++*seq * 10 + k); }
  template <size_t N>
  void operator()(const StatInfo&, std::atomic<uint64_t> (&v)[N]) const {
    for (auto& a : v) Set(a, ++*seq * 10 + k);
  }
  void operator()(const StatInfo&, Histogram& h) const { Observe(h, ++*seq * 10 + k); }
};

struct CheckSum {
  uint64_t* seq;
  std::vector<std::string>* checked;
  std::string scope;
  void operator()(const StatInfo& i, const uint64_t& v) const {
    ++*seq;
    EXPECT_EQ(v, *seq * 20 + 3) << scope << "." << i.field;
    checked->push_back(scope + "." + i.field);
  }
  template <size_t N>
  void operator()(const StatInfo& i, const uint64_t (&v)[N]) const {
    EXPECT_EQ(N, i.size) << i.field;
    for (size_t e = 0; e < N; ++e) {
      ++*seq;
      EXPECT_EQ(v[e], *seq * 20 + 3) << scope << "." << i.field << "[" << e << "]";
    }
    checked->push_back(scope + "." + i.field);
  }
  void operator()(const StatInfo& i, const HistogramTotals& h) const {
    ++*seq;
    EXPECT_EQ(h.count, 2u) << scope << "." << i.field;
    EXPECT_EQ(h.sum_us, *seq * 20 + 3) << scope << "." << i.field;
    checked->push_back(scope + "." + i.field);
  }
};

TEST(ShmTest, EveryListedStatIsSummedAcrossSlots) {
  const std::string name = TestName("lists");
  Unlink(name);
  auto obj = ShmObject::Open(name);
  ASSERT_TRUE(obj.ok());
  ShmRegion* r = obj.value()->region();
  StatsSlot* slot[2] = {ClaimStatsSlot(r, 0, nullptr), ClaimStatsSlot(r, 1, nullptr)};
  ASSERT_NE(slot[0], nullptr);
  ASSERT_NE(slot[1], nullptr);
  constexpr uint32_t kModel = 5, kBackend = 2;
  for (uint64_t k = 1; k <= 2; ++k) {
    StatsSlot& s = *slot[k - 1];
    uint64_t seq = 0;
    VisitThreadStats(s, FillSlot{&seq, k});
    VisitModelStats(s.models[kModel], FillSlot{&seq, k});
    VisitBackendStats(s.backends[kBackend], FillSlot{&seq, k});
    Set(s.backends[kBackend].key, 77);
  }
  StatsTotals tot;
  SumStats(*r, kBackend + 1, NowUnixMs(), 5000, &tot);
  uint64_t seq = 0;
  std::vector<std::string> checked;
  VisitThreadStats(tot, CheckSum{&seq, &checked, "thread"});
  VisitModelStats(tot.models[kModel], CheckSum{&seq, &checked, "model"});
  VisitBackendStats(tot.backends[kBackend], CheckSum{&seq, &checked, "backend"});
  EXPECT_EQ(checked.size(), std::size(kThreadStatInfo) + std::size(kModelStatInfo) + std::size(kBackendStatInfo));
  EXPECT_EQ(tot.backends[kBackend].key, 77u);
  // The hand-named fields the data plane and llmcd use are the listed ones.
  EXPECT_EQ(tot.errors_by_kind[static_cast<int>(ErrorKind::kTimeout)],
            Ld(slot[0]->errors_by_kind[static_cast<int>(ErrorKind::kTimeout)]) +
                Ld(slot[1]->errors_by_kind[static_cast<int>(ErrorKind::kTimeout)]));
  EXPECT_EQ(tot.backends[kBackend].picks, Ld(slot[0]->backends[kBackend].picks) + Ld(slot[1]->backends[kBackend].picks));

  // Releasing a slot zeroes its gauges, keeps its counters.
  ReleaseStatsSlot(slot[1]);
  auto check_reset = [](const StatInfo& i, const auto& member) {
    using M = std::decay_t<decltype(member)>;
    if constexpr (std::is_same_v<M, std::atomic<uint64_t>>) {
      if (i.type == StatType::kGauge) EXPECT_EQ(Ld(member), 0u) << i.field;
      else EXPECT_NE(Ld(member), 0u) << i.field;
    }
  };
  VisitThreadStats(*slot[1], check_reset);
  VisitModelStats(slot[1]->models[kModel], check_reset);
  VisitBackendStats(slot[1]->backends[kBackend], check_reset);
  ReleaseStatsSlot(slot[0]);
}

// Every enum-indexed vector has exactly its enum's count of elements, and a label each.
TEST(ShmTest, VectorStatsAreSizedByTheirEnum) {
  auto check = [](const StatInfo& i, const auto& member) {
    using M = std::remove_cvref_t<decltype(member)>;
    if constexpr (std::is_array_v<M>) {
      EXPECT_EQ(std::extent_v<M>, i.size) << i.field;
      ASSERT_NE(i.vec_name, nullptr) << i.field;
      for (uint32_t e = 0; e < i.size; ++e) EXPECT_FALSE(i.vec_name(e).empty()) << i.field << e;
    } else {
      EXPECT_EQ(i.size, 1u) << i.field;
    }
  };
  StatsTotals t;
  t.models.resize(1);
  t.backends.resize(1);
  VisitThreadStats(t, check);
  VisitModelStats(t.models[0], check);
  VisitBackendStats(t.backends[0], check);
  EXPECT_EQ(std::size(t.errors_by_kind), static_cast<size_t>(ErrorKind::kCount));
  EXPECT_EQ(std::size(t.backends[0].errors), static_cast<size_t>(UpstreamErr::kCount));
  EXPECT_EQ(std::size(t.models[0].requests_by_code), std::size(kStatusCodes) + 1);
  EXPECT_EQ(StatusCodeLabel(StatusCodeIndex(503)), "503");
  EXPECT_EQ(StatusCodeLabel(StatusCodeIndex(302)), "other");
}

}  // namespace
}  // namespace llmgw::shm

namespace llmgw::shm {
namespace {

// HistBucketFor (binary search) puts every value where the plain definition does: the
// first bucket whose upper bound is >= the value, +Inf past the last bound.
TEST(HistogramBucketsTest, BinarySearchMatchesTheDefinition) {
  auto linear = [](uint64_t us) {
    uint32_t i = 0;
    while (i < kHistBuckets - 1 && us > kHistBoundsUs[i]) ++i;
    return i;
  };
  for (uint32_t i = 0; i + 1 < kHistBuckets; ++i) {
    uint64_t b = kHistBoundsUs[i];
    for (uint64_t v : {b - 1, b, b + 1}) {
      EXPECT_EQ(HistBucketFor(v), linear(v)) << v;
    }
    if (i) {
      EXPECT_LT(kHistBoundsUs[i - 1], b) << "bounds ascend";
    }
  }
  EXPECT_EQ(HistBucketFor(0), 0u);
  EXPECT_EQ(HistBucketFor(UINT64_MAX), kHistBuckets - 1);
  // From 1 ms to 10 s neighbouring bounds are at most a third apart (quantile accuracy).
  for (uint32_t i = 1; i + 1 < kHistBuckets; ++i) {
    if (kHistBoundsUs[i - 1] >= 1000 && kHistBoundsUs[i] <= 10000000) {
      EXPECT_LE(kHistBoundsUs[i] * 3, kHistBoundsUs[i - 1] * 4) << kHistBoundsUs[i];
    }
  }
}

}  // namespace
}  // namespace llmgw::shm
