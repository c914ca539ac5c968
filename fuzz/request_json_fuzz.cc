// libFuzzer target for the data plane's JSON field reader (dataplane/request_json.cc) on
// its own: any body must parse without crashing or undefined behaviour, and what it
// reports must be consistent with the bytes (the raw model range is what the alias
// rewrite overwrites in place, so it must lie inside the body and be a quoted string).
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string_view>

#include "dataplane/request_json.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const char* body = reinterpret_cast<const char*>(data);
  llmgw::dataplane::RequestFields f;
  llmgw::dataplane::ReadRequestFields(body, size, "priority", &f);
  if (f.model_len >= sizeof(f.model) || f.user_len >= sizeof(f.user)) __builtin_trap();
  if (std::memchr(f.error, 0, sizeof(f.error)) == nullptr) __builtin_trap();
  if (f.valid_json && f.model_is_string) {
    if (!(f.model_raw_begin < f.model_raw_end && f.model_raw_end <= size)) __builtin_trap();
    if (body[f.model_raw_begin] != '"' || body[f.model_raw_end - 1] != '"') __builtin_trap();
  }
  if (f.valid_json != (f.error[0] == 0)) __builtin_trap();
  // An empty priority field name must never match a key (the feature is off).
  llmgw::dataplane::ReadRequestFields(body, size, std::string_view(), &f);
  if (f.has_priority) __builtin_trap();
  return 0;
}
