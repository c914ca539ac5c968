// SseRelay: what llmgw reads from an answer while relaying it, piece by piece: whether
// it is a server-sent event stream (inter-token gaps), and the token counts of its
// `usage` object (the whole body, or the final stream chunk). The bytes themselves go
// through ResponseWriter unchanged.
#pragma once

#include <cstdint>
#include <cstring>
#include <string_view>

#include "dataplane/http_text.h"

namespace llmgw::dataplane {

class SseRelay {
 public:
  void Begin() {
    is_sse_ = false;
    has_cache_control_ = false;
    last_piece_us_ = 0;
    prompt_tokens_ = completion_tokens_ = 0;
    tail_[0] = tail_[1] = '\n';
  }
  // From the upstream's response headers (a new attempt starts them over).
  void NewHead() {
    is_sse_ = false;
    has_cache_control_ = false;
  }
  void SetContentType(std::string_view v) { is_sse_ = StartsWithNoCase(v, "text/event-stream"); }
  // A stream's continuation was refused by its head (not an SSE 200): the client's answer
  // is still the stream the first attempt committed, and ends as one (error event,
  // terminating chunk), whatever content type the refused head named.
  void KeepClientStream() { is_sse_ = true; }
  void SawCacheControl() { has_cache_control_ = true; }

  // One piece of the body arrived at `now_us`. True when it continues an SSE stream:
  // then *gap is the time since the previous piece (an inter-token time).
  bool OnPiece(std::string_view data, uint64_t now_us, uint64_t* gap) {
    bool continues = is_sse_ && last_piece_us_;
    if (continues) *gap = now_us - last_piece_us_;
    last_piece_us_ = now_us;
    ScanUsage(data);
    if (is_sse_) {  // the last two bytes relayed, '\r' skipped ("\n\n": between events)
      // From the end backwards: a piece ending in a run of '\r' still tells what came
      // before it (fuzz/relay_fuzz.cc checks this). Two steps for an ordinary piece.
      char found[2];
      int k = 0;
      for (size_t i = data.size(); i-- > 0 && k < 2;)
        if (data[i] != '\r') found[k++] = data[i];
      if (k == 2) {
        tail_[0] = found[1];
        tail_[1] = found[0];
      } else if (k == 1) {
        tail_[0] = tail_[1];
        tail_[1] = found[0];
      }
    }
    return continues;
  }
  // What must come before an event llmgw adds to the stream so that it starts on a line
  // of its own after a blank line: glued onto an event the upstream left half-written,
  // SSE parsers would never see it.
  std::string_view EventSeparator() const {
    return tail_[1] != '\n' ? "\n\n" : tail_[0] != '\n' ? "\n" : "";
  }

  bool is_sse() const { return is_sse_; }
  // llmgw adds Cache-Control: no-cache to an SSE answer without one.
  bool needs_no_cache() const { return is_sse_ && !has_cache_control_; }
  uint64_t prompt_tokens() const { return prompt_tokens_; }
  uint64_t completion_tokens() const { return completion_tokens_; }

  // Tokens from `usage`: a cheap substring scan, no JSON parse.
  void ScanUsage(std::string_view data) {
    // memchr for the rare 'u' rather than string_view::find, which stops at every '"' of
    // the JSON (the scan was the biggest user-space cost per request).
    const char* usage = nullptr;
    const char* end = data.data() + data.size();
    for (const char* q = data.data(); !usage && q < end;) {
      q = static_cast<const char*>(std::memchr(q, 'u', static_cast<size_t>(end - q)));
      if (!q) break;
      if (q > data.data() && q[-1] == '"' && end - q >= 6 && std::memcmp(q, "usage\"", 6) == 0) usage = q;
      ++q;
    }
    if (!usage) return;
    // The Responses API (/v1/responses, passed through) names them input/output_tokens,
    // in the answer and in the stream's response.completed event: without them its tokens
    // escaped tokens/min limits and cost. Chat/completions names are read last and win.
    Grab(data, usage, "\"input_tokens\":", &prompt_tokens_);
    Grab(data, usage, "\"output_tokens\":", &completion_tokens_);
    Grab(data, usage, "\"prompt_tokens\":", &prompt_tokens_);
    Grab(data, usage, "\"completion_tokens\":", &completion_tokens_);
  }

 private:
  static void Grab(std::string_view data, const char* usage, std::string_view key, uint64_t* out) {
    // The keys follow `"usage"` closely: a plain find beats memmem's set-up here.
    const char* end = data.data() + data.size();
    std::string_view rest(usage, static_cast<size_t>(end - usage));
    size_t at = rest.find(key);
    if (at == std::string_view::npos) return;
    size_t pos = static_cast<size_t>(usage - data.data()) + at + key.size();
    while (pos < data.size() && data[pos] == ' ') ++pos;
    uint64_t v = 0;
    bool any = false;
    while (pos < data.size() && data[pos] >= '0' && data[pos] <= '9') {
      v = v * 10 + static_cast<uint64_t>(data[pos++] - '0');
      any = true;
    }
    if (any) *out = v;
  }

  bool is_sse_ = false;
  bool has_cache_control_ = false;
  uint64_t last_piece_us_ = 0;
  uint64_t prompt_tokens_ = 0;
  uint64_t completion_tokens_ = 0;
  char tail_[2] = {'\n', '\n'};
};

}  // namespace llmgw::dataplane
