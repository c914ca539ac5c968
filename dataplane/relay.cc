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

LLMGW_PART_INLINE void WorkerImpl::OnUpRecv(UpstreamConn* u, int res) {
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
    CountUpErr(u->slot, shm::UpstreamErr::kReset);
    return UpstreamFailed(c, ErrorKind::kConnectionReset, "upstream closed the connection", true);
  }
  u->saw_response_byte = true;
  shm::Bump(stats_->backends[u->slot].bytes_in, static_cast<uint64_t>(res));
  // Before the final head, the first-byte deadline keeps running: an interim 1xx (or a
  // head trickling in) does not make a backend that never answers an idle one.
  if (c->committed) SetUpDeadline(c, 3, snap_->limits.idle_ms);
  current_up_ = u;
  up_fail_ = false;
  llhttp_errno_t e = llhttp_execute(&u->parser, u->in, static_cast<size_t>(res));
  current_up_ = nullptr;
  if (up_fail_) {
    // 5xx / 429 before anything reached the client: try elsewhere.
    return UpstreamFailed(c, ErrorKind::kUpstreamStatus, up_fail_msg_, true);
  }
  if (e != HPE_OK && e != HPE_PAUSED) {
    CountUpErr(u->slot, shm::UpstreamErr::kProtocol);
    return UpstreamFailed(c, ErrorKind::kUpstreamProtocol,
                          c->h->up_overflow ? "upstream response headers too large" : "upstream sent invalid HTTP",
                          false);
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

LLMGW_PART_INLINE int WorkerImpl::OnUpBody(llhttp_t* p, const char* at, size_t n) {
  WorkerImpl* w = self(p);
  ClientConn* c = CurUp(p)->client;
  uint64_t now = NowUs();
  if (c->is_sse && c->last_chunk_us) shm::Observe(w->stats_->inter_token, now - c->last_chunk_us);
  c->last_chunk_us = now;
  if (c->chunked_out) {
    char hex[20];
    size_t k = FormatHex(n, hex);
    hex[k++] = '\r';
    hex[k++] = '\n';
    c->h->out.append(hex, k);
    c->h->out.append(at, n);
    c->h->out.append("\r\n");
  } else {
    c->h->out.append(at, n);
  }
  w->ScanUsage(c, std::string_view(at, n));
  if (c->is_sse) {
    for (size_t i = n > 4 ? n - 4 : 0; i < n; ++i) {
      if (at[i] == '\r') continue;
      c->sse_tail[0] = c->sse_tail[1];
      c->sse_tail[1] = at[i];
    }
  }
  return 0;
}

LLMGW_PART_INLINE int WorkerImpl::OnUpMessageComplete(llhttp_t* p) {
  UpstreamConn* u = CurUp(p);
  if (u->interim) {  // the end of a 1xx: the final answer follows on this connection
    u->interim = false;
    return 0;
  }
  ClientConn* c = u->client;
  if (c->chunked_out) c->h->out.append("0\r\n\r\n");
  c->response_done = true;
  return HPE_PAUSED;
}

// Tokens from `usage` (the whole body, or the final stream chunk). Cheap substring scan.
LLMGW_PART_INLINE void WorkerImpl::ScanUsage(ClientConn* c, std::string_view data) {
  // memchr for the rare 'u' rather than string_view::find, which stops at every '"' of
  // the JSON (the scan was the biggest user-space cost per request).
  const char* usage = nullptr;
  const char* end = data.data() + data.size();
  for (const char* q = data.data(); !usage && q < end;) {
    q = static_cast<const char*>(std::memchr(q, 'u', static_cast<size_t>(end - q)));
    if (!q) break;
    if (q > data.data() && q[-1] == '"' && end - q >= 6 && std::memcmp(q, "usage\"", 6) == 0) usage = q;
    ++q;
  }
  if (!usage) return;
  auto grab = [&](std::string_view key, uint64_t* out) {
    // The keys follow `"usage"` closely: a plain loop beats memmem's set-up here.
    std::string_view rest(usage, static_cast<size_t>(end - usage));
    size_t at = rest.find(key);
    if (at == std::string_view::npos) return;
    size_t pos = static_cast<size_t>(usage - data.data()) + at + key.size();
    while (pos < data.size() && data[pos] == ' ') ++pos;
    uint64_t v = 0;
    bool any = false;
    while (pos < data.size() && data[pos] >= '0' && data[pos] <= '9') {
      v = v * 10 + static_cast<uint64_t>(data[pos++] - '0');
      any = true;
    }
    if (any) *out = v;
  };
  grab("\"prompt_tokens\":", &c->prompt_tokens);
  grab("\"completion_tokens\":", &c->completion_tokens);
}

}  // namespace llmgw::dataplane
