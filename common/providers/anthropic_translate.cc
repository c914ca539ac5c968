// See anthropic_translate.h.
#include "common/providers/anthropic_translate.h"

#include <rapidjson/document.h>
#include <rapidjson/error/en.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>

namespace llmgw::providers {
namespace {

using Alloc = rapidjson::MemoryPoolAllocator<>;
using Doc = rapidjson::GenericDocument<rapidjson::UTF8<>, Alloc, Alloc>;
using Value = rapidjson::GenericValue<rapidjson::UTF8<>, Alloc>;

// A document whose values and parse stack live in the caller's scratch. Both pools start
// on a 16-byte boundary: RapidJSON writes its chunk headers (pointers) at their start, and
// a caller's buffer of any size split at 3/4 was misaligned (UBSan: misaligned ChunkHeader).
struct ScratchDoc {
  ScratchDoc(char* scratch, size_t len) : ScratchDoc(Aligned(scratch, &len), len, Split(len)) {}
  Alloc values, stack;
  Doc doc;

 private:
  ScratchDoc(char* p, size_t len, size_t split)
      : values(p, split), stack(p + split, len - split), doc(&values, len - split, &stack) {}
  static char* Aligned(char* p, size_t* len) {
    size_t skip = (16 - reinterpret_cast<uintptr_t>(p) % 16) % 16;
    *len = *len > skip ? *len - skip : 0;
    return p + skip;
  }
  static size_t Split(size_t len) { return (len - len / 4) & ~size_t{15}; }
};

Error Bad(const char* fmt, const char* detail = "") {
  return Error(ErrorKind::kBadRequest, ErrorSide::kDownstream, false, fmt, detail);
}

std::string_view Str(const Value& v) { return {v.GetString(), v.GetStringLength()}; }

bool IsStr(const Value& o, const char* k) { return o.IsObject() && o.HasMember(k) && o[k].IsString(); }

void PutString(OutBuf* out, std::string_view s) { out->Put('"').PutJsonEscaped(s).Put('"'); }

void PutNumber(OutBuf* out, const Value& v) {
  if (v.IsUint64()) {
    out->PutUint(v.GetUint64());
  } else if (v.IsInt64()) {
    out->Put('-').PutUint(static_cast<uint64_t>(-(v.GetInt64() + 1)) + 1);
  } else {
    char b[32];
    int n = std::snprintf(b, sizeof b, "%.17g", v.GetDouble());
    out->Put(std::string_view(b, static_cast<size_t>(n)));
  }
}

// Any JSON value, compact. Depth is bounded by the parser's own (the request was parsed).
void PutValue(OutBuf* out, const Value& v) {
  if (v.IsNull()) {
    out->Put("null");
  } else if (v.IsBool()) {
    out->Put(v.GetBool() ? "true" : "false");
  } else if (v.IsNumber()) {
    PutNumber(out, v);
  } else if (v.IsString()) {
    PutString(out, Str(v));
  } else if (v.IsArray()) {
    out->Put('[');
    bool first = true;
    for (const auto& e : v.GetArray()) {
      if (!first) out->Put(',');
      first = false;
      PutValue(out, e);
    }
    out->Put(']');
  } else {
    out->Put('{');
    bool first = true;
    for (const auto& m : v.GetObject()) {
      if (!first) out->Put(',');
      first = false;
      PutString(out, Str(m.name));
      out->Put(':');
      PutValue(out, m.value);
    }
    out->Put('}');
  }
}

// A value written as a JSON string holding its JSON text (OpenAI's tool arguments): the
// text goes into a per-thread buffer first, then out escaped. A tool input beyond that
// buffer is an error, never truncated.
Status PutValueAsJsonString(OutBuf* out, const Value& v) {
  static thread_local char tmp[256 * 1024];
  OutBuf t(tmp, sizeof tmp);
  PutValue(&t, v);
  if (!t.ok()) return Error(ErrorKind::kUpstreamProtocol, ErrorSide::kUpstream, false, "tool input over 256 KiB");
  PutString(out, t.view());
  return Status::Ok();
}

Status ParseInto(ScratchDoc* sd, std::string_view body, const char* what) {
  sd->doc.Parse(body.data(), body.size());
  if (sd->doc.HasParseError())
    return Error(ErrorKind::kBadRequest, ErrorSide::kDownstream, false, "%s is not valid JSON at offset %zu: %s", what,
                 sd->doc.GetErrorOffset(), rapidjson::GetParseError_En(sd->doc.GetParseError()));
  if (!sd->doc.IsObject()) return Bad("%s must be a JSON object", what);
  return Status::Ok();
}

// Text of an OpenAI content value (string or array of parts), for system prompts and tool
// results, appended to out escaped (inside a string).
bool PutContentText(OutBuf* out, const Value& c) {
  if (c.IsString()) {
    out->PutJsonEscaped(Str(c));
    return true;
  }
  if (!c.IsArray()) return c.IsNull();
  bool first = true;
  for (const auto& p : c.GetArray()) {
    if (!IsStr(p, "text")) continue;
    if (!first) out->Put("\\n");
    first = false;
    out->PutJsonEscaped(Str(p["text"]));
  }
  return true;
}

// One user content part -> an Anthropic block.
Status PutUserPart(OutBuf* out, const Value& p) {
  if (!IsStr(p, "type")) return Bad("messages: each content part needs a type");
  std::string_view type = Str(p["type"]);
  if (type == "text") {
    if (!IsStr(p, "text")) return Bad("messages: text parts need text");
    out->Put("{\"type\":\"text\",\"text\":");
    PutString(out, Str(p["text"]));
    out->Put('}');
    return Status::Ok();
  }
  if (type == "image_url") {
    std::string_view url;
    if (p.HasMember("image_url") && IsStr(p["image_url"], "url")) url = Str(p["image_url"]["url"]);
    else if (IsStr(p, "image_url")) url = Str(p["image_url"]);
    if (url.empty()) return Bad("messages: image_url parts need a url");
    // data:<media type>;base64,<data> is sent inline; anything else by URL.
    size_t semi = url.find(";base64,");
    if (url.substr(0, 5) == "data:" && semi != std::string_view::npos) {
      out->Put("{\"type\":\"image\",\"source\":{\"type\":\"base64\",\"media_type\":");
      PutString(out, url.substr(5, semi - 5));
      out->Put(",\"data\":");
      PutString(out, url.substr(semi + 8));
      out->Put("}}");
    } else {
      out->Put("{\"type\":\"image\",\"source\":{\"type\":\"url\",\"url\":");
      PutString(out, url);
      out->Put("}}");
    }
    return Status::Ok();
  }
  return Bad("messages: content part type '%s' is not supported by anthropic backends",
             std::string(type).substr(0, 40).c_str());
}

}  // namespace

Status AnthropicRequestFromOpenAi(std::string_view openai_body, std::string_view upstream_model, char* scratch,
                                  size_t scratch_len, OutBuf* out, bool* stream) {
  ScratchDoc sd(scratch, scratch_len);
  LLMGW_RETURN_IF_ERROR(ParseInto(&sd, openai_body, "request body"));
  const Value& d = sd.doc;
  if (!d.HasMember("messages") || !d["messages"].IsArray() || d["messages"].Empty())
    return Bad("messages must be a non-empty array");
  if (d.HasMember("n") && !(d["n"].IsInt() && d["n"].GetInt() == 1) && !d["n"].IsNull())
    return Bad("n other than 1 is not supported by anthropic backends");
  *stream = d.HasMember("stream") && d["stream"].IsBool() && d["stream"].GetBool();

  out->Put("{\"model\":");
  if (!upstream_model.empty()) PutString(out, upstream_model);
  else if (IsStr(d, "model")) PutString(out, Str(d["model"]));
  else return Bad("model is required");

  int64_t max_tokens = kDefaultMaxTokens;
  for (const char* k : {"max_tokens", "max_completion_tokens"}) {
    if (!d.HasMember(k) || d[k].IsNull()) continue;
    if (!d[k].IsInt64() || d[k].GetInt64() < 1) return Bad("%s must be a positive integer", k);
    max_tokens = d[k].GetInt64();
  }
  out->Put(",\"max_tokens\":").PutUint(static_cast<uint64_t>(max_tokens));

  // System prompt: every system/developer message, in order, joined by blank lines.
  bool has_system = false;
  for (const auto& m : d["messages"].GetArray()) {
    if (!IsStr(m, "role")) return Bad("messages: each message needs a string role");
    std::string_view role = Str(m["role"]);
    if (role != "system" && role != "developer") continue;
    out->Put(has_system ? "\\n\\n" : ",\"system\":\"");
    has_system = true;
    if (!m.HasMember("content") || !PutContentText(out, m["content"]))
      return Bad("messages: system content must be a string or text parts");
  }
  if (has_system) out->Put('"');

  out->Put(",\"messages\":[");
  bool first = true;
  for (const auto& m : d["messages"].GetArray()) {
    std::string_view role = Str(m["role"]);
    if (role == "system" || role == "developer") continue;
    if (!first) out->Put(',');
    first = false;
    const Value* content = m.HasMember("content") ? &m["content"] : nullptr;
    if (role == "user") {
      out->Put("{\"role\":\"user\",\"content\":");
      if (content && content->IsString()) {
        PutString(out, Str(*content));
      } else if (content && content->IsArray()) {
        out->Put('[');
        bool f = true;
        for (const auto& p : content->GetArray()) {
          if (!f) out->Put(',');
          f = false;
          LLMGW_RETURN_IF_ERROR(PutUserPart(out, p));
        }
        out->Put(']');
      } else {
        return Bad("messages: user content must be a string or an array of parts");
      }
      out->Put('}');
    } else if (role == "assistant") {
      out->Put("{\"role\":\"assistant\",\"content\":[");
      bool f = true;
      if (content && !content->IsNull()) {
        out->Put("{\"type\":\"text\",\"text\":\"");
        if (!PutContentText(out, *content)) return Bad("messages: assistant content must be a string or text parts");
        out->Put("\"}");
        f = false;
      }
      if (m.HasMember("tool_calls") && m["tool_calls"].IsArray()) {
        for (const auto& tc : m["tool_calls"].GetArray()) {
          if (!IsStr(tc, "id") || !tc.HasMember("function") || !IsStr(tc["function"], "name"))
            return Bad("messages: tool_calls need an id and a function name");
          const Value& fn = tc["function"];
          if (!f) out->Put(',');
          f = false;
          out->Put("{\"type\":\"tool_use\",\"id\":");
          PutString(out, Str(tc["id"]));
          out->Put(",\"name\":");
          PutString(out, Str(fn["name"]));
          out->Put(",\"input\":");
          // arguments is a string holding a JSON object; parsed with its own small pool.
          std::string_view args = IsStr(fn, "arguments") ? Str(fn["arguments"]) : std::string_view("{}");
          char argbuf[16384];
          ScratchDoc ad(argbuf, sizeof argbuf);
          ad.doc.Parse(args.data(), args.size());
          if (ad.doc.HasParseError() || !ad.doc.IsObject())
            return Bad("messages: tool_calls arguments must be a JSON object");
          PutValue(out, ad.doc);
          out->Put('}');
        }
      }
      if (f) return Bad("messages: an assistant message needs content or tool_calls");
      out->Put("]}");
    } else if (role == "tool") {
      if (!IsStr(m, "tool_call_id")) return Bad("messages: tool messages need tool_call_id");
      out->Put("{\"role\":\"user\",\"content\":[{\"type\":\"tool_result\",\"tool_use_id\":");
      PutString(out, Str(m["tool_call_id"]));
      out->Put(",\"content\":\"");
      if (!content || !PutContentText(out, *content)) return Bad("messages: tool content must be a string or text parts");
      out->Put("\"}]}");
    } else {
      return Bad("messages: role '%s' is not supported", std::string(role).substr(0, 20).c_str());
    }
  }
  out->Put(']');
  if (first) return Bad("messages: at least one user or assistant message is required");

  if (d.HasMember("stop") && !d["stop"].IsNull()) {
    out->Put(",\"stop_sequences\":[");
    if (d["stop"].IsString()) {
      PutString(out, Str(d["stop"]));
    } else if (d["stop"].IsArray()) {
      bool f = true;
      for (const auto& s : d["stop"].GetArray()) {
        if (!s.IsString()) return Bad("stop must be a string or an array of strings");
        if (!f) out->Put(',');
        f = false;
        PutString(out, Str(s));
      }
    } else {
      return Bad("stop must be a string or an array of strings");
    }
    out->Put(']');
  }
  if (d.HasMember("temperature") && !d["temperature"].IsNull()) {
    if (!d["temperature"].IsNumber() || d["temperature"].GetDouble() < 0) return Bad("temperature must be a number >= 0");
    double t = std::min(1.0, d["temperature"].GetDouble());  // OpenAI allows up to 2, Anthropic 1
    char b[32];
    out->Put(",\"temperature\":").Put(std::string_view(b, static_cast<size_t>(std::snprintf(b, sizeof b, "%.6g", t))));
  }
  if (d.HasMember("top_p") && d["top_p"].IsNumber()) {
    out->Put(",\"top_p\":");
    PutNumber(out, d["top_p"]);
  }
  if (*stream) out->Put(",\"stream\":true");
  if (IsStr(d, "user")) {
    out->Put(",\"metadata\":{\"user_id\":");
    PutString(out, Str(d["user"]));
    out->Put('}');
  }
  if (d.HasMember("tools") && d["tools"].IsArray() && !d["tools"].Empty()) {
    out->Put(",\"tools\":[");
    bool f = true;
    for (const auto& t : d["tools"].GetArray()) {
      if (!t.IsObject() || !t.HasMember("function") || !IsStr(t["function"], "name"))
        return Bad("tools: each tool needs function.name");
      const Value& fn = t["function"];
      if (!f) out->Put(',');
      f = false;
      out->Put("{\"name\":");
      PutString(out, Str(fn["name"]));
      if (IsStr(fn, "description")) {
        out->Put(",\"description\":");
        PutString(out, Str(fn["description"]));
      }
      out->Put(",\"input_schema\":");
      if (fn.HasMember("parameters") && fn["parameters"].IsObject()) PutValue(out, fn["parameters"]);
      else out->Put("{\"type\":\"object\",\"properties\":{}}");
      out->Put('}');
    }
    out->Put(']');
  }
  if (d.HasMember("tool_choice") && !d["tool_choice"].IsNull()) {
    const Value& tc = d["tool_choice"];
    if (tc.IsString()) {
      std::string_view c = Str(tc);
      if (c == "auto") out->Put(",\"tool_choice\":{\"type\":\"auto\"}");
      else if (c == "required") out->Put(",\"tool_choice\":{\"type\":\"any\"}");
      else if (c == "none") out->Put(",\"tool_choice\":{\"type\":\"none\"}");
      else return Bad("tool_choice must be auto, required, none or a function");
    } else if (tc.IsObject() && tc.HasMember("function") && IsStr(tc["function"], "name")) {
      out->Put(",\"tool_choice\":{\"type\":\"tool\",\"name\":");
      PutString(out, Str(tc["function"]["name"]));
      out->Put('}');
    } else {
      return Bad("tool_choice must be auto, required, none or a function");
    }
  }
  out->Put('}');
  if (!out->ok()) return Error(ErrorKind::kPayloadTooLarge, ErrorSide::kDownstream, false, "translated request too large");
  return Status::Ok();
}

namespace {

const char* FinishReason(std::string_view stop_reason) {
  if (stop_reason == "max_tokens") return "\"length\"";
  if (stop_reason == "tool_use") return "\"tool_calls\"";
  if (stop_reason == "refusal") return "\"content_filter\"";
  return "\"stop\"";  // end_turn, stop_sequence, pause_turn
}

uint64_t UsageField(const Value& usage, const char* k) {
  return usage.IsObject() && usage.HasMember(k) && usage[k].IsUint64() ? usage[k].GetUint64() : 0;
}

// Prompt tokens as OpenAI counts them: cached and cache-written input included.
uint64_t PromptTokens(const Value& usage) {
  return UsageField(usage, "input_tokens") + UsageField(usage, "cache_read_input_tokens") +
         UsageField(usage, "cache_creation_input_tokens");
}

void PutUsage(OutBuf* out, uint64_t prompt, uint64_t completion) {
  out->Put("\"usage\":{\"prompt_tokens\":").PutUint(prompt).Put(",\"completion_tokens\":").PutUint(completion);
  out->Put(",\"total_tokens\":").PutUint(prompt + completion).Put('}');
}

}  // namespace

Status OpenAiResponseFromAnthropic(std::string_view anthropic_body, int64_t created, char* scratch, size_t scratch_len,
                                   OutBuf* out) {
  ScratchDoc sd(scratch, scratch_len);
  Status st = ParseInto(&sd, anthropic_body, "upstream answer");
  if (!st.ok()) return Error(ErrorKind::kUpstreamProtocol, ErrorSide::kUpstream, true, "%s", st.error().message());
  const Value& d = sd.doc;
  if (!d.HasMember("content") || !d["content"].IsArray())
    return Error(ErrorKind::kUpstreamProtocol, ErrorSide::kUpstream, true, "anthropic answer without content");
  out->Put("{\"id\":\"chatcmpl-");
  if (IsStr(d, "id")) out->PutJsonEscaped(Str(d["id"]));
  out->Put("\",\"object\":\"chat.completion\",\"created\":").PutUint(static_cast<uint64_t>(created));
  out->Put(",\"model\":");
  PutString(out, IsStr(d, "model") ? Str(d["model"]) : std::string_view());
  out->Put(",\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":");
  bool any_text = false;
  for (const auto& b : d["content"].GetArray()) {
    if (!IsStr(b, "type") || Str(b["type"]) != "text" || !IsStr(b, "text")) continue;
    out->Put(any_text ? "" : "\"");
    any_text = true;
    out->PutJsonEscaped(Str(b["text"]));
  }
  out->Put(any_text ? "\"" : "null");
  bool any_tool = false;
  for (const auto& b : d["content"].GetArray()) {
    if (!IsStr(b, "type") || Str(b["type"]) != "tool_use") continue;
    out->Put(any_tool ? "," : ",\"tool_calls\":[");
    any_tool = true;
    out->Put("{\"id\":");
    PutString(out, IsStr(b, "id") ? Str(b["id"]) : std::string_view());
    out->Put(",\"type\":\"function\",\"function\":{\"name\":");
    PutString(out, IsStr(b, "name") ? Str(b["name"]) : std::string_view());
    out->Put(",\"arguments\":");
    if (b.HasMember("input")) LLMGW_RETURN_IF_ERROR(PutValueAsJsonString(out, b["input"]));
    else out->Put("\"{}\"");
    out->Put("}}");
  }
  if (any_tool) out->Put(']');
  out->Put("},\"logprobs\":null,\"finish_reason\":");
  out->Put(IsStr(d, "stop_reason") ? FinishReason(Str(d["stop_reason"])) : "\"stop\"");
  out->Put("}],");
  const Value& usage = d.HasMember("usage") ? d["usage"] : d["content"];  // an array: all zero
  PutUsage(out, PromptTokens(usage), UsageField(usage, "output_tokens"));
  out->Put('}');
  if (!out->ok()) return Error(ErrorKind::kUpstreamProtocol, ErrorSide::kUpstream, false, "translated answer too large");
  return Status::Ok();
}

int OpenAiErrorFromAnthropic(int status, std::string_view anthropic_body, char* scratch, size_t scratch_len,
                             OutBuf* out) {
  ScratchDoc sd(scratch, scratch_len);
  std::string_view type = "api_error", message = "the anthropic backend answered with an error";
  if (ParseInto(&sd, anthropic_body, "error").ok() && sd.doc.HasMember("error") && sd.doc["error"].IsObject()) {
    const Value& e = sd.doc["error"];
    if (IsStr(e, "type")) type = Str(e["type"]);
    if (IsStr(e, "message")) message = Str(e["message"]);
  }
  // OpenAI's error types for the same situations, so SDKs raise the usual exceptions.
  std::string_view openai_type = type == "invalid_request_error" || type == "request_too_large" ? "invalid_request_error"
                                 : type == "authentication_error" ? "authentication_error"
                                 : type == "permission_error"     ? "permission_error"
                                 : type == "not_found_error"      ? "not_found_error"
                                 : type == "rate_limit_error"     ? "rate_limit_error"
                                                                  : "server_error";
  out->Put("{\"error\":{\"message\":");
  PutString(out, message);
  out->Put(",\"type\":");
  PutString(out, openai_type);
  out->Put(",\"param\":null,\"code\":");
  PutString(out, type);
  out->Put("}}");
  return status == 529 ? 503 : status;
}

void AnthropicStreamTranslator::Reset(int64_t created) {
  id_[0] = model_[0] = 0;
  created_ = created;
  input_tokens_ = output_tokens_ = 0;
  tool_index_ = -1;
  block_is_tool_ = false;
  done_ = false;
  pending_len_ = 0;
}

void AnthropicStreamTranslator::ChunkHead(OutBuf* out) const {
  out->Put("data: {\"id\":\"chatcmpl-").PutJsonEscaped(id_).Put("\",\"object\":\"chat.completion.chunk\",\"created\":");
  out->PutUint(static_cast<uint64_t>(created_)).Put(",\"model\":\"").PutJsonEscaped(model_).Put("\",\"choices\":[");
}

Status AnthropicStreamTranslator::Feed(std::string_view bytes, OutBuf* out) {
  while (!bytes.empty() && !done_) {
    size_t take = std::min(bytes.size(), kMaxEventBytes - pending_len_);
    std::memcpy(pending_ + pending_len_, bytes.data(), take);
    pending_len_ += take;
    bytes.remove_prefix(take);
    LLMGW_RETURN_IF_ERROR(Dispatch(out));
    if (pending_len_ == kMaxEventBytes)
      return Error(ErrorKind::kUpstreamProtocol, ErrorSide::kUpstream, false, "anthropic stream event over 64 KiB");
  }
  return Status::Ok();
}

// Translates every complete event in pending_ and keeps the incomplete tail.
Status AnthropicStreamTranslator::Dispatch(OutBuf* out) {
  size_t start = 0;
  for (;;) {
    std::string_view buf(pending_ + start, pending_len_ - start);
    size_t end = buf.find("\n\n");
    size_t sep = 2;
    if (size_t crlf = buf.find("\r\n\r\n"); crlf != std::string_view::npos && crlf < end) {
      end = crlf;
      sep = 4;
    }
    if (end == std::string_view::npos) break;
    std::string_view ev = buf.substr(0, end), name, data;
    while (!ev.empty()) {
      size_t nl = ev.find('\n');
      std::string_view line = ev.substr(0, nl);
      if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
      auto field = [&](std::string_view f) {
        if (line.substr(0, f.size()) != f) return false;
        line.remove_prefix(f.size());
        if (!line.empty() && line[0] == ' ') line.remove_prefix(1);
        return true;
      };
      if (field("event:")) name = line;
      else if (field("data:")) data = line;  // Anthropic sends one data line per event
      ev = nl == std::string_view::npos ? std::string_view() : ev.substr(nl + 1);
    }
    start += end + sep;
    if (!data.empty()) LLMGW_RETURN_IF_ERROR(OnEvent(name, data, out));
    if (done_) break;
  }
  std::memmove(pending_, pending_ + start, pending_len_ - start);
  pending_len_ -= start;
  return Status::Ok();
}

Status AnthropicStreamTranslator::OnEvent(std::string_view event, std::string_view data, OutBuf* out) {
  if (done_) return Status::Ok();
  ScratchDoc sd(scratch_, sizeof scratch_);
  sd.doc.Parse(data.data(), data.size());
  if (sd.doc.HasParseError() || !sd.doc.IsObject())
    return Error(ErrorKind::kUpstreamProtocol, ErrorSide::kUpstream, false, "anthropic stream: event data is not JSON");
  const Value& d = sd.doc;
  std::string_view type = IsStr(d, "type") ? Str(d["type"]) : event;
  auto copy = [](char* dst, size_t cap, std::string_view s) {
    size_t n = std::min(s.size(), cap - 1);
    std::memcpy(dst, s.data(), n);
    dst[n] = 0;
  };
  if (type == "message_start") {
    const Value* m = d.HasMember("message") && d["message"].IsObject() ? &d["message"] : nullptr;
    if (m && IsStr(*m, "id")) copy(id_, sizeof id_, Str((*m)["id"]));
    if (m && IsStr(*m, "model")) copy(model_, sizeof model_, Str((*m)["model"]));
    if (m && m->HasMember("usage")) input_tokens_ = PromptTokens((*m)["usage"]);
    ChunkHead(out);
    out->Put("{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"logprobs\":null,\"finish_reason\":null}]}\n\n");
  } else if (type == "content_block_start") {
    const Value* b = d.HasMember("content_block") ? &d["content_block"] : nullptr;
    block_is_tool_ = b && IsStr(*b, "type") && Str((*b)["type"]) == "tool_use";
    if (block_is_tool_) {
      ++tool_index_;
      ChunkHead(out);
      out->Put("{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":").PutUint(static_cast<uint64_t>(tool_index_));
      out->Put(",\"id\":");
      PutString(out, IsStr(*b, "id") ? Str((*b)["id"]) : std::string_view());
      out->Put(",\"type\":\"function\",\"function\":{\"name\":");
      PutString(out, IsStr(*b, "name") ? Str((*b)["name"]) : std::string_view());
      out->Put(",\"arguments\":\"\"}}]},\"logprobs\":null,\"finish_reason\":null}]}\n\n");
    } else if (b && IsStr(*b, "text") && (*b)["text"].GetStringLength() > 0) {
      ChunkHead(out);
      out->Put("{\"index\":0,\"delta\":{\"content\":");
      PutString(out, Str((*b)["text"]));
      out->Put("},\"logprobs\":null,\"finish_reason\":null}]}\n\n");
    }
  } else if (type == "content_block_delta") {
    const Value* dl = d.HasMember("delta") && d["delta"].IsObject() ? &d["delta"] : nullptr;
    if (dl && IsStr(*dl, "text")) {
      ChunkHead(out);
      out->Put("{\"index\":0,\"delta\":{\"content\":");
      PutString(out, Str((*dl)["text"]));
      out->Put("},\"logprobs\":null,\"finish_reason\":null}]}\n\n");
    } else if (dl && IsStr(*dl, "partial_json") && tool_index_ >= 0) {
      ChunkHead(out);
      out->Put("{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":").PutUint(static_cast<uint64_t>(tool_index_));
      out->Put(",\"function\":{\"arguments\":");
      PutString(out, Str((*dl)["partial_json"]));
      out->Put("}}]},\"logprobs\":null,\"finish_reason\":null}]}\n\n");
    }  // thinking and signature deltas have no OpenAI counterpart
  } else if (type == "message_delta") {
    if (d.HasMember("usage")) {
      output_tokens_ = UsageField(d["usage"], "output_tokens");
      if (uint64_t in = PromptTokens(d["usage"])) input_tokens_ = in;
    }
    const Value* dl = d.HasMember("delta") && d["delta"].IsObject() ? &d["delta"] : nullptr;
    ChunkHead(out);
    out->Put("{\"index\":0,\"delta\":{},\"logprobs\":null,\"finish_reason\":");
    out->Put(dl && IsStr(*dl, "stop_reason") ? FinishReason(Str((*dl)["stop_reason"])) : "\"stop\"");
    out->Put("}],");
    PutUsage(out, input_tokens_, output_tokens_);
    out->Put("}\n\n");
  } else if (type == "message_stop") {
    out->Put("data: [DONE]\n\n");
    done_ = true;
  } else if (type == "error") {
    const Value* e = d.HasMember("error") && d["error"].IsObject() ? &d["error"] : nullptr;
    out->Put("data: {\"error\":{\"message\":");
    PutString(out, e && IsStr(*e, "message") ? Str((*e)["message"]) : std::string_view("upstream stream error"));
    out->Put(",\"type\":\"server_error\",\"param\":null,\"code\":");
    PutString(out, e && IsStr(*e, "type") ? Str((*e)["type"]) : std::string_view("api_error"));
    out->Put("}}\n\n");
    done_ = true;
  }  // ping and unknown events: nothing
  if (!out->ok()) return Error(ErrorKind::kInternal, ErrorSide::kInternal, false, "stream output buffer full");
  return Status::Ok();
}

}  // namespace llmgw::providers
