// The shared-memory contract between llmcd (writes snapshots, reads stats) and llmgw
// (reads snapshots, writes its threads' stats). Everything here is fixed-size, trivially
// copyable and pointer-free, so two processes built from the same ABI version agree on
// every byte. Change a struct and you must bump kShmAbiVersion.
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <iterator>
#include <string_view>
#include <type_traits>

#include "common/error.h"
#include "common/resume_outcome.h"
#include "common/span_ring.h"

namespace llmgw::shm {

constexpr uint32_t kShmMagic = 0x4c4d4757;  // "WGML" little-endian: llmgw
// 2: prefix homes (snapshot) and prefix reports (stats); 3: stats from the lists below
// (errors_by_kind sized by ErrorKind::kCount, was 32); 4: per-model latency/TTFT/inter-token
// histograms, per-backend inter-token histogram, answers without a model by code, 520,
// finer histogram buckets, span rings (common/span_ring.h). 5: BackendEntry tls/provider
// and the BackendUpstream table (issue 13).
// 6: per-model stream resumes and the resume limits (gateway.resume_streams, resume_max_bytes).
// 7: client API keys and limits (key table in the snapshot, per-limit use in the stats
// slots, the lease region).
// 8: BackendUpstream names where its key comes from (api_key_file, api_key_env), so a
// fleet agent reads the key on its own host (the fleet wire form never carries keys).
constexpr uint32_t kShmAbiVersion = 8;

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
// Client API keys (DESIGN.md "Client API keys and limits"), found by the SHA-256 of the
// presented secret through an open-addressed index at most half full.
constexpr uint32_t kMaxKeys = 1024;
constexpr uint32_t kKeyIndexSlots = 2 * kMaxKeys;  // power of two
constexpr uint32_t kKeyIdLen = 72;                 // ids are at most 64 characters

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
// histograms; the last bucket is +Inf. At most 25-33% apart from 1 ms to 10 s (coarse
// below and above): a quantile read from the buckets (llmctl, the dashboard, PromQL's
// histogram_quantile) is then within ~20% of what clients measure; the 1-2.5-5 steps this
// replaced put a 30 ms p99 at 50 ms (issue 16). Memory: the shm object is sparse, only the
// rows a thread counts for are touched.
constexpr uint64_t kHistBoundsUs[] = {
    50, 100, 250, 500, 1000, 1250, 1500, 2000, 2500, 3000,
    4000, 5000, 6000, 7500, 10000, 12500, 15000, 17500, 20000, 25000,
    30000, 35000, 40000, 50000, 60000, 70000, 80000, 100000, 125000, 150000,
    175000, 200000, 250000, 300000, 350000, 400000, 500000, 600000, 750000, 1000000,
    1250000, 1500000, 2000000, 2500000, 3000000, 4000000, 5000000, 6000000, 7500000, 10000000,
    15000000, 20000000, 30000000, 60000000, 120000000, 300000000};
constexpr uint32_t kHistBuckets = sizeof(kHistBoundsUs) / sizeof(kHistBoundsUs[0]) + 1;

// Binary search: a few compares per observation on the hot path, not a walk of the table.
inline uint32_t HistBucketFor(uint64_t us) {
  uint32_t lo = 0, hi = kHistBuckets - 1;  // answer in [lo, hi]; hi = the +Inf bucket
  while (lo < hi) {
    uint32_t mid = (lo + hi) / 2;
    if (us > kHistBoundsUs[mid]) lo = mid + 1;
    else hi = mid;
  }
  return lo;
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
  uint32_t rps;            // attempts per second to it, whole gateway (fleet); 0 = no limit
  uint8_t tls;             // 1: https:// backend
  uint8_t provider;        // providers::ProviderKind; 0 = openai_compatible
  uint16_t reserved;
  uint32_t reserved2;  // keeps the entry a multiple of 8 bytes
};

// What llmgw needs to reach a backend beyond its address: the provider's parameters, the
// TLS settings and the provider key (read by llmcd from api_key_file / api_key_env). Kept
// apart from BackendEntry so the routing scans stay compact; copied with the used backend
// range. The fleet wire form leaves api_key out (snapshot_codec.cc) and keeps where it
// comes from (api_key_file / api_key_env, as the config names them): each fleet agent
// reads the key on its own host (controlplane/host_credentials.h).
struct BackendUpstream {
  char api_key[256];
  char api_key_file[160];         // as configured (relative: to each host's config file)
  char api_key_env[64];
  char upstream_model[kNameLen];  // empty: the model's name
  char organization[64];
  char deployment[64];
  char api_version[32];
  char server_name[kNameLen];     // TLS: SNI and the checked name; empty: the URL's host
  char ca_file[160];              // TLS: empty = the system store
  char client_cert_file[160];
  char client_key_file[160];
  uint64_t tls_fingerprint;       // FNV-1a of the TLS settings (0: plain http); a thread
                                  // rebuilds its SSL_CTX for the backend when it changes
  uint8_t tls_verify;
  uint8_t reserved[7];
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
  uint32_t rps;            // requests per second for the model, whole gateway (fleet); 0 = no limit
  uint32_t reserved;
};

// A client API key. Only the SHA-256 of its secret is known.
struct KeyEntry {
  uint8_t sha256[32];
  char id[kKeyIdLen];      // NUL-terminated
  uint64_t id_hash;        // FNV-1a of id: identity across reloads (stats rows, leases)
  uint64_t models;         // bit i: model slot i allowed (kMaxModels == 64); ~0 = every model
  uint32_t rpm, tpm, max_concurrent;  // 0 = no limit
  uint8_t priority;        // 0..10, the key's level in the admission queue
  uint8_t present;         // 1 when this slot holds a key
  uint16_t reserved;
};
static_assert(kMaxModels <= 64, "KeyEntry::models is a 64-bit mask of model slots");

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
  uint32_t resume_streams;    // gateway.resume_streams (0/1)
  uint32_t resume_max_bytes;  // gateway.resume_max_bytes
  char hash_header[64];
  uint32_t global_rps;     // 0 = no global limit
  uint32_t global_burst;   // bucket capacity of the global limit
  uint32_t auth_required;  // 1: a request without a key gets 401
  uint32_t reserved;
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
  uint32_t num_keys;          // high-water mark of used key slots
  Limits limits;
  ModelEntry models[kMaxModels];
  BackendEntry backends[kMaxBackends];
  PrefixHomeEntry prefix_homes[kMaxPrefixHomes];
  // SHA-256 -> key slot + 1 (0 = empty); home slot = the hash's first 8 bytes (little
  // endian) & (kKeyIndexSlots - 1), linear probing. Built by BuildSnapshot.
  uint16_t key_index[kKeyIndexSlots];
  KeyEntry keys[kMaxKeys];
  BackendUpstream upstreams[kMaxBackends];  // by backend slot
};

