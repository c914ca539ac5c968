// The end of a request (and of each upstream attempt) as the stats slot, the trace spans
// and the access log see it: the client session's numbers handed to ThreadStats
// (thread_stats.h), SpanRecorder (span_recorder.h) and AccessLog (access_log.h).
#include <cstring>
#include <string_view>

#include "dataplane/worker_impl.h"

namespace llmgw::dataplane {

namespace {

shm::SpanOperation OperationOf(const char* api_path) {
  if (std::strcmp(api_path, "/v1/chat/completions") == 0) return shm::SpanOperation::kChat;
  if (std::strcmp(api_path, "/v1/completions") == 0) return shm::SpanOperation::kTextCompletion;
  if (std::strcmp(api_path, "/v1/embeddings") == 0) return shm::SpanOperation::kEmbeddings;
  return shm::SpanOperation::kOther;
}

uint32_t Clamp32(uint64_t v) { return v > UINT32_MAX ? UINT32_MAX : static_cast<uint32_t>(v); }

}  // namespace

void WorkerImpl::BeginTrace(ClientConn* c) {
  if (!spans_.enabled()) return;
  c->trace.Begin(c->h->traceparent.View(), spans_.sample(), &rng_);
  c->trace_begun = true;
  // One wall-clock reading per sampled request; span times are offsets from it.
  if (c->trace.sampled()) c->start_unix_ns = SpanRecorder::NowUnixNs() - (NowUs() - c->start_us) * 1000;
}

void WorkerImpl::EndAttempt(ClientConn* c, uint16_t status, ErrorKind kind) {
  if (!c->attempt_open) return;
  c->attempt_open = false;
  uint64_t now = NowUs();
  if (c->n_notes < kMaxAttemptNotes) c->notes[c->n_notes++] = AttemptNote{status, now - c->attempt_start_us};
  if (kind == ErrorKind::kTimeout) c->log_flags |= kFlagUpstreamTimeout;
  if (!c->start_unix_ns) return;  // not traced, or not sampled
  AttemptSpan a;
  a.start_us = c->attempt_start_us;
  a.end_us = now;
  a.first_token_us = c->first_token_us >= c->attempt_start_us ? c->first_token_us : 0;
  a.status = status;
  a.error_kind = static_cast<uint8_t>(kind);
  a.attempt = c->attempt.attempts();
  a.reason = a.attempt <= 1                                  ? shm::AttemptReason::kFirst
             : c->attempt.model() != c->attempt.orig_model() ? shm::AttemptReason::kFallback
                                                             : shm::AttemptReason::kRetry;
  a.model = c->attempt.model();
  a.backend = c->attempt.backend();
  if (a.backend >= 0) a.backend_key = snap_->backends[a.backend].key;
  if (status >= 200 && status < 300) {
    a.prompt_tokens = Clamp32(c->relay.prompt_tokens());
    a.completion_tokens = Clamp32(c->relay.completion_tokens());
  }
  a.operation = OperationOf(c->api_path);
  spans_.Attempt(c->trace, c->start_unix_ns, c->start_us, a, c->h->tracestate.View());
}

void WorkerImpl::EndRequestStats(ClientConn* c, int status) {
  if (status == 0) status = 499;
  if (c->addr_counted) {
    addr_limiter_.Release(c->addr_key);
    c->addr_counted = false;
  }
  // The last attempt ends with the request (an answer relayed, or the client gone).
  if (c->attempt_open)
    EndAttempt(c, status == 499 ? 0 : static_cast<uint16_t>(c->status),
               status == 499 ? ErrorKind::kClientGone : ErrorKind::kNone);
  uint64_t us = NowUs() - c->start_us;
  bool has_model = c->has_model;
  if (status == 499) c->log_flags |= kFlagClientGone;
  if (status == kStreamCutStatus) c->log_flags |= kFlagStreamCut;
  if (has_model && c->attempt.model() != c->attempt.orig_model()) c->log_flags |= kFlagFallback;
  if (c->start_unix_ns) {
    RequestSpan q;
    q.start_us = c->start_us;
    q.end_us = c->start_us + us;
    q.first_token_us = c->first_token_us;
    q.status = static_cast<uint16_t>(status);
    q.error_kind = status >= 500 ? static_cast<uint8_t>(c->attempt.last_error().kind()) : 0;
    q.attempts = c->attempt.attempts();
    q.stream = c->streaming;
    q.operation = OperationOf(c->api_path);
    q.model = has_model ? c->attempt.model() : -1;
    q.backend = c->attempt.backend();
    if (q.backend >= 0) q.backend_key = snap_->backends[q.backend].key;
    q.prompt_tokens = Clamp32(c->filtering ? c->filter->prompt_tokens() : c->relay.prompt_tokens());
    q.completion_tokens = Clamp32(c->filtering ? c->filter->completion_tokens() : c->relay.completion_tokens());
    q.bytes_in = Clamp32(c->bytes_in);
    q.bytes_out = Clamp32(c->bytes_out);
    // The model as the client named it: the raw JSON string, without its quotes.
    if (has_model && c->model_end >= c->model_begin + 2 && c->model_end <= c->h->body.size())
      q.request_model = std::string_view(c->h->body).substr(c->model_begin + 1, c->model_end - c->model_begin - 2);
    q.request_id = c->h->request_id.View();
    q.trace_state = c->h->tracestate.View();
    spans_.Request(c->trace, c->start_unix_ns, q);
  }
  RequestOutcome r;
  r.status = status;
  r.duration_us = us;
  r.ttfb_us = c->first_byte_us ? c->first_byte_us - c->start_us : 0;
  r.attempt_wait_us = (c->first_byte_us ? c->first_byte_us : NowUs()) - c->attempt_start_us;
  r.model = has_model ? c->attempt.orig_model() : -1;
  r.backend = c->attempt.backend();
  // Through StreamFilter the counts cover every attempt of a resumed stream (and usage the
  // client did not ask for); else the relay's scan of the answer.
  r.prompt_tokens = c->filtering ? c->filter->prompt_tokens() : c->relay.prompt_tokens();
  r.completion_tokens = c->filtering ? c->filter->completion_tokens() : c->relay.completion_tokens();
  if (c->commit_us) r.ttfb_us = c->commit_us - c->start_us;  // the client's, not a continuation's
  stats_.EndRequest(r);
  if (has_model && c->resume_outcome != ResumeOutcome::kCount) stats_.StreamResume(c->attempt.orig_model(), c->resume_outcome);
  if (access_log_.enabled()) {
    AccessRecord a;
    a.method = llhttp_method_name(c->session.method());
    a.path = c->h->url.View();
    a.status = status;
    a.model = has_model ? std::string_view(snap_->models[c->attempt.orig_model()].name) : "";
    a.backend = c->attempt.backend() >= 0 ? std::string_view(snap_->backends[c->attempt.backend()].id) : "";
    a.stream = c->streaming;
    a.attempts = c->attempt.attempts();
    a.duration_us = us;
    a.ttft_us = c->first_token_us ? c->first_token_us - c->start_us : 0;
    a.bytes_out = c->bytes_out;
    a.prompt_tokens = r.prompt_tokens;
    a.completion_tokens = r.completion_tokens;
    a.resumes = c->filtering ? c->filter->state().resumes() : 0;
    if (c->resume_outcome != ResumeOutcome::kCount) a.resume = ResumeOutcomeName(c->resume_outcome);
    a.request_id = c->h->request_id.View();
    a.key = c->key_slot >= 0 ? std::string_view(snap_->keys[c->key_slot].id)
            : c->key_hash    ? kAnonymousKeyId
                             : std::string_view();
    a.client_addr = c->client_addr;
    a.user_agent = c->h->user_agent.View();
    a.bytes_in = c->bytes_in;
    char upstream[64] = {};
    if (c->attempt.backend() >= 0) {
      const shm::BackendEntry& be = snap_->backends[c->attempt.backend()];
      FormatAddress(be.family, be.addr, be.port, upstream, sizeof(upstream));
    }
    a.upstream_addr = upstream;
    for (unsigned i = 0; i < c->n_notes; ++i) a.attempt_notes[i] = c->notes[i];
    a.notes = c->n_notes;
    a.flags = c->log_flags;
    char trace_hex[33];
    if (c->trace_begun) {
      static constexpr char kHex[] = "0123456789abcdef";
      for (int i = 0; i < 16; ++i) {
        trace_hex[2 * i] = kHex[c->trace.trace_id()[i] >> 4];
        trace_hex[2 * i + 1] = kHex[c->trace.trace_id()[i] & 15];
      }
      a.trace_id = std::string_view(trace_hex, 32);
    }
    access_log_.Write(a, &rng_);
  }
  EndKeyRequest(c, status);
  c->has_model = false;
}

}  // namespace llmgw::dataplane
