// SAX handler that keeps only top-level fields; see request_json.h.
#include "dataplane/request_json.h"

#include <rapidjson/error/en.h>
#include <rapidjson/memorystream.h>
#include <rapidjson/reader.h>

#include <algorithm>
#include <cstdio>
#include <cstring>

namespace llmgw::dataplane {
namespace {

enum class Field { kOther, kModel, kStream, kUser, kPriority, kStreamOptions, kIncludeUsage, kN };

// RapidJSON's reader recurses once per nesting level: a body of a few thousand '[' used
// to overflow the worker's stack and kill llmgw (found by request_json_fuzz). Real
// requests (tool schemas included) nest a few dozen levels at most.
constexpr int kMaxDepth = 128;

struct TopLevelHandler : rapidjson::BaseReaderHandler<rapidjson::UTF8<>, TopLevelHandler> {
  RequestFields* out;
  std::string_view priority_field;
  const rapidjson::MemoryStream* stream;
  int depth = 0;
  bool too_deep = false;
  Field pending = Field::kOther;
  size_t key_end = 0;
  bool in_stream_options = false;  // depth 2 is the stream_options object
  Field top_key = Field::kOther;   // the last key at depth 1

  // Values only count at depth 1 (members of the top-level object).
  bool AtTop() const { return depth == 1; }
  void Done() { pending = Field::kOther; }
  bool TooDeep() {
    too_deep = true;
    return false;  // stops the reader before it recurses further
  }

  bool Default() {
    Done();
    return true;
  }
  bool Bool(bool b) {
    if (AtTop() && pending == Field::kStream) out->stream = b;
    if (depth == 2 && in_stream_options && pending == Field::kIncludeUsage) out->include_usage = b;
    Done();
    return true;
  }
  bool Int(int i) { return Int64(i); }
  bool Uint(unsigned u) { return Int64(u); }
  bool Uint64(uint64_t u) { return Int64(static_cast<int64_t>(u > INT64_MAX ? INT64_MAX : u)); }
  bool Int64(int64_t i) {
    if (AtTop() && pending == Field::kN) out->n = i;
    if (AtTop() && pending == Field::kPriority) {
      out->has_priority = true;
      out->priority = i;
    }
    Done();
    return true;
  }
  // Any number may be a double ("temperature": 1e300); only the priority field is turned
  // into an integer, clamped first: a double outside int64's range cast to int64 is
  // undefined behaviour.
  bool Double(double d) {
    if (!(AtTop() && pending == Field::kPriority)) return Default();
    int64_t v;
    if (d != d) v = 0;                                  // NaN (not valid JSON; be safe)
    else if (d >= 9223372036854775808.0) v = INT64_MAX;  // 2^63 and above
    else if (d < -9223372036854775808.0) v = INT64_MIN;
    else v = static_cast<int64_t>(d);
    return Int64(v);
  }
  bool String(const char* s, rapidjson::SizeType len, bool) {
    if (AtTop()) {
      if (pending == Field::kModel) {
        out->model_is_string = true;
        // A longer name can match no model (shm holds kMaxModelName bytes): the caller
        // answers 400 instead of looking up a truncated name.
        out->model_too_long = len > kMaxModelName;
        out->model_len = std::min<size_t>(len, kMaxModelName);
        std::memcpy(out->model, s, out->model_len);
        // The raw value starts at the first quote after the key's colon.
        size_t end = stream->Tell();
        const char* base = stream->begin_;
        size_t b = key_end;
        while (b < end && base[b] != '"') ++b;
        out->model_raw_begin = b;
        out->model_raw_end = end;
      } else if (pending == Field::kUser) {
        out->user_len = std::min<size_t>(len, sizeof(out->user) - 1);
        std::memcpy(out->user, s, out->user_len);
      }
    }
    Done();
    return true;
  }
  bool StartObject() {
    if (depth == 0) out->is_object = true;
    if (++depth > kMaxDepth) return TooDeep();
    if (depth == 2 && top_key == Field::kStreamOptions) in_stream_options = true;
    Done();
    return true;
  }
  bool Key(const char* s, rapidjson::SizeType len, bool) {
    pending = Field::kOther;
    std::string_view k(s, len);
    if (depth == 2 && in_stream_options) {
      if (k == "include_usage") pending = Field::kIncludeUsage;
      return true;
    }
    if (depth != 1) return true;
    if (k == "model") {
      pending = Field::kModel;
      out->has_model = true;
    } else if (k == "stream") {
      pending = Field::kStream;
    } else if (k == "user") {
      pending = Field::kUser;
    } else if (k == "stream_options") {
      pending = Field::kStreamOptions;
    } else if (k == "n") {
      pending = Field::kN;
    } else if (!priority_field.empty() && k == priority_field) {
      pending = Field::kPriority;
    }
    top_key = pending;
    key_end = stream->Tell();
    return true;
  }
  bool EndObject(rapidjson::SizeType) {
    if (depth == 2) in_stream_options = false;
    --depth;
    Done();
    return true;
  }
  bool StartArray() {
    if (++depth > kMaxDepth) return TooDeep();
    Done();
    return true;
  }
  bool EndArray(rapidjson::SizeType) {
    --depth;
    Done();
    return true;
  }
};

}  // namespace

void ReadRequestFields(const char* body, size_t len, std::string_view priority_field,
                       RequestFields* out) {
  *out = RequestFields{};
  // One reader per thread: its internal stack keeps its capacity between requests.
  thread_local rapidjson::Reader reader;
  rapidjson::MemoryStream ms(body, len);
  TopLevelHandler h;
  h.out = out;
  h.priority_field = priority_field;
  h.stream = &ms;
  rapidjson::ParseResult r = reader.Parse<rapidjson::kParseStopWhenDoneFlag>(ms, h);
  if (h.too_deep) {
    std::snprintf(out->error, sizeof(out->error), "JSON nested deeper than %d levels at offset %zu",
                  kMaxDepth, ms.Tell());
    return;
  }
  if (r.IsError()) {
    std::snprintf(out->error, sizeof(out->error), "%s at offset %zu",
                  rapidjson::GetParseError_En(r.Code()), r.Offset());
    return;
  }
  // Anything but whitespace after the value is invalid too.
  for (size_t i = ms.Tell(); i < len; ++i) {
    char c = body[i];
    if (c != ' ' && c != '\n' && c != '\r' && c != '\t') {
      std::snprintf(out->error, sizeof(out->error), "trailing data at offset %zu", i);
      return;
    }
  }
  out->valid_json = true;
}

}  // namespace llmgw::dataplane
