// Pure translation between OpenAI's chat completions and Anthropic's Messages API, both
// ways, streaming included. Everything writes into caller-provided buffers (OutBuf) and
// parses with a RapidJSON pool over caller-provided scratch memory, so a worker thread
// translates without heap allocations as long as the scratch holds the parsed request
// (about twice the body; a larger request makes RapidJSON take more from the heap rather
// than fail). Errors are Status values naming what is wrong, for a 400 in OpenAI's shape.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "common/error.h"
#include "common/providers/provider.h"

namespace llmgw::providers {

// OpenAI chat request -> Anthropic Messages request. upstream_model replaces `model` when
// non-empty. system/developer messages become `system`; user content parts become text or
// image blocks; assistant tool_calls become tool_use blocks (their arguments must be JSON
// objects); tool messages become tool_result blocks; max_tokens (or
// max_completion_tokens; default kDefaultMaxTokens, Anthropic requires one), stop ->
// stop_sequences, temperature (capped at 1, Anthropic's range), top_p, stream, tools ->
// {name, description, input_schema}, tool_choice, user -> metadata.user_id. *stream tells
// whether the answer will be streamed.
constexpr int64_t kDefaultMaxTokens = 4096;
Status AnthropicRequestFromOpenAi(std::string_view openai_body, std::string_view upstream_model, char* scratch,
                                  size_t scratch_len, OutBuf* out, bool* stream);

// Anthropic message (non-streaming answer) -> OpenAI chat.completion: text blocks joined
// into message.content, tool_use blocks into message.tool_calls, stop_reason into
// finish_reason, usage into prompt/completion/total tokens.
Status OpenAiResponseFromAnthropic(std::string_view anthropic_body, int64_t created, char* scratch, size_t scratch_len,
                                   OutBuf* out);

// Anthropic error answer -> OpenAI's error shape {"error":{"message","type","param","code"}};
// returns the status the client gets (Anthropic's 529 overloaded becomes 503; others kept).
int OpenAiErrorFromAnthropic(int status, std::string_view anthropic_body, char* scratch, size_t scratch_len,
                             OutBuf* out);

// Anthropic's SSE stream -> OpenAI chat.completion.chunk events ("data: {...}\n\n"), ending
// with "data: [DONE]\n\n". One per streamed answer; fixed size, no allocation.
class AnthropicStreamTranslator {
 public:
  static constexpr size_t kMaxEventBytes = 64 * 1024;  // a longer event is a protocol error

  void Reset(int64_t created);
  // Raw bytes of the upstream body, in any pieces: complete events are translated into out.
  Status Feed(std::string_view bytes, OutBuf* out);
  // One event, already split (its `event:` name and its `data:` payload).
  Status OnEvent(std::string_view event, std::string_view data, OutBuf* out);
  bool done() const { return done_; }
  uint64_t input_tokens() const { return input_tokens_; }
  uint64_t output_tokens() const { return output_tokens_; }

 private:
  Status Dispatch(OutBuf* out);
  void ChunkHead(OutBuf* out) const;

  char id_[128] = {};
  char model_[128] = {};
  int64_t created_ = 0;
  uint64_t input_tokens_ = 0, output_tokens_ = 0;
  int tool_index_ = -1;    // OpenAI tool_calls index of the current tool_use block
  bool block_is_tool_ = false;
  bool done_ = false;
  size_t pending_len_ = 0;  // bytes of an incomplete event
  char pending_[kMaxEventBytes];
  char scratch_[2 * kMaxEventBytes];
};

}  // namespace llmgw::providers
