// Client-side HTTP parsing: llhttp callbacks, header/body limits (431/413), smuggling
// defences, Expect: 100-continue, and how a broken request is answered.
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

// Runs llhttp over [p, p+n); returns how many bytes it consumed. A complete request
// pauses the parser and is dispatched at once; a broken one is answered and the rest of
// the connection's input is discarded (the stream cannot be resynchronised).
size_t WorkerImpl::ExecuteParser(ClientConn* c, const char* p, size_t n) {
  current_ = c;
  llhttp_errno_t e = llhttp_execute(&c->parser, p, n);
  current_ = nullptr;
  if (e == HPE_OK) return n;
  if (e == HPE_PAUSED) {
    size_t used = static_cast<size_t>(llhttp_get_error_pos(&c->parser) - p);
    llhttp_resume(&c->parser);
    HandleRequest(c);
    return used;
  }
  c->discard_input = true;
  c->pending.clear();
  c->pending_off = 0;
  if (c->parse_error.kind() == ErrorKind::kNone) {
    c->parse_error = Error(ErrorKind::kBadRequest, ErrorSide::kDownstream, false, "malformed HTTP request: %s",
                           llhttp_get_error_reason(&c->parser));
  }
  SendFailure(c, c->parse_error, true);
  return n;
}

void WorkerImpl::ParseClient(ClientConn* c) {
  while (!c->busy && !c->closed && !c->discard_input && c->pending_off < c->pending.size()) {
    c->pending_off += ExecuteParser(c, c->pending.data() + c->pending_off, c->pending.size() - c->pending_off);
  }
  if (c->pending_off >= c->pending.size() && !c->pending.empty()) {
    c->pending.clear();
    c->pending_off = 0;
  }
  if (!c->busy && !c->closed && c->in_message && c->deadline_status == 0) {
    // A request has started arriving: it must complete within the client timeouts.
    c->deadline_ms = NowMs() + cfg_.gateway.timeouts.client_header_ms;
    c->deadline_status = 408;
    ScheduleDeadline(c);
  }
}

int WorkerImpl::OnMessageBegin(llhttp_t* p) {
  ClientConn* c = Cur(p);
  self(p)->AcquireRequest(c);
  c->in_message = true;
  c->h->url.Clear();
  c->head_bytes = 0;
  c->has_cl = c->has_te = c->expect_continue = false;
  c->h->request_id.Clear();
  c->h->hash_value.Clear();
  c->h->req_headers.Clear();
  c->h->has_content_type = false;
  c->h->body.clear();
  return 0;
}

int WorkerImpl::HeadLimit(llhttp_t* p, size_t n) {
  ClientConn* c = Cur(p);
  c->head_bytes += n;
  if (c->head_bytes > self(p)->cfg_.gateway.max_header_bytes) {
    c->parse_error = Error(ErrorKind::kHeaderTooLarge, ErrorSide::kDownstream, false, "request headers too large");
    return -1;
  }
  return 0;
}

int WorkerImpl::OnUrl(llhttp_t* p, const char* at, size_t n) {
  Cur(p)->h->url.Append(at, n);
  return HeadLimit(p, n);
}

// Header names and values are appended straight to the forwarded lines; a header that
// must not go upstream is cut off again when its value is complete.
int WorkerImpl::HeaderTooLarge(ClientConn* c) {
  c->parse_error = Error(ErrorKind::kHeaderTooLarge, ErrorSide::kDownstream, false, "request headers too large");
  return -1;
}

int WorkerImpl::OnHeaderField(llhttp_t* p, const char* at, size_t n) {
  ClientConn* c = Cur(p);
  if (!c->h->req_headers.OnField(at, n)) return HeaderTooLarge(c);
  return HeadLimit(p, n);
}

int WorkerImpl::OnHeaderValue(llhttp_t* p, const char* at, size_t n) {
  ClientConn* c = Cur(p);
  if (!c->h->req_headers.OnValue(at, n)) return HeaderTooLarge(c);
  return HeadLimit(p, n);
}

