// Client connections, the way in: multishot recv into provided buffers, the bytes fed to
// the connection's ClientSession, and the worker's side of ClientSession::Handler (the
// request state, header/body deadlines, a broken request answered). A parsed request goes
// on in endpoints.cc; the answer's way out is client_send.cc.
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

void WorkerImpl::ArmClientRecv(ClientConn* c) {
  if (c->recv_armed || c->closed || c->peer_closed || c->recv_paused) return;
  io_uring_sqe* s = Sqe();
  // Multishot recv with buffer select: one submission delivers every read, each into a
  // buffer of the ring, so idle connections pin no memory.
  io_uring_prep_recv_multishot(s, c->fd, nullptr, 0, 0);
  s->flags |= IOSQE_BUFFER_SELECT;
  s->buf_group = loop_.recv_buf_group();
  io_uring_sqe_set_data64(s, c->recv_done.user_data());
  c->recv_armed = true;
  c->recv_starved = false;
  ++c->pending_ops;
}

void WorkerImpl::PauseClientRecv(ClientConn* c) {
  if (!c->recv_armed || c->recv_paused) return;
  c->recv_paused = true;
  io_uring_sqe* s = Sqe();
  io_uring_prep_cancel64(s, c->recv_done.user_data(), 0);
  io_uring_sqe_set_data64(s, kNoCompletion);
}

void WorkerImpl::OnClientRecv(ClientConn* c, int res, uint32_t flags) {
  if (!(flags & IORING_CQE_F_MORE)) c->recv_armed = false;
  bool has_buf = flags & IORING_CQE_F_BUFFER;
  uint32_t bid = flags >> IORING_CQE_BUFFER_SHIFT;
  if (c->closed) {
    if (has_buf) ReturnRecvBuf(bid);
    return;
  }
  if (res == -ENOBUFS) {
    c->recv_starved = true;  // every ring buffer is in use: the timer re-arms
    ScheduleDeadline(c);
    ++recv_no_buffers_;
    return;
  }
  if (res == -ECANCELED) {  // paused on purpose; resumed already if the answer went out
    if (!c->recv_armed && !c->recv_paused) ArmClientRecv(c);
    return;
  }
  if (res <= 0) {
    if (has_buf) ReturnRecvBuf(bid);
    // The client left (or reset). Whatever we do for it stops now, upstream included.
    c->peer_closed = true;
    if (c->session.busy() && !c->response_done) stats_.CountError(ErrorKind::kClientGone);
    CloseClient(c);
    return;
  }
  stats_.ClientBytesIn(static_cast<uint64_t>(res));
  if (has_buf) {
    FeedClient(c, RecvBuf(bid), static_cast<size_t>(res));
    ReturnRecvBuf(bid);
  }
  if (!c->closed && !c->recv_armed) ArmClientRecv(c);
}

// The session parses straight from the ring buffer when it holds nothing; keeps the rest.
void WorkerImpl::FeedClient(ClientConn* c, const char* data, size_t n) {
  if (c->session.Feed(data, n) && !c->closed) PauseClientRecv(c);
}

// ------------------------------------------------------------------ ClientSession::Handler

RequestState* WorkerImpl::AcquireRequest(ClientSession* s) {
  ClientConn* c = static_cast<ClientConn*>(s->owner());
  AcquireRequest(c);
  return c->h;
}

void WorkerImpl::OnRequestStarted(ClientSession* s) {
  ClientConn* c = static_cast<ClientConn*>(s->owner());
  if (c->deadline_status != 0) return;  // the header deadline runs already
  // A request has started arriving: it must complete within the client timeouts.
  c->deadline_ms = NowMs() + cfg_.gateway.timeouts.client_header_ms;
  c->deadline_status = 408;
  ScheduleDeadline(c);
}

void WorkerImpl::OnHeadComplete(ClientSession* s, bool sent_continue) {
  ClientConn* c = static_cast<ClientConn*>(s->owner());
  c->deadline_ms = NowMs() + cfg_.gateway.timeouts.client_body_ms;
  c->deadline_status = 408;
  ScheduleDeadline(c);
  if (sent_continue) QueueSend(c);
}

void WorkerImpl::OnBadRequest(ClientSession* s, const Error& e) {
  SendFailure(static_cast<ClientConn*>(s->owner()), e, true);
}

// Everything queued reached the socket: finish the request, or read more upstream.
void WorkerImpl::AcquireRequest(ClientConn* c) {
  if (c->h) return;
  if (!free_requests_.empty()) {
    c->h = free_requests_.back();
    free_requests_.pop_back();
  } else {
    c->h = new RequestState();
    // The only allocations of a request state's header buffers: appends check the cap.
    c->h->req_headers.Reserve(HeaderCap());
    c->h->resp_headers.Reserve(HeaderCap());
  }
  c->h->Reset();
}

}  // namespace llmgw::dataplane
