// SSE event fields and the one-pass chunk reader; see sse_chunk.h.
#include "dataplane/sse_chunk.h"

#include <rapidjson/memorystream.h>
#include <rapidjson/reader.h>

namespace llmgw::dataplane {

void SplitEvent(std::string_view event, SseEventView* out) {
  *out = SseEventView{};
  size_t pos = 0;
  while (pos < event.size()) {
    size_t eol = pos;
    while (eol < event.size() && event[eol] != '\n' && event[eol] != '\r') ++eol;
    std::string_view line = event.substr(pos, eol - pos);
    size_t colon = line.find(':');
    std::string_view field = colon == std::string_view::npos ? line : line.substr(0, colon);
    size_t vpos = colon == std::string_view::npos ? line.size() : colon + 1;
    if (vpos < line.size() && line[vpos] == ' ') ++vpos;
    std::string_view value = line.substr(vpos);
    if (field == "data") {
      if (++out->data_lines == 1) {
        out->data = value;
        out->data_offset = pos + vpos;
      }
    } else if (field == "event") {
      out->name = value;
    }
    pos = eol;
    if (pos < event.size() && event[pos] == '\r') ++pos;
    if (pos < event.size() && event[pos] == '\n') ++pos;
  }
}

namespace {

// Which member a value belongs to, by depth: 1 top level, 2 inside `usage` or the
// `choices` array, 3 a choice, 4 its `delta`.
enum class Field : uint8_t {
  kOther, kId, kCreated, kModel, kChoices, kUsage, kError, kObject,  // top level
  kPromptTokens, kCompletionTokens,                          // usage
  kCode,                                                     // error
  kIndex, kDelta, kText, kFinish,                            // choice
  kContent, kRole, kToolCalls,                               // delta
};

constexpr int kMaxDepth = 128;

struct ChunkHandler : rapidjson::BaseReaderHandler<rapidjson::UTF8<>, ChunkHandler> {
  ChunkInfo* out;
  const rapidjson::MemoryStream* ms;
  std::string_view json;
  int depth = 0;
  Field key[5] = {};         // the current key at depths 1..4
  size_t key_end = 0;      // offset just after the last key's closing quote
  size_t key_begin = 0;    // offset of that key's opening quote (raw "role" only)
  bool in_choices = false; // depth 2 is the choices array
  bool in_usage = false;   // depth 2 is the usage object
  bool in_error = false;   // depth 2 is the error object
  bool in_delta = false;   // depth 4 is a choice's delta
  ChunkChoice* choice = nullptr;
  bool too_deep = false;

  size_t Tell() const { return ms->Tell(); }
  // Where the value after the last key starts: past ':' and whitespace.
  size_t ValueBegin() const {
    size_t p = key_end;
    while (p < json.size() && (json[p] == ' ' || json[p] == '\t' || json[p] == '\n' || json[p] == '\r' ||
                               json[p] == ':'))
      ++p;
    return p;
  }
  static ByteRange Range(size_t b, size_t e) { return {static_cast<uint32_t>(b), static_cast<uint32_t>(e)}; }
  Field Cur() const { return depth >= 1 && depth <= 4 ? key[depth] : Field::kOther; }

