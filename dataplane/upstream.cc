// Upstream side: keep-alive pools per backend slot, connect, writing the request, and
// parsing the response head with llhttp.
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

void WorkerImpl::BuildUpstreamRequest(ClientConn* c, UpstreamConn* u, const shm::BackendEntry& be) {
  const auto& me = snap_->models[c->attempt.model()];
  std::string_view new_model = me.name;
  size_t body_len = c->h->body.size();
  if (c->attempt.rewrite()) body_len = c->model_begin + (new_model.size() + 2) + (c->h->body.size() - c->model_end);
  std::string& h = u->head;
  h.clear();
  h.append("POST ");
  h.append(be.base_path);
  h.append(c->api_path);
  h.append(" HTTP/1.1\r\nHost: ");
  h.append(be.host_header);
  h.append("\r\nContent-Length: ");
  AppendUint(&h, body_len);
  h.append("\r\nX-Request-ID: ");
  h.append(c->h->request_id.View());
  if (!c->h->has_content_type) h.append("\r\nContent-Type: application/json");
  h.append("\r\nConnection: keep-alive\r\n");
  // The client's own end-to-end headers follow from the request state, uncopied.
  size_t head_len = h.size();
  u->iov_cnt = 0;
  u->iov[u->iov_cnt++] = {h.data(), head_len};
  std::string_view fwd = c->h->req_headers.lines();
  if (!fwd.empty()) u->iov[u->iov_cnt++] = {const_cast<char*>(fwd.data()), fwd.size()};
  static const char kEndOfHead[] = "\r\n";
  u->iov[u->iov_cnt++] = {const_cast<char*>(kEndOfHead), 2};
  if (c->attempt.rewrite()) {
    // Scatter-gather: the prompt is sent from the client buffer, only the model changes.
    // The quoted new name lives in the head buffer's tail, after the head proper.
    h.push_back('"');
    h.append(new_model);
    h.push_back('"');
    u->iov[0] = {h.data(), head_len};
    u->iov[u->iov_cnt++] = {c->h->body.data(), c->model_begin};
    u->iov[u->iov_cnt++] = {h.data() + head_len, h.size() - head_len};
    u->iov[u->iov_cnt++] = {c->h->body.data() + c->model_end, c->h->body.size() - c->model_end};
  } else if (!c->h->body.empty()) {
    u->iov[u->iov_cnt++] = {c->h->body.data(), c->h->body.size()};
  }
}

void WorkerImpl::ArmUpSend(UpstreamConn* u) {
  u->msg = msghdr{};
  u->msg.msg_iov = u->iov;
  u->msg.msg_iovlen = static_cast<size_t>(u->iov_cnt);
  io_uring_sqe* s = Sqe();
  io_uring_prep_sendmsg(s, u->fd, &u->msg, MSG_NOSIGNAL);
  io_uring_sqe_set_data64(s, Tag(u, kOpUpSend));
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
  int i = 0;
  while (i < u->iov_cnt && n >= u->iov[i].iov_len) n -= u->iov[i++].iov_len;
  if (i < u->iov_cnt) {
    u->iov[i].iov_base = static_cast<char*>(u->iov[i].iov_base) + n;
    u->iov[i].iov_len -= n;
    std::memmove(u->iov, u->iov + i, sizeof(iovec) * static_cast<size_t>(u->iov_cnt - i));
    u->iov_cnt -= i;
    return ArmUpSend(u);
  }
  u->iov_cnt = 0;
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
  io_uring_sqe_set_data64(s, Tag(u, kOpUpRecv));
  u->recv_armed = true;
  ++u->pending_ops;
}

// The upstream's end-to-end headers are collected as lines for the client; framing
// (Content-Length / Transfer-Encoding) is redone by llmgw, hop-by-hop headers stay here.
// An overflow fails the attempt (upstream protocol error).
int WorkerImpl::OnUpHeaderField(llhttp_t* p, const char* at, size_t n) {
  return CurUp(p)->client->h->resp_headers.OnField(at, n) ? 0 : -1;
}

int WorkerImpl::OnUpHeaderValue(llhttp_t* p, const char* at, size_t n) {
  return CurUp(p)->client->h->resp_headers.OnValue(at, n) ? 0 : -1;
}

int WorkerImpl::OnUpHeaderValueComplete(llhttp_t* p) {
  ClientConn* c = CurUp(p)->client;
  HeaderCollector& hc = c->h->resp_headers;
  std::string_view name, value;
  if (!hc.OnValueComplete(&name, &value)) return -1;
  if (hc.DropIfHopByHop(name, value)) return 0;
  if (EqualsNoCase(name, "content-length") || EqualsNoCase(name, "x-request-id")) {
    hc.Drop();  // framing is redone for the client; the request id is llmgw's (sent upstream too)
    return 0;
  }
  if (EqualsNoCase(name, "content-type")) c->relay.SetContentType(value);
  else if (EqualsNoCase(name, "cache-control")) c->relay.SawCacheControl();
  return hc.Keep(value) ? 0 : -1;
}

int WorkerImpl::OnUpHeadersComplete(llhttp_t* p) {
  WorkerImpl* w = self(p);
  UpstreamConn* u = CurUp(p);
  ClientConn* c = u->client;
  int status = p->status_code;
  if (status < 200) {
    // An interim answer (100 Continue, 102, 103 Early Hints) is not the answer: relaying it
    // as final would leave the real one pending on a pooled connection, for the next
    // client to receive. Forget its headers and parse on; 1xx never has a body. llmgw
    // never asks to switch protocols, so a 101 is a protocol error.
    if (status == 101) return -1;
    u->interim = true;
    c->h->resp_headers.Clear();
    c->relay.NewHead();
    return 1;  // llhttp: no body
  }
  if ((status >= 500 || status == 429) && !c->rw.committed()) {
    w->stats_.UpstreamError(u->slot, status == 429 ? shm::UpstreamErr::kStatus429 : shm::UpstreamErr::kStatus5xx);
    u->error = Error(ErrorKind::kUpstreamStatus, ErrorSide::kUpstream, true, "upstream answered %d", status);
    u->error.set_upstream_status(static_cast<uint16_t>(status));
    return -1;
  }
  bool chunked = p->flags & F_CHUNKED;
  bool has_len = (p->flags & F_CONTENT_LENGTH) && !chunked;
  c->h->resp_headers.Finish();
  c->first_byte_us = NowUs();
  if (w->local_[u->slot].awaiting) --w->local_[u->slot].awaiting;
  w->WriteHead(c, status, {}, has_len ? static_cast<int64_t>(p->content_length) : -1,
               c->h->resp_headers.lines());
  c->status = status;
  return 0;
}

// Detaches the client's upstream: back to the pool when reusable, else closed.
void WorkerImpl::ReleaseUpstream(ClientConn* c, bool keep) {
  UpstreamConn* u = c->up;
  if (!u) return;
  c->up = nullptr;
  c->up_deadline_ms = 0;
  int slot = u->slot;
  if (local_[slot].in_flight) --local_[slot].in_flight;
  if (c->first_byte_us == 0 && local_[slot].awaiting) --local_[slot].awaiting;  // never answered
  ++admit_credits_;
  stats_.BackendInFlight(slot, local_[slot].in_flight);
  if (!pool_.Give(u, keep && !draining_)) MaybeFree(u);
}

}  // namespace llmgw::dataplane
