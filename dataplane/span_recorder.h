// SpanRecorder: how a data-plane thread records trace spans (docs/OPERATIONS.md,
// "Tracing"). It turns what the worker knows about a finished request or upstream attempt
// into a SpanRecord and pushes it into the thread's ring in shared memory
// (common/span_ring.h), where llmcd collects it. No allocation, no lock, no wait: a full
// ring drops the span (counted in the ring). Times are the data plane's monotonic
// microseconds, turned into Unix nanoseconds with one wall-clock reading per request.
#pragma once

#include <time.h>

#include <cstdint>
#include <cstring>
#include <string_view>

#include "common/span_ring.h"
#include "dataplane/trace_context.h"

namespace llmgw::dataplane {

// What a finished upstream attempt was (a CLIENT span).
struct AttemptSpan {
  uint64_t start_us = 0, end_us = 0;  // monotonic
  uint64_t first_token_us = 0;        // 0: none
  uint16_t status = 0;                // upstream HTTP status; 0: no answer
  uint8_t error_kind = 0;             // ErrorKind of a failure; 0: none
  uint8_t attempt = 1;                // 1-based
  shm::AttemptReason reason = shm::AttemptReason::kFirst;
  int model = -1, backend = -1;       // slots; -1 none
  uint64_t backend_key = 0;
  uint32_t prompt_tokens = 0, completion_tokens = 0;
  shm::SpanOperation operation = shm::SpanOperation::kOther;
};

// What a finished request was (the SERVER span).
struct RequestSpan {
  uint64_t start_us = 0, end_us = 0;
  uint64_t first_token_us = 0;
  uint16_t status = 0;
  uint8_t error_kind = 0;
  uint8_t attempts = 0;
  bool stream = false;
  shm::SpanOperation operation = shm::SpanOperation::kOther;
  int model = -1, backend = -1;  // the model that served, the backend that answered last
  uint64_t backend_key = 0;
  uint32_t prompt_tokens = 0, completion_tokens = 0, bytes_in = 0, bytes_out = 0;
  std::string_view request_model, request_id, trace_state;
};

class SpanRecorder {
 public:
  // enabled: tracing.otlp_endpoint is set; sample: tracing.sample.
  void Attach(shm::SpanRing* ring, bool enabled, double sample) {
    writer_.Attach(ring);
    enabled_ = enabled && ring != nullptr;
    sample_ = sample;
  }
  bool enabled() const { return enabled_; }
  double sample() const { return sample_; }

  // Unix nanoseconds for monotonic `us`, given the request's start in both clocks.
  static uint64_t UnixNs(uint64_t start_unix_ns, uint64_t start_us, uint64_t us) {
    return us >= start_us ? start_unix_ns + (us - start_us) * 1000 : start_unix_ns - (start_us - us) * 1000;
  }
  static uint64_t NowUnixNs() {
    timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return static_cast<uint64_t>(ts.tv_sec) * 1000000000ull + static_cast<uint64_t>(ts.tv_nsec);
  }

  // Records an attempt span (child of the request's span) when the trace is sampled.
  bool Attempt(const TraceContext& t, uint64_t start_unix_ns, uint64_t request_start_us, const AttemptSpan& a,
               std::string_view trace_state) {
    if (!enabled_ || !t.sampled()) return false;
    shm::SpanRecord& r = rec_;
    std::memset(&r, 0, sizeof(r));
    std::memcpy(r.trace_id, t.trace_id(), 16);
    std::memcpy(r.span_id, t.attempt_span(), 8);
    std::memcpy(r.parent_span_id, t.server_span(), 8);
    r.kind = static_cast<uint8_t>(shm::SpanKind::kClient);
    r.start_unix_ns = UnixNs(start_unix_ns, request_start_us, a.start_us);
    r.end_unix_ns = UnixNs(start_unix_ns, request_start_us, a.end_us);
    r.first_token_unix_ns = a.first_token_us ? UnixNs(start_unix_ns, request_start_us, a.first_token_us) : 0;
    r.status_code = a.status;
    r.error_kind = a.error_kind;
    r.attempt = a.attempt;
    r.reason = static_cast<uint8_t>(a.reason);
    r.model_slot = a.model >= 0 ? static_cast<uint16_t>(a.model) : 0xffff;
    r.backend_slot = a.backend >= 0 ? static_cast<uint16_t>(a.backend) : 0xffff;
    r.backend_key = a.backend_key;
    r.prompt_tokens = a.prompt_tokens;
    r.completion_tokens = a.completion_tokens;
    r.operation = static_cast<uint8_t>(a.operation);
    shm::CopySpanText(r.trace_state, sizeof(r.trace_state), trace_state.size() < sizeof(r.trace_state) ? trace_state : "");
    return writer_.Push(r);
  }

  // Records the request's span (continuing the client's span when it sent one).
  bool Request(const TraceContext& t, uint64_t start_unix_ns, const RequestSpan& q) {
    if (!enabled_ || !t.sampled()) return false;
    shm::SpanRecord& r = rec_;
    std::memset(&r, 0, sizeof(r));
    std::memcpy(r.trace_id, t.trace_id(), 16);
    std::memcpy(r.span_id, t.server_span(), 8);
    if (t.has_parent()) std::memcpy(r.parent_span_id, t.parent_span(), 8);
    r.kind = static_cast<uint8_t>(shm::SpanKind::kServer);
    r.start_unix_ns = start_unix_ns;
    r.end_unix_ns = UnixNs(start_unix_ns, q.start_us, q.end_us);
    r.first_token_unix_ns = q.first_token_us ? UnixNs(start_unix_ns, q.start_us, q.first_token_us) : 0;
    r.status_code = q.status;
    r.error_kind = q.error_kind;
    r.attempt = q.attempts;
    r.stream = q.stream;
    r.sampled_by_parent = t.parent_sampled();
    r.operation = static_cast<uint8_t>(q.operation);
    r.model_slot = q.model >= 0 ? static_cast<uint16_t>(q.model) : 0xffff;
    r.backend_slot = q.backend >= 0 ? static_cast<uint16_t>(q.backend) : 0xffff;
    r.backend_key = q.backend_key;
    r.prompt_tokens = q.prompt_tokens;
    r.completion_tokens = q.completion_tokens;
    r.bytes_in = q.bytes_in;
    r.bytes_out = q.bytes_out;
    shm::CopySpanText(r.request_model, sizeof(r.request_model), q.request_model);
    shm::CopySpanText(r.request_id, sizeof(r.request_id), q.request_id);
    // A tracestate that does not fit is dropped rather than cut (a cut entry would be
    // malformed); the header itself still goes upstream whole.
    shm::CopySpanText(r.trace_state, sizeof(r.trace_state), q.trace_state.size() < sizeof(r.trace_state) ? q.trace_state : "");
    return writer_.Push(r);
  }

 private:
  shm::SpanRingWriter writer_;
  bool enabled_ = false;
  double sample_ = 0;
  shm::SpanRecord rec_;  // scratch: built here, then copied into the ring
};

}  // namespace llmgw::dataplane
