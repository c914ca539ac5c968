// Reading an OpenAI-style SSE stream event by event, for what llmgw must do with whole
// events rather than bytes: strip a usage chunk the client did not ask for, remember the
// text sent so far (stream resume), rewrite a continuation's chunks, and notice an error
// event inside a 200 stream.
//   SseEventSplitter  cuts relayed body pieces into complete events (a blank line ends
//                     one); a half-received event waits in a pooled buffer.
//   SplitEvent        an event's `event:` name and its `data:` payload.
//   ParseChunk        one pass (RapidJSON SAX, no DOM) over a chunk's JSON: the raw byte
//                     ranges of what may be rewritten (id, created, model, usage, a role
//                     member) and what resume needs (each choice's text, tool calls,
//                     finish_reason, usage counts, a top-level `error`).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

#include "dataplane/buffer_pool.h"

namespace llmgw::dataplane {

class SseEventSplitter {
 public:
  // A new stream. `max_event_bytes` bounds a half-received event held back.
  void Begin(BufferPool* pool, size_t max_event_bytes) {
    pool_ = pool;
    max_event_ = max_event_bytes;
    Reset();
  }
  // Forget a half-received event (its attempt failed: it never reached the client) and
  // give the buffer back.
  void Reset() {
    if (buf_) {
      pool_->Give(buf_);
      buf_ = nullptr;
    }
    line_len_ = 0;
    cr_ = false;
    overflow_ = false;
  }
  void Release() { Reset(); }

  // Cuts `piece` into events: on_event(std::string_view event) for each complete one
  // (terminating blank line included). Whole events inside `piece` are passed without a
  // copy. False when an event grew beyond max_event_bytes: then `held()` (what was held,
  // followed by the rest of `piece` from `*consumed`) must go on unsplit.
  template <typename OnEvent>
  bool Feed(std::string_view piece, OnEvent&& on_event, size_t* consumed) {
    size_t start = 0;  // first byte of piece not yet in an event or the buffer
    // An event ends at `end` (just past its blank line): whole in `piece`, or completing
    // what the buffer holds.
    auto event_to = [&](size_t end) {
      if (buf_ && !buf_->empty()) {
        buf_->append(piece.data() + start, end - start);
        on_event(std::string_view(*buf_));
        buf_->clear();
      } else {
        on_event(piece.substr(start, end - start));
      }
      start = end;
    };
    const char* p = piece.data();
    const size_t n = piece.size();
    if (!cr_ && (n == 0 || !std::memchr(p, '\r', n))) {
      // The common case, "\n" line ends only: memchr from line end to line end.
      size_t pos = 0;  // start of the current line (or of the piece)
      while (pos < n) {
        const char* nl = static_cast<const char*>(std::memchr(p + pos, '\n', n - pos));
        if (!nl) {
          line_len_ += n - pos;
          break;
        }
        size_t i = static_cast<size_t>(nl - p);
        size_t len = line_len_ + (i - pos);
        line_len_ = 0;
        pos = i + 1;
        if (len == 0) event_to(pos);  // a blank line: the event ends here
      }
    } else {
      for (size_t i = 0; i < n; ++i) {
        char ch = p[i];
        bool eol = false;
        if (ch == '\n') {
          if (cr_) {  // the '\n' of "\r\n": its '\r' ended the line already
            cr_ = false;
            continue;
          }
          eol = true;
        } else if (ch == '\r') {
          cr_ = true;
          eol = true;
        } else {
          cr_ = false;
          ++line_len_;
        }
        if (!eol) continue;
        if (line_len_ > 0) {
          line_len_ = 0;
          continue;
        }
        // A blank line: the event ends here (a "\r\n" ending takes its '\n' along).
        size_t end = i + 1;
        if (ch == '\r' && end < n && p[end] == '\n') {
          ++end;
          ++i;
          cr_ = false;
        }
        event_to(end);
      }
    }
    if (start < n) {
      if (!buf_) buf_ = pool_->Take();
      if (buf_->size() + (n - start) > max_event_) {
        overflow_ = true;
        *consumed = start;
        return false;
      }
      buf_->append(p + start, n - start);
    }
    *consumed = n;
    return true;
  }
  std::string_view held() const { return buf_ ? std::string_view(*buf_) : std::string_view(); }
  bool has_partial() const { return buf_ && !buf_->empty(); }
  bool overflow() const { return overflow_; }

