// libFuzzer target for the data plane's relay framing: an upstream body arriving in
// arbitrary pieces (SSE or not) goes through SseRelay (SSE state, the usage scan, the
// event separator) and ResponseWriter (chunked toward HTTP/1.1, close-delimited toward
// HTTP/1.0), optionally ended by llmgw's SSE error event. What reaches the client must be
// one well-formed HTTP response (llhttp parses it) whose body is exactly the relayed bytes
// plus, when added, the error event starting after a blank line.
//
// Input: byte 0 = flags (bit 0 HTTP/1.0 client, bit 1 SSE, bit 2 end with the error
// event); the rest is the body, cut into pieces at every 0xFF byte.
#include <llhttp.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "dataplane/error_reply.h"
#include "dataplane/response_writer.h"
#include "dataplane/sse_relay.h"

namespace {

struct Parsed {
  std::string body;
  bool complete = false;
};

int OnBody(llhttp_t* p, const char* at, size_t n) {
  static_cast<Parsed*>(p->data)->body.append(at, n);
  return 0;
}
int OnComplete(llhttp_t* p) {
  static_cast<Parsed*>(p->data)->complete = true;
  return 0;
}

std::string StripCr(std::string_view s) {
  std::string out;
  for (char c : s)
    if (c != '\r') out.push_back(c);
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace llmgw::dataplane;
  if (size < 1) return 0;
  const bool http10 = data[0] & 1, sse = data[0] & 2, end_with_error = data[0] & 4;
  std::vector<std::string_view> pieces;
  std::string_view rest(reinterpret_cast<const char*>(data + 1), size - 1);
  while (true) {
    size_t cut = rest.find('\xff');
    std::string_view piece = rest.substr(0, cut);
    if (!piece.empty()) pieces.push_back(piece);  // an empty read is no read
    if (cut == std::string_view::npos) break;
    rest.remove_prefix(cut + 1);
  }

  SseRelay relay;
  relay.Begin();
  relay.SetContentType(sse ? "text/event-stream" : "application/json");
  ResponseWriter w;
  w.Begin(http10, false);
  std::string out;
  HeadExtras x;
  x.request_id = "fuzz";
  x.no_cache = relay.needs_no_cache();
  w.WriteHead(&out, 200, {}, -1, sse ? "Content-Type: text/event-stream\r\n" : "Content-Type: application/json\r\n", x);
  std::string relayed;
  uint64_t t = 1, gap = 0;
  for (std::string_view p : pieces) {
    relay.OnPiece(p, t++, &gap);
    w.AppendBody(&out, p.data(), p.size());
    relayed.append(p);
  }
  std::string separator;
  const bool with_event = end_with_error && sse && w.CanEndWithEvent();
  if (with_event) {
    separator = std::string(relay.EventSeparator());
    w.AppendStreamError(&out, kShuttingDownReply, "fuzz \"stop\"\n", separator);
  } else {
    w.EndBody(&out);
  }
  if (http10 != w.close_delimited()) __builtin_trap();  // unknown length: 1.0 closes, 1.1 chunks
  if (http10 == w.chunked()) __builtin_trap();

  llhttp_settings_t settings;
  llhttp_settings_init(&settings);
  settings.on_body = OnBody;
  settings.on_message_complete = OnComplete;
  llhttp_t parser;
  llhttp_init(&parser, HTTP_RESPONSE, &settings);
  Parsed parsed;
  parser.data = &parsed;
  llhttp_errno_t e = llhttp_execute(&parser, out.data(), out.size());
  if (e != HPE_OK) __builtin_trap();  // llmgw's own framing must always parse
  if (http10 && llhttp_finish(&parser) != HPE_OK) __builtin_trap();  // the close ends the body
  if (!parsed.complete) __builtin_trap();
  if (parsed.body.compare(0, relayed.size(), relayed) != 0) __builtin_trap();  // nothing lost or changed
  if (!with_event) {
    if (parsed.body.size() != relayed.size()) __builtin_trap();
    return 0;
  }
  // The event follows the relayed bytes and the separator, after a blank line (CR ignored,
  // as SSE parsers treat CRLF and LF alike).
  std::string_view event(parsed.body);
  event.remove_prefix(relayed.size());
  if (event.substr(0, separator.size()) != separator) __builtin_trap();
  event.remove_prefix(separator.size());
  if (event.substr(0, 13) != "event: error\n") __builtin_trap();
  // The stream's start counts as an event boundary (nothing before it to glue onto).
  std::string before = "\n\n" + StripCr(relayed + separator);
  if (before.compare(before.size() - 2, 2, "\n\n") != 0) __builtin_trap();
  return 0;
}
