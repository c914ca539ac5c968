// Stream resume state, the continuation request and the chunk rewriting; see
// stream_resume.h. Requests and chunks are edited by splicing byte ranges found in one
// SAX pass, so everything not edited goes on byte for byte (no DOM, no re-serialising).
#include "dataplane/stream_resume.h"

#include <rapidjson/memorystream.h>
#include <rapidjson/reader.h>

#include <algorithm>
#include <charconv>
#include <cstdio>

namespace llmgw::dataplane {

// --- StreamResumeState ---

void StreamResumeState::Begin(BufferPool* pool, size_t max_bytes) {
  Release();
  pool_ = pool;
  max_bytes_ = max_bytes;
  kept_bytes_ = 0;
  id_.Clear();
  created_.Clear();
  model_.Clear();
  chunks_ = 0;
  attempts_ = 0;
  too_large_ = multi_ = tool_ = unrecognised_ = false;
  role_sent_ = finished_ = false;
  prev_prompt_ = prev_completion_ = 0;
  cur_prompt_ = cur_completion_ = cur_tokens_ = 0;
  cur_usage_ = false;
}

void StreamResumeState::Release() {
  for (std::string*& t : text_) {
    if (t && pool_) pool_->Give(t);
    t = nullptr;
  }
}

void StreamResumeState::OnChunk(std::string_view json, const ChunkInfo& info) {
  if (chunks_++ == 0 && attempts_ == 0) {
    id_.Append(json.data() + info.id.begin, info.id.size());
    created_.Append(json.data() + info.created.begin, info.created.size());
    model_.Append(json.data() + info.model.begin, info.model.size());
  }
  if (info.has_usage) {
    cur_usage_ = true;
    cur_prompt_ = info.prompt_tokens;
    cur_completion_ = info.completion_tokens;
  }
  int n = std::min(info.num_choices, ChunkInfo::kMaxChoices);
  if (info.num_choices > ChunkInfo::kMaxChoices) multi_ = true;
  for (int i = 0; i < n; ++i) {
    const ChunkChoice& ch = info.choices[i];
    if (ch.index != 0) multi_ = true;
    if (!ch.role.empty()) role_sent_ = true;
    if (ch.tool_calls) tool_ = true;
    if (ch.finished && ch.index == 0) finished_ = true;
    if (!ch.has_text || ch.text.empty()) continue;
    ++cur_tokens_;
    if (ch.index < 0 || ch.index >= kKeptChoices || too_large_) continue;
    if (kept_bytes_ + ch.text.size() > max_bytes_) {
      too_large_ = true;  // what is kept would be incomplete: no resume for this stream
      continue;
    }
    std::string*& t = text_[ch.index];
    if (!t) t = pool_->Take();
    t->append(json.data() + ch.text.begin, ch.text.size());
    kept_bytes_ += ch.text.size();
  }
}

void StreamResumeState::AttemptFailed() {
  prev_prompt_ += cur_prompt_;
  prev_completion_ += cur_usage_ && cur_completion_ > cur_tokens_ ? cur_completion_ : cur_tokens_;
  cur_prompt_ = cur_completion_ = cur_tokens_ = 0;
  cur_usage_ = false;
  ++attempts_;
}

ResumeOutcome StreamResumeState::Check() const {
  if (multi_) return ResumeOutcome::kMultipleChoices;
  if (tool_) return ResumeOutcome::kToolCall;
  if (unrecognised_ || id_.overflow || created_.overflow || model_.overflow) return ResumeOutcome::kUnrecognised;
  if (too_large_) return ResumeOutcome::kTooLarge;
  return ResumeOutcome::kOk;
}

// --- request scanning and splicing ---

namespace {

enum class ReqKey : uint8_t {
  kOther, kModel, kMessages, kPrompt, kMaxTokens, kMaxCompletionTokens, kStreamOptions, kIncludeUsage,
  kContinueFinal, kAddGenPrompt, kN, kEcho,
};

struct Range {
  size_t begin = 0, end = 0;
  bool set = false;
};

// What BuildContinuation / EnsureIncludeUsage need of a request: top-level members only
// (and include_usage inside stream_options).
struct RequestScan {
  size_t obj_close = 0;  // offset of the top-level '}'
  size_t top_members = 0;  // members of the top-level object
  Range model;
  Range messages_close;  // the ']' of messages
  size_t num_messages = 0;
  Range prompt_string;   // inner bytes of the prompt string (or the only string of an array)
  bool prompt_other = false;  // token ids, several strings, or not a string
  Range max_tokens, max_completion_tokens;
  int64_t max_tokens_v = 0, max_completion_tokens_v = 0;
  Range stream_options;  // its whole value
  bool stream_options_object = false;
  size_t stream_options_members = 0;
  Range include_usage;   // the value inside stream_options
  Range continue_final, add_gen_prompt;
  bool continue_final_true = false;
  int64_t n = 1;
  bool echo = false;
};

constexpr int kMaxDepth = 128;

struct ReqHandler : rapidjson::BaseReaderHandler<rapidjson::UTF8<>, ReqHandler> {
  RequestScan* out;
  const rapidjson::MemoryStream* ms;
  std::string_view json;
  int depth = 0;
  ReqKey key1 = ReqKey::kOther, key2 = ReqKey::kOther;
  size_t key_end = 0;
  bool in_so = false;  // depth 2 is stream_options
  size_t prompt_items = 0;
  bool too_deep = false;

