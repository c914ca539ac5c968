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

// One pick from the router; on no backend, walk the model's fallbacks.
LLMGW_PART_INLINE void WorkerImpl::StartAttempt(ClientConn* c) {
  int slot = routing::kNoBackend;
  while (true) {
    routing::RequestInfo info;
    info.hash_key = c->h->hash_value.len ? c->h->hash_value.View() : c->h->user.View();
    // prefix_affinity homes prompts by prefix; adaptive uses the same homes (weighted by
    // the bandit's shares), so both need the prompt's leading bytes.
    Policy policy = router_.PolicyOf(c->model_slot);
    if (policy == Policy::kPrefixAffinity || policy == Policy::kAdaptive) {
      RequestState* h = c->h;
      if (h->prefix_len < 0) {
        size_t cap = std::min<size_t>(sizeof(h->prefix), snap_->limits.prefix_bytes ? snap_->limits.prefix_bytes : 256);
        h->prefix_len = static_cast<int>(routing::ExtractPrefix(h->body, h->prefix, cap));
      }
      info.prefix = std::string_view(h->prefix, static_cast<size_t>(h->prefix_len));
    }
    info.random = NextRandom();
    slot = router_.Pick(c->model_slot, info, local_, std::span<const uint16_t>(c->tried, c->tried_count));
    if (slot != routing::kNoBackend) break;
    const auto& me = snap_->models[c->orig_model_slot];
    if (c->fallback_index < me.num_fallbacks && c->fallback_index < shm::kMaxFallbacks) {
      c->model_slot = me.fallbacks[c->fallback_index++];
      c->rewrite = true;  // the fallback model's name goes upstream
      shm::Bump(stats_->models[c->orig_model_slot].fallbacks);
      continue;
    }
    break;
  }
  if (slot == routing::kNoBackend) {
    if (c->last_error_status) {
      return SendError(c, c->last_error_status, c->last_error_msg ? c->last_error_msg : "upstream failed",
                       "upstream_error", nullptr, c->last_error_status == 504 ? "upstream_timeout" : "upstream_error");
    }
    // Every backend is busy (not broken): wait in the admission queue for a free slot.
    if (c->attempts == 0 && admission_ && router_.AllAtCapacity(c->orig_model_slot, local_))
      return Enqueue(c);
    shm::Bump(stats_->models[c->orig_model_slot].rejected);
    return SendError(c, 503, "no eligible backend for this model", "service_unavailable", nullptr,
                     "no_backend");
  }
  if (c->tried_count < 16) c->tried[c->tried_count++] = static_cast<uint16_t>(slot);
  ++c->attempts;
  const shm::BackendEntry& be = snap_->backends[slot];
  c->current_backend = slot;
  ++local_[slot].in_flight;
  ++local_[slot].awaiting;  // until its first byte (upstream.cc) or its release without one
  auto& bs = stats_->backends[slot];
  if (bs.key.load(std::memory_order_relaxed) != be.key) shm::Set(bs.key, be.key);
  shm::Bump(bs.picks);
  shm::Bump(bs.requests);
  shm::Set(bs.in_flight, local_[slot].in_flight);
  c->first_byte_us = 0;
  c->attempt_start_us = NowUs();

  UpstreamConn* u = nullptr;
  auto& pool = idle_[slot];
  while (!pool.empty() && !u) {
    UpstreamConn* cand = pool.back();
    pool.pop_back();
    if (cand->backend_key == be.key) {
      u = cand;
    } else {
      CloseUpstreamFd(cand);
      --live_conns_;
      delete cand;
    }
  }
  if (u) {
    u->reused = true;
  } else {
    u = NewUpstream(slot, be);
    if (!u) return UpstreamFailed(c, ErrorKind::kConnectFailed, "cannot create upstream socket", true);
  }
  u->client = c;
  c->up = u;
  BuildUpstreamRequest(c, u, be);
  llhttp_init(&u->parser, HTTP_RESPONSE, &up_settings_);
  u->parser.data = this;
  u->saw_response_byte = false;
  u->interim = false;
  u->in_field = false;
  c->h->up_head.clear();
  c->h->up_conn_tokens.Clear();
  c->h->up_has_cache_control = false;
  c->h->up_overflow = false;
  c->is_sse = false;
  if (u->connected) {
    SetUpDeadline(c, 2, snap_->limits.first_byte_ms);
    ArmUpSend(u);
    // The response read is queued with the request: no loop turn between them.
    ArmUpRecv(u);
  } else {
    SetUpDeadline(c, 1, snap_->limits.connect_ms);
    io_uring_sqe* s = Sqe();
    io_uring_prep_connect(s, u->fd, reinterpret_cast<sockaddr*>(&u->addr), u->addr_len);
    io_uring_sqe_set_data64(s, Tag(u, kOpUpConnect));
    ++u->pending_ops;
  }
}

