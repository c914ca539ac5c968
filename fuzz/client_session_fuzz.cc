// libFuzzer target for the data plane's client request path: arbitrary bytes from a
// client, cut into reads at every 0xFF byte, through ClientSession with its real llhttp
// callbacks and limits (1 KiB of headers, 256-byte bodies, a hash header). The handler
// acts as the worker does: each request is answered at once (EndAnswer + Resume, so
// pipelined requests follow), a bad request ends the input. Checked: no request is
// reported while the session is answering another, nothing after a bad request, every
// request's body and forwarded headers within the limits, a kept request id sane, the
// forwarded lines free of the headers llmgw sets itself.
//
// Input: byte 0 = flags (bit 0: answer only on the next read, holding pipelined input);
// the rest is the byte stream.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "dataplane/client_session.h"
#include "dataplane/http_text.h"

namespace {

using llmgw::dataplane::ClientSession;
using llmgw::dataplane::RequestState;

constexpr uint64_t kMaxHeader = 1024, kMaxBody = 256;

bool HasLine(std::string_view lines, std::string_view name) {
  size_t pos = 0;
  while (pos < lines.size()) {
    size_t end = lines.find("\r\n", pos);
    if (end == std::string_view::npos) return false;
    std::string_view line = lines.substr(pos, end - pos);
    if (line.size() > name.size() && line[name.size()] == ':' &&
        llmgw::dataplane::EqualsNoCase(line.substr(0, name.size()), name))
      return true;
    pos = end + 2;
  }
  return false;
}

class Worker final : public ClientSession::Handler {
 public:
  Worker() {
    state.req_headers.Reserve(kMaxHeader + kMaxHeader / 4 + 64);
    state.resp_headers.Reserve(64);
  }
  RequestState* AcquireRequest(ClientSession* s) override {
    if (s->busy() || bad) __builtin_trap();
    state.Reset();
    return &state;
  }
  void OnRequestStarted(ClientSession* s) override {
    if (s->busy()) __builtin_trap();
  }
  void OnHeadComplete(ClientSession*, bool sent_continue) override {
    if (sent_continue != (state.out == "HTTP/1.1 100 Continue\r\n\r\n")) __builtin_trap();
  }
  void OnRequest(ClientSession* s) override {
    if (!s->busy() || bad || s->in_message()) __builtin_trap();
    if (state.body.size() > kMaxBody) __builtin_trap();
    std::string_view lines = state.req_headers.lines();
    for (std::string_view n : {"host", "content-length", "transfer-encoding", "connection", "expect", "x-request-id"})
      if (HasLine(lines, n)) __builtin_trap();
    for (char ch : state.request_id.View())
      if (ch <= 32 || ch >= 127 || ch == '"' || ch == '\\') __builtin_trap();
    (void)s->http10();
    (void)s->keep_alive();
    ++requests;
    if (!hold) {
      s->EndAnswer();  // answered; the caller's Resume (or Feed) parses on
    }
  }
  void OnBadRequest(ClientSession* s, const llmgw::Error& e) override {
    if (!s->discarding() || bad || e.kind() == llmgw::ErrorKind::kNone) __builtin_trap();
    bad = true;
  }
  RequestState state;
  bool hold = false, bad = false;
  int requests = 0;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  Worker w;
  w.hold = data[0] & 1;
  ClientSession::Limits limits;
  limits.max_header_bytes = kMaxHeader;
  limits.max_body_bytes = kMaxBody;
  limits.hash_header = "x-session";
  ClientSession s;
  s.Start(&w, &limits, &w);
  std::string_view rest(reinterpret_cast<const char*>(data + 1), size - 1);
  while (true) {
    size_t cut = rest.find('\xff');
    std::string_view piece = rest.substr(0, cut);
    if (!piece.empty()) {
      s.Feed(piece.data(), piece.size());
      if (w.hold && s.busy()) {  // the answer went out after this read
        s.EndAnswer();
        s.Resume();
      }
      if (!w.hold) s.Resume();
    }
    if (cut == std::string_view::npos) break;
    rest.remove_prefix(cut + 1);
  }
  // Whatever is held is parsed once the last answer is out.
  while (s.busy() && !w.bad) {
    int before = w.requests;
    s.EndAnswer();
    s.Resume();
    if (w.requests == before) break;
  }
  if (w.bad && !s.discarding()) __builtin_trap();
  return 0;
}
