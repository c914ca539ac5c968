// Attempts: picking a backend, admission (queueing when every backend is full), upstream
// deadlines, and retries/fallbacks before the first byte reached the client.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <string>

#include "common/log.h"
#include "dataplane/request_json.h"
#include "dataplane/worker_impl.h"

namespace llmgw::dataplane {

// One pick (Attempt: the router, then the model's fallbacks), then a connection from
// the pool and the request on its way.
void WorkerImpl::StartAttempt(ClientConn* c) {
  Attempt& at = c->attempt;
  int slot = at.Pick(router_, *snap_, local_, &rng_, &stats_, [&](uint16_t model, routing::RequestInfo* info) {
    info->hash_key = c->h->hash_value.len ? c->h->hash_value.View() : c->h->user.View();
    // prefix_affinity homes prompts by prefix; adaptive uses the same homes (weighted by
    // the bandit's shares), so both need the prompt's leading bytes.
    Policy policy = router_.PolicyOf(model);
    if (policy == Policy::kPrefixAffinity || policy == Policy::kAdaptive) {
      RequestState* h = c->h;
      if (h->prefix_len < 0) {
        size_t cap = std::min<size_t>(sizeof(h->prefix), snap_->limits.prefix_bytes ? snap_->limits.prefix_bytes : 256);
        h->prefix_len = static_cast<int>(routing::ExtractPrefix(h->body, h->prefix, cap));
      }
      info->prefix = std::string_view(h->prefix, static_cast<size_t>(h->prefix_len));
    }
  });
  // Backends skipped at their rate count as refused by their limiter (unmet demand).
  for (uint16_t s : router_.RateSkipped()) limiter_.Refuse(shm::LimiterIndex(shm::LimitKind::kBackendRps, s));
  if (slot == routing::kNoBackend) {
    if (c->rw.committed()) {
      // A stream's continuation. Every backend it may still use busy (not broken): it
      // waits in the admission queue for a free slot like a fresh request (within the
      // queue's timeout; RejectOverloaded ends the stream if none frees). Else no backend
      // is left and the stream ends here.
      if (admission_ && router_.AllAtCapacity(at.orig_model(), local_, at.tried())) return Enqueue(c);
      return ResumeImpossible(c, ResumeOutcome::kNoBackend, at.last_error());
    }
    if (at.failed()) return SendFailure(c, at.last_error());
    // Every backend is busy (not broken): wait in the admission queue for a free slot.
    if (at.attempts() == 0 && admission_ && router_.AllAtCapacity(at.orig_model(), local_)) return Enqueue(c);
    if (!router_.RateSkipped().empty()) {
      // Only backends at their models[].backends[].rps were left: the caller may retry soon.
      c->retry_after_s = 1;
      return SendFailure(c, Error(ErrorKind::kRateLimited, ErrorSide::kDownstream, false,
                                  "Every backend of this model is at its request rate limit; retry shortly."));
    }
    stats_.NoBackend(at.orig_model());
    return SendFailure(c, Error(ErrorKind::kNoBackend, ErrorSide::kInternal, false,
                                "no eligible backend for this model"));
  }
  at.Started(slot);
  if (snap_->backends[slot].rps)  // models[].backends[].rps: attempts per second
    limiter_.Admit({{shm::LimiterIndex(shm::LimitKind::kBackendRps, static_cast<uint32_t>(slot)), ThreadLimiter::Mode::kTake}});
  if (c->continuing) c->resumed = true;
  if (spans_.enabled()) c->trace.NewAttempt(&rng_);
  c->attempt_open = true;
  const shm::BackendEntry& be = snap_->backends[slot];
  ++local_[slot].in_flight;
  ++local_[slot].awaiting;  // until its first byte (upstream.cc) or its release without one
  stats_.BackendPicked(slot, be.key, local_[slot].in_flight);
  c->first_byte_us = 0;
  c->attempt_start_us = NowUs();

  bool reused;
  UpstreamConn* u = pool_.Take(slot, be, &reused);
  if (!u)
    return UpstreamFailed(c, Error(ErrorKind::kConnectFailed, ErrorSide::kInternal, true,
                                   "cannot create upstream socket"));
  if (!reused) stats_.UpstreamConnect(slot);
  Bind(u);
  u->client = c;
  c->up = u;
  if (be.tls && !reused) {
    // https: the handshake runs after the connect (upstream.cc); the request waits for it.
    Status st = StartTls(u, slot, be);
    if (!st.ok()) {
      stats_.UpstreamError(slot, shm::UpstreamErr::kConnect);
      return UpstreamFailed(c, st.error());
    }
    u->tls_request_waits = true;
  }
  Status built = BuildUpstreamRequest(c, u, be);
  if (!built.ok()) return UpstreamFailed(c, built.error());
  u->codec.BeginResponse(this, &c->h->resp_headers, &c->relay);
  if (u->connected) {
    SetUpDeadline(c, 2, snap_->limits.first_byte_ms);
    if (u->tls) {
      Status st = TlsWriteRequest(u);
      if (!st.ok()) return TlsFailed(u, st.error());
    }
    ArmUpSend(u);
    // The response read is queued with the request: no loop turn between them.
    ArmUpRecv(u);
  } else {
    SetUpDeadline(c, 1, snap_->limits.connect_ms);
    io_uring_sqe* s = Sqe();
    io_uring_prep_connect(s, u->fd, reinterpret_cast<sockaddr*>(&u->addr), u->addr_len);
    io_uring_sqe_set_data64(s, u->connect_done.user_data());
    ++u->pending_ops;
  }
}

void WorkerImpl::Enqueue(ClientConn* c) {
  uint64_t evicted = 0;
  auto r = admission_->Push(reinterpret_cast<uint64_t>(c), c->priority, &evicted);
  if (r == routing::AdmissionQueue::PushResult::kFull) return RejectOverloaded(c);
  c->queued = true;
  c->log_flags |= kFlagLimited;
  c->attempt.Requeue();
  stats_.AdmissionQueued();
  if (r == routing::AdmissionQueue::PushResult::kQueuedEvicted) {
    ClientConn* e = reinterpret_cast<ClientConn*>(evicted);
    e->queued = false;
    RejectOverloaded(e);
  }
}

void WorkerImpl::RejectOverloaded(ClientConn* c) {
  c->log_flags |= kFlagLimited;
  stats_.AdmissionRejected(c->attempt.orig_model());
  Error e(ErrorKind::kOverloaded, ErrorSide::kInternal, false, "every backend of this model is at capacity; retry later");
  // A continuation that found no free slot in time: its stream ends with the error event.
  if (c->rw.committed()) return ResumeImpossible(c, ResumeOutcome::kNoBackend, e);
  c->retry_after_s = admission_->RetryAfterSeconds();
  SendFailure(c, e);
}

// A backend slot freed up: let the best waiter try again (one per freed slot).
void WorkerImpl::AdmitWaiting() {
  while (admit_credits_ > 0 && admission_ && !admission_->empty()) {
    --admit_credits_;
    uint64_t cookie;
    if (!admission_->Pop(&cookie)) break;
    ClientConn* c = reinterpret_cast<ClientConn*>(cookie);
    c->queued = false;
    StartAttempt(c);
  }
  admit_credits_ = 0;
}

void WorkerImpl::SetUpDeadline(ClientConn* c, uint8_t kind, uint32_t ms) {
  c->up_deadline_kind = kind;
  c->up_deadline_ms = ms ? NowMs() + ms : 0;
  if (ms) ScheduleDeadline(c);
}

// A pooled connection the server had closed meanwhile: not the backend's fault, so try
// again at once (the next pooled or a new connection), without spending a retry.
void WorkerImpl::RetryStale(ClientConn* c) {
  c->attempt.Undo();
  ReleaseUpstream(c, false);
  StartAttempt(c);
}

// The one place a failed attempt is judged. Before the answer is committed: retry on
// another backend when the error allows it and retries are left, else the client gets the
// error's reply (error_reply.h). After: end the stream with an SSE error event and close.
void WorkerImpl::UpstreamFailed(ClientConn* c, const Error& e) {
  stats_.CountError(e.kind());
  EndAttempt(c, e.upstream_status(), e.kind());
  if (c->up) ReleaseUpstream(c, false);
  c->up_deadline_ms = 0;
  if (!c->rw.committed()) {
    if (!c->send_armed) {  // only a 100 Continue can be queued before the commit
      c->h->out.clear();
      c->out_off = 0;
    }
    Attempt::Next next = c->attempt.OnFailure(e, snap_->limits.retries_max, snap_->limits.retries_backoff_ms,
                                              draining_, NowMs(), &rng_);
    if (next == Attempt::Next::kFail) return SendFailure(c, e);
    stats_.Retry(c->attempt.orig_model());
    c->log_flags |= kFlagRetried;
    if (next == Attempt::Next::kRetryNow) return StartAttempt(c);
    ScheduleDeadline(c);  // the timer starts the next attempt at retry_at_ms
    return;
  }
  if (c->filtering && TryResume(c, e)) return;
  if (!c->filtering && c->relay.is_sse() && e.side() == ErrorSide::kUpstream && !snap_->limits.resume_streams) {
    // A stream broke and resume is off: counted, so an operator sees what it would save.
    c->resume_outcome = ResumeOutcome::kDisabled;
    LOG_WARN("stream not resumed; it ends with an error event",
             {{"request_id", c->h->request_id.View()}, {"reason", "disabled"}, {"error", e.message()}});
  }
  EndCommittedWithError(c, ReplyFor(e), e.message());
}

// After the first byte: the stream is continued on another backend of the model (a
// continuation request, stream_resume.h) under the same retry budget, breakers and
// admission as a retry, when its backend failed and what was sent allows it. The
// continuation's chunks are spliced into the client's stream by StreamFilter.
bool WorkerImpl::TryResume(ClientConn* c, const Error& e) {
  // Only a failure of the backend: not the total timeout, nor an error about the request.
  if (e.side() != ErrorSide::kUpstream || (c->total_deadline_ms && NowMs() >= c->total_deadline_ms)) return false;
  StreamFilter& f = *c->filter;
  if (f.done()) {
    // [DONE] already went out; only the HTTP framing after it was lost: the stream is
    // complete, end it as such.
    c->rw.EndBody(&c->h->out);
    c->response_done = true;
    QueueSend(c);
    return true;
  }
  f.AttemptFailed();
  c->stream_error = 0;
  ResumeOutcome why = f.CanResume();
  if (why == ResumeOutcome::kOk && f.state().finished()) {
    // The text is complete, only the end was lost: written here as the backend would
    // have (usage when asked for, [DONE]); nothing to continue.
    filter_scratch_.clear();
    f.AppendEnd(&filter_scratch_);
    c->rw.AppendBody(&c->h->out, filter_scratch_.data(), filter_scratch_.size());
    c->rw.EndBody(&c->h->out);
    c->response_done = true;
    c->resume_outcome = c->continuing ? ResumeOutcome::kOk : ResumeOutcome::kEnded;
    QueueSend(c);
    return true;
  }
  if (why == ResumeOutcome::kOk) {
    // What the continuation request would be refused for (its shape, max_tokens spent).
    if (!c->up_body) c->up_body = stream_pool_.Take();
    why = BuildContinuation(c->h->body, c->chat, {}, f.state(), c->up_body);
  }
  if (why == ResumeOutcome::kOk) {
    Error again(e.kind(), e.side(), true, "%s", e.message());
    again.set_upstream_status(e.upstream_status());
    Attempt::Next next = c->attempt.OnFailure(again, snap_->limits.retries_max, snap_->limits.retries_backoff_ms,
                                              draining_, NowMs(), &rng_);
    if (next == Attempt::Next::kFail) {
      why = ResumeOutcome::kNoRetries;
    } else {
      c->continuing = true;
      c->log_flags |= kFlagResumed;
      c->resume_outcome = ResumeOutcome::kFailed;  // until a continuation finishes the stream
      stats_.Retry(c->attempt.orig_model());
      LOG_INFO("stream continues on another backend",
               {{"request_id", c->h->request_id.View()},
                {"failed_backend", c->attempt.backend() >= 0 ? std::string_view(snap_->backends[c->attempt.backend()].id)
                                                             : std::string_view()},
                {"error", e.message()},
                {"text_bytes", static_cast<unsigned long long>(f.state().kept_bytes())},
                {"tokens", static_cast<unsigned long long>(f.state().tokens_before())}});
      if (next == Attempt::Next::kRetryNow) StartAttempt(c);
      else ScheduleDeadline(c);  // the timer starts the continuation at retry_at_ms
      return true;
    }
  }
  ResumeImpossible(c, why, e);
  return true;
}

void WorkerImpl::ResumeImpossible(ClientConn* c, ResumeOutcome why, const Error& e) {
  // After a continuation ran, the stream as a whole failed (whatever stopped the last).
  c->resume_outcome = c->resumed ? ResumeOutcome::kFailed : why;
  LOG_WARN("stream not resumed; it ends with an error event",
           {{"request_id", c->h->request_id.View()},
            {"reason", ResumeOutcomeName(why)},
            {"error", e.message()},
            {"broken_attempts", static_cast<unsigned long long>(c->filter ? c->filter->state().resumes() : 0)}});
  EndCommittedWithError(c, ReplyFor(e), e.message());
}

void WorkerImpl::ReleaseStreamBuffers(ClientConn* c) {
  if (c->filter) {
    c->filter->Release();
    free_filters_.push_back(c->filter);
    c->filter = nullptr;
  }
  c->filter_wanted = c->filtering = false;
  stream_pool_.Give(c->up_body);
  c->up_body = nullptr;
  ReleaseTranslation(c);
}

// A chunked stream ended by the error event and its terminating chunk is a complete
// HTTP answer (only the upstream failed, the client's framing is intact): the connection
// stays open for the client's next request, as its head said (docs/DATAPLANE.md). Any
// other committed answer cannot end cleanly and the close is how the client sees it.
void WorkerImpl::EndCommittedWithError(ClientConn* c, const ErrorReply& reply, std::string_view message) {
  if (c->up) ReleaseUpstream(c, false);
  c->response_done = true;
  c->status = kStreamCutStatus;
  if (c->relay.is_sse() && c->rw.CanEndWithEvent()) {
    // Through StreamFilter only whole events went out: the error event needs no separator.
    c->rw.AppendStreamError(&c->h->out, reply, message, c->filtering ? std::string_view() : c->relay.EventSeparator());
    if (draining_) c->rw.CloseAfterSend();
    QueueSend(c);
  } else {
    c->rw.CloseAfterSend();
    if (c->out_off >= c->h->out.size()) CloseClient(c);
    else QueueSend(c);
  }
}

}  // namespace llmgw::dataplane
