// SpanRing: finished trace spans, data plane -> control plane, through shared memory
// (docs/OPERATIONS.md, "Tracing"). One ring per data-plane thread (next to its stats
// slot), one writer (that thread) and one reader (llmcd's span collector): a
// single-producer single-consumer queue of fixed-size, pointer-free records, so the data
// plane never blocks, never allocates and never waits on the exporter. A full ring drops
// the new record and counts it (the reader exports the count as dropped spans).
//
// Protocol: `head` counts records ever published (written only by the producer, release),
// `tail` counts records ever consumed (written only by the consumer, release). The
// producer writes records[head % N] only when head - tail < N, so it never overwrites a
// record the consumer has not copied out yet.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string_view>
#include <type_traits>

namespace llmgw::shm {

constexpr uint32_t kSpanRingEntries = 512;  // per data-plane thread; power of two
constexpr uint32_t kSpanTextLen = 64;

enum class SpanKind : uint8_t { kServer = 2, kClient = 3 };  // OTLP's SpanKind values

// The GenAI operation of the request (gen_ai.operation.name).
enum class SpanOperation : uint8_t { kOther = 0, kChat = 1, kTextCompletion = 2, kEmbeddings = 3 };

constexpr std::string_view SpanOperationName(SpanOperation o) {
  switch (o) {
    case SpanOperation::kChat: return "chat";
    case SpanOperation::kTextCompletion: return "text_completion";
    case SpanOperation::kEmbeddings: return "embeddings";
    case SpanOperation::kOther: break;
  }
  return "http";
}

// Why an attempt was made (the first one: kFirst).
enum class AttemptReason : uint8_t { kFirst = 0, kRetry = 1, kFallback = 2, kResume = 3 };

constexpr std::string_view AttemptReasonName(AttemptReason r) {
  switch (r) {
    case AttemptReason::kFirst: return "first";
    case AttemptReason::kRetry: return "retry";
    case AttemptReason::kFallback: return "fallback";
    case AttemptReason::kResume: return "resume";
  }
  return "unknown";
}

// One finished span. Names of models and backends are slots of the snapshot the request
// ran on, with the backend's key so a reader can tell a slot reused since; the model name
// the client sent is copied (it may be an alias).
struct SpanRecord {
  uint8_t trace_id[16];
  uint8_t span_id[8];
  uint8_t parent_span_id[8];     // all zero: a root span
  uint64_t start_unix_ns;
  uint64_t end_unix_ns;
  uint64_t first_token_unix_ns;  // the "first token" event (TTFT); 0: none
  uint64_t backend_key;          // BackendEntry::key of backend_slot
  uint32_t prompt_tokens;
  uint32_t completion_tokens;
  uint32_t bytes_in;             // from the client (server span) / to the backend (attempt)
  uint32_t bytes_out;
  uint16_t status_code;          // HTTP status (520: cut after the first byte; 0: none)
  uint16_t model_slot;           // the model that served; 0xffff: none
  uint16_t backend_slot;         // 0xffff: none
  uint8_t kind;                  // SpanKind
  uint8_t error_kind;            // llmgw::ErrorKind of a failure, 0 when none
  uint8_t attempt;               // 1-based attempt number (client spans)
  uint8_t reason;                // AttemptReason (client spans)
  uint8_t stream;                // 1: a streamed (SSE) request
  uint8_t sampled_by_parent;     // 1: the client's traceparent had the sampled flag
  uint8_t operation;             // SpanOperation
  uint8_t reserved[3];
  char request_model[kSpanTextLen];  // as the client named it (server spans)
  char request_id[kSpanTextLen];     // X-Request-ID
  char trace_state[128];             // W3C tracestate as received (truncated: dropped)
};
static_assert(std::is_trivially_copyable_v<SpanRecord>);
static_assert(sizeof(SpanRecord) == 352, "no implicit padding: the record crosses processes");

struct alignas(64) SpanRing {
  std::atomic<uint64_t> head;     // producer
  char pad0[56];
  std::atomic<uint64_t> tail;     // consumer
  char pad1[56];
  std::atomic<uint64_t> dropped;  // producer: records refused because the ring was full
  char pad2[56];
  SpanRecord records[kSpanRingEntries];
};
static_assert((kSpanRingEntries & (kSpanRingEntries - 1)) == 0, "ring size must be a power of two");

// The producer side, owned by one data-plane thread. Hot path: no allocation, no lock,
// no wait; a copy of the record and one release store.
class SpanRingWriter {
 public:
  SpanRingWriter() = default;
  explicit SpanRingWriter(SpanRing* ring) : ring_(ring) {}
  void Attach(SpanRing* ring) { ring_ = ring; }
  bool attached() const { return ring_ != nullptr; }

  // Publishes r; false (and counted as dropped) when the ring is full.
  bool Push(const SpanRecord& r) {
    if (!ring_) return false;
    uint64_t head = ring_->head.load(std::memory_order_relaxed);
    uint64_t tail = ring_->tail.load(std::memory_order_acquire);
    if (head - tail >= kSpanRingEntries) {
      ring_->dropped.store(ring_->dropped.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
      return false;
    }
    std::memcpy(&ring_->records[head & (kSpanRingEntries - 1)], &r, sizeof(r));
    ring_->head.store(head + 1, std::memory_order_release);
    return true;
  }

 private:
  SpanRing* ring_ = nullptr;
};

// The consumer side (llmcd). Drain copies every published record out and frees the
// slots; the callback sees each record once, oldest first.
class SpanRingReader {
 public:
  explicit SpanRingReader(SpanRing* ring) : ring_(ring) {}

  template <typename F>
  size_t Drain(F&& f, size_t max = SIZE_MAX) {
    uint64_t tail = ring_->tail.load(std::memory_order_relaxed);
    uint64_t head = ring_->head.load(std::memory_order_acquire);
    if (head - tail > kSpanRingEntries) tail = head - kSpanRingEntries;  // a torn or foreign state: resync
    size_t n = 0;
    SpanRecord copy;
    while (tail != head && n < max) {
      std::memcpy(&copy, &ring_->records[tail & (kSpanRingEntries - 1)], sizeof(copy));
      ++tail;
      ++n;
      f(copy);
    }
    ring_->tail.store(tail, std::memory_order_release);
    return n;
  }
  uint64_t dropped() const { return ring_->dropped.load(std::memory_order_relaxed); }

 private:
  SpanRing* ring_;
};

// Copies a string into a fixed field, NUL-terminated, truncating.
inline void CopySpanText(char* dst, size_t cap, std::string_view s) {
  size_t n = s.size() < cap - 1 ? s.size() : cap - 1;
  if (n) std::memcpy(dst, s.data(), n);  // an empty view's data() may be null
  dst[n] = 0;
}

}  // namespace llmgw::shm