static_assert(sizeof(BackendEntry) % 8 == 0 && sizeof(ModelEntry) % 8 == 0 && sizeof(Limits) % 8 == 0 &&
                  sizeof(PrefixHomeEntry) % 8 == 0 && sizeof(KeyEntry) % 8 == 0 &&
                  sizeof(BackendUpstream) % 8 == 0 &&
                  offsetof(Snapshot, limits) % 8 == 0 && offsetof(Snapshot, key_index) % 8 == 0 &&
                  offsetof(Snapshot, keys) % 8 == 0,
              "snapshot rows are copied as 8-byte words");

// The byte ranges of a snapshot worth copying: the limits, the used model slots, the used
// backend slots, the used prefix homes and, when there are keys, the key index and the
// used key slots (a mostly empty 600 KB table is not copied). Calls f(offset, length).
template <typename F>
inline void ForEachUsedRange(uint32_t num_models, uint32_t num_backends, uint32_t num_prefix_homes,
                             uint32_t num_keys, F&& f) {
  if (num_models > kMaxModels) num_models = kMaxModels;
  if (num_backends > kMaxBackends) num_backends = kMaxBackends;
  if (num_prefix_homes > kMaxPrefixHomes) num_prefix_homes = kMaxPrefixHomes;
  if (num_keys > kMaxKeys) num_keys = kMaxKeys;
  f(offsetof(Snapshot, limits), sizeof(Limits));
  f(offsetof(Snapshot, models), num_models * sizeof(ModelEntry));
  f(offsetof(Snapshot, backends), num_backends * sizeof(BackendEntry));
  if (num_prefix_homes) f(offsetof(Snapshot, prefix_homes), num_prefix_homes * sizeof(PrefixHomeEntry));
  f(offsetof(Snapshot, upstreams), num_backends * sizeof(BackendUpstream));
  if (num_keys) {
    f(offsetof(Snapshot, key_index), sizeof(Snapshot::key_index));
    f(offsetof(Snapshot, keys), num_keys * sizeof(KeyEntry));
  }
}
template <typename F>
inline void ForEachUsedRange(const Snapshot& s, F&& f) {
  ForEachUsedRange(s.num_models, s.num_backends, s.num_prefix_homes, s.num_keys, f);
}