int WorkerImpl::OnHeaderValueComplete(llhttp_t* p) {
  ClientConn* c = Cur(p);
  RequestState* h = c->h;
  HeaderCollector& hc = h->req_headers;
  std::string_view name, value;
  if (!hc.OnValueComplete(&name, &value)) return HeaderTooLarge(c);
  if (EqualsNoCase(name, "x-request-id")) {
    h->request_id.Clear();
    // Only a sane id is kept; anything else is replaced by a generated one.
    bool ok = !value.empty() && value.size() <= 128;
    for (char ch : value) ok = ok && ch > 32 && ch < 127 && ch != '"' && ch != '\\';
    if (ok) h->request_id.Append(value.data(), value.size());
  } else if (EqualsNoCase(name, "expect")) {
    c->expect_continue = EqualsNoCase(value, "100-continue");
  } else if (EqualsNoCase(name, "content-length")) {
    c->has_cl = true;
  } else if (EqualsNoCase(name, "transfer-encoding")) {
    c->has_te = true;
  } else if (EqualsNoCase(name, "host")) {
    // llmgw sets Host (the backend's) and the framing itself.
  } else if (hc.DropIfHopByHop(name, value)) {
    return 0;
  } else {
    if (EqualsNoCase(name, "content-type")) h->has_content_type = true;
    const char* hh = self(p)->snap_->limits.hash_header;
    if (hh[0] && EqualsNoCase(name, hh)) {
      h->hash_value.Clear();
      h->hash_value.Append(value.data(), value.size());
    }
    return hc.Keep(value) ? 0 : HeaderTooLarge(c);
  }
  hc.Drop();
  return 0;
}

int WorkerImpl::OnHeadersComplete(llhttp_t* p) {
  ClientConn* c = Cur(p);
  WorkerImpl* w = self(p);
  c->h->req_headers.Finish();
  // Request smuggling defence: both framings at once is refused outright.
  if (c->has_cl && c->has_te) {
    c->parse_error = Error(ErrorKind::kBadRequest, ErrorSide::kDownstream, false, "Content-Length together with Transfer-Encoding is not allowed");
    return -1;
  }
  uint64_t max_body = w->MaxBody();
  if ((p->flags & F_CONTENT_LENGTH) && p->content_length > max_body) {
    c->parse_error = Error(ErrorKind::kPayloadTooLarge, ErrorSide::kDownstream, false, "request body exceeds max_body_bytes");
    return -1;
  }
  c->deadline_ms = NowMs() + w->cfg_.gateway.timeouts.client_body_ms;
  c->deadline_status = 408;
  w->ScheduleDeadline(c);
  bool has_body = (p->flags & F_CHUNKED) || ((p->flags & F_CONTENT_LENGTH) && p->content_length > 0);
  // No 1xx toward an HTTP/1.0 client (RFC 9110 15.2): it sends the body without waiting.
  bool http11 = p->http_major > 1 || (p->http_major == 1 && p->http_minor >= 1);
  if (c->expect_continue && has_body && http11) {
    c->h->out.append("HTTP/1.1 100 Continue\r\n\r\n");
    w->QueueSend(c);
  }
  if (p->flags & F_CONTENT_LENGTH) c->h->body.reserve(p->content_length);
  return 0;
}

int WorkerImpl::OnBody(llhttp_t* p, const char* at, size_t n) {
  ClientConn* c = Cur(p);
  if (c->h->body.size() + n > self(p)->MaxBody()) {
    c->parse_error = Error(ErrorKind::kPayloadTooLarge, ErrorSide::kDownstream, false, "request body exceeds max_body_bytes");
    return -1;
  }
  c->h->body.append(at, n);
  return 0;
}

int WorkerImpl::OnMessageComplete(llhttp_t* p) {
  Cur(p)->in_message = false;
  // Pause: one request at a time per connection, so pipelined answers stay in order.
  return HPE_PAUSED;
}

uint64_t WorkerImpl::MaxBody() const {
  return has_snapshot_ && snap_->limits.max_body_bytes ? snap_->limits.max_body_bytes
                                                       : cfg_.gateway.max_body_bytes;
}

}  // namespace llmgw::dataplane
