// The shared-memory contract between llmcd (writes snapshots, reads stats) and llmgw
// (reads snapshots, writes its threads' stats). Everything here is fixed-size, trivially
// copyable and pointer-free, so two processes built from the same ABI version agree on
// every byte. Change a struct and you must bump kShmAbiVersion.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <type_traits>

namespace llmgw::shm {

constexpr uint32_t kShmMagic = 0x4c4d4757;  // "WGML" little-endian: llmgw
constexpr uint32_t kShmAbiVersion = 2;  // 2: prefix homes (snapshot) and prefix reports (stats)

constexpr uint32_t kMaxBackends = 1024;
constexpr uint32_t kMaxModels = 64;
constexpr uint32_t kMaxAliases = 8;
constexpr uint32_t kMaxFallbacks = 4;
constexpr uint32_t kMaxStatsSlots = 64;   // data-plane threads across all llmgw processes
constexpr uint32_t kMaxAttached = 64;     // processes attached to the object
constexpr uint32_t kNameLen = 96;
constexpr uint32_t kUrlLen = 128;
// Prefix homes llmcd places for the whole gateway (every thread, every process) and
// publishes; the rest of a thread's prefixes it places by itself (docs/ROUTING.md).
constexpr uint32_t kMaxPrefixHomes = 4096;
// Per data-plane thread: prefixes it routed recently, with pick counts, for llmcd to place.
constexpr uint32_t kPrefixReportEntries = 1024;  // power of two

// Backend state as published by llmcd. Values match admin.proto's BackendState.
enum class BackendState : uint8_t {
  kEmpty = 0,  // slot unused
  kHealthy = 1,
  kUnhealthy = 2,
  kDraining = 3,
  kCircuitOpen = 4,
  kHalfOpen = 5,
};

// Histogram bucket upper bounds in microseconds, shared by latency, TTFT and inter-token
// histograms. Log-spaced from 50 us to 5 min; the last bucket is +Inf.
constexpr uint64_t kHistBoundsUs[] = {50,      100,     250,     500,      1000,     2500,
                                      5000,    10000,   25000,   50000,    100000,   250000,
                                      500000,  1000000, 2500000, 5000000,  10000000, 30000000,
                                      60000000, 120000000, 300000000};
constexpr uint32_t kHistBuckets = sizeof(kHistBoundsUs) / sizeof(kHistBoundsUs[0]) + 1;

inline uint32_t HistBucketFor(uint64_t us) {
  uint32_t i = 0;
  while (i < kHistBuckets - 1 && us > kHistBoundsUs[i]) ++i;
  return i;
}

// ---------------------------------------------------------------------------------------
// Snapshot: control -> data. Written only by llmcd (or an agent), into the inactive buffer.

struct BackendEntry {
  char id[kUrlLen];        // admin name, default the URL
  char url[kUrlLen];       // http://host:port[/base]
  char host_header[kNameLen];  // value of the Host header sent upstream
  char base_path[32];      // prefix added before /v1/...; usually empty
  uint64_t key;            // FNV-1a of id: stable identity across reloads
  uint8_t addr[16];        // resolved IPv4 (first 4 bytes) or IPv6 address
  uint16_t port;
  uint8_t family;          // AF_INET or AF_INET6 (truncated to 8 bits)
  uint8_t state;           // BackendState
  uint8_t engine;          // llmgw::Engine
  uint8_t metrics_fresh;   // 1 when running/waiting/kv_usage are recent enough to trust
  uint16_t model_slot;     // index into Snapshot::models
  uint32_t max_concurrent;
  uint32_t half_open_budget;  // trial requests a half-open backend may take per thread
  float weight;            // configured weight (weighted_round_robin)
  float adaptive_weight;   // bandit weight (adaptive); 0..1, sums to ~1 per model
  float running;           // scraped
  float waiting;           // scraped
  float kv_usage;          // scraped, fraction 0..1
  float ewma_latency_ms;
  float ewma_ttft_ms;
  float error_rate;        // recent failure fraction 0..1
  uint32_t fleet_in_flight;  // sum over every gateway thread (and the fleet), last tick
  uint32_t reserved;
};

struct ModelEntry {
  char name[kNameLen];
  char aliases[kMaxAliases][kNameLen];
  uint16_t fallbacks[kMaxFallbacks];  // model slots, tried in order
  uint8_t num_aliases;
  uint8_t num_fallbacks;
  uint8_t policy;          // llmgw::Policy
  uint8_t present;         // 1 when this slot holds a model
  uint32_t num_backends;   // informational; backends name their model_slot
};

// Limits and knobs the data plane needs, copied from the config by llmcd, so a reload
// reaches running gateways without restarting them.
struct Limits {
  uint64_t max_body_bytes;
  uint32_t connect_ms, first_byte_ms, idle_ms, total_ms;
  uint32_t retries_max, retries_backoff_ms;
  uint32_t admission_queue_size, admission_timeout_ms;
  float w_waiting, w_running, w_kv, w_latency, w_error;
  float bounded_load;
  uint32_t prefix_bytes;
  uint32_t virtual_nodes;
  char hash_header[64];
};

// One prefix's gateway-wide home, placed by llmcd from every thread's prefix reports, so
// all threads (and processes) send a prompt prefix to the same KV cache.
struct PrefixHomeEntry {
  uint64_t tag;           // the Router's tag of the prefix (hash mixed with the model slot)
  uint64_t backend_key;   // BackendEntry::key of the home, so a reused slot is not trusted
  uint16_t backend_slot;
  uint16_t model_slot;
  uint32_t reserved;
};

struct Snapshot {
  uint64_t generation;       // equals the generation it was published under
  uint64_t published_unix_ms;
  uint32_t num_backends;     // high-water mark of used backend slots
  uint32_t num_models;       // high-water mark of used model slots
  uint64_t checksum;         // SnapshotChecksum() of the used ranges; tests verify copies
  uint32_t num_prefix_homes;  // used entries of prefix_homes
  uint32_t reserved0;
  Limits limits;
  ModelEntry models[kMaxModels];
  BackendEntry backends[kMaxBackends];
  PrefixHomeEntry prefix_homes[kMaxPrefixHomes];
};

static_assert(sizeof(BackendEntry) % 8 == 0 && sizeof(ModelEntry) % 8 == 0 && sizeof(Limits) % 8 == 0 &&
                  sizeof(PrefixHomeEntry) % 8 == 0 && offsetof(Snapshot, limits) % 8 == 0,
              "snapshot rows are copied as 8-byte words");

// The byte ranges of a snapshot worth copying: the limits, the used model slots, the used
// backend slots and the used prefix homes (a mostly empty 600 KB table is not copied).
// Calls f(offset, length).
template <typename F>
inline void ForEachUsedRange(uint32_t num_models, uint32_t num_backends, uint32_t num_prefix_homes, F&& f) {
  if (num_models > kMaxModels) num_models = kMaxModels;
  if (num_backends > kMaxBackends) num_backends = kMaxBackends;
  if (num_prefix_homes > kMaxPrefixHomes) num_prefix_homes = kMaxPrefixHomes;
  f(offsetof(Snapshot, limits), sizeof(Limits));
  f(offsetof(Snapshot, models), num_models * sizeof(ModelEntry));
  f(offsetof(Snapshot, backends), num_backends * sizeof(BackendEntry));
  if (num_prefix_homes) f(offsetof(Snapshot, prefix_homes), num_prefix_homes * sizeof(PrefixHomeEntry));
}

struct alignas(64) SnapshotBuffer {
  std::atomic<uint64_t> seq;  // odd while the writer is filling it (seqlock)
  char pad[56];
  Snapshot snap;
};

// ---------------------------------------------------------------------------------------
// Stats: data -> control. One slot per data-plane thread; each field has one writer.

struct Histogram {
  std::atomic<uint64_t> buckets[kHistBuckets];
  std::atomic<uint64_t> sum_us;
  std::atomic<uint64_t> count;
};

// Kinds of failure counted per backend (a subset of ErrorKind that concerns upstreams).
enum class UpstreamErr : uint8_t {
  kConnect = 0, kTimeout, kReset, kStatus5xx, kStatus429, kProtocol, kCount
};

struct BackendStats {
  std::atomic<uint64_t> key;        // BackendEntry::key this row currently counts for
  std::atomic<uint64_t> requests;   // attempts sent to this backend
  std::atomic<uint64_t> successes;  // complete answers (any status < 500 except 429)
  std::atomic<uint64_t> errors[static_cast<size_t>(UpstreamErr::kCount)];
  std::atomic<uint64_t> in_flight;  // gauge: current attempts in flight from this thread
  std::atomic<uint64_t> picks;      // times the router chose this backend
  std::atomic<uint64_t> bytes_in;
  std::atomic<uint64_t> bytes_out;
  std::atomic<uint64_t> prompt_tokens;
  std::atomic<uint64_t> completion_tokens;
  std::atomic<uint64_t> slow_calls;  // took longer than circuit_breaker.slow_call_ms
  std::atomic<uint64_t> upstream_connects;  // new TCP connections opened
  Histogram latency;
  Histogram ttft;
};

// Status codes counted per model. Index with StatusCodeIndex().
constexpr uint16_t kStatusCodes[] = {200, 400, 401, 403, 404, 405, 408, 413, 422, 429,
                                     431, 499, 500, 502, 503, 504};
constexpr uint32_t kNumStatusCodes = sizeof(kStatusCodes) / sizeof(kStatusCodes[0]) + 1;  // + other
inline uint32_t StatusCodeIndex(uint16_t code) {
  for (uint32_t i = 0; i < kNumStatusCodes - 1; ++i)
    if (kStatusCodes[i] == code) return i;
  return kNumStatusCodes - 1;
}

struct ModelStats {
  std::atomic<uint64_t> requests_by_code[kNumStatusCodes];
  std::atomic<uint64_t> prompt_tokens;
  std::atomic<uint64_t> completion_tokens;
  std::atomic<uint64_t> retries;
  std::atomic<uint64_t> fallbacks;
  std::atomic<uint64_t> rejected;   // no backend / admission
  std::atomic<uint64_t> active;     // gauge
};

// A prefix this thread routed, for llmcd's gateway-wide placement. The thread replaces an
// entry by storing picks and model first and the tag last (release), so a reader that
// loads the tag with acquire never pairs a new tag with the old prefix's count.
struct PrefixReport {
  std::atomic<uint64_t> tag;    // Router tag; 0 = empty
  std::atomic<uint64_t> picks;  // monotonic while the tag stays
  std::atomic<uint64_t> model_slot;
};

struct alignas(64) StatsSlot {
  std::atomic<uint64_t> owner;      // (pid << 32) | thread index; 0 = free
  std::atomic<uint64_t> heartbeat_unix_ms;
  std::atomic<uint64_t> snapshot_generation;  // last generation this thread copied
  std::atomic<uint64_t> requests_total;
  std::atomic<uint64_t> active_requests;      // gauge
  std::atomic<uint64_t> connections_open;     // gauge, client side
  std::atomic<uint64_t> connections_total;
  std::atomic<uint64_t> bytes_in;
  std::atomic<uint64_t> bytes_out;
  std::atomic<uint64_t> errors_by_kind[32];   // indexed by ErrorKind
  std::atomic<uint64_t> retries;
  std::atomic<uint64_t> admission_queued;
  std::atomic<uint64_t> admission_rejected;
  Histogram latency;
  Histogram ttft;
  Histogram inter_token;
  ModelStats models[kMaxModels];
  BackendStats backends[kMaxBackends];
  PrefixReport prefix_report[kPrefixReportEntries];  // indexed by tag & (entries - 1)
};

// ---------------------------------------------------------------------------------------

struct alignas(64) ShmHeader {
  std::atomic<uint32_t> magic;      // written last by the creator (release)
  uint32_t abi_version;
  uint64_t total_size;
  uint64_t snapshot_size;           // sizeof(Snapshot)
  uint64_t stats_slot_size;         // sizeof(StatsSlot)
  uint32_t max_backends, max_models, max_stats_slots, hist_buckets;
  std::atomic<uint64_t> writer_heartbeat_unix_ms;  // llmcd's liveness
  std::atomic<uint64_t> writer_pid;
  std::atomic<uint64_t> generation;  // current snapshot = buffers[generation & 1]
  std::atomic<uint64_t> attached[kMaxAttached];  // pids attached (0 = free)
};

struct ShmRegion {
  ShmHeader header;
  SnapshotBuffer buffers[2];
  StatsSlot slots[kMaxStatsSlots];
};

static_assert(std::is_trivially_copyable_v<Snapshot>);
static_assert(std::atomic<uint64_t>::is_always_lock_free, "shm counters need lock-free atomics");
static_assert(sizeof(std::atomic<uint64_t>) == 8);

// FNV-1a, used for backend keys and snapshot checksums.
inline uint64_t Fnv1a(const void* data, size_t n, uint64_t h = 1469598103934665603ull) {
  const auto* p = static_cast<const unsigned char*>(data);
  for (size_t i = 0; i < n; ++i) {
    h ^= p[i];
    h *= 1099511628211ull;
  }
  return h;
}

// Word-wise FNV-style hash of a snapshot's used ranges (fast enough to run on every
// publish; readers may verify a copy with it).
inline uint64_t SnapshotChecksum(const Snapshot& s) {
  uint64_t h = 1469598103934665603ull;
  ForEachUsedRange(s.num_models, s.num_backends, s.num_prefix_homes, [&](size_t off, size_t len) {
    const auto* w = reinterpret_cast<const uint64_t*>(reinterpret_cast<const char*>(&s) + off);
    for (size_t i = 0; i < len / 8; ++i) h = (h ^ w[i]) * 1099511628211ull;
  });
  return h;
}

// Single-writer counter bump: a plain load + store, no locked RMW, since only the slot's
// owning thread writes it. Readers see a torn-free 64-bit value.
inline void Bump(std::atomic<uint64_t>& c, uint64_t n = 1) {
  c.store(c.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
}
inline void Set(std::atomic<uint64_t>& c, uint64_t v) { c.store(v, std::memory_order_relaxed); }
inline void Observe(Histogram& h, uint64_t us) {
  Bump(h.buckets[HistBucketFor(us)]);
  Bump(h.sum_us, us);
  Bump(h.count);
}

}  // namespace llmgw::shm
