// Create/attach the per-instance shared-memory object and the three access paths over it:
// SnapshotWriter (llmcd publishes), SnapshotReader (each data-plane thread copies out),
// StatsSlot claiming (each data-plane thread owns one slot) and SumStats (llmcd totals).
// Start order does not matter: whoever comes first creates the object, the other attaches.
#pragma once

#include <sys/types.h>

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
  // Upper-bound estimate of quantile q (0..1) in microseconds; 0 when empty.
  double QuantileUs(double q) const;
};

struct BackendTotals {
  uint64_t key = 0;
  uint64_t requests = 0, successes = 0, in_flight = 0, picks = 0;
  uint64_t errors[static_cast<size_t>(UpstreamErr::kCount)] = {};
  uint64_t bytes_in = 0, bytes_out = 0, prompt_tokens = 0, completion_tokens = 0;
  uint64_t slow_calls = 0, upstream_connects = 0;
  HistogramTotals latency, ttft;
  uint64_t ErrorsTotal() const;
};

struct ModelTotals {
  uint64_t requests_by_code[kNumStatusCodes] = {};
  uint64_t prompt_tokens = 0, completion_tokens = 0, retries = 0, fallbacks = 0, rejected = 0,
           active = 0;
  uint64_t RequestsTotal() const;
};

struct StatsTotals {
  uint32_t live_threads = 0;       // slots with a live owner and a recent heartbeat
  uint32_t claimed_slots = 0;
  uint64_t newest_heartbeat_ms = 0;
  uint64_t requests_total = 0, active_requests = 0, connections_open = 0, connections_total = 0;
  uint64_t bytes_in = 0, bytes_out = 0, retries = 0, admission_queued = 0, admission_rejected = 0;
  uint64_t errors_by_kind[32] = {};
  HistogramTotals latency, ttft, inter_token;
  std::vector<ModelTotals> models;      // kMaxModels entries
  std::vector<BackendTotals> backends;  // num_backends entries
};

// Sums every claimed slot. Only the first num_backends backend rows are read.
void SumStats(const ShmRegion& r, uint32_t num_backends, uint64_t now_ms, uint64_t dead_after_ms,
              StatsTotals* out);

}  // namespace llmgw::shm
