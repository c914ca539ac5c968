// ResponseWriter: the framing of one answer toward the client, into the request's output
// buffer. It decides how the body is delimited (Content-Length; chunked for HTTP/1.1 when
// the length is unknown; the connection's close for HTTP/1.0, which knows no chunked
// coding), writes the status line and llmgw's own headers around the relayed ones, frames
// each body piece, ends the body, and ends a broken stream with an SSE error event. It
// owns the answer's framing state (committed, chunked, close-delimited, close after send);
// the bytes go where the caller says (one std::string whose capacity is kept).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "dataplane/error_reply.h"
#include "dataplane/http_text.h"

namespace llmgw::dataplane {

using namespace std::string_view_literals;  // appends of literals with their length known

// llmgw's own header lines besides the framing, decided by the caller.
struct HeadExtras {
  std::string_view request_id;
  bool no_cache = false;        // an SSE answer without its own Cache-Control
  uint32_t retry_after_s = 0;   // Retry-After (admission's 429)
  bool draining = false;        // the gateway is shutting down: Connection: close
  std::string_view extra_lines; // llmgw's own "Name: value\r\n" lines (x-ratelimit-*)
};

class ResponseWriter {
 public:
  // A new answer on the connection. `http10`: the client spoke HTTP/1.0; `close_after`:
  // its request did not ask to keep the connection (RFC rules, llhttp's verdict).
  void Begin(bool http10, bool close_after) {
    http10_ = http10;
    close_after_send_ = close_after;
    committed_ = chunked_ = close_delimited_ = false;
  }

  // Status line and headers. `content_length` < 0: unknown, the body is framed (chunked,
  // or close-delimited toward HTTP/1.0). `content_type` empty: none of llmgw's own (a
  // relayed answer brings its own in `relayed`, the upstream's end-to-end header lines).
  void WriteHead(std::string* out, int status, std::string_view content_type, int64_t content_length,
                 std::string_view relayed, const HeadExtras& x) {
    committed_ = true;
    std::string& o = *out;
    o.append("HTTP/1.1 "sv);
    AppendUint(&o, static_cast<uint64_t>(status));
    o.push_back(' ');
    o.append(ReasonPhrase(status));
    o.append("\r\n"sv);
    if (!content_type.empty()) {
      o.append("Content-Type: "sv);
      o.append(content_type);
      o.append("\r\n"sv);
    }
    o.append(relayed);
    o.append(x.extra_lines);
    o.append("X-Request-ID: "sv);
    o.append(x.request_id);
    if (content_length >= 0) {
      o.append("\r\nContent-Length: "sv);
      AppendUint(&o, static_cast<uint64_t>(content_length));
    } else if (http10_) {
      // HTTP/1.0 knows no chunked coding: the body goes raw and its end is the close
      // (RFC 9112 6.3, what nginx does), so this connection cannot be kept.
      close_delimited_ = true;
      close_after_send_ = true;
    } else {
      chunked_ = true;
      o.append("\r\nTransfer-Encoding: chunked"sv);
    }
    if (x.no_cache) o.append("\r\nCache-Control: no-cache"sv);
    if (x.retry_after_s) {
      o.append("\r\nRetry-After: "sv);
      AppendUint(&o, x.retry_after_s);
    }
    // Draining: this answer says `Connection: close`, and the connection closes after it.
    if (x.draining) close_after_send_ = true;
    o.append(close_after_send_ ? "\r\nConnection: close\r\n\r\n"sv : "\r\nConnection: keep-alive\r\n\r\n"sv);
  }

  // One piece of the body, framed as the head said.
  void AppendBody(std::string* out, const char* p, size_t n) {
    if (chunked_) {
      char hex[20];
      size_t k = FormatHex(n, hex);
      hex[k++] = '\r';
      hex[k++] = '\n';
      out->append(hex, k);
      out->append(p, n);
      out->append("\r\n"sv);
    } else {
      out->append(p, n);
    }
  }

  // The body is complete (a chunked body gets its last chunk).
  void EndBody(std::string* out) {
    if (chunked_) out->append("0\r\n\r\n"sv);
  }

  // A stream broke after its head went out: whether an SSE error event can still be
  // delivered (the body is framed by chunks or by the close, not by a length).
  bool CanEndWithEvent() const { return chunked_ || close_delimited_; }
  // Appends `event: error` with the OpenAI error object (after `separator`, see
  // SseRelay::EventSeparator), then ends the body: with the terminating chunk (the
  // connection can carry the next request), or, close-delimited, by the close.
  void AppendStreamError(std::string* out, const ErrorReply& reply, std::string_view message,
                         std::string_view separator = {});

  // The connection closes once this answer is out (broken framing, a fatal error).
  void CloseAfterSend() { close_after_send_ = true; }

  bool committed() const { return committed_; }
  bool chunked() const { return chunked_; }
  bool close_delimited() const { return close_delimited_; }
  bool close_after_send() const { return close_after_send_; }
  bool http10() const { return http10_; }

 private:
  bool http10_ = false;
  bool committed_ = false;         // the head went (or is going) to the client
  bool chunked_ = false;
  bool close_delimited_ = false;   // the body ends when the connection closes
  bool close_after_send_ = false;
};

// The OpenAI-shaped error object: {"error":{"message":..,"type":..,"param":..,"code":..}}.
void AppendErrorJson(std::string* out, std::string_view message, std::string_view type, const char* param,
                     std::string_view code);

}  // namespace llmgw::dataplane
