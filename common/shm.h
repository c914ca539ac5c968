// Create/attach the per-instance shared-memory object and the three access paths over it:
// SnapshotWriter (llmcd publishes), SnapshotReader (each data-plane thread copies out),
// StatsSlot claiming (each data-plane thread owns one slot) and SumStats (llmcd totals).
// Start order does not matter: whoever comes first creates the object, the other attaches.
#pragma once

#include <sys/types.h>

#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/error.h"
#include "common/shm_layout.h"

namespace llmgw::shm {

uint64_t NowUnixMs();

class ShmObject {
 public:
  // Opens /name, creating and initialising it if it does not exist. A stale object with a
  // different ABI or size is recreated when no live process is attached to it, and refused
  // with a clear error when one is.
  static Result<std::unique_ptr<ShmObject>> Open(const std::string& name);
  ~ShmObject();
  ShmObject(const ShmObject&) = delete;
  ShmObject& operator=(const ShmObject&) = delete;

  ShmRegion* region() const { return region_; }
  const std::string& name() const { return name_; }
  bool created() const { return created_; }

  // Detaches this process; removes the object when no other live process is attached.
  // Called by the destructor; safe to call twice.
  void Close();

 private:
  ShmObject(std::string name, ShmRegion* region, bool created)
      : name_(std::move(name)), region_(region), created_(created) {}
  std::string name_;
  ShmRegion* region_;
  bool created_;
  bool closed_ = false;
};

// Removes the object by name (used by tests and `llmcd --reset-shm`).
void Unlink(const std::string& name);

// True when pid names a live process (kill(pid, 0)).
bool PidAlive(pid_t pid);

class SnapshotWriter {
 public:
  explicit SnapshotWriter(ShmRegion* r);
  // Publishes s (generation and checksum are filled in); returns the new generation.
  uint64_t Publish(Snapshot* s);
  // Marks the writer alive without publishing.
  void Heartbeat();

 private:
  ShmRegion* r_;
};

class SnapshotReader {
 public:
  explicit SnapshotReader(const ShmRegion* r) : r_(r) {}
  // One acquire load: has a generation newer than the last copied one been published?
  bool Changed() const {
    return r_->header.generation.load(std::memory_order_acquire) != last_;
  }
  // Copies the current snapshot into *out (only the used bytes), retrying torn reads.
  // Returns false when nothing has been published yet.
  bool Refresh(Snapshot* out);
  uint64_t generation() const { return last_; }
  uint64_t torn_retries() const { return torn_; }

