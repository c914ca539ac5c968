// libFuzzer target for the data plane's upstream response path: arbitrary bytes from a
// backend, cut into reads at every 0xFF byte, through UpstreamCodec (llhttp with llmgw's
// callbacks: 1xx skipping, header filtering, framing) into a handler that records what a
// worker would relay; then the close (Finish). Checked: at most one final head and one
// end, body only after the head and before the end, nothing after an error, a refused
// status always an upstream_status error with that status, the kept header lines free of
// framing and hop-by-hop headers and within the collector's capacity.
//
// Input: byte 0 = flags (bit 0: refuse 5xx / 429 as the worker does before committing);
// the rest is the byte stream.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "dataplane/http_text.h"
#include "dataplane/upstream_codec.h"

namespace {

using llmgw::dataplane::UpstreamCodec;

constexpr size_t kHeaderCap = 2048;

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

class Relay final : public UpstreamCodec::Handler {
 public:
  bool OnResponseHead(UpstreamCodec*, int status, int64_t len) override {
    if (heads || completes || status < 200 || status > 999 || len < -1) __builtin_trap();
    std::string_view lines = headers->lines();
    if (lines.size() > kHeaderCap) __builtin_trap();
    for (std::string_view n : {"content-length", "transfer-encoding", "connection", "keep-alive", "x-request-id"})
      if (HasLine(lines, n)) __builtin_trap();
    if (refuse && (status >= 500 || status == 429)) {
      refused = status;
      return false;
    }
    ++heads;
    return true;
  }
  void OnResponseBody(UpstreamCodec*, const char*, size_t n) override {
    if (!heads || completes || n == 0) __builtin_trap();
    body += n;
  }
  void OnResponseComplete(UpstreamCodec*) override {
    if (!heads || completes) __builtin_trap();
    ++completes;
  }
  llmgw::dataplane::HeaderCollector* headers = nullptr;
  bool refuse = false;
  int refused = 0, heads = 0, completes = 0;
  size_t body = 0;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  llmgw::dataplane::HeaderCollector headers;
  headers.Reserve(kHeaderCap);
  llmgw::dataplane::SseRelay sse;
  sse.Begin();
  Relay r;
  r.headers = &headers;
  r.refuse = data[0] & 1;
  UpstreamCodec codec;
  codec.BeginResponse(&r, &headers, &sse);
  std::string_view rest(reinterpret_cast<const char*>(data + 1), size - 1);
  bool ended = false;  // an error or the end: a worker stops reading this exchange
  while (!ended) {
    size_t cut = rest.find('\xff');
    std::string_view piece = rest.substr(0, cut);
    if (!piece.empty()) {
      UpstreamCodec::Parsed p = codec.Parse(piece.data(), piece.size());
      if (p == UpstreamCodec::Parsed::kError) {
        const llmgw::Error& e = codec.error();
        if (r.refused) {
          if (e.kind() != llmgw::ErrorKind::kUpstreamStatus || e.upstream_status() != r.refused || !e.retryable())
            __builtin_trap();
        } else if (e.kind() != llmgw::ErrorKind::kUpstreamProtocol) {
          __builtin_trap();
        }
        ended = true;
      } else if (p == UpstreamCodec::Parsed::kComplete) {
        if (r.completes != 1) __builtin_trap();
        (void)codec.keep_alive();
        ended = true;
      } else if (r.completes) {
        __builtin_trap();  // an end is always reported as kComplete
      }
    }
    if (cut == std::string_view::npos) break;
    rest.remove_prefix(cut + 1);
  }
  if (!ended) {
    bool clean = codec.Finish();
    if (clean && r.completes != 1) __builtin_trap();  // a clean close ends the answer
    if (!clean && r.completes) __builtin_trap();
  }
  return 0;
}