 private:
  BufferPool* pool_ = nullptr;
  std::string* buf_ = nullptr;
  size_t max_event_ = 0;
  size_t line_len_ = 0;
  bool cr_ = false;
  bool overflow_ = false;
};

// One event's fields. `data` spans the payload of its single `data:` line (the optional
// space after the colon skipped); `data_offset` is where it starts in the event text.
struct SseEventView {
  std::string_view name;  // `event:` value, empty when absent
  std::string_view data;
  size_t data_offset = 0;
  int data_lines = 0;     // more than one: a multi-line payload, not an OpenAI chunk
  bool IsDone() const { return data_lines == 1 && data == "[DONE]"; }
};
void SplitEvent(std::string_view event, SseEventView* out);

// A byte range [begin, end) inside the chunk's JSON.
struct ByteRange {
  uint32_t begin = 0;
  uint32_t end = 0;
  bool empty() const { return end <= begin; }
  uint32_t size() const { return end - begin; }
  std::string_view In(std::string_view s) const { return s.substr(begin, end - begin); }
  bool operator==(const ByteRange&) const = default;
};

struct ChunkChoice {
  int64_t index = 0;
  ByteRange text;        // raw (still JSON-escaped) bytes inside the quotes of delta.content / text
  bool has_text = false;
  ByteRange role;        // the whole `"role":"..."` member of delta with one adjacent comma
  bool tool_calls = false;  // delta.tool_calls (or the legacy function_call) with a value
  bool finished = false;    // finish_reason not null
  bool operator==(const ChunkChoice&) const = default;
};

struct ChunkInfo {
  static constexpr int kMaxChoices = 8;
  bool json_object = false;  // the payload parsed as a JSON object
  bool error = false;        // a top-level `error` member with a value: a failure event
  int64_t error_code = 0;    // its numeric `code` (also "500" as a string), 0 when absent
  ByteRange id, created, model;  // raw values (strings with their quotes)
  bool has_choices = false;
  int num_choices = 0;       // choices in this chunk (beyond kMaxChoices: counted, not kept)
  ChunkChoice choices[kMaxChoices];
  bool has_usage = false;    // `usage` is an object (null does not count)
  ByteRange usage;           // the usage object, braces included
  uint64_t prompt_tokens = 0;
  uint64_t completion_tokens = 0;
  // The chunk stream_options.include_usage adds at the end: no choices, only usage.
  bool UsageOnly() const { return has_usage && has_choices && num_choices == 0; }
  bool operator==(const ChunkInfo&) const = default;  // ParseChunk against ParseChunkFull
};

// Parses a chunk's JSON payload. False when it is not a JSON object (ChunkInfo then says
// only that). Never allocates beyond the thread's reused reader stack. The ordinary chunk
// is read by a hand-written reader; whatever it is not sure of goes to ParseChunkFull.
bool ParseChunk(std::string_view json, ChunkInfo* out);
// ParseChunk's two halves. Fast: the hand-written reader; true when it was sure (a JSON
// object it reads exactly as RapidJSON would), false when the chunk needs the full
// parse. Full: RapidJSON's SAX reader, the reference (tests and the fuzzer compare them).
bool ParseChunkFast(std::string_view json, ChunkInfo* out);
bool ParseChunkFull(std::string_view json, ChunkInfo* out);

// The last chunk of a stream, remembered so that the next one can be read without a
// parse when it differs only in its text — what a backend sends on nearly every token:
// the same id, object, created, model, index, logprobs and finish_reason around a new
// delta. A chunk equal to the remembered one before the text's first byte and after its
// closing quote, with a valid JSON string in between, tokenises exactly like it, so its
// ChunkInfo is the remembered one with the text's end moved (the memo only keeps chunks
// with one choice whose every other range lies before the text). Anything else goes to
// ParseChunk and, when it qualifies, becomes the remembered chunk. No allocation: the
// bytes are kept in fixed arrays (a longer chunk is simply not remembered).
class ChunkShapeMemo {
 public:
  static constexpr size_t kMaxPrefix = 320, kMaxSuffix = 192;
  // Same result as ParseChunk(json, out).
  bool Parse(std::string_view json, ChunkInfo* out);
  void Clear() { valid_ = false; }
  uint64_t hits() const { return hits_; }  // chunks read through the memo (tests)

 private:
  void Remember(std::string_view json, const ChunkInfo& info);
  bool valid_ = false;
  uint16_t plen_ = 0, slen_ = 0;  // prefix: up to the text's first byte; suffix: from its closing quote
  char prefix_[kMaxPrefix];
  char suffix_[kMaxSuffix];
  ChunkInfo info_;
  uint64_t hits_ = 0;
};

// True when s holds only JSON whitespace from pos on: a document parsed with
// kParseStopWhenDoneFlag is whole only then (ParseChunk and ScanRequest both ask).
inline bool OnlyJsonWhitespaceFrom(std::string_view s, size_t pos) {
  for (; pos < s.size(); ++pos)
    if (s[pos] != ' ' && s[pos] != '\t' && s[pos] != '\r' && s[pos] != '\n') return false;
  return true;
}

}  // namespace llmgw::dataplane
