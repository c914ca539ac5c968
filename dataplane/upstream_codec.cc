// UpstreamCodec (upstream_codec.h): the upstream request as scatter-gather pieces, and
// the upstream response through llhttp — 1xx skipping, header filtering, framing.
#include "dataplane/upstream_codec.h"

#include <cstdint>

#include <cstring>

#include "dataplane/http_text.h"
#include "dataplane/presented_key.h"

namespace llmgw::dataplane {

void UpstreamCodec::Reset() {
  head_.clear();
  iov_cnt_ = 0;
  saw_bytes_ = interim_ = complete_ = false;
  if (error_.kind() != ErrorKind::kNone) error_ = Error();
}

void UpstreamCodec::WriteRequest(const Request& r) {
  size_t body_len = r.body.size();
  if (r.rewrite_model) body_len = r.model_begin + (r.new_model.size() + 2) + (r.body.size() - r.model_end);
  std::string& h = head_;
  h.clear();
  h.append("POST ");
  if (!r.target.empty()) {
    h.append(r.target);
  } else {
    h.append(r.base_path);
    h.append(r.api_path);
  }
  h.append(" HTTP/1.1\r\nHost: ");
  h.append(r.host_header);
  h.append("\r\nContent-Length: ");
  AppendUint(&h, body_len);
  h.append("\r\nX-Request-ID: ");
  h.append(r.request_id);
  if (!r.has_content_type) h.append("\r\nContent-Type: application/json");
  if (!r.traceparent.empty()) {
    h.append("\r\ntraceparent: ");
    h.append(r.traceparent);
  }
  h.append("\r\nConnection: keep-alive\r\n");
  h.append(r.auth_lines);
  std::string_view lines = r.header_lines;
  if (r.drop_client_credentials && !lines.empty()) {
    // Copied into the head without the credential lines (the head's capacity stays with
    // the pooled connection: no allocation once it has seen a head this long).
    while (!lines.empty()) {
      size_t eol = lines.find("\r\n");
      std::string_view line = lines.substr(0, eol == std::string_view::npos ? lines.size() : eol + 2);
      lines.remove_prefix(line.size());
      size_t colon = line.find(':');
      if (colon != std::string_view::npos && IsClientCredential(line.substr(0, colon))) continue;
      h.append(line);
    }
  }
  // The client's own end-to-end headers follow from the request state, uncopied.
  size_t head_len = h.size();
  iov_cnt_ = 0;
  iov_[iov_cnt_++] = {h.data(), head_len};
  if (!lines.empty()) iov_[iov_cnt_++] = {const_cast<char*>(lines.data()), lines.size()};
  static const char kEndOfHead[] = "\r\n";
  iov_[iov_cnt_++] = {const_cast<char*>(kEndOfHead), 2};
  char* body = const_cast<char*>(r.body.data());
  if (r.rewrite_model) {
    // Scatter-gather: the prompt is sent from the client buffer, only the model changes.
    // The quoted new name lives in the head buffer's tail, after the head proper.
    h.push_back('"');
    h.append(r.new_model);
    h.push_back('"');
    iov_[0] = {h.data(), head_len};  // the appends may have moved the buffer
    iov_[iov_cnt_++] = {body, r.model_begin};
    iov_[iov_cnt_++] = {h.data() + head_len, h.size() - head_len};
    iov_[iov_cnt_++] = {body + r.model_end, r.body.size() - r.model_end};
  } else if (!r.body.empty()) {
    iov_[iov_cnt_++] = {body, r.body.size()};
  }
}

bool UpstreamCodec::Advance(size_t n) {
  int i = 0;
  while (i < iov_cnt_ && n >= iov_[i].iov_len) n -= iov_[i++].iov_len;
  if (i < iov_cnt_) {
    iov_[i].iov_base = static_cast<char*>(iov_[i].iov_base) + n;
    iov_[i].iov_len -= n;
    std::memmove(iov_, iov_ + i, sizeof(iovec) * static_cast<size_t>(iov_cnt_ - i));
    iov_cnt_ -= i;
    return true;
  }
  iov_cnt_ = 0;
  return false;
}

const llhttp_settings_t* UpstreamCodec::Settings() {
  static const llhttp_settings_t settings = [] {
    llhttp_settings_t s;
    llhttp_settings_init(&s);
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

void UpstreamCodec::BeginResponse(Handler* handler, HeaderCollector* headers, SseRelay* relay) {
  handler_ = handler;
  headers_ = headers;
  relay_ = relay;
  llhttp_init(&parser_, HTTP_RESPONSE, Settings());
  parser_.data = this;
  saw_bytes_ = interim_ = complete_ = false;
  if (error_.kind() != ErrorKind::kNone) error_ = Error();
  headers_->Clear();
  relay_->NewHead();
}

UpstreamCodec::Parsed UpstreamCodec::Parse(const char* p, size_t n) {
  saw_bytes_ = true;
  llhttp_errno_t e = llhttp_execute(&parser_, p, n);
  // 5xx / 429 refused by the handler: the callback made the error.
  if (error_.kind() != ErrorKind::kNone) return Parsed::kError;
  if (e == HPE_PAUSED) return Parsed::kComplete;
  if (e != HPE_OK) {
    error_ = Error(ErrorKind::kUpstreamProtocol, ErrorSide::kUpstream, false, "%s",
                   headers_->overflow() ? "upstream response headers too large" : "upstream sent invalid HTTP");
    return Parsed::kError;
  }
  return Parsed::kMore;
}

bool UpstreamCodec::Finish() {
  if (!saw_bytes_) return false;
  // llhttp_finish runs on_message_complete for a body delimited by the close; that
  // callback pauses, so HPE_PAUSED is success here too.
  llhttp_errno_t fin = llhttp_finish(&parser_);
  return (fin == HPE_OK || fin == HPE_PAUSED) && complete_;
}

// The upstream's end-to-end headers are collected as lines for the client; framing
// (Content-Length / Transfer-Encoding) is redone by llmgw, hop-by-hop headers stay here.
// An overflow fails the exchange (upstream protocol error).
int UpstreamCodec::OnHeaderField(llhttp_t* p, const char* at, size_t n) {
  return Of(p)->headers_->OnField(at, n) ? 0 : -1;
}

int UpstreamCodec::OnHeaderValue(llhttp_t* p, const char* at, size_t n) {
  return Of(p)->headers_->OnValue(at, n) ? 0 : -1;
}

int UpstreamCodec::OnHeaderValueComplete(llhttp_t* p) {
  UpstreamCodec* u = Of(p);
  HeaderCollector& hc = *u->headers_;
  std::string_view name, value;
  if (!hc.OnValueComplete(&name, &value)) return -1;
  if (hc.DropIfHopByHop(name, value)) return 0;
  if (EqualsNoCase(name, "content-length") || EqualsNoCase(name, "x-request-id")) {
    hc.Drop();  // framing is redone for the client; the request id is llmgw's (sent upstream too)
    return 0;
  }
  if (EqualsNoCase(name, "content-type")) u->relay_->SetContentType(value);
  else if (EqualsNoCase(name, "cache-control")) u->relay_->SawCacheControl();
  return hc.Keep(value) ? 0 : -1;
}

int UpstreamCodec::OnHeadersComplete(llhttp_t* p) {
  UpstreamCodec* u = Of(p);
  int status = p->status_code;
  if (status < 200) {
    // An interim answer (100 Continue, 102, 103 Early Hints) is not the answer: relaying it
    // as final would leave the real one pending on a pooled connection, for the next
    // client to receive. Forget its headers and parse on; 1xx never has a body. llmgw
    // never asks to switch protocols, so a 101 is a protocol error.
    if (status == 101) return -1;
    u->interim_ = true;
    u->headers_->Clear();
    u->relay_->NewHead();
    return 1;  // llhttp: no body
  }
  u->headers_->Finish();
  bool chunked = p->flags & F_CHUNKED;
  bool has_len = (p->flags & F_CONTENT_LENGTH) && !chunked;
  // llhttp takes any length that fits in 64 bits; one past INT64_MAX would reach the
  // handler as a negative length (read as "unknown"): no real answer is that long, so it
  // is a broken backend, not a body to relay.
  if (has_len && p->content_length > static_cast<uint64_t>(INT64_MAX)) {
    u->error_ = Error(ErrorKind::kUpstreamProtocol, ErrorSide::kUpstream, false, "upstream Content-Length out of range");
    return -1;
  }
  if (!u->handler_->OnResponseHead(u, status, has_len ? static_cast<int64_t>(p->content_length) : -1)) {
    u->error_ = Error(ErrorKind::kUpstreamStatus, ErrorSide::kUpstream, true, "upstream answered %d", status);
    u->error_.set_upstream_status(static_cast<uint16_t>(status));
    return -1;
  }
  return 0;
}

int UpstreamCodec::OnBody(llhttp_t* p, const char* at, size_t n) {
  UpstreamCodec* u = Of(p);
  u->handler_->OnResponseBody(u, at, n);
  return 0;
}

int UpstreamCodec::OnMessageComplete(llhttp_t* p) {
  UpstreamCodec* u = Of(p);
  if (u->interim_) {  // the end of a 1xx: the final answer follows on this connection
    u->interim_ = false;
    return 0;
  }
  u->complete_ = true;
  u->handler_->OnResponseComplete(u);
  return HPE_PAUSED;
}

}  // namespace llmgw::dataplane
