// UpstreamCodec: one upstream HTTP/1.1 exchange as bytes, for one pooled connection.
// Request side: the head llmgw writes (request line, Host, framing, request id) and the
// client's forwarded header lines and body as scatter-gather pieces, the model name
// replaced in place when an alias or fallback rewrites it; partial sends advanced.
// Response side: llhttp over what the upstream answers — interim 1xx answers skipped,
// hop-by-hop and framing headers filtered, the final head, body pieces and end handed to a
// Handler, the reusability of the connection read off the answer. No sockets: unit tests
// and the fuzzer feed bytes.
#pragma once

#include <llhttp.h>
#include <sys/uio.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "common/error.h"
#include "dataplane/header_collector.h"
#include "dataplane/sse_relay.h"

namespace llmgw::dataplane {

class UpstreamCodec {
 public:
  // What goes upstream. Every view must stay valid until the request is sent (they point
  // into the client's request state and the snapshot; only the head is copied).
  struct Request {
    std::string_view base_path;     // the backend's URL path prefix
    std::string_view api_path;      // /v1/chat/completions, ...
    std::string_view target;        // non-empty: the whole request target (a provider's
                                    // path and query), instead of base_path + api_path
    std::string_view auth_lines;    // the backend's credential headers, "Name: value\r\n" each
    // The client's credential headers (Authorization, api-key, x-api-key) are left out of
    // header_lines: a backend with credentials of its own never sees the client's.
    bool drop_client_credentials = false;
    std::string_view host_header;
    std::string_view request_id;
    std::string_view traceparent;   // empty: none
    bool has_content_type = false;  // else llmgw says application/json
    std::string_view header_lines;  // the client's end-to-end headers, "Name: value\r\n" each
    std::string_view body;
    // Replace body[model_begin, model_end) (the raw JSON string of "model") by the quoted
    // `new_model`.
    bool rewrite_model = false;
    std::string_view new_model;
    size_t model_begin = 0, model_end = 0;
  };

  // Where a response goes. `c->owner()` names the owner's connection.
  class Handler {
   public:
    // The final head (status >= 200; 1xx were skipped); its end-to-end headers are in the
    // HeaderCollector given to BeginResponse. `content_length` -1: none (chunked, or
    // delimited by the close). Returning false refuses the answer (5xx / 429 that can still
    // be retried): parsing stops with a kUpstreamStatus error.
    virtual bool OnResponseHead(UpstreamCodec* c, int status, int64_t content_length) = 0;
    virtual void OnResponseBody(UpstreamCodec* c, const char* at, size_t n) = 0;
    virtual void OnResponseComplete(UpstreamCodec* c) = 0;

   protected:
    ~Handler() = default;
  };

  enum class Parsed : uint8_t {
    kMore,      // everything consumed, the answer goes on
    kComplete,  // the final answer ended (OnResponseComplete ran)
    kError,     // error() says why (refused status, or not HTTP llmgw understands)
  };

  explicit UpstreamCodec(void* owner = nullptr) : owner_(owner) { head_.reserve(1024); }

  // A recycled connection object: nothing of the last exchange left; capacity kept.
  void Reset();

  // ---- request
  void WriteRequest(const Request& r);
  iovec* iov() { return iov_; }
  int iov_count() const { return iov_cnt_; }
  // `n` bytes went out: true while some are left (iov() then starts at the first unsent).
  bool Advance(size_t n);

  // ---- response
  // A new exchange: headers are collected into `headers` (cleared), content type and cache
  // control reported to `relay` (NewHead), the rest to `handler`.
  void BeginResponse(Handler* handler, HeaderCollector* headers, SseRelay* relay);
  Parsed Parse(const char* p, size_t n);
  // The upstream closed. True when a final answer is complete then (a body delimited by
  // the close ends now; OnResponseComplete ran). A close after an interim 1xx, or at any
  // point before the final answer's end, is not an end.
  bool Finish();
  bool saw_bytes() const { return saw_bytes_; }
  // The answer allows reusing the connection (HTTP/1.1 without Connection: close, framed).
  bool keep_alive() const { return llhttp_should_keep_alive(&parser_); }
  const Error& error() const { return error_; }
  void* owner() const { return owner_; }

 private:
  static UpstreamCodec* Of(llhttp_t* p) { return static_cast<UpstreamCodec*>(p->data); }
  static const llhttp_settings_t* Settings();
  static int OnHeaderField(llhttp_t* p, const char* at, size_t n);
  static int OnHeaderValue(llhttp_t* p, const char* at, size_t n);
  static int OnHeaderValueComplete(llhttp_t* p);
  static int OnHeadersComplete(llhttp_t* p);
  static int OnBody(llhttp_t* p, const char* at, size_t n);
  static int OnMessageComplete(llhttp_t* p);

  void* owner_;
  std::string head_;  // request line and the headers llmgw sets (+ the quoted new model)
  iovec iov_[8];
  int iov_cnt_ = 0;
  llhttp_t parser_{};
  Handler* handler_ = nullptr;
  HeaderCollector* headers_ = nullptr;
  SseRelay* relay_ = nullptr;
  bool saw_bytes_ = false;
  bool interim_ = false;  // parsing a 1xx interim answer: skipped, the final one follows
  bool complete_ = false; // the final answer ended
  Error error_;           // what parsing found wrong (kind kNone: nothing)
};

}  // namespace llmgw::dataplane