// Home slot of a SHA-256 in Snapshot::key_index.
inline uint32_t KeyIndexHome(const uint8_t* sha256) {
  uint64_t h = 0;
  for (int i = 7; i >= 0; --i) h = (h << 8) | sha256[i];
  return static_cast<uint32_t>(h & (kKeyIndexSlots - 1));
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
constexpr uint32_t kNumUpstreamErrs = static_cast<uint32_t>(UpstreamErr::kCount);
constexpr uint32_t kNumErrorKinds = static_cast<uint32_t>(ErrorKind::kCount);
constexpr uint32_t kNumResumeOutcomes = static_cast<uint32_t>(ResumeOutcome::kCount);

// Status codes counted per model. Index with StatusCodeIndex().
// 520 is llmgw's own: an answer cut after its first byte reached the client (the client
// saw 200 and a broken or error-terminated body; docs/OPERATIONS.md).
constexpr uint16_t kStatusCodes[] = {200, 400, 401, 403, 404, 405, 408, 413, 422, 429,
                                     431, 499, 500, 502, 503, 504, 520};
constexpr uint32_t kNumStatusCodes = sizeof(kStatusCodes) / sizeof(kStatusCodes[0]) + 1;  // + other
inline uint32_t StatusCodeIndex(uint16_t code) {
  for (uint32_t i = 0; i < kNumStatusCodes - 1; ++i)
    if (kStatusCodes[i] == code) return i;
  return kNumStatusCodes - 1;
}

// Label values of the enum-indexed counters (Prometheus label of each array element).
constexpr std::string_view ErrorKindLabel(uint32_t i) { return ErrorKindName(static_cast<ErrorKind>(i)); }
constexpr std::string_view ResumeOutcomeLabel(uint32_t i) { return ResumeOutcomeName(static_cast<ResumeOutcome>(i)); }
constexpr std::string_view UpstreamErrLabel(uint32_t i) {
  switch (static_cast<UpstreamErr>(i)) {
    case UpstreamErr::kConnect: return "connect";
    case UpstreamErr::kTimeout: return "timeout";
    case UpstreamErr::kReset: return "reset";
    case UpstreamErr::kStatus5xx: return "status_5xx";
    case UpstreamErr::kStatus429: return "status_429";
    case UpstreamErr::kProtocol: return "protocol";
    case UpstreamErr::kCount: break;
  }
  return "unknown";
}
namespace detail {
struct CodeText {
  char s[8];
};
constexpr auto MakeStatusCodeText() {
  std::array<CodeText, kNumStatusCodes> t{};
  for (uint32_t i = 0; i + 1 < kNumStatusCodes; ++i) {
    uint16_t c = kStatusCodes[i];
    t[i].s[0] = static_cast<char>('0' + c / 100);
    t[i].s[1] = static_cast<char>('0' + c / 10 % 10);
    t[i].s[2] = static_cast<char>('0' + c % 10);
  }
  const char other[] = "other";
  for (uint32_t k = 0; k < 5; ++k) t[kNumStatusCodes - 1].s[k] = other[k];
  return t;
}
inline constexpr auto kStatusCodeText = MakeStatusCodeText();
// True when label(i) is a real, distinct name for every i < n (no "unknown", no gaps).
constexpr bool LabelsComplete(std::string_view (*label)(uint32_t), uint32_t n) {
  for (uint32_t i = 0; i < n; ++i) {
    if (label(i).empty() || label(i) == "unknown") return false;
    for (uint32_t j = 0; j < i; ++j)
      if (label(i) == label(j)) return false;
  }
  return true;
}
}  // namespace detail
constexpr std::string_view StatusCodeLabel(uint32_t i) {
  // Explicit lengths (3 digits, "other"), not strlen: GCC 12 at -O3 reports a false
  // -Wstringop-overread on strlen of the table entry, which fails the Release build.
  return i < kNumStatusCodes ? std::string_view(detail::kStatusCodeText[i].s, i + 1 < kNumStatusCodes ? 3 : 5)
                             : std::string_view();
}
static_assert(detail::LabelsComplete(ErrorKindLabel, kNumErrorKinds), "every ErrorKind needs a label");
static_assert(detail::LabelsComplete(UpstreamErrLabel, kNumUpstreamErrs), "every UpstreamErr needs a label");
static_assert(detail::LabelsComplete(ResumeOutcomeLabel, kNumResumeOutcomes), "every ResumeOutcome needs a label");
static_assert(detail::LabelsComplete(StatusCodeLabel, kNumStatusCodes), "status code labels");

// ---- The stats, declared once ----------------------------------------------------------
// Each list below is the single declaration of a scope's stats (Envoy's ALL_*_STATS
// style). From it come the shared-memory fields (here), the plain totals and the summing
// over thread slots (shm.h / shm.cc), the gauge reset of a reclaimed slot, and the
// Prometheus exposition (controlplane/metrics_exporter.cc); tests/common/shm_test.cc
// walks the lists to prove every entry is summed and exported. Add a stat by adding a
// line (and bump kShmAbiVersion: the layout changes). Order is the layout order.
//
//   COUNTER(field, metric, label, help)       monotonic uint64
//   GAUGE(field, metric, label, help)         current value (reset when a slot is reclaimed)
//   COUNTER_VEC(field, size, label_key, label_fn, metric, help)
//                                             uint64[size], one series per element
//                                             labelled label_key=label_fn(i); size is the
//                                             count of the enum that indexes it
//   HISTOGRAM(field, metric, help)            kHistBuckets buckets of microseconds,
//                                             exported in seconds
// `metric` is the Prometheus family; `label` is "" or one fixed "key=value" label that
// tells entries sharing a family apart (llm_gateway_tokens_total{kind="prompt"}). Scope
// labels follow the entry's own: model="..." for model stats, id="..." for backends.
// A thread entry may share a model family: its series then has no model label
// (unrouted_by_code: answers to requests that named no configured model).

// Per data-plane thread (StatsSlot), exported without a scope label.
#define LLMGW_THREAD_STATS(COUNTER, GAUGE, COUNTER_VEC, HISTOGRAM)                                        \
  COUNTER(requests_total, "llm_rate_limiter_requests_total", "limit=admission",                         \
          "Requests checked by a limiter (limit=admission: every request, by the admission queue).")   \
  GAUGE(active_requests, "llm_gateway_active_requests", "", "Requests in flight in the gateway.")       \
  GAUGE(connections_open, "llm_gateway_client_connections_open", "", "Client connections open.")       \
  COUNTER(connections_total, "llm_gateway_client_connections_total", "", "Client connections accepted.") \
  COUNTER(bytes_in, "llm_gateway_client_bytes_received_total", "", "Bytes read from clients.")          \
  COUNTER(bytes_out, "llm_gateway_client_bytes_sent_total", "", "Bytes written to clients.")            \
  COUNTER_VEC(errors_by_kind, kNumErrorKinds, "kind", ErrorKindLabel, "llm_gateway_errors_total",        \
              "Failures counted by the gateway, by error kind.")                                         \
  COUNTER(retries, "llm_gateway_retries_total", "", "Upstream attempts retried on another backend.")    \
  COUNTER(admission_queued, "llm_gateway_admission_queued_total", "",                                   \
          "Requests that waited in the admission queue.")                                               \
  COUNTER(admission_rejected, "llm_rate_limiter_rejected_total", "limit=admission",                    \
          "Requests rejected by a limiter (limit=admission: the admission queue was full or timed out).") \
  HISTOGRAM(latency, "llm_gateway_request_latency_seconds", "End-to-end latency of proxied requests.") \
  HISTOGRAM(ttft, "llm_gateway_ttft_seconds", "Time to first token of streamed answers.")              \
  HISTOGRAM(inter_token, "llm_gateway_inter_token_seconds", "Time between streamed tokens.")            \
  COUNTER_VEC(unrouted_by_code, kNumStatusCodes, "code", StatusCodeLabel, "llm_gateway_requests_total",  \
              "Requests answered by the gateway, by model and HTTP status.")

// Per model slot (ModelStats), label model="name".
#define LLMGW_MODEL_STATS(COUNTER, GAUGE, COUNTER_VEC, HISTOGRAM)                                          \
  COUNTER_VEC(requests_by_code, kNumStatusCodes, "code", StatusCodeLabel, "llm_gateway_requests_total",  \
              "Requests answered by the gateway, by model and HTTP status.")                             \
  COUNTER(prompt_tokens, "llm_gateway_tokens_total", "kind=prompt",                                     \
          "Tokens by model and kind (prompt, completion).")                                             \
  COUNTER(completion_tokens, "llm_gateway_tokens_total", "kind=completion",                             \
          "Tokens by model and kind (prompt, completion).")                                             \
  COUNTER(retries, "llm_gateway_model_retries_total", "", "Upstream attempts retried, by model.")       \
  COUNTER(fallbacks, "llm_gateway_fallbacks_total", "", "Requests sent on to a fallback model.")        \
  COUNTER(rejected, "llm_gateway_rejected_total", "",                                                   \
          "Requests rejected for lack of an eligible backend or by admission, by model.")               \
  GAUGE(active, "llm_gateway_model_active_requests", "", "Requests in flight, by model.")              \
  HISTOGRAM(latency, "llm_gateway_model_request_latency_seconds", "End-to-end latency of proxied requests, by model.") \
  HISTOGRAM(ttft, "llm_gateway_model_ttft_seconds", "Time to first token of streamed answers, by model.") \
  HISTOGRAM(inter_token, "llm_gateway_model_inter_token_seconds", "Time between streamed tokens, by model.") \
  COUNTER_VEC(stream_resumes, kNumResumeOutcomes, "outcome", ResumeOutcomeLabel,                          \
              "llm_gateway_stream_resumes_total",                                                        \
              "Streams whose backend failed after the first byte, by model and what became of them.")

// Per backend slot (BackendStats), label id="..." (the url is on llm_worker_info). llm_worker_in_flight (fleet-wide, from
// llmcd) stays the figure the policies use; local_in_flight is this gateway's threads only.
#define LLMGW_BACKEND_STATS(COUNTER, GAUGE, COUNTER_VEC, HISTOGRAM)                                        \
  COUNTER(requests, "llm_worker_requests_total", "", "Attempts sent to the backend.")                   \
  COUNTER(successes, "llm_worker_successes_total", "",                                                  \
          "Complete answers from the backend (any status below 500 except 429).")                       \
  COUNTER_VEC(errors, kNumUpstreamErrs, "kind", UpstreamErrLabel, "llm_worker_errors_total",             \
              "Failed attempts to the backend, by kind.")                                                \
  GAUGE(in_flight, "llm_worker_local_in_flight", "", "Attempts in flight from this gateway's threads.") \
  COUNTER(picks, "llm_worker_picks_total", "", "Times the router chose the backend.")                   \
  COUNTER(bytes_in, "llm_worker_bytes_received_total", "", "Bytes read from the backend.")              \
  COUNTER(bytes_out, "llm_worker_bytes_sent_total", "", "Bytes written to the backend.")                \
  COUNTER(prompt_tokens, "llm_worker_tokens_total", "kind=prompt", "Tokens by backend and kind.")       \
  COUNTER(completion_tokens, "llm_worker_tokens_total", "kind=completion", "Tokens by backend and kind.") \
  COUNTER(slow_calls, "llm_worker_slow_calls_total", "",                                                \
          "Attempts slower than circuit_breaker.slow_call_ms.")                                         \
  COUNTER(upstream_connects, "llm_worker_connects_total", "", "New TCP connections opened to the backend.") \
  HISTOGRAM(latency, "llm_worker_request_latency_seconds", "Attempt latency, by backend.")              \
  HISTOGRAM(ttft, "llm_worker_ttft_seconds", "Time to first token of streamed answers, by backend.")  \
  HISTOGRAM(inter_token, "llm_worker_inter_token_seconds", "Time between streamed tokens, by backend.")

// Per (client key, model) of a thread (KeyModelStats rows), labels key="id", model="name".
// Requests without a key count under key "anonymous".
#define LLMGW_KEY_MODEL_STATS(COUNTER, GAUGE, COUNTER_VEC, HISTOGRAM)                                      \
  COUNTER_VEC(requests_by_code, kNumStatusCodes, "code", StatusCodeLabel, "llm_gateway_key_requests_total", \
              "Requests answered, by client API key, model and HTTP status.")                            \
  COUNTER(prompt_tokens, "llm_gateway_key_tokens_total", "kind=prompt",                                 \
          "Tokens by client API key, model and kind (prompt, completion).")                             \
  COUNTER(completion_tokens, "llm_gateway_key_tokens_total", "kind=completion",                         \
          "Tokens by client API key, model and kind (prompt, completion).")

// The shared-memory fields of an entry.
#define LLMGW_SHM_SCALAR_(field, metric, label, help) std::atomic<uint64_t> field;
#define LLMGW_SHM_VEC_(field, size, label_key, label_fn, metric, help) std::atomic<uint64_t> field[size];
#define LLMGW_SHM_HIST_(field, metric, help) Histogram field;
#define LLMGW_SHM_FIELDS(LIST) LIST(LLMGW_SHM_SCALAR_, LLMGW_SHM_SCALAR_, LLMGW_SHM_VEC_, LLMGW_SHM_HIST_)

struct BackendStats {
  std::atomic<uint64_t> key;  // BackendEntry::key this row currently counts for
  LLMGW_SHM_FIELDS(LLMGW_BACKEND_STATS)
};

struct ModelStats {
  LLMGW_SHM_FIELDS(LLMGW_MODEL_STATS)
};

// One (key, model) pair a thread answered for. Rows are claimed on first use (open
// addressing on `tag`); the thread stores key_hash and model_slot first and the tag last
// (release), so a reader that loads the tag with acquire sees whose row it is.
struct KeyModelStats {
  std::atomic<uint64_t> tag;         // KeyModelTag(key_hash, model_slot); 0 = free
  std::atomic<uint64_t> key_hash;    // KeyEntry::id_hash (BackendKey("anonymous") for no key)
  std::atomic<uint64_t> model_slot;
  LLMGW_SHM_FIELDS(LLMGW_KEY_MODEL_STATS)
};
constexpr uint32_t kKeyModelRows = 1024;  // per thread; power of two
constexpr uint64_t KeyModelTag(uint64_t key_hash, uint32_t model_slot) {
  uint64_t t = key_hash ^ ((static_cast<uint64_t>(model_slot) + 1) * 0x9e3779b97f4a7c15ull);
  return t ? t : 1;
}

// A prefix this thread routed, for llmcd's gateway-wide placement. The thread replaces an
// entry by storing picks and model first and the tag last (release), so a reader that
// loads the tag with acquire never pairs a new tag with the old prefix's count.
struct PrefixReport {
  std::atomic<uint64_t> tag;    // Router tag; 0 = empty
  std::atomic<uint64_t> picks;  // monotonic while the tag stays
  std::atomic<uint64_t> model_slot;
};

// ---- Limits: use (data -> control) and leases (control -> data) -------------------------
// Every rate or concurrency limit the data plane enforces has an index in one space, so a
// thread's use counters (StatsSlot::limiter_use), its leases (LeaseSlot::grant) and llmcd's
// quota leaser treat them alike. No thread ever touches another's counters: a thread
// spends from its own lease, and llmcd rebalances the leases from the reported use every
// tick so that the sum over threads stays within each limit (docs/OPERATIONS.md "Keys and
// limits").
enum class LimitKind : uint8_t {
  kGlobalRps = 0,     // limits.global: requests
  kModelRps,          // models[].rps: requests, by model slot
  kBackendRps,        // models[].backends[].rps: attempts, by backend slot
  kKeyRpm,            // keys[].limits.rpm: requests, by key slot
  kKeyTpm,            // keys[].limits.tpm: tokens, by key slot
  kKeyConcurrency,    // keys[].limits.max_concurrent: requests in flight, by key slot
  kCount
};
constexpr uint32_t kNumLimitKinds = static_cast<uint32_t>(LimitKind::kCount);
// Label value of the `limit` label of llm_rate_limiter_*_total.
constexpr std::string_view LimitKindLabel(uint32_t i) {
  switch (static_cast<LimitKind>(i)) {
    case LimitKind::kGlobalRps: return "global_rps";
    case LimitKind::kModelRps: return "model_rps";
    case LimitKind::kBackendRps: return "backend_rps";
    case LimitKind::kKeyRpm: return "rpm";
    case LimitKind::kKeyTpm: return "tpm";
    case LimitKind::kKeyConcurrency: return "max_concurrent";
    case LimitKind::kCount: break;
  }
  return "unknown";
}
static_assert(detail::LabelsComplete(LimitKindLabel, kNumLimitKinds), "every LimitKind needs a label");
// Concurrency limits lease a share of in-flight requests; the others lease units of a rate.
constexpr bool IsConcurrencyLimit(LimitKind k) { return k == LimitKind::kKeyConcurrency; }
constexpr uint32_t LimitKindSlots(LimitKind k) {
  switch (k) {
    case LimitKind::kGlobalRps: return 1;
    case LimitKind::kModelRps: return kMaxModels;
    case LimitKind::kBackendRps: return kMaxBackends;
    case LimitKind::kKeyRpm:
    case LimitKind::kKeyTpm:
    case LimitKind::kKeyConcurrency: return kMaxKeys;
    case LimitKind::kCount: break;
  }
  return 0;
}
constexpr uint32_t LimiterBase(LimitKind k) {
  uint32_t base = 0;
  for (uint32_t i = 0; i < static_cast<uint32_t>(k); ++i) base += LimitKindSlots(static_cast<LimitKind>(i));
  return base;
}
constexpr uint32_t kNumLimiters = LimiterBase(LimitKind::kCount);
// The index of limit `kind` of slot `slot` (model, backend or key slot; 0 for global).
constexpr uint32_t LimiterIndex(LimitKind kind, uint32_t slot) { return LimiterBase(kind) + slot; }

// A thread's use of one limiter. Single writer (the thread), read by llmcd.
struct LimiterUse {
  std::atomic<uint64_t> spent;    // rates: units taken, cumulative; concurrency: in flight now
  std::atomic<uint64_t> denied;   // requests refused by this limiter, cumulative
  std::atomic<uint64_t> checked;  // requests checked against it, cumulative
};

// A thread's leases, written only by llmcd (one writer), read by the thread that owns the
// stats slot of the same index. For a rate, grant is cumulative and never goes down: the
// thread may take units while its spent < grant, so llmcd bounds what every thread can
// ever take by what it has granted. For a concurrency limit, grant is the thread's share of
// in-flight requests (lowered only with the thread's acknowledgement, see lease_seen).
struct alignas(64) LeaseSlot {
  std::atomic<uint64_t> generation;  // bumped (release) after llmcd rewrote the grants
  std::atomic<uint64_t> owner;       // StatsSlot::owner the grants were made for
  std::atomic<uint64_t> grant[kNumLimiters];
};

struct alignas(64) StatsSlot {
  // Bookkeeping, not stats.
  std::atomic<uint64_t> owner;      // (pid << 32) | thread index; 0 = free
  std::atomic<uint64_t> heartbeat_unix_ms;
  std::atomic<uint64_t> snapshot_generation;  // last generation this thread copied
  LLMGW_SHM_FIELDS(LLMGW_THREAD_STATS)
  ModelStats models[kMaxModels];
  BackendStats backends[kMaxBackends];
  PrefixReport prefix_report[kPrefixReportEntries];  // indexed by tag & (entries - 1)
  // Limits: this thread's use of each limiter and the last lease generation it applied
  // (llmcd lowers a concurrency share only once the thread has seen the lowering).
  std::atomic<uint64_t> lease_seen;
  LimiterUse limiter_use[kNumLimiters];
  KeyModelStats key_models[kKeyModelRows];  // indexed by tag & (rows - 1), linear probing
};

// The thread's row for (key, model), claimed if new; nullptr when the probe window is full
// (that pair is then not counted per key; the model's own counters still are). Only the
// slot's owning thread calls this.
inline KeyModelStats* KeyModelRow(StatsSlot& s, uint64_t key_hash, uint32_t model_slot) {
  constexpr uint32_t kProbe = 32;
  uint64_t tag = KeyModelTag(key_hash, model_slot);
  for (uint32_t n = 0, i = static_cast<uint32_t>(tag) & (kKeyModelRows - 1); n < kProbe;
       ++n, i = (i + 1) & (kKeyModelRows - 1)) {
    KeyModelStats& r = s.key_models[i];
    uint64_t t = r.tag.load(std::memory_order_relaxed);
    if (t == tag && r.key_hash.load(std::memory_order_relaxed) == key_hash &&
        r.model_slot.load(std::memory_order_relaxed) == model_slot)
      return &r;
    if (t == 0) {
      r.key_hash.store(key_hash, std::memory_order_relaxed);
      r.model_slot.store(model_slot, std::memory_order_relaxed);
      r.tag.store(tag, std::memory_order_release);
      return &r;
    }
  }
  return nullptr;
}

static_assert(std::extent_v<decltype(StatsSlot::errors_by_kind)> == static_cast<size_t>(ErrorKind::kCount));
static_assert(std::extent_v<decltype(BackendStats::errors)> == static_cast<size_t>(UpstreamErr::kCount));
static_assert(std::extent_v<decltype(ModelStats::requests_by_code)> == std::size(kStatusCodes) + 1);
static_assert(std::extent_v<decltype(ModelStats::stream_resumes)> == static_cast<size_t>(ResumeOutcome::kCount));

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
  LeaseSlot leases[kMaxStatsSlots];  // leases[i] belongs to slots[i]
  // Per limiter, what the whole limit has left (the bucket's pool plus every thread's
  // unspent lease; concurrency: the limit minus what is in flight), written by llmcd each
  // tick: the x-ratelimit-remaining-* answers tell the key's real remainder, not one
  // thread's lease.
  std::atomic<uint64_t> limiter_level[kNumLimiters];
  SpanRing span_rings[kMaxStatsSlots];  // span_rings[i]: finished spans of slots[i]'s thread
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
  ForEachUsedRange(s, [&](size_t off, size_t len) {
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
