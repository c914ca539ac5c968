// ClientSession (client_session.h): client-side HTTP parsing — llhttp callbacks,
// header/body limits (431/413), smuggling defences, Expect: 100-continue, pipelined
// requests in order, and how a broken request is reported.
#include "dataplane/client_session.h"

#include <string_view>

#include "dataplane/http_text.h"

namespace llmgw::dataplane {

const llhttp_settings_t* ClientSession::Settings() {
  static const llhttp_settings_t settings = [] {
    llhttp_settings_t s;
    llhttp_settings_init(&s);
    s.on_message_begin = &OnMessageBegin;
    s.on_url = &OnUrl;
    s.on_header_field = &OnHeaderField;
    s.on_header_value = &OnHeaderValue;
    s.on_header_value_complete = &OnHeaderValueComplete;
    s.on_headers_complete = &OnHeadersComplete;
    s.on_body = &OnBody;
    s.on_message_complete = &OnMessageComplete;
    return s;
  }();
  return &settings;
}

void ClientSession::Start(Handler* handler, const Limits* limits, void* owner) {
  handler_ = handler;
  limits_ = limits;
  owner_ = owner;
  h_ = nullptr;
  pending_.clear();
  pending_off_ = 0;
  head_bytes_ = 0;
  busy_ = stopped_ = discard_ = in_message_ = false;
  has_cl_ = has_te_ = expect_continue_ = false;
  if (parse_error_.kind() != ErrorKind::kNone) parse_error_ = Error();
  llhttp_init(&parser_, HTTP_REQUEST, Settings());
  parser_.data = this;
}

bool ClientSession::Feed(const char* data, size_t n) {
  if (discard_ || stopped_) return false;
  size_t off = 0;
  if (!busy_ && pending_off_ == pending_.size()) {
    // Nothing held: parse straight from the caller's buffer.
    pending_.clear();
    pending_off_ = 0;
    while (off < n && !busy_ && !stopped_ && !discard_) off += Execute(data + off, n - off);
    if (stopped_ || discard_) return false;
  }
  if (off < n) pending_.append(data + off, n - off);
  Resume();
  return busy_ && held_bytes() > kMaxPendingInput;
}

void ClientSession::Resume() {
  while (!busy_ && !stopped_ && !discard_ && pending_off_ < pending_.size())
    pending_off_ += Execute(pending_.data() + pending_off_, pending_.size() - pending_off_);
  if (pending_off_ >= pending_.size() && !pending_.empty()) {
    pending_.clear();
    pending_off_ = 0;
  }
  // A request has started arriving: it must complete within the client timeouts.
  if (!busy_ && !stopped_ && in_message_) handler_->OnRequestStarted(this);
}

size_t ClientSession::Execute(const char* p, size_t n) {
  llhttp_errno_t e = llhttp_execute(&parser_, p, n);
  if (e == HPE_OK) return n;
  if (e == HPE_PAUSED) {
    size_t used = static_cast<size_t>(llhttp_get_error_pos(&parser_) - p);
    llhttp_resume(&parser_);
    busy_ = true;  // one request at a time: the next is parsed after EndAnswer + Resume
    handler_->OnRequest(this);
    return used;
  }
  discard_ = true;
  pending_.clear();
  pending_off_ = 0;
  if (parse_error_.kind() == ErrorKind::kNone) {
    parse_error_ = Error(ErrorKind::kBadRequest, ErrorSide::kDownstream, false, "malformed HTTP request: %s",
                         llhttp_get_error_reason(&parser_));
  }
  handler_->OnBadRequest(this, parse_error_);
  return n;
}

int ClientSession::Fail(ErrorKind kind, const char* message) {
  parse_error_ = Error(kind, ErrorSide::kDownstream, false, "%s", message);
  return -1;
}

int ClientSession::HeadLimit(size_t n) {
  head_bytes_ += n;
  if (head_bytes_ > limits_->max_header_bytes) return Fail(ErrorKind::kHeaderTooLarge, "request headers too large");
  return 0;
}

int ClientSession::OnMessageBegin(llhttp_t* p) {
  ClientSession* s = Of(p);
  RequestState* h = s->h_ = s->handler_->AcquireRequest(s);
  s->in_message_ = true;
  s->head_bytes_ = 0;
  s->has_cl_ = s->has_te_ = s->expect_continue_ = false;
  h->url.Clear();
  h->request_id.Clear();
  h->hash_value.Clear();
  h->req_headers.Clear();
  h->has_content_type = false;
  h->body.clear();
  return 0;
}

int ClientSession::OnUrl(llhttp_t* p, const char* at, size_t n) {
  ClientSession* s = Of(p);
  s->h_->url.Append(at, n);
  return s->HeadLimit(n);
}

int ClientSession::OnHeaderField(llhttp_t* p, const char* at, size_t n) {
  ClientSession* s = Of(p);
  if (!s->h_->req_headers.OnField(at, n)) return s->Fail(ErrorKind::kHeaderTooLarge, "request headers too large");
  return s->HeadLimit(n);
}

int ClientSession::OnHeaderValue(llhttp_t* p, const char* at, size_t n) {
  ClientSession* s = Of(p);
  if (!s->h_->req_headers.OnValue(at, n)) return s->Fail(ErrorKind::kHeaderTooLarge, "request headers too large");
  return s->HeadLimit(n);
}

int ClientSession::OnHeaderValueComplete(llhttp_t* p) {
  ClientSession* s = Of(p);
  RequestState* h = s->h_;
  HeaderCollector& hc = h->req_headers;
  std::string_view name, value;
  if (!hc.OnValueComplete(&name, &value)) return s->Fail(ErrorKind::kHeaderTooLarge, "request headers too large");
  if (EqualsNoCase(name, "x-request-id")) {
    h->request_id.Clear();
    // Only a sane id is kept; anything else is replaced by a generated one.
    bool ok = !value.empty() && value.size() <= 128;
    for (char ch : value) ok = ok && ch > 32 && ch < 127 && ch != '"' && ch != '\\';
    if (ok) h->request_id.Append(value.data(), value.size());
  } else if (EqualsNoCase(name, "expect")) {
    s->expect_continue_ = EqualsNoCase(value, "100-continue");
  } else if (EqualsNoCase(name, "content-length")) {
    s->has_cl_ = true;
  } else if (EqualsNoCase(name, "transfer-encoding")) {
    s->has_te_ = true;
  } else if (EqualsNoCase(name, "traceparent")) {
    // Kept aside, not forwarded as a line: the upstream request gets one traceparent,
    // written by the codec (tracing: the attempt's span as parent).
    h->traceparent.Clear();
    if (value.size() <= 64) h->traceparent.Append(value.data(), value.size());
  } else if (EqualsNoCase(name, "host")) {
    // llmgw sets Host (the backend's) and the framing itself.
  } else if (hc.DropIfHopByHop(name, value)) {
    return 0;
  } else {
    if (EqualsNoCase(name, "content-type")) h->has_content_type = true;
    else if (EqualsNoCase(name, "tracestate") && h->tracestate.len == 0 && value.size() <= 255)
      h->tracestate.Append(value.data(), value.size());
    else if (EqualsNoCase(name, "user-agent") && h->user_agent.len == 0)
      h->user_agent.Append(value.data(), value.size() < 200 ? value.size() : 200);
    const char* hh = s->limits_->hash_header;
    if (hh[0] && EqualsNoCase(name, hh)) {
      h->hash_value.Clear();
      h->hash_value.Append(value.data(), value.size());
    }
    return hc.Keep(value) ? 0 : s->Fail(ErrorKind::kHeaderTooLarge, "request headers too large");
  }
  hc.Drop();
  return 0;
}

int ClientSession::OnHeadersComplete(llhttp_t* p) {
  ClientSession* s = Of(p);
  s->h_->req_headers.Finish();
  // Request smuggling defence: both framings at once is refused outright.
  if (s->has_cl_ && s->has_te_)
    return s->Fail(ErrorKind::kBadRequest, "Content-Length together with Transfer-Encoding is not allowed");
  if ((p->flags & F_CONTENT_LENGTH) && p->content_length > s->limits_->max_body_bytes)
    return s->Fail(ErrorKind::kPayloadTooLarge, "request body exceeds max_body_bytes");
  bool has_body = (p->flags & F_CHUNKED) || ((p->flags & F_CONTENT_LENGTH) && p->content_length > 0);
  // No 1xx toward an HTTP/1.0 client (RFC 9110 15.2): it sends the body without waiting.
  bool http11 = p->http_major > 1 || (p->http_major == 1 && p->http_minor >= 1);
  bool send_continue = s->expect_continue_ && has_body && http11;
  if (send_continue) s->h_->out.append("HTTP/1.1 100 Continue\r\n\r\n");
  s->handler_->OnHeadComplete(s, send_continue);
  if (p->flags & F_CONTENT_LENGTH) s->h_->body.reserve(p->content_length);
  return 0;
}

int ClientSession::OnBody(llhttp_t* p, const char* at, size_t n) {
  ClientSession* s = Of(p);
  if (s->h_->body.size() + n > s->limits_->max_body_bytes)
    return s->Fail(ErrorKind::kPayloadTooLarge, "request body exceeds max_body_bytes");
  s->h_->body.append(at, n);
  return 0;
}

int ClientSession::OnMessageComplete(llhttp_t* p) {
  Of(p)->in_message_ = false;
  // Pause: one request at a time per connection, so pipelined answers stay in order.
  return HPE_PAUSED;
}

}  // namespace llmgw::dataplane