  bool Null() {
    if (depth == 1 && Cur() == Field::kError) out->error = false;
    return true;
  }
  bool Bool(bool) { return Scalar(); }
  bool Scalar() {
    if (depth == 1 && Cur() == Field::kError) out->error = true;
    return true;
  }
  bool Int(int i) { return Int64(i); }
  bool Uint(unsigned u) { return Int64(u); }
  bool Int64(int64_t i) { return Number(i < 0 ? 0 : static_cast<uint64_t>(i), i); }
  bool Uint64(uint64_t u) { return Number(u, u > INT64_MAX ? INT64_MAX : static_cast<int64_t>(u)); }
  bool Double(double) { return Scalar(); }
  bool Number(uint64_t u, int64_t i) {
    if (depth == 1 && Cur() == Field::kCreated) out->created = Range(ValueBegin(), Tell());
    else if (depth == 1 && Cur() == Field::kError) out->error = true;
    else if (depth == 2 && in_usage && Cur() == Field::kPromptTokens) out->prompt_tokens = u;
    else if (depth == 2 && in_usage && Cur() == Field::kCompletionTokens) out->completion_tokens = u;
    else if (depth == 2 && in_error && Cur() == Field::kCode) out->error_code = i;
    else if (depth == 1 && Cur() == Field::kCode) out->error_code = i;
    else if (depth == 3 && choice && Cur() == Field::kIndex) choice->index = i;
    return true;
  }
  bool String(const char* s, rapidjson::SizeType len, bool) {
    size_t end = Tell();
    if (depth == 2 && in_error && Cur() == Field::kCode) {
      int64_t v = 0;
      for (rapidjson::SizeType i = 0; i < len && i < 6 && s[i] >= '0' && s[i] <= '9'; ++i) v = v * 10 + (s[i] - '0');
      out->error_code = v;
    }
    if (depth == 1) {
      switch (Cur()) {
        case Field::kId: out->id = Range(ValueBegin(), end); break;
        case Field::kModel: out->model = Range(ValueBegin(), end); break;
        case Field::kCreated: out->created = Range(ValueBegin(), end); break;
        case Field::kError: out->error = true; break;
        // vLLM's older shape: the error fields at the top, {"object":"error",...,"code":500}
        case Field::kObject:
          if (std::string_view(s, len) == "error") out->error = true;
          break;
        case Field::kCode: {
          int64_t v = 0;
          for (rapidjson::SizeType i = 0; i < len && i < 6 && s[i] >= '0' && s[i] <= '9'; ++i) v = v * 10 + (s[i] - '0');
          out->error_code = v;
          break;
        }
        default: break;
      }
    } else if (depth == 3 && choice) {
      if (Cur() == Field::kText) {
        choice->text = Range(ValueBegin() + 1, end - 1);
        choice->has_text = true;
      } else if (Cur() == Field::kFinish) {
        choice->finished = true;
      }
    } else if (depth == 4 && in_delta && choice) {
      if (Cur() == Field::kContent) {
        choice->text = Range(ValueBegin() + 1, end - 1);
        choice->has_text = true;
      } else if (Cur() == Field::kRole) {
        RoleMember(end);
      }
    }
    return true;
  }
  // The `"role":"..."` member and one comma next to it, so removing the range leaves
  // valid JSON: the comma after it, or else the one before it.
  void RoleMember(size_t value_end) {
    if (key_begin >= key_end) return;  // the key was spelled with escapes: leave it
    auto ws = [&](char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; };
    size_t b = key_begin, e = value_end;
    size_t p = e;
    while (p < json.size() && ws(json[p])) ++p;
    if (p < json.size() && json[p] == ',') {
      e = p + 1;
      while (e < json.size() && ws(json[e])) ++e;
    } else {
      size_t q = b;
      while (q > 0 && ws(json[q - 1])) --q;
      if (q > 0 && json[q - 1] == ',') b = q - 1;
    }
    choice->role = Range(b, e);
  }
  bool StartObject() {
    if (++depth > kMaxDepth) return TooDeep();
    if (depth == 1) {
      out->json_object = true;
    } else if (depth == 2 && key[1] == Field::kUsage) {
      in_usage = true;
      out->has_usage = true;
      out->usage.begin = static_cast<uint32_t>(ValueBegin());
    } else if (depth == 2 && key[1] == Field::kError) {
      out->error = true;
      in_error = true;
    } else if (depth == 3 && in_choices) {
      int n = out->num_choices++;
      choice = n < ChunkInfo::kMaxChoices ? &out->choices[n] : nullptr;
    } else if (depth == 4 && choice && key[3] == Field::kDelta) {
      in_delta = true;
    } else if (depth == 5 && in_delta && key[4] == Field::kToolCalls && choice) {
      choice->tool_calls = true;  // a legacy function_call object
    }
    if (depth <= 4) key[depth] = Field::kOther;
    return true;
  }
  bool EndObject(rapidjson::SizeType) {
    if (depth == 2 && in_usage) {
      in_usage = false;
      out->usage.end = static_cast<uint32_t>(Tell());
    } else if (depth == 2 && in_error) {
      in_error = false;
    } else if (depth == 3 && in_choices) {
      choice = nullptr;
    } else if (depth == 4) {
      in_delta = false;
    }
    --depth;
    return true;
  }
  bool StartArray() {
    if (++depth > kMaxDepth) return TooDeep();
    if (depth == 2 && key[1] == Field::kChoices) {
      in_choices = true;
      out->has_choices = true;
    } else if (depth == 2 && key[1] == Field::kError) {
      out->error = true;
    } else if (depth == 5 && in_delta && key[4] == Field::kToolCalls && choice) {
      choice->tool_calls = true;
    }
    return true;
  }
  bool EndArray(rapidjson::SizeType) {
    if (depth == 2) in_choices = false;
    --depth;
    return true;
  }
  bool Key(const char* s, rapidjson::SizeType len, bool) {
    key_end = Tell();
    std::string_view k(s, len);
    // The raw key is k with quotes when it had no escapes.
    key_begin = key_end >= len + 2 && json.substr(key_end - len - 2, len + 2).substr(1, len) == k ? key_end - len - 2
                                                                                                     : key_end;
    using K = Field;
    Field v = K::kOther;
    if (depth == 1) {
      if (k == "id") v = K::kId;
      else if (k == "created") v = K::kCreated;
      else if (k == "model") v = K::kModel;
      else if (k == "choices") v = K::kChoices;
      else if (k == "usage") v = K::kUsage;
      else if (k == "error") v = K::kError;
      else if (k == "object") v = K::kObject;
      else if (k == "code") v = K::kCode;
    } else if (depth == 2 && in_usage) {
      if (k == "prompt_tokens") v = K::kPromptTokens;
      else if (k == "completion_tokens") v = K::kCompletionTokens;
    } else if (depth == 2 && in_error) {
      if (k == "code") v = K::kCode;
    } else if (depth == 3 && choice) {
      if (k == "index") v = K::kIndex;
      else if (k == "delta") v = K::kDelta;
      else if (k == "text") v = K::kText;
      else if (k == "finish_reason") v = K::kFinish;
    } else if (depth == 4 && in_delta) {
      if (k == "content") v = K::kContent;
      else if (k == "role") v = K::kRole;
      else if (k == "tool_calls" || k == "function_call") v = K::kToolCalls;
    }
    if (depth >= 1 && depth <= 4) key[depth] = v;
    return true;
  }
  bool TooDeep() {
    too_deep = true;
    return false;
  }
};

}  // namespace

bool ParseChunk(std::string_view json, ChunkInfo* out) {
  *out = ChunkInfo{};
  thread_local rapidjson::Reader reader;
  rapidjson::MemoryStream ms(json.data(), json.size());
  ChunkHandler h;
  h.out = out;
  h.ms = &ms;
  h.json = json;
  rapidjson::ParseResult r = reader.Parse<rapidjson::kParseStopWhenDoneFlag>(ms, h);
  // Anything but whitespace after the object: not a chunk (its rewrite would keep it).
  if (r.IsError() || h.too_deep || !out->json_object || !OnlyJsonWhitespaceFrom(json, ms.Tell())) {
    *out = ChunkInfo{};
    return false;
  }
  return true;
}

}  // namespace llmgw::dataplane
