// Relay: upstream reads relayed to the client as they arrive (SSE, chunked or
// Content-Length), with backpressure, and usage scanning in the final chunk.
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

void WorkerImpl::OnUpRecv(UpstreamConn* u, int res) {
  u->recv_armed = false;
  if (u->closed || !u->client) return;
  ClientConn* c = u->client;
  if (res <= 0) {
    current_up_ = u;
    // llhttp_finish runs on_message_complete for a body delimited by the close; that
    // callback pauses, so HPE_PAUSED is success here too.
    llhttp_errno_t fin = res == 0 && u->saw_response_byte ? llhttp_finish(&u->parser) : HPE_INVALID_EOF_STATE;
    bool finished = (fin == HPE_OK || fin == HPE_PAUSED) && c->response_done;
    current_up_ = nullptr;
    if (finished) {
      // Body delimited by the upstream closing: complete.
      u->reused = false;
      ReleaseUpstream(c, false);
      // Nothing may be left to send (a close-delimited answer to an HTTP/1.0 client has
      // no terminating chunk): then the request is finished here.
      if (c->out_off < c->h->out.size()) QueueSend(c);
      else AfterClientDrained(c);
      return;
    }
    if (u->reused && !u->saw_response_byte) return RetryStale(c);
    stats_.UpstreamError(u->slot, shm::UpstreamErr::kReset);
    return UpstreamFailed(c, Error(ErrorKind::kConnectionReset, ErrorSide::kUpstream, true,
                                   "upstream closed the connection"));
  }
  u->saw_response_byte = true;
  stats_.UpstreamBytesIn(u->slot, static_cast<uint64_t>(res));
  // Before the final head, the first-byte deadline keeps running: an interim 1xx (or a
  // head trickling in) does not make a backend that never answers an idle one.
  if (c->rw.committed()) SetUpDeadline(c, 3, snap_->limits.idle_ms);
  current_up_ = u;
  llhttp_errno_t e = llhttp_execute(&u->parser, u->in, static_cast<size_t>(res));
  current_up_ = nullptr;
  // 5xx / 429 before anything reached the client: the callback made the error.
  if (u->error.kind() != ErrorKind::kNone) return UpstreamFailed(c, u->error);
  if (e != HPE_OK && e != HPE_PAUSED) {
    stats_.UpstreamError(u->slot, shm::UpstreamErr::kProtocol);
    return UpstreamFailed(c, Error(ErrorKind::kUpstreamProtocol, ErrorSide::kUpstream, false, "%s",
                                   c->h->resp_headers.overflow() ? "upstream response headers too large"
                                                     : "upstream sent invalid HTTP"));
  }
  if (c->response_done) {
    bool keep = llhttp_should_keep_alive(&u->parser);
    ReleaseUpstream(c, keep);
  }
  if (c->out_off < c->h->out.size()) {
    c->up_deadline_ms = 0;  // now waiting on the client, see ArmUpRecv
    QueueSend(c);  // next upstream read waits until this is on the wire: backpressure
  } else if (!c->response_done) {
    ArmUpRecv(u);
  } else {
    AfterClientDrained(c);
  }
}

int WorkerImpl::OnUpBody(llhttp_t* p, const char* at, size_t n) {
  WorkerImpl* w = self(p);
  ClientConn* c = CurUp(p)->client;
  uint64_t gap, now = NowUs();
  int model = c->has_model ? c->attempt.orig_model() : -1;
  if (c->relay.OnPiece(std::string_view(at, n), now, &gap)) w->stats_.InterToken(model, c->attempt.backend(), gap);
  if (c->relay.is_sse() && !c->first_token_us) {  // TTFT: streams only, first event
    c->first_token_us = now;
    w->stats_.FirstToken(model, c->attempt.backend(), now - c->start_us);
  }
  c->rw.AppendBody(&c->h->out, at, n);
  return 0;
}

int WorkerImpl::OnUpMessageComplete(llhttp_t* p) {
  UpstreamConn* u = CurUp(p);
  if (u->interim) {  // the end of a 1xx: the final answer follows on this connection
    u->interim = false;
    return 0;
  }
  ClientConn* c = u->client;
  c->rw.EndBody(&c->h->out);
  c->response_done = true;
  return HPE_PAUSED;
}

}  // namespace llmgw::dataplane
