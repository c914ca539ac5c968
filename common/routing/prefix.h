// Computes RequestInfo::prefix for prefix_affinity from a request body, on the data-plane
// hot path: no allocation, bounded work, never throws.
#pragma once

#include <cstddef>
#include <string_view>

namespace llmgw::routing {

// Writes the leading prompt bytes of an OpenAI request body into buf (at most cap bytes)
// and returns how many were written:
//   chat/completions: the `content` of each message in order (system prompt first, as
//     clients send it; for content arrays, each part's `text`), each followed by '\n';
//   completions: the `prompt` string (or the strings of a `prompt` array).
// Returns 0 when the body is not JSON, has neither field, or the prompt is token ids.
// Parsing stops as soon as buf is full, so long prompts cost only their first cap bytes.
size_t ExtractPrefix(std::string_view body, char* buf, size_t cap);

}  // namespace llmgw::routing
