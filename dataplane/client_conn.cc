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

LLMGW_PART_INLINE void WorkerImpl::ArmClientRecv(ClientConn* c) {
  if (c->recv_armed || c->closed || c->peer_closed || c->recv_paused) return;
  io_uring_sqe* s = Sqe();
  // Multishot recv with buffer select: one submission delivers every read, each into a
  // buffer of the ring, so idle connections pin no memory.
  io_uring_prep_recv_multishot(s, c->fd, nullptr, 0, 0);
  s->flags |= IOSQE_BUFFER_SELECT;
  s->buf_group = kRecvBufGroup;
  io_uring_sqe_set_data64(s, Tag(c, kOpClientRecv));
  c->recv_armed = true;
  c->recv_starved = false;
  ++c->pending_ops;
}

LLMGW_PART_INLINE void WorkerImpl::PauseClientRecv(ClientConn* c) {
  if (!c->recv_armed || c->recv_paused) return;
  c->recv_paused = true;
  io_uring_sqe* s = Sqe();
  io_uring_prep_cancel64(s, Tag(c, kOpClientRecv), 0);
  io_uring_sqe_set_data64(s, kOpNone);
}

LLMGW_PART_INLINE void WorkerImpl::ReturnRecvBuf(uint32_t bid) {
  io_uring_buf_ring_add(buf_ring_, RecvBuf(bid), kRecvBufSize, static_cast<unsigned short>(bid),
                        io_uring_buf_ring_mask(kRecvBufCount), 0);
  io_uring_buf_ring_advance(buf_ring_, 1);
}

LLMGW_PART_INLINE void WorkerImpl::OnClientRecv(ClientConn* c, int res, uint32_t flags) {
  if (!(flags & IORING_CQE_F_MORE)) c->recv_armed = false;
  bool has_buf = flags & IORING_CQE_F_BUFFER;
  uint32_t bid = flags >> IORING_CQE_BUFFER_SHIFT;
  if (c->closed) {
    if (has_buf) ReturnRecvBuf(bid);
    return;
  }
  if (res == -ENOBUFS) {
    c->recv_starved = true;  // every ring buffer is in use: the tick re-arms
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
    if (c->busy && !c->response_done) shm::Bump(stats_->errors_by_kind[static_cast<int>(ErrorKind::kClientGone)]);
    CloseClient(c);
    return;
  }
  shm::Bump(stats_->bytes_in, static_cast<uint64_t>(res));
  if (has_buf) {
    FeedClient(c, RecvBuf(bid), static_cast<size_t>(res));
    ReturnRecvBuf(bid);
  }
  if (!c->closed && !c->recv_armed) ArmClientRecv(c);
}

// Parses straight from the ring buffer when nothing is pending; keeps the rest.
LLMGW_PART_INLINE void WorkerImpl::FeedClient(ClientConn* c, const char* data, size_t n) {
  if (c->discard_input) return;
  size_t off = 0;
  if (!c->busy && c->pending_off == c->pending.size()) {
    c->pending.clear();
    c->pending_off = 0;
    while (off < n && !c->busy && !c->closed && !c->discard_input) off += ExecuteParser(c, data + off, n - off);
    if (c->closed || c->discard_input) return;
  }
  if (off < n) c->pending.append(data + off, n - off);
  ParseClient(c);
  if (c->busy && c->pending.size() - c->pending_off > kMaxPendingInput) PauseClientRecv(c);
}

LLMGW_PART_INLINE void WorkerImpl::CloseClient(ClientConn* c) {
  if (c->closed) return;
  if (c->up) ReleaseUpstream(c, false);
  if (c->queued) {
    admission_->Remove(reinterpret_cast<uint64_t>(c));
    c->queued = false;
  }
  if (c->busy) EndRequestStats(c, c->response_done ? c->status : 499);
  // A send still in flight reads from the state's buffer: give it back when it completes.
  if (!c->send_armed) ReleaseRequest(c);
  c->closed = true;
  ::shutdown(c->fd, SHUT_RDWR);  // completes our pending recv at once
  ::close(c->fd);
  // Remove from the list by swapping with the last.
  size_t i = c->list_index;
  clients_[i] = clients_.back();
  clients_[i]->list_index = i;
  clients_.pop_back();
  shm::Set(stats_->connections_open, clients_.size());
  MaybeFree(c);
}

LLMGW_PART_INLINE void WorkerImpl::QueueSend(ClientConn* c) {
  if (c->send_armed || c->closed || !c->h || c->out_off >= c->h->out.size()) return;
  io_uring_sqe* s = Sqe();
  io_uring_prep_send(s, c->fd, c->h->out.data() + c->out_off, c->h->out.size() - c->out_off, MSG_NOSIGNAL);
  io_uring_sqe_set_data64(s, Tag(c, kOpClientSend));
  if (!c->send_deadline_ms && cfg_.gateway.timeouts.client_send_ms)
    c->send_deadline_ms = NowMs() + cfg_.gateway.timeouts.client_send_ms;
  c->send_armed = true;
  ++c->pending_ops;
}

LLMGW_PART_INLINE void WorkerImpl::OnClientSend(ClientConn* c, int res) {
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
  shm::Bump(stats_->bytes_out, static_cast<uint64_t>(res));
  if (c->out_off < c->h->out.size()) return QueueSend(c);
  c->h->out.clear();
  c->out_off = 0;
  c->send_deadline_ms = 0;  // all taken
  AfterClientDrained(c);
}

// Everything queued reached the socket: finish the request, or read more upstream.
LLMGW_PART_INLINE void WorkerImpl::AfterClientDrained(ClientConn* c) {
  if (c->busy && c->response_done) {
    FinishRequest(c);
    return;
  }
  if (!c->busy && c->close_after_send) {
    CloseClient(c);
    return;
  }
  if (c->busy && c->up && c->up->connected && !c->up->recv_armed) ArmUpRecv(c->up);
}

LLMGW_PART_INLINE void WorkerImpl::AcquireRequest(ClientConn* c) {
  if (c->h) return;
  if (!free_requests_.empty()) {
    c->h = free_requests_.back();
    free_requests_.pop_back();
  } else {
    c->h = new RequestState();
    // The only allocations of a request state's header buffers: appends check the cap.
    c->h->fwd.reserve(HeaderCap());
    c->h->up_head.reserve(HeaderCap());
  }
  c->h->Reset();
}

LLMGW_PART_INLINE void WorkerImpl::ReleaseRequest(ClientConn* c) {
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

LLMGW_PART_INLINE void WorkerImpl::FinishRequest(ClientConn* c) {
  EndRequestStats(c, c->status);
  ReleaseRequest(c);
  c->busy = false;
  // An answer that said keep-alive keeps the connection even when a drain began while it
  // was sent: the client may already be sending its next request on it, which is then
  // answered with `Connection: close` (or the connection closes idle after the grace).
  if (c->close_after_send) {
    CloseClient(c);
    return;
  }
  c->deadline_ms = NowMs() + cfg_.gateway.timeouts.client_idle_ms;
  c->deadline_status = 0;
  // Answer the next pipelined request, if its bytes are already here.
  ParseClient(c);
  if (!c->closed && !c->busy && c->recv_paused) {
    c->recv_paused = false;  // the cancel's final completion may still be on its way
  }
  if (!c->closed) ArmClientRecv(c);
}

}  // namespace llmgw::dataplane
