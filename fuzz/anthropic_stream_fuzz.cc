// libFuzzer target for the Anthropic stream translator (issue 13): arbitrary upstream SSE
// bytes, fed in pieces whose size the first input byte picks, must never crash, never
// overrun the output, and everything written must be OpenAI SSE events whose data is
// "[DONE]" or one well-formed JSON object.
#include <rapidjson/document.h>

#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "common/providers/anthropic_translate.h"

using llmgw::providers::AnthropicStreamTranslator;
using llmgw::providers::OutBuf;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  static AnthropicStreamTranslator t;
  static char out_buf[1 << 20];
  t.Reset(1);
  size_t piece = 1 + data[0] % 64;
  std::string_view in(reinterpret_cast<const char*>(data) + 1, size - 1);
  OutBuf out(out_buf, sizeof out_buf);
  size_t good = 0;  // output up to the last piece translated without error
  for (size_t i = 0; i < in.size() && !t.done(); i += piece) {
    // A refused stream may leave a partial event behind; only what came before counts.
    if (!t.Feed(in.substr(i, piece), &out).ok()) break;
    good = out.size();
  }
  std::string_view sse(out_buf, good);
  while (!sse.empty()) {
    if (sse.substr(0, 6) != "data: ") abort();
    size_t end = sse.find("\n\n");
    if (end == std::string_view::npos) abort();
    std::string_view payload = sse.substr(6, end - 6);
    if (payload != "[DONE]") {
      rapidjson::Document d;
      d.Parse(payload.data(), payload.size());
      if (d.HasParseError() || !d.IsObject()) abort();
    }
    sse.remove_prefix(end + 2);
  }
  return 0;
}
