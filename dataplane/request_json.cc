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

enum class Field { kOther, kModel, kStream, kUser, kPriority };

struct TopLevelHandler : rapidjson::BaseReaderHandler<rapidjson::UTF8<>, TopLevelHandler> {
  RequestFields* out;
  std::string_view priority_field;
  const rapidjson::MemoryStream* stream;
  int depth = 0;
  Field pending = Field::kOther;
  size_t key_end = 0;

  // Values only count at depth 1 (members of the top-level object).
  bool AtTop() const { return depth == 1; }
  void Done() { pending = Field::kOther; }

  bool Default() {
    Done();
    return true;
  }
  bool Bool(bool b) {
    if (AtTop() && pending == Field::kStream) out->stream = b;
    Done();
    return true;
  }
  bool Int(int i) { return Int64(i); }
  bool Uint(unsigned u) { return Int64(u); }
  bool Uint64(uint64_t u) { return Int64(static_cast<int64_t>(u > INT64_MAX ? INT64_MAX : u)); }
  bool Int64(int64_t i) {
    if (AtTop() && pending == Field::kPriority) {
      out->has_priority = true;
      out->priority = i;
    }
    Done();
    return true;
  }
  bool Double(double d) {
    // Only the priority field is read as a number. Clamp before converting: a double
    // outside int64's range (1e300, NaN) is undefined behaviour in the cast.
    if (!(AtTop() && pending == Field::kPriority)) return Default();
    if (d != d) return Int64(0);
    if (d >= 9.2e18) return Int64(INT64_MAX);
    if (d <= -9.2e18) return Int64(INT64_MIN);
    return Int64(static_cast<int64_t>(d));
  }
  bool String(const char* s, rapidjson::SizeType len, bool) {
    if (AtTop()) {
      if (pending == Field::kModel) {
        out->model_is_string = true;
        out->model_len = std::min<size_t>(len, sizeof(out->model) - 1);
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
    ++depth;
    Done();
    return true;
  }
  bool Key(const char* s, rapidjson::SizeType len, bool) {
    pending = Field::kOther;
    if (depth != 1) return true;
    std::string_view k(s, len);
    if (k == "model") {
      pending = Field::kModel;
      out->has_model = true;
    } else if (k == "stream") {
      pending = Field::kStream;
    } else if (k == "user") {
      pending = Field::kUser;
    } else if (!priority_field.empty() && k == priority_field) {
      pending = Field::kPriority;
    }
    key_end = stream->Tell();
    return true;
  }
  bool EndObject(rapidjson::SizeType) {
    --depth;
    Done();
    return true;
  }
  bool StartArray() {
    ++depth;
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
