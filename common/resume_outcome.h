// What became of a stream whose backend failed after the first byte (stream resume,
// docs/DATAPLANE.md): declared once, for the data plane's decision, its log line and
// access-log field, and the `outcome` label of llm_gateway_stream_resumes_total.
#pragma once

#include <cstdint>
#include <string_view>

namespace llmgw {

enum class ResumeOutcome : uint8_t {
  kOk = 0,           // continued on another backend and finished (as a check: can be continued)
  kFailed,           // continued, but the continuations failed too (retries spent)
  kEnded,            // the text was complete (finish_reason sent): llmgw ended the stream itself
  kDisabled,         // gateway.resume_streams: false
  kTooLarge,         // the text so far passed gateway.resume_max_bytes
  kMultipleChoices,  // n > 1
  kToolCall,         // a tool-call delta was sent: it cannot be continued as text
  kUnrecognised,     // an event that is not an OpenAI chunk went to the client
  kRequestShape,     // prompt as token ids or several prompts, echo, a client-continued final message
  kNothingLeft,      // max_tokens already spent
  kNoBackend,        // no other eligible backend
  kNoRetries,        // the retry budget is spent, or the gateway drains
  kCount
};

constexpr std::string_view ResumeOutcomeName(ResumeOutcome r) {
  switch (r) {
    case ResumeOutcome::kOk: return "ok";
    case ResumeOutcome::kFailed: return "failed";
    case ResumeOutcome::kEnded: return "ended";
    case ResumeOutcome::kDisabled: return "disabled";
    case ResumeOutcome::kTooLarge: return "too_large";
    case ResumeOutcome::kMultipleChoices: return "multiple_choices";
    case ResumeOutcome::kToolCall: return "tool_call";
    case ResumeOutcome::kUnrecognised: return "unrecognised_event";
    case ResumeOutcome::kRequestShape: return "request_shape";
    case ResumeOutcome::kNothingLeft: return "nothing_left";
    case ResumeOutcome::kNoBackend: return "no_backend";
    case ResumeOutcome::kNoRetries: return "no_retries";
    case ResumeOutcome::kCount: break;
  }
  return "unknown";
}

}  // namespace llmgw