  size_t ValueBegin() const {
    size_t p = key_end;
    while (p < json.size() && (json[p] == ' ' || json[p] == '\t' || json[p] == '\n' || json[p] == '\r' ||
                               json[p] == ':'))
      ++p;
    return p;
  }
  Range Here() const { return {ValueBegin(), ms->Tell(), true}; }
  bool Top() const { return depth == 1; }

  bool Null() {
    if (Top() && key1 == ReqKey::kStreamOptions) out->stream_options = Here();
    return Other();
  }
  bool Other() {
    if (depth == 2 && key1 == ReqKey::kPrompt) out->prompt_other = true;
    if (depth == 1 && key1 == ReqKey::kPrompt) out->prompt_other = true;
    return true;
  }
  bool Bool(bool b) {
    if (Top()) {
      if (key1 == ReqKey::kContinueFinal) {
        out->continue_final = Here();
        out->continue_final_true = b;
      } else if (key1 == ReqKey::kAddGenPrompt) {
        out->add_gen_prompt = Here();
      } else if (key1 == ReqKey::kEcho) {
        out->echo = b;
      } else if (key1 == ReqKey::kStreamOptions) {
        out->stream_options = Here();
      }
    } else if (depth == 2 && in_so && key2 == ReqKey::kIncludeUsage) {
      out->include_usage = Here();
    }
    return Other();
  }
  bool Int(int i) { return Int64(i); }
  bool Uint(unsigned u) { return Int64(u); }
  bool Uint64(uint64_t u) { return Int64(u > INT64_MAX ? INT64_MAX : static_cast<int64_t>(u)); }
  bool Int64(int64_t i) {
    if (Top()) {
      if (key1 == ReqKey::kMaxTokens) {
        out->max_tokens = Here();
        out->max_tokens_v = i;
      } else if (key1 == ReqKey::kMaxCompletionTokens) {
        out->max_completion_tokens = Here();
        out->max_completion_tokens_v = i;
      } else if (key1 == ReqKey::kN) {
        out->n = i;
      }
    }
    return Other();
  }
  bool Double(double d) { return Int64(static_cast<int64_t>(d > 9e18 ? 9e18 : d < -9e18 ? -9e18 : d)); }
  bool String(const char*, rapidjson::SizeType, bool) {
    if (Top() && key1 == ReqKey::kModel) {
      out->model = Here();
    } else if (Top() && key1 == ReqKey::kPrompt) {
      Range r = Here();
      out->prompt_string = {r.begin + 1, r.end - 1, true};
      return true;
    } else if (depth == 2 && key1 == ReqKey::kPrompt) {
      if (++prompt_items == 1) {
        // An array element: its range starts at its opening quote, found backwards.
        size_t end = ms->Tell();
        size_t b = end - 1;
        while (b > 0) {
          --b;
          if (json[b] == '"') {
            size_t bs = 0;
            while (b - bs > 0 && json[b - bs - 1] == '\\') ++bs;
            if (bs % 2 == 0) break;
          }
        }
        out->prompt_string = {b + 1, end - 1, true};
      } else {
        out->prompt_other = true;
      }
      return true;
    } else if (Top() && key1 == ReqKey::kStreamOptions) {
      out->stream_options = Here();
    }
    return Other();
  }
  bool StartObject() {
    if (++depth > kMaxDepth) return TooDeep();
    if (depth == 2 && key1 == ReqKey::kStreamOptions) {
      in_so = true;
      out->stream_options_object = true;
      out->stream_options.begin = ValueBegin();
    } else if (depth == 3 && key1 == ReqKey::kMessages) {
      ++out->num_messages;
    } else if (depth >= 2 && key1 == ReqKey::kPrompt) {
      out->prompt_other = true;
    }
    key2 = ReqKey::kOther;
    return true;
  }
  bool EndObject(rapidjson::SizeType) {
    if (depth == 1) out->obj_close = ms->Tell() - 1;
    if (depth == 2 && in_so) {
      in_so = false;
      out->stream_options.end = ms->Tell();
      out->stream_options.set = true;
    }
    --depth;
    return true;
  }
  bool StartArray() {
    if (++depth > kMaxDepth) return TooDeep();
    if (depth == 2 && key1 == ReqKey::kPrompt) prompt_items = 0;
    else if (depth == 3 && key1 == ReqKey::kPrompt) out->prompt_other = true;  // arrays of token-id arrays
    else if (depth == 2 && key1 == ReqKey::kStreamOptions) out->stream_options.begin = ValueBegin();
    return true;
  }
  bool EndArray(rapidjson::SizeType) {
    if (depth == 2 && key1 == ReqKey::kMessages) out->messages_close = {ms->Tell() - 1, ms->Tell(), true};
    if (depth == 2 && key1 == ReqKey::kStreamOptions) {
      out->stream_options.end = ms->Tell();
      out->stream_options.set = true;
    }
    if (depth == 2 && key1 == ReqKey::kPrompt && prompt_items != 1) out->prompt_other = true;
    --depth;
    return true;
  }
  bool Key(const char* s, rapidjson::SizeType len, bool) {
    key_end = ms->Tell();
    std::string_view k(s, len);
    if (depth == 1) {
      ++out->top_members;
      ReqKey v = ReqKey::kOther;
      if (k == "model") v = ReqKey::kModel;
      else if (k == "messages") v = ReqKey::kMessages;
      else if (k == "prompt") v = ReqKey::kPrompt;
      else if (k == "max_tokens") v = ReqKey::kMaxTokens;
      else if (k == "max_completion_tokens") v = ReqKey::kMaxCompletionTokens;
      else if (k == "stream_options") v = ReqKey::kStreamOptions;
      else if (k == "continue_final_message") v = ReqKey::kContinueFinal;
      else if (k == "add_generation_prompt") v = ReqKey::kAddGenPrompt;
      else if (k == "n") v = ReqKey::kN;
      else if (k == "echo") v = ReqKey::kEcho;
      key1 = v;
    } else if (depth == 2 && in_so) {
      ++out->stream_options_members;
      key2 = k == "include_usage" ? ReqKey::kIncludeUsage : ReqKey::kOther;
    }
    return true;
  }
  bool TooDeep() {
    too_deep = true;
    return false;
  }
};

bool ScanRequest(std::string_view body, RequestScan* out) {
  *out = RequestScan{};
  thread_local rapidjson::Reader reader;
  rapidjson::MemoryStream ms(body.data(), body.size());
  ReqHandler h;
  h.out = out;
  h.ms = &ms;
  h.json = body;
  rapidjson::ParseResult r = reader.Parse<rapidjson::kParseStopWhenDoneFlag>(ms, h);
  return !r.IsError() && !h.too_deep && OnlyJsonWhitespaceFrom(body, ms.Tell()) && out->obj_close > 0 &&
         body[out->obj_close] == '}';
}

// One edit: bytes [begin, end) of the source replaced by up to three pieces.
struct Edit {
  size_t begin = 0, end = 0;
  std::string_view a, b, c;
};

class Splicer {
 public:
  static constexpr int kMax = 12;
  // Members added before the top-level '}' (each piece ",\"key\":value"): the first one
  // loses its comma when the object had no member ("{}" stays valid JSON).
  bool AddMembers(const RequestScan& s, std::string_view a, std::string_view b = {}, std::string_view c = {}) {
    if (s.top_members == 0) {
      std::string_view* first = !a.empty() ? &a : !b.empty() ? &b : &c;
      if (!first->empty()) first->remove_prefix(1);
    }
    return Add(s.obj_close, s.obj_close, a, b, c);
  }
  bool Add(size_t begin, size_t end, std::string_view a, std::string_view b = {}, std::string_view c = {}) {
    if (n_ == kMax) return false;
    edits_[n_++] = Edit{begin, end, a, b, c};
    return true;
  }
  void Apply(std::string_view src, std::string* out) {
    std::sort(edits_, edits_ + n_, [](const Edit& x, const Edit& y) { return x.begin < y.begin; });
    size_t total = src.size();
    for (int i = 0; i < n_; ++i) total += edits_[i].a.size() + edits_[i].b.size() + edits_[i].c.size();
    out->reserve(out->size() + total);
    size_t pos = 0;
    for (int i = 0; i < n_; ++i) {
      const Edit& e = edits_[i];
      out->append(src.data() + pos, e.begin - pos);
      out->append(e.a);
      out->append(e.b);
      out->append(e.c);
      pos = std::max(pos, e.end);
    }
    out->append(src.data() + pos, src.size() - pos);
  }

