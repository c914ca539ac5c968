// Reads the few top-level fields of an OpenAI request body the gateway needs (`model`,
// `stream`, `user`, the configured priority field) with RapidJSON's SAX reader, so the
// body is validated in one pass without building a DOM or copying prompts. It also
// records where the raw `model` string sits, so an alias can be rewritten in place.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "common/shm_layout.h"

namespace llmgw::dataplane {

// The longest model name (or alias) the gateway knows: what the shared-memory snapshot
// holds. A request naming a longer one is refused with 400.
constexpr size_t kMaxModelName = shm::kNameLen - 1;

struct RequestFields {
  bool valid_json = false;
  bool is_object = false;
  bool has_model = false;
  bool model_is_string = false;
  bool model_too_long = false;  // longer than kMaxModelName; `model` holds its first bytes
  bool stream = false;
  bool include_usage = false;   // stream_options.include_usage: true
  int64_t n = 1;                // choices asked for
  bool has_priority = false;
  int64_t priority = 0;
  char model[kMaxModelName + 1] = {};
  size_t model_len = 0;
  char user[128] = {};
  size_t user_len = 0;
  // Byte range of the raw model value in the body, quotes included (for the rewrite).
  size_t model_raw_begin = 0;
  size_t model_raw_end = 0;
  char error[96] = {};  // parse error text when !valid_json
  std::string_view Model() const { return {model, model_len}; }
  std::string_view User() const { return {user, user_len}; }
};

// Parses body[0, len). Never throws, never allocates beyond the reader's reused stack.
void ReadRequestFields(const char* body, size_t len, std::string_view priority_field,
                       RequestFields* out);

}  // namespace llmgw::dataplane
