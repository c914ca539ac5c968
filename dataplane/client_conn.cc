// Client connections: multishot recv into provided buffers, sends, close, and the
// per-connection request lifecycle (acquire/release/finish, pipelined requests in order).
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

void WorkerImpl::OnRequest(ClientSession* s) { HandleRequest(static_cast<ClientConn*>(s->owner())); }

void WorkerImpl::OnBadRequest(ClientSession* s, const Error& e) {
  SendFailure(static_cast<ClientConn*>(s->owner()), e, true);
}

void WorkerImpl::CloseClient(ClientConn* c) {
  if (c->closed) return;
  if (c->up) ReleaseUpstream(c, false);
  if (c->queued) {
    admission_->Remove(reinterpret_cast<uint64_t>(c));
    c->queued = false;
  }
  if (c->session.busy()) EndRequestStats(c, c->response_done ? c->status : 499);
  // A send still in flight reads from the state's buffer: give it back when it completes.
  if (!c->send_armed) ReleaseRequest(c);
  c->closed = true;
  c->session.Stop();
  loop_.timers().Cancel(&c->timer);
  ::shutdown(c->fd, SHUT_RDWR);  // completes our pending recv at once
  ::close(c->fd);
  // Remove from the list by swapping with the last.
  size_t i = c->list_index;
  clients_[i] = clients_.back();
  clients_[i]->list_index = i;
  clients_.pop_back();
  stats_.ConnectionClosed(clients_.size());
  MaybeFree(c);
}

void WorkerImpl::QueueSend(ClientConn* c) {
  if (c->send_armed || c->closed || !c->h || c->out_off >= c->h->out.size()) return;
  io_uring_sqe* s = Sqe();
  io_uring_prep_send(s, c->fd, c->h->out.data() + c->out_off, c->h->out.size() - c->out_off, MSG_NOSIGNAL);
  io_uring_sqe_set_data64(s, c->send_done.user_data());
  if (!c->send_deadline_ms && cfg_.gateway.timeouts.client_send_ms) {
    c->send_deadline_ms = NowMs() + cfg_.gateway.timeouts.client_send_ms;
    ScheduleDeadline(c);
  }
  c->send_armed = true;
  ++c->pending_ops;
}

void WorkerImpl::OnClientSend(ClientConn* c, int res) {
  c->send_armed = false;
  if (c->closed) {
    ReleaseRequest(c);
    return;
  }
  if (res <= 0) {
    CloseClient(c);
    return;
  }
  c->out_off += static_cast<size_t>(res);
  c->bytes_out += static_cast<uint64_t>(res);
  stats_.ClientBytesOut(static_cast<uint64_t>(res));
  if (c->out_off < c->h->out.size()) return QueueSend(c);
  c->h->out.clear();
  c->out_off = 0;
  c->send_deadline_ms = 0;  // all taken
  AfterClientDrained(c);
}

// Everything queued reached the socket: finish the request, or read more upstream.
void WorkerImpl::AfterClientDrained(ClientConn* c) {
  if (c->session.busy() && c->response_done) {
    FinishRequest(c);
    return;
  }
  if (!c->session.busy() && c->rw.close_after_send()) {
    CloseClient(c);
    return;
  }
  if (c->session.busy() && c->up && c->up->connected && !c->up->recv_armed) ArmUpRecv(c->up);
}

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

void WorkerImpl::ReleaseRequest(ClientConn* c) {
  RequestState* r = c->h;
  if (!r) return;
  c->h = nullptr;
  // A pooled state keeps its body capacity for the next request, unless it grew huge.
  if (r->body.capacity() > (1u << 20)) std::string().swap(r->body);
  if (r->out.capacity() > (1u << 20)) std::string().swap(r->out);
  if (free_requests_.size() < 256) {
    free_requests_.push_back(r);
  } else {
    delete r;
  }
}

void WorkerImpl::FinishRequest(ClientConn* c) {
  EndRequestStats(c, c->status);
  ReleaseRequest(c);
  c->session.EndAnswer();
  // An answer that said keep-alive keeps the connection even when a drain began while it
  // was sent: the client may already be sending its next request on it, which is then
  // answered with `Connection: close` (or the connection closes idle after the grace).
  if (c->rw.close_after_send()) {
    CloseClient(c);
    return;
  }
  c->deadline_ms = NowMs() + cfg_.gateway.timeouts.client_idle_ms;
  ScheduleDeadline(c);
  c->deadline_status = 0;
  // Answer the next pipelined request, if its bytes are already here.
  c->session.Resume();
  if (!c->closed && !c->session.busy() && c->recv_paused) {
    c->recv_paused = false;  // the cancel's final completion may still be on its way
  }
  if (!c->closed) ArmClientRecv(c);
}

}  // namespace llmgw::dataplane