 private:
  Edit edits_[kMax];
  int n_ = 0;
};

std::string_view FormatInt(int64_t v, char (&buf)[24]) {
  auto r = std::to_chars(buf, buf + sizeof buf, v);
  return {buf, static_cast<size_t>(r.ptr - buf)};
}

// stream_options with include_usage true, whatever the request had; *add_member: the
// request has no stream_options, the caller adds the member before the top-level '}'.
void IncludeUsageEdits(const RequestScan& s, Splicer* sp, bool* add_member) {
  *add_member = false;
  if (s.include_usage.set) {
    sp->Add(s.include_usage.begin, s.include_usage.end, "true");
  } else if (s.stream_options_object) {
    // Right after its '{': the first member, with a comma unless the object is empty.
    size_t p = s.stream_options.begin + 1;
    sp->Add(p, p, "\"include_usage\":true", s.stream_options_members ? "," : "");
  } else if (s.stream_options.set) {  // null or not an object: replaced
    sp->Add(s.stream_options.begin, s.stream_options.end, "{\"include_usage\":true}");
  } else {
    *add_member = true;
  }
}

}  // namespace

ResumeOutcome BuildContinuation(std::string_view body, bool chat, std::string_view model,
                                const StreamResumeState& st, std::string* out) {
  out->clear();
  ResumeOutcome why = st.Check();
  if (why != ResumeOutcome::kOk) return why;
  RequestScan s;
  if (!ScanRequest(body, &s)) return ResumeOutcome::kRequestShape;
  if (s.n > 1) return ResumeOutcome::kMultipleChoices;
  Splicer sp;
  if (!model.empty() && s.model.set) sp.Add(s.model.begin, s.model.end, "\"", model, "\"");
  std::string_view text = st.text(0);
  if (chat) {
    // A request that prefilled its own final assistant message cannot take a second one.
    if (!s.messages_close.set || s.continue_final_true) return ResumeOutcome::kRequestShape;
    sp.Add(s.messages_close.begin, s.messages_close.begin,
           s.num_messages ? ",{\"role\":\"assistant\",\"content\":\"" : "{\"role\":\"assistant\",\"content\":\"", text,
           "\"}");
  } else {
    if (s.echo) return ResumeOutcome::kRequestShape;  // the continuation would echo the text again
    if (!s.prompt_string.set || s.prompt_other) return ResumeOutcome::kRequestShape;
    sp.Add(s.prompt_string.end, s.prompt_string.end, text);
  }
  char b1[24], b2[24];
  int64_t sent = static_cast<int64_t>(st.tokens_before());
  if (s.max_tokens.set) {
    if (s.max_tokens_v - sent < 1) return ResumeOutcome::kNothingLeft;
    sp.Add(s.max_tokens.begin, s.max_tokens.end, FormatInt(s.max_tokens_v - sent, b1));
  }
  if (s.max_completion_tokens.set) {
    if (s.max_completion_tokens_v - sent < 1) return ResumeOutcome::kNothingLeft;
    sp.Add(s.max_completion_tokens.begin, s.max_completion_tokens.end, FormatInt(s.max_completion_tokens_v - sent, b2));
  }
  bool add_so;
  IncludeUsageEdits(s, &sp, &add_so);
  // Members llmgw adds go before the top-level '}'.
  std::string_view so_member = add_so ? ",\"stream_options\":{\"include_usage\":true}" : "";
  if (chat) {
    if (s.continue_final.set) sp.Add(s.continue_final.begin, s.continue_final.end, "true");
    if (s.add_gen_prompt.set) sp.Add(s.add_gen_prompt.begin, s.add_gen_prompt.end, "false");
    sp.AddMembers(s, s.continue_final.set ? "" : ",\"continue_final_message\":true",
                  s.add_gen_prompt.set ? "" : ",\"add_generation_prompt\":false", so_member);
  } else if (add_so) {
    sp.AddMembers(s, so_member);
  }
  sp.Apply(body, out);
  return ResumeOutcome::kOk;
}

bool EnsureIncludeUsage(std::string_view body, std::string_view model, std::string* out) {
  out->clear();
  RequestScan s;
  if (!ScanRequest(body, &s)) return false;
  Splicer sp;
  if (!model.empty() && s.model.set) sp.Add(s.model.begin, s.model.end, "\"", model, "\"");
  bool add_so;
  IncludeUsageEdits(s, &sp, &add_so);
  if (add_so) sp.AddMembers(s, ",\"stream_options\":{\"include_usage\":true}");
  sp.Apply(body, out);
  return true;
}

ChunkAction RewriteChunk(std::string_view event, const SseEventView& ev, const ChunkInfo& info,
                         const StreamResumeState& st, bool client_wants_usage, std::string* out) {
  if (info.UsageOnly() && !client_wants_usage) return ChunkAction::kDropped;
  if (!st.continuation()) return ChunkAction::kAsIs;
  Splicer sp;
  size_t base = ev.data_offset;
  if (!info.id.empty() && !st.first_id().empty()) sp.Add(base + info.id.begin, base + info.id.end, st.first_id());
  if (!info.created.empty() && !st.first_created().empty())
    sp.Add(base + info.created.begin, base + info.created.end, st.first_created());
  if (!info.model.empty() && !st.first_model().empty())
    sp.Add(base + info.model.begin, base + info.model.end, st.first_model());
  if (st.role_sent()) {
    int n = std::min(info.num_choices, ChunkInfo::kMaxChoices);
    for (int i = 0; i < n; ++i)
      if (!info.choices[i].role.empty())
        sp.Add(base + info.choices[i].role.begin, base + info.choices[i].role.end, "");
  }
  char usage[128];
  if (info.has_usage) {
    uint64_t p = st.SummedPrompt(info.prompt_tokens), c = st.SummedCompletion(info.completion_tokens);
    int len = std::snprintf(usage, sizeof usage, "{\"prompt_tokens\":%llu,\"total_tokens\":%llu,\"completion_tokens\":%llu}",
                            static_cast<unsigned long long>(p), static_cast<unsigned long long>(p + c),
                            static_cast<unsigned long long>(c));
    sp.Add(base + info.usage.begin, base + info.usage.end, std::string_view(usage, static_cast<size_t>(len)));
  }
  sp.Apply(event, out);
  return ChunkAction::kRewritten;
}

}  // namespace llmgw::dataplane
