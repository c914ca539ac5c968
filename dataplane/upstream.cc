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

LLMGW_PART_INLINE UpstreamConn* WorkerImpl::NewUpstream(int slot, const shm::BackendEntry& be) {
  int fam = be.family == AF_INET6 ? AF_INET6 : AF_INET;
  int fd = ::socket(fam, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return nullptr;
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  auto* u = new UpstreamConn();
  u->head.reserve(1024);  // request line and llmgw's own headers; kept while pooled
  ++live_conns_;
  u->fd = fd;
  u->slot = static_cast<uint16_t>(slot);
  u->backend_key = be.key;
  if (fam == AF_INET) {
    auto* a = reinterpret_cast<sockaddr_in*>(&u->addr);
    a->sin_family = AF_INET;
    a->sin_port = htons(be.port);
    std::memcpy(&a->sin_addr, be.addr, 4);
    u->addr_len = sizeof(sockaddr_in);
  } else {
    auto* a = reinterpret_cast<sockaddr_in6*>(&u->addr);
    a->sin6_family = AF_INET6;
    a->sin6_port = htons(be.port);
    std::memcpy(&a->sin6_addr, be.addr, 16);
    u->addr_len = sizeof(sockaddr_in6);
  }
  shm::Bump(stats_->backends[slot].upstream_connects);
  return u;
}

LLMGW_PART_INLINE void WorkerImpl::BuildUpstreamRequest(ClientConn* c, UpstreamConn* u, const shm::BackendEntry& be) {
  const auto& me = snap_->models[c->model_slot];
  std::string_view new_model = me.name;
  size_t body_len = c->h->body.size();
  if (c->rewrite) body_len = c->model_begin + (new_model.size() + 2) + (c->h->body.size() - c->model_end);
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
  if (!c->h->fwd.empty()) u->iov[u->iov_cnt++] = {c->h->fwd.data(), c->h->fwd.size()};
  static const char kEndOfHead[] = "\r\n";
  u->iov[u->iov_cnt++] = {const_cast<char*>(kEndOfHead), 2};
  if (c->rewrite) {
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

LLMGW_PART_INLINE void WorkerImpl::ArmUpSend(UpstreamConn* u) {
  u->msg = msghdr{};
  u->msg.msg_iov = u->iov;
  u->msg.msg_iovlen = static_cast<size_t>(u->iov_cnt);
  io_uring_sqe* s = Sqe();
  io_uring_prep_sendmsg(s, u->fd, &u->msg, MSG_NOSIGNAL);
  io_uring_sqe_set_data64(s, Tag(u, kOpUpSend));
  u->send_armed = true;
  ++u->pending_ops;
}

LLMGW_PART_INLINE void WorkerImpl::OnUpConnect(UpstreamConn* u, int res) {
  if (u->closed || !u->client) return;
  ClientConn* c = u->client;
  if (res < 0) {
    LOG_DEBUG("upstream connect failed", {{"backend", std::string_view(snap_->backends[u->slot].id)},
                                          {"error", strerror(-res)}});
    CountUpErr(u->slot, shm::UpstreamErr::kConnect);
    return UpstreamFailed(c, ErrorKind::kConnectFailed, "upstream connect failed", true);
  }
  u->connected = true;
  SetUpDeadline(c, 2, snap_->limits.first_byte_ms);
  ArmUpSend(u);
  ArmUpRecv(u);
}

LLMGW_PART_INLINE void WorkerImpl::OnUpSend(UpstreamConn* u, int res) {
  u->send_armed = false;
  if (u->closed || !u->client) return;
  ClientConn* c = u->client;
  if (res < 0) {
    if (u->reused) return RetryStale(c);
    CountUpErr(u->slot, shm::UpstreamErr::kReset);
    return UpstreamFailed(c, ErrorKind::kConnectionReset, "upstream reset while sending", true);
  }
  size_t n = static_cast<size_t>(res);
  shm::Bump(stats_->backends[u->slot].bytes_out, n);
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

LLMGW_PART_INLINE void WorkerImpl::ArmUpRecv(UpstreamConn* u) {
  if (u->recv_armed || u->closed) return;
  // The idle clock runs only while we wait for the upstream, not while a slow client
  // is still taking the previous read (backpressure is not an upstream failure).
  if (u->client && u->client->committed) SetUpDeadline(u->client, 3, snap_->limits.idle_ms);
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
LLMGW_PART_INLINE int WorkerImpl::UpHeadTooLarge(UpstreamConn* u) {
  u->client->h->up_overflow = true;
  return -1;
}

LLMGW_PART_INLINE int WorkerImpl::OnUpHeaderField(llhttp_t* p, const char* at, size_t n) {
  UpstreamConn* u = CurUp(p);
  RequestState* h = u->client->h;
  if (!u->in_field) {
    u->in_field = true;
    h->up_field_start = h->up_head.size();
  }
  if (!AppendCapped(&h->up_head, at, n)) return UpHeadTooLarge(u);
  return 0;
}

LLMGW_PART_INLINE int WorkerImpl::BeginUpValue(UpstreamConn* u) {
  if (!u->in_field) return 0;
  u->in_field = false;
  RequestState* h = u->client->h;
  if (!AppendCapped(&h->up_head, ": ", 2)) return UpHeadTooLarge(u);
  h->up_value_start = h->up_head.size();
  return 0;
}

LLMGW_PART_INLINE int WorkerImpl::OnUpHeaderValue(llhttp_t* p, const char* at, size_t n) {
  UpstreamConn* u = CurUp(p);
  if (BeginUpValue(u) != 0) return -1;
  if (!AppendCapped(&u->client->h->up_head, at, n)) return UpHeadTooLarge(u);
  return 0;
}

LLMGW_PART_INLINE int WorkerImpl::OnUpHeaderValueComplete(llhttp_t* p) {
  UpstreamConn* u = CurUp(p);
  ClientConn* c = u->client;
  RequestState* h = c->h;
  if (BeginUpValue(u) != 0) return -1;
  std::string_view all(h->up_head);
  std::string_view name = all.substr(h->up_field_start, h->up_value_start - 2 - h->up_field_start);
  std::string_view value = all.substr(h->up_value_start);
  while (!value.empty() && (value.back() == ' ' || value.back() == '\t')) value.remove_suffix(1);
  bool forward = false;
  if (EqualsNoCase(name, "connection")) {
    if (h->up_conn_tokens.len) h->up_conn_tokens.Append(",", 1);
    h->up_conn_tokens.Append(value.data(), value.size());
  } else if (IsHopByHop(name) || EqualsNoCase(name, "content-length") || EqualsNoCase(name, "x-request-id")) {
    // Framing is redone for the client; the request id is llmgw's (sent upstream too).
  } else {
    forward = true;
    if (EqualsNoCase(name, "content-type")) c->is_sse = StartsWithNoCase(value, "text/event-stream");
    else if (EqualsNoCase(name, "cache-control")) h->up_has_cache_control = true;
  }
  if (forward) {
    h->up_head.resize(h->up_value_start + value.size());
    if (!AppendCapped(&h->up_head, "\r\n", 2)) return UpHeadTooLarge(u);
  } else {
    h->up_head.resize(h->up_field_start);
  }
  return 0;
}

LLMGW_PART_INLINE int WorkerImpl::OnUpHeadersComplete(llhttp_t* p) {
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
    c->h->up_head.clear();
    c->h->up_conn_tokens.Clear();
    c->h->up_has_cache_control = false;
    c->is_sse = false;
    return 1;  // llhttp: no body
  }
  if ((status >= 500 || status == 429) && !c->committed) {
    w->CountUpErr(u->slot, status == 429 ? shm::UpstreamErr::kStatus429 : shm::UpstreamErr::kStatus5xx);
    std::snprintf(w->up_fail_msg_, sizeof(w->up_fail_msg_), "upstream answered %d", status);
    w->up_fail_status_ = status;
    w->up_fail_ = true;
    return -1;
  }
  bool chunked = p->flags & F_CHUNKED;
  bool has_len = (p->flags & F_CONTENT_LENGTH) && !chunked;
  if (c->h->up_conn_tokens.len) RemoveConnectionNamed(&c->h->up_head, c->h->up_conn_tokens.View());
  c->chunked_out = !has_len && !c->http10;  // HTTP/1.0: close-delimited, see WriteHead
  c->first_byte_us = NowUs();
  if (w->local_[u->slot].awaiting) --w->local_[u->slot].awaiting;
  w->ObserveTtftOnce(c);
  w->WriteHead(c, status, {}, has_len ? static_cast<int64_t>(p->content_length) : -1, c->h->up_head);
  c->status = status;
  return 0;
}

LLMGW_PART_INLINE void WorkerImpl::CloseUpstreamFd(UpstreamConn* u) {
  if (u->closed) return;
  u->closed = true;
  // shutdown first: a pending io_uring recv holds a file reference, so close() alone
  // would not end the TCP connection (and the model server would keep generating).
  ::shutdown(u->fd, SHUT_RDWR);
  if (u->pending_ops) {
    io_uring_sqe* s = Sqe();
    io_uring_prep_cancel_fd(s, u->fd, IORING_ASYNC_CANCEL_ALL);
    io_uring_sqe_set_data64(s, kOpNone);
    io_uring_submit(&ring_);
  }
  ::close(u->fd);
}

// Detaches the client's upstream: back to the pool when reusable, else closed.
LLMGW_PART_INLINE void WorkerImpl::ReleaseUpstream(ClientConn* c, bool keep) {
  UpstreamConn* u = c->up;
  if (!u) return;
  c->up = nullptr;
  c->up_deadline_ms = 0;
  u->client = nullptr;
  int slot = u->slot;
  if (local_[slot].in_flight) --local_[slot].in_flight;
  if (c->first_byte_us == 0 && local_[slot].awaiting) --local_[slot].awaiting;  // never answered
  ++admit_credits_;
  shm::Set(stats_->backends[slot].in_flight, local_[slot].in_flight);
  if (keep && !u->recv_armed && !u->send_armed && !draining_ && idle_[slot].size() < kMaxIdlePerBackend) {
    u->reused = false;
    idle_[slot].push_back(u);
    return;
  }
  CloseUpstreamFd(u);
  MaybeFree(u);
}

}  // namespace llmgw::dataplane