LLMGW_PART_INLINE void WorkerImpl::Enqueue(ClientConn* c) {
  uint64_t evicted = 0;
  auto r = admission_->Push(reinterpret_cast<uint64_t>(c), c->priority, &evicted);
  if (r == routing::AdmissionQueue::PushResult::kFull) return RejectOverloaded(c);
  c->queued = true;
  c->model_slot = c->orig_model_slot;
  c->fallback_index = 0;
  c->rewrite = c->alias_rewrite;
  shm::Bump(stats_->admission_queued);
  if (r == routing::AdmissionQueue::PushResult::kQueuedEvicted) {
    ClientConn* e = reinterpret_cast<ClientConn*>(evicted);
    e->queued = false;
    RejectOverloaded(e);
  }
}

LLMGW_PART_INLINE void WorkerImpl::RejectOverloaded(ClientConn* c) {
  shm::Bump(stats_->admission_rejected);
  shm::Bump(stats_->models[c->orig_model_slot].rejected);
  c->retry_after_s = admission_->RetryAfterSeconds();
  SendError(c, 429, "every backend of this model is at capacity; retry later", "rate_limit_error", nullptr,
            "overloaded");
}

// A backend slot freed up: let the best waiter try again (one per freed slot).
LLMGW_PART_INLINE void WorkerImpl::AdmitWaiting() {
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

LLMGW_PART_INLINE void WorkerImpl::SetUpDeadline(ClientConn* c, uint8_t kind, uint32_t ms) {
  c->up_deadline_kind = kind;
  c->up_deadline_ms = ms ? NowMs() + ms : 0;
}

// A pooled connection the server had closed meanwhile: not the backend's fault, so try
// again at once (the next pooled or a new connection), without spending a retry.
LLMGW_PART_INLINE void WorkerImpl::RetryStale(ClientConn* c) {
  --c->attempts;
  if (c->tried_count) --c->tried_count;
  ReleaseUpstream(c, false);
  StartAttempt(c);
}

LLMGW_PART_INLINE void WorkerImpl::UpstreamFailed(ClientConn* c, ErrorKind kind, const char* msg, bool retryable) {
  shm::Bump(stats_->errors_by_kind[static_cast<int>(kind)]);
  if (c->up) ReleaseUpstream(c, false);
  c->up_deadline_ms = 0;
  if (!c->committed) {
    c->last_error_status = kind == ErrorKind::kTimeout ? 504
                           : (kind == ErrorKind::kUpstreamStatus && up_fail_status_ == 429) ? 429
                                                                                              : 502;
    c->last_error_msg = msg;
    if (!c->send_armed) {  // only a 100 Continue can be queued before the commit
      c->h->out.clear();
      c->out_off = 0;
    }
    uint32_t retries_max = snap_->limits.retries_max;
    if (retryable && c->attempts <= retries_max && !draining_) {
      shm::Bump(stats_->retries);
      shm::Bump(stats_->models[c->orig_model_slot].retries);
      uint32_t backoff = snap_->limits.retries_backoff_ms << (c->attempts > 0 ? c->attempts - 1 : 0);
      backoff += static_cast<uint32_t>(NextRandom() % (backoff / 2 + 1));  // jitter
      if (backoff == 0) return StartAttempt(c);
      c->retry_at_ms = NowMs() + backoff;
      return;
    }
    return SendError(c, c->last_error_status, msg, "upstream_error", nullptr,
                     c->last_error_status == 504 ? "upstream_timeout" : "upstream_error");
  }
  EndCommittedWithError(c, msg, "upstream_error", kind == ErrorKind::kTimeout ? "upstream_timeout" : "upstream_error");
}

LLMGW_PART_INLINE void WorkerImpl::EndCommittedWithError(ClientConn* c, const char* msg, const char* type, const char* code) {
  if (c->up) ReleaseUpstream(c, false);
  c->close_after_send = true;
  if (c->is_sse && (c->chunked_out || c->close_delimited)) {
    // The event must start on a line of its own, after a blank line: glued onto an event
    // the upstream left half-written, SSE parsers would never see it.
    const char* sep = c->sse_tail[1] != '\n' ? "\n\n" : c->sse_tail[0] != '\n' ? "\n" : "";
    char ev[320];
    int n = std::snprintf(ev, sizeof(ev),
                          "%sevent: error\ndata: {\"error\":{\"message\":\"%s\",\"type\":\"%s\",\"param\":null,\"code\":\"%s\"}}\n\n",
                          sep, msg, type, code);
    if (c->chunked_out) {
      char hex[20];
      int k = std::snprintf(hex, sizeof(hex), "%x\r\n", n);
      c->h->out.append(hex, static_cast<size_t>(k));
      c->h->out.append(ev, static_cast<size_t>(n));
      c->h->out.append("\r\n0\r\n\r\n");
    } else {
      c->h->out.append(ev, static_cast<size_t>(n));  // close-delimited (HTTP/1.0): the close ends it
    }
    c->response_done = true;
    QueueSend(c);
  } else {
    c->response_done = true;
    c->status = 502;
    if (c->out_off >= c->h->out.size()) CloseClient(c);
    else QueueSend(c);
  }
}

}  // namespace llmgw::dataplane
