// Client connections, the way out: the answer's bytes sent (one send in flight, the
// client_send_ms deadline), the request finished when they are all out (stats, the state
// back to the pool, the next pipelined request parsed), and the connection's close.
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
  // A send prepared in this batch but not yet submitted names the socket by its number;
  // issued after the close, it would find whatever the number means then — a connection
  // accepted meanwhile takes the lowest free number — and write this client's answer to
  // another client. Submitting first binds it to this socket (as UpstreamPool does).
  if (c->pending_ops) loop_.Submit();
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

void WorkerImpl::ReleaseRequest(ClientConn* c) {
  ReleaseStreamBuffers(c);
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