 private:
  const ShmRegion* r_;
  uint64_t last_ = 0;
  uint64_t torn_ = 0;
};

// Claims a free (or dead-owner) stats slot for (this pid, thread_index). Counters of a
// reused slot keep counting from where they were, so totals stay monotonic; gauges are
// reset. Returns nullptr with *err set when all slots are taken.
StatsSlot* ClaimStatsSlot(ShmRegion* r, uint32_t thread_index, Error* err);
void ReleaseStatsSlot(StatsSlot* slot);

// Plain-value totals over all slots (for llmcd and tests).
struct HistogramTotals {
  uint64_t buckets[kHistBuckets] = {};
  uint64_t sum_us = 0;
  uint64_t count = 0;
  void Add(const Histogram& h);
  void Add(const HistogramTotals& h);
  // Upper-bound estimate of quantile q (0..1) in microseconds; 0 when empty.
  double QuantileUs(double q) const;
};

// Totals fields generated from the stat lists of shm_layout.h (same names as the shm
// fields, plain values instead of atomics).
#define LLMGW_TOTAL_SCALAR_(field, metric, label, help) uint64_t field = 0;
#define LLMGW_TOTAL_VEC_(field, size, label_key, label_fn, metric, help) uint64_t field[size] = {};
#define LLMGW_TOTAL_HIST_(field, metric, help) HistogramTotals field;
#define LLMGW_TOTAL_FIELDS(LIST) LIST(LLMGW_TOTAL_SCALAR_, LLMGW_TOTAL_SCALAR_, LLMGW_TOTAL_VEC_, LLMGW_TOTAL_HIST_)

struct BackendTotals {
  uint64_t key = 0;
  LLMGW_TOTAL_FIELDS(LLMGW_BACKEND_STATS)
  uint64_t ErrorsTotal() const;
};

struct ModelTotals {
  LLMGW_TOTAL_FIELDS(LLMGW_MODEL_STATS)
  uint64_t RequestsTotal() const;
};

struct KeyModelTotals {
  LLMGW_TOTAL_FIELDS(LLMGW_KEY_MODEL_STATS)
};

struct StatsTotals {
  uint32_t live_threads = 0;       // slots with a live owner and a recent heartbeat
  uint32_t claimed_slots = 0;
  uint64_t newest_heartbeat_ms = 0;
  LLMGW_TOTAL_FIELDS(LLMGW_THREAD_STATS)
  std::vector<ModelTotals> models;      // kMaxModels entries
  std::vector<BackendTotals> backends;  // num_backends entries
  // Per limiter (LimiterIndex), summed over the slots: spent (for a concurrency limit:
  // in flight now), denied and checked.
  struct Limiter {
    uint64_t spent = 0, denied = 0, checked = 0;
  };
  std::vector<Limiter> limiters;  // kNumLimiters entries
  // Per (key hash, model slot), summed over the threads' rows.
  std::map<std::pair<uint64_t, uint32_t>, KeyModelTotals> key_models;
};

// ---- Walking the lists -------------------------------------------------------------------
// What an entry of a stat list says about itself, for the exporter and for tests.
enum class StatType : uint8_t { kCounter, kGauge, kHistogram };

struct StatInfo {
  const char* field;      // C++ field name (shm and totals)
  StatType type;
  const char* metric;     // Prometheus family name
  const char* label;      // "" or a fixed "key=value" label
  const char* help;
  uint32_t size;          // elements (1 unless an enum-indexed vector)
  const char* vec_label;  // label key of the elements of a vector, nullptr otherwise
  std::string_view (*vec_name)(uint32_t);  // label value of element i, nullptr otherwise
};

#define LLMGW_INFO_COUNTER_(field, metric, label, help) \
  StatInfo{#field, StatType::kCounter, metric, label, help, 1, nullptr, nullptr},
#define LLMGW_INFO_GAUGE_(field, metric, label, help) \
  StatInfo{#field, StatType::kGauge, metric, label, help, 1, nullptr, nullptr},
#define LLMGW_INFO_VEC_(field, size, label_key, label_fn, metric, help) \
  StatInfo{#field, StatType::kCounter, metric, "", help, size, label_key, label_fn},
#define LLMGW_INFO_HIST_(field, metric, help) \
  StatInfo{#field, StatType::kHistogram, metric, "", help, 1, nullptr, nullptr},
#define LLMGW_STAT_INFOS(LIST) {LIST(LLMGW_INFO_COUNTER_, LLMGW_INFO_GAUGE_, LLMGW_INFO_VEC_, LLMGW_INFO_HIST_)}

inline constexpr StatInfo kThreadStatInfo[] = LLMGW_STAT_INFOS(LLMGW_THREAD_STATS);
inline constexpr StatInfo kModelStatInfo[] = LLMGW_STAT_INFOS(LLMGW_MODEL_STATS);
inline constexpr StatInfo kBackendStatInfo[] = LLMGW_STAT_INFOS(LLMGW_BACKEND_STATS);
inline constexpr StatInfo kKeyModelStatInfo[] = LLMGW_STAT_INFOS(LLMGW_KEY_MODEL_STATS);

// Calls f(const StatInfo&, member) for every entry of the list, in list order, where
// member is the entry's field of s: S may be the shm struct (StatsSlot, ModelStats,
// BackendStats: atomics and Histogram) or the totals (StatsTotals, ModelTotals,
// BackendTotals: uint64_t and HistogramTotals), const or not. A vector's member is the
// whole array.
#define LLMGW_VISIT_SCALAR_(field, ...) f(info[i++], s.field);
#define LLMGW_VISIT_VEC_(field, ...) f(info[i++], s.field);
#define LLMGW_VISIT_HIST_(field, ...) f(info[i++], s.field);
#define LLMGW_VISIT(LIST) LIST(LLMGW_VISIT_SCALAR_, LLMGW_VISIT_SCALAR_, LLMGW_VISIT_VEC_, LLMGW_VISIT_HIST_)

template <typename S, typename F>
void VisitThreadStats(S& s, F&& f) {
  const StatInfo* info = kThreadStatInfo;
  size_t i = 0;
  LLMGW_VISIT(LLMGW_THREAD_STATS)
}
template <typename S, typename F>
void VisitModelStats(S& s, F&& f) {
  const StatInfo* info = kModelStatInfo;
  size_t i = 0;
  LLMGW_VISIT(LLMGW_MODEL_STATS)
}
template <typename S, typename F>
void VisitBackendStats(S& s, F&& f) {
  const StatInfo* info = kBackendStatInfo;
  size_t i = 0;
  LLMGW_VISIT(LLMGW_BACKEND_STATS)
}

template <typename S, typename F>
void VisitKeyModelStats(S& s, F&& f) {
  const StatInfo* info = kKeyModelStatInfo;
  size_t i = 0;
  LLMGW_VISIT(LLMGW_KEY_MODEL_STATS)
}

// Adds one totals row to another, entry by entry (e.g. two slots' rows of one backend).
void AddTotals(const BackendTotals& in, BackendTotals* out);
void AddTotals(const ModelTotals& in, ModelTotals* out);

// Sums every claimed slot. Only the first num_backends backend rows are read.
void SumStats(const ShmRegion& r, uint32_t num_backends, uint64_t now_ms, uint64_t dead_after_ms,
              StatsTotals* out);

}  // namespace llmgw::shm
