// ClientSession: the client side of one connection's HTTP/1.x — llhttp request parsing
// with llmgw's limits (431 / 413) and smuggling defences, Expect: 100-continue, pipelined
// requests answered one at a time in order, and the keep-alive facts of each request.
// No sockets and no worker: bytes come in through Feed, what they mean goes out through a
// Handler (the worker, or a unit test / fuzzer feeding bytes).
#pragma once

#include <llhttp.h>

#include <cstddef>
#include <cstdint>
#include <string>

#include "common/error.h"
#include "dataplane/request_state.h"

namespace llmgw::dataplane {

// Unparsed client bytes kept while a request is being answered (pipelining); above this
// Feed asks the caller to stop reading until the answer is out.
constexpr size_t kMaxPendingInput = 65536;

class ClientSession {
 public:
  // Read by every request; the worker updates them when a snapshot arrives.
  struct Limits {
    uint64_t max_header_bytes = 0;  // request line + header names and values
    uint64_t max_body_bytes = 0;
    const char* hash_header = "";   // routing hash header whose value is kept ("": none)
  };

  // What the session's owner does with what was parsed. Calls come from inside Feed,
  // Resume or the parser callbacks; `s->owner()` names the owner's connection.
  class Handler {
   public:
    // A request begins: the state it fills (the owner keeps it until the answer is out).
    virtual RequestState* AcquireRequest(ClientSession* s) = 0;
    // Bytes of a request have arrived and it is not complete (header deadline).
    virtual void OnRequestStarted(ClientSession* s) = 0;
    // The head is complete and acceptable (body deadline); `sent_continue`: a
    // "100 Continue" was appended to the request state's `out` and must be sent.
    virtual void OnHeadComplete(ClientSession* s, bool sent_continue) = 0;
    // A whole request is parsed; the session is busy (no further parsing) until EndAnswer.
    virtual void OnRequest(ClientSession* s) = 0;
    // The input is broken (or over a limit): answer `e`, then close. The session discards
    // every further byte (the stream cannot be resynchronised).
    virtual void OnBadRequest(ClientSession* s, const Error& e) = 0;

   protected:
    ~Handler() = default;
  };

  // A new connection: the session starts from scratch.
  void Start(Handler* handler, const Limits* limits, void* owner);

  // Bytes from the socket. Parses at once when idle (no copy), keeps the rest for later.
  // Returns true when the caller should stop reading: busy with more than
  // kMaxPendingInput bytes held.
  bool Feed(const char* data, size_t n);

  // The owner answers something (a request, or an error before any request): no parsing.
  void BeginAnswer() { busy_ = true; }
  // The answer is out: the next request may be parsed (Resume does).
  void EndAnswer() { busy_ = false; }
  // Parses the pipelined bytes held, up to the next complete request.
  void Resume();
  // The connection closed: nothing more is parsed or reported.
  void Stop() { stopped_ = true; }

  bool busy() const { return busy_; }
  bool in_message() const { return in_message_; }
  bool discarding() const { return discard_; }
  size_t held_bytes() const { return pending_.size() - pending_off_; }
  // The current request's request line and header bytes as parsed (the access log's bytes_in).
  size_t head_bytes() const { return head_bytes_; }
  void* owner() const { return owner_; }
  // Method, version and keep-alive of the request being answered.
  llhttp_method_t method() const { return static_cast<llhttp_method_t>(parser_.method); }
  // HTTP/1.0 rules (no chunked coding, keep-alive only when asked). A version not parsed
  // yet (a broken request line) counts as 1.0: its error answer has a length and closes.
  bool http10() const {
    return parser_.http_major == 0 || (parser_.http_major == 1 && parser_.http_minor == 0);
  }
  // RFC 9112's rule: 1.1 keeps the connection unless `Connection: close`, 1.0 only with
  // `Connection: keep-alive`.
  bool keep_alive() const { return llhttp_should_keep_alive(&parser_); }

 private:
  // Runs llhttp over [p, p+n); returns how many bytes it consumed. A complete request
  // pauses the parser and is dispatched at once; a broken one is answered and the rest of
  // the input is discarded.
  size_t Execute(const char* p, size_t n);

  static ClientSession* Of(llhttp_t* p) { return static_cast<ClientSession*>(p->data); }
  static const llhttp_settings_t* Settings();
  static int OnMessageBegin(llhttp_t* p);
  static int OnUrl(llhttp_t* p, const char* at, size_t n);
  // Header names and values are appended straight to the forwarded lines (a
  // HeaderCollector); a header that must not go upstream is cut off again when its value
  // is complete.
  static int OnHeaderField(llhttp_t* p, const char* at, size_t n);
  static int OnHeaderValue(llhttp_t* p, const char* at, size_t n);
  static int OnHeaderValueComplete(llhttp_t* p);
  static int OnHeadersComplete(llhttp_t* p);
  static int OnBody(llhttp_t* p, const char* at, size_t n);
  static int OnMessageComplete(llhttp_t* p);
  int HeadLimit(size_t n);
  int Fail(ErrorKind kind, const char* message);

  llhttp_t parser_{};
  Handler* handler_ = nullptr;
  const Limits* limits_ = nullptr;
  void* owner_ = nullptr;
  RequestState* h_ = nullptr;  // the request being parsed (from AcquireRequest)
  std::string pending_;        // unparsed bytes held while busy (pipelined requests)
  size_t pending_off_ = 0;
  size_t head_bytes_ = 0;
  bool busy_ = false;
  bool stopped_ = false;
  bool discard_ = false;       // framing broke: ignore whatever else arrives
  bool in_message_ = false;
  bool has_cl_ = false, has_te_ = false, expect_continue_ = false;
  Error parse_error_;          // 400/413/431 decided inside a callback (kind kNone: none)
};

}  // namespace llmgw::dataplane
