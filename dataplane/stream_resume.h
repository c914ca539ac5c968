// Stream resume (docs/DATAPLANE.md, "Streams that survive their backend"): what llmgw
// keeps of a stream while relaying it, so that when its backend fails after the first
// byte another backend can continue it and the client still sees one stream.
//   StreamResumeState   fed every chunk that went to the client: the text so far per
//                       choice (bounded by gateway.resume_max_bytes, in pooled buffers),
//                       tokens, the first attempt's id/created/model, whether a tool call
//                       is open, n > 1; and the usage of the attempts before this one.
//   BuildContinuation   the continuation request: chat gets an assistant message with
//                       the text so far and continue_final_message: true,
//                       add_generation_prompt: false; completions get the text appended
//                       to the prompt; max_tokens / max_completion_tokens are reduced by
//                       what was sent; stream_options.include_usage is on.
//   EnsureIncludeUsage  the same request with stream_options.include_usage on (tokens
//                       are counted for every stream, asked or not).
//   RewriteChunk        a chunk as the client must see it: a continuation's id, created
//                       and model turned into the first attempt's, no second role delta,
//                       usage summed over the attempts, the usage-only chunk dropped when
//                       the client did not ask for it.
// None of them allocates per request once the pool is warm; they write into caller
// buffers and return a status.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "common/resume_outcome.h"
#include "dataplane/buffer_pool.h"
#include "dataplane/small_str.h"
#include "dataplane/sse_chunk.h"

namespace llmgw::dataplane {

class StreamResumeState {
 public:
  static constexpr int kKeptChoices = 4;  // text kept for choice indexes 0..3

  // A new stream; text buffers come from `pool` (as needed) and go back on Release().
  void Begin(BufferPool* pool, size_t max_bytes);
  void Release();

  // The request asked for `n` choices.
  void SetRequestedChoices(int64_t n) {
    if (n > 1) multi_ = true;
  }
  // A chunk that went to the client, as the upstream wrote it (`json` is the chunk
  // ParseChunk read into `info`).
  void OnChunk(std::string_view json, const ChunkInfo& info);
  // An event that went to the client but is no chunk we understand.
  void OnUnrecognised() { unrecognised_ = true; }
  // The current attempt failed: its usage (as reported, or else the tokens relayed)
  // joins the sum, and what follows comes from a continuation.
  void AttemptFailed();

  // Whether a continuation can carry on what was sent (kOk), or why not.
  ResumeOutcome Check() const;

  bool started() const { return chunks_ > 0; }        // a chunk reached the client
  bool continuation() const { return attempts_ > 0; } // chunks now come from a continuation
  uint32_t resumes() const { return attempts_; }
  bool role_sent() const { return role_sent_; }
  bool finished() const { return finished_; }          // choice 0 sent its finish_reason
  // Raw JSON values of the first attempt's first chunk (quotes included).
  std::string_view first_id() const { return id_.View(); }
  std::string_view first_created() const { return created_.View(); }
  std::string_view first_model() const { return model_.View(); }
  // The text sent so far for choice `index`, JSON-escaped as the backend wrote it.
  std::string_view text(int index) const {
    return index >= 0 && index < kKeptChoices && text_[index] ? std::string_view(*text_[index]) : std::string_view();
  }
  size_t kept_bytes() const { return kept_bytes_; }
  // Completion tokens sent to the client by the failed attempts (one per chunk with text
  // unless they reported usage): what max_tokens is reduced by.
  uint64_t tokens_before() const { return prev_completion_; }
  // The usage sum over the attempts, given the current attempt's own report.
  uint64_t SummedPrompt(uint64_t reported) const { return prev_prompt_ + reported; }
  uint64_t SummedCompletion(uint64_t reported) const { return prev_completion_ + reported; }
  // Tokens of the whole stream as far as known (for stats): reported usage where an
  // attempt sent one, relayed chunks otherwise.
  uint64_t TotalPrompt() const { return prev_prompt_ + cur_prompt_; }
  uint64_t TotalCompletion() const {
    return prev_completion_ + (cur_usage_ && cur_completion_ > cur_tokens_ ? cur_completion_ : cur_tokens_);
  }

 private:
  BufferPool* pool_ = nullptr;
  size_t max_bytes_ = 0;
  std::string* text_[kKeptChoices] = {};
  size_t kept_bytes_ = 0;
  SmallStr<256> id_;
  SmallStr<32> created_;
  SmallStr<256> model_;
  uint64_t chunks_ = 0;
  uint32_t attempts_ = 0;  // failed attempts so far (= continuations started)
  bool too_large_ = false, multi_ = false, tool_ = false, unrecognised_ = false;
  bool role_sent_ = false, finished_ = false;
  uint64_t prev_prompt_ = 0, prev_completion_ = 0;
  uint64_t cur_prompt_ = 0, cur_completion_ = 0, cur_tokens_ = 0;
  bool cur_usage_ = false;
};

// The continuation request's body for `body` (the client's JSON), into *out (cleared
// first). `chat`: /v1/chat/completions, else /v1/completions. `model`: the model name
// to send instead of the body's, empty to keep it. kOk on success.
ResumeOutcome BuildContinuation(std::string_view body, bool chat, std::string_view model,
                                const StreamResumeState& st, std::string* out);

// `body` with stream_options.include_usage set to true (and `model` instead of the
// body's unless empty), into *out. False when the body is not a JSON object.
bool EnsureIncludeUsage(std::string_view body, std::string_view model, std::string* out);

// What the client gets for one event. kAsIs: the event unchanged; kRewritten: *out
// holds it (appended); kDropped: nothing.
enum class ChunkAction : uint8_t { kAsIs, kRewritten, kDropped };
ChunkAction RewriteChunk(std::string_view event, const SseEventView& ev, const ChunkInfo& info,
                         const StreamResumeState& st, bool client_wants_usage, std::string* out);

}  // namespace llmgw::dataplane
