// Upstream side of an attempt: the request handed to the connection's codec, connect,
// send, and the response read armed (relay.cc takes the response from there).
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

// The request's bytes come from the codec (upstream_codec.h); this names the pieces.
void WorkerImpl::BuildUpstreamRequest(ClientConn* c, UpstreamConn* u, const shm::BackendEntry& be) {
  UpstreamCodec::Request r;
  r.base_path = be.base_path;
  r.api_path = c->api_path;
  r.host_header = be.host_header;
  r.request_id = c->h->request_id.View();
  if (c->trace_begun) {  // tracing: this attempt's span is the upstream's parent
    c->trace.UpstreamTraceparent(c->traceparent_out);
    r.traceparent = std::string_view(c->traceparent_out, kTraceparentLen);
  } else {
    r.traceparent = c->h->traceparent.View();  // tracing off: the client's, unchanged
  }
  r.has_content_type = c->h->has_content_type;
  r.header_lines = c->h->req_headers.lines();
  r.body = c->h->body;
  std::string_view new_model = c->attempt.rewrite() ? std::string_view(snap_->models[c->attempt.model()].name)
                                                    : std::string_view();
  if (c->continuing || c->add_usage) {
    // A body of llmgw's making (a pooled buffer, kept until the request ends): a stream's
    // continuation (stream_resume.h), or a stream asking for usage the client did not.
    if (!c->up_body) c->up_body = stream_pool_.Take();
    bool built = c->continuing
                     ? BuildContinuation(c->h->body, c->chat, new_model, c->filter->state(), c->up_body) ==
                           ResumeOutcome::kOk
                     : EnsureIncludeUsage(c->h->body, new_model, c->up_body);
    if (built) {
      r.body = *c->up_body;
      new_model = {};  // already in the built body
    }
  }
  if (!new_model.empty()) {
    r.rewrite_model = true;
    r.new_model = new_model;
    r.model_begin = c->model_begin;
    r.model_end = c->model_end;
  }
  u->codec.WriteRequest(r);
}

void WorkerImpl::ArmUpSend(UpstreamConn* u) {
  u->msg = msghdr{};
  u->msg.msg_iov = u->codec.iov();
  u->msg.msg_iovlen = static_cast<size_t>(u->codec.iov_count());
  io_uring_sqe* s = Sqe();
  io_uring_prep_sendmsg(s, u->fd, &u->msg, MSG_NOSIGNAL);
  io_uring_sqe_set_data64(s, u->send_done.user_data());
  u->send_armed = true;
  ++u->pending_ops;
}

void WorkerImpl::OnUpConnect(UpstreamConn* u, int res) {
  if (u->closed || !u->client) return;
  ClientConn* c = u->client;
  if (res < 0) {
    LOG_DEBUG("upstream connect failed", {{"backend", std::string_view(snap_->backends[u->slot].id)},
                                          {"error", strerror(-res)}});
    stats_.UpstreamError(u->slot, shm::UpstreamErr::kConnect);
    return UpstreamFailed(c, Error(ErrorKind::kConnectFailed, ErrorSide::kUpstream, true, "upstream connect failed"));
  }
  u->connected = true;
  SetUpDeadline(c, 2, snap_->limits.first_byte_ms);
  ArmUpSend(u);
  ArmUpRecv(u);
}

void WorkerImpl::OnUpSend(UpstreamConn* u, int res) {
  u->send_armed = false;
  if (u->closed || !u->client) return;
  ClientConn* c = u->client;
  if (res < 0) {
    if (u->reused) return RetryStale(c);
    stats_.UpstreamError(u->slot, shm::UpstreamErr::kReset);
    return UpstreamFailed(c, Error(ErrorKind::kConnectionReset, ErrorSide::kUpstream, true,
                                   "upstream reset while sending"));
  }
  size_t n = static_cast<size_t>(res);
  stats_.UpstreamBytesOut(u->slot, n);
  // Advance over what was sent; resubmit the rest.
  if (u->codec.Advance(n)) return ArmUpSend(u);
  if (!u->recv_armed) ArmUpRecv(u);
}

void WorkerImpl::ArmUpRecv(UpstreamConn* u) {
  if (u->recv_armed || u->closed) return;
  // The idle clock runs only while we wait for the upstream, not while a slow client
  // is still taking the previous read (backpressure is not an upstream failure).
  if (u->client && u->client->rw.committed()) SetUpDeadline(u->client, 3, snap_->limits.idle_ms);
  io_uring_sqe* s = Sqe();
  io_uring_prep_recv(s, u->fd, u->in, kUpstreamInCap, 0);
  // The answer is not there yet when the read is queued with the request: wait for
  // readiness first instead of trying a read that fails with EAGAIN.
  s->ioprio |= IORING_RECVSEND_POLL_FIRST;
  io_uring_sqe_set_data64(s, u->recv_done.user_data());
  u->recv_armed = true;
  ++u->pending_ops;
}

// Detaches the client's upstream: back to the pool when reusable, else closed.

}  // namespace llmgw::dataplane
