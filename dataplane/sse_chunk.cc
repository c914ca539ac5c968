// SSE event fields and the one-pass chunk reader; see sse_chunk.h.
#include "dataplane/sse_chunk.h"

#include <rapidjson/memorystream.h>
#include <rapidjson/reader.h>

#include <cstring>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace llmgw::dataplane {

void SplitEvent(std::string_view event, SseEventView* out) {
  *out = SseEventView{};
  size_t pos = 0;
  // Without a '\r' anywhere a line ends at the next '\n': memchr instead of a byte loop.
  const bool lf_only = event.empty() || !std::memchr(event.data(), '\r', event.size());
  while (pos < event.size()) {
    size_t eol = pos;
    if (lf_only) {
      const void* nl = std::memchr(event.data() + pos, '\n', event.size() - pos);
      eol = nl ? static_cast<size_t>(static_cast<const char*>(nl) - event.data()) : event.size();
    } else {
      while (eol < event.size() && event[eol] != '\n' && event[eol] != '\r') ++eol;
    }
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

// Src: where the reader is (Tell(): the offset just past what it consumed) — RapidJSON's
// MemoryStream, or FastChunkReader.
template <typename Src>
struct ChunkHandler : rapidjson::BaseReaderHandler<rapidjson::UTF8<>, ChunkHandler<Src>> {
  ChunkInfo* out;
  const Src* ms;
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
          if (Is(std::string_view(s, len), "error")) out->error = true;
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
  // k equals the literal (its length known at compile time: an inlined compare).
  template <size_t N>
  static bool Is(std::string_view k, const char (&lit)[N]) {
    return k.size() == N - 1 && std::memcmp(k.data(), lit, N - 1) == 0;
  }
  bool Key(const char* s, rapidjson::SizeType len, bool) {
    key_end = Tell();
    std::string_view k(s, len);
    // The raw key is k with quotes when it had no escapes. FastChunkReader hands over the
    // key where it stands in the chunk (no escapes, or it would not have): no compare.
    if (key_end >= len + 2 && s == json.data() + key_end - len - 1)
      key_begin = key_end - len - 2;
    else
      key_begin = key_end >= len + 2 && json.substr(key_end - len - 2, len + 2).substr(1, len) == k ? key_end - len - 2
                                                                                                      : key_end;
    using K = Field;
    Field v = K::kOther;
    if (depth == 1) {
      if (Is(k, "id")) v = K::kId;
      else if (Is(k, "created")) v = K::kCreated;
      else if (Is(k, "model")) v = K::kModel;
      else if (Is(k, "choices")) v = K::kChoices;
      else if (Is(k, "usage")) v = K::kUsage;
      else if (Is(k, "error")) v = K::kError;
      else if (Is(k, "object")) v = K::kObject;
      else if (Is(k, "code")) v = K::kCode;
    } else if (depth == 2 && in_usage) {
      if (Is(k, "prompt_tokens")) v = K::kPromptTokens;
      else if (Is(k, "completion_tokens")) v = K::kCompletionTokens;
    } else if (depth == 2 && in_error) {
      if (Is(k, "code")) v = K::kCode;
    } else if (depth == 3 && choice) {
      if (Is(k, "index")) v = K::kIndex;
      else if (Is(k, "delta")) v = K::kDelta;
      else if (Is(k, "text")) v = K::kText;
      else if (Is(k, "finish_reason")) v = K::kFinish;
    } else if (depth == 4 && in_delta) {
      if (Is(k, "content")) v = K::kContent;
      else if (Is(k, "role")) v = K::kRole;
      else if (Is(k, "tool_calls") || Is(k, "function_call")) v = K::kToolCalls;
    }
    if (depth >= 1 && depth <= 4) key[depth] = v;
    return true;
  }
  bool TooDeep() {
    too_deep = true;
    return false;
  }
  // Whether the handler reads the characters of the string value that comes next (not
  // only its position): FastChunkReader hands over escaped strings undecoded, so for
  // these it leaves the chunk to RapidJSON.
  bool ReadsStringValue() const {
    return (depth == 1 && (Cur() == Field::kObject || Cur() == Field::kCode)) ||
           (depth == 2 && in_error && Cur() == Field::kCode);
  }
};

// A hand-written JSON reader for the chunks backends send on every token. It makes the
// same handler calls as RapidJSON's Reader (same order, same offsets) without decoding
// strings (a chunk's text is kept JSON-escaped anyway), at a fraction of the cost. It
// accepts only what it is sure RapidJSON accepts alike — integers, plain decimals,
// strings without surrogate escapes, keys without escapes, nesting up to kMaxFastDepth —
// and answers kUnsure for everything else, invalid JSON included: RapidJSON then reads
// the chunk and has the last word (sse_chunk_test compares the two on every shape, the
// stream_resume fuzzer on arbitrary bytes).
class FastChunkReader {
 public:
  enum class Result : uint8_t { kOk, kUnsure };
  static constexpr int kMaxFastDepth = 16;

  explicit FastChunkReader(std::string_view json)
      : b_(json.data()), p_(json.data()), e_(json.data() + json.size()) {}
  size_t Tell() const { return static_cast<size_t>(p_ - b_); }

  // One JSON string whose opening quote is at `at` (ChunkShapeMemo's text): true when it
  // is one this reader accepts; Tell() is then just past its closing quote.
  bool StringAt(size_t at) {
    p_ = b_ + at;
    const char* s;
    size_t len;
    bool esc;
    return p_ < e_ && *p_ == '"' && Str(&s, &len, &esc);
  }

  // The root value, then stops (as kParseStopWhenDoneFlag); the caller checks what follows.
  template <typename H>
  Result Parse(H& h) {
    SkipWs();
    if (p_ == e_ || *p_ != '{') return Result::kUnsure;  // not a chunk, or empty: RapidJSON says which
    return Value(h, 0) ? Result::kOk : Result::kUnsure;
  }

 private:
  static bool Ws(char c) { return c == ' ' || c == '\n' || c == '\r' || c == '\t'; }
  void SkipWs() {
    while (p_ < e_ && Ws(*p_)) ++p_;
  }
  bool Lit(const char* w, size_t n) {
    if (static_cast<size_t>(e_ - p_) < n || std::memcmp(p_, w, n) != 0) return false;
    p_ += n;
    return true;
  }
  static bool Hex(char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }
  // At the opening quote. On success p_ is past the closing quote; [*s, *s + *len) are
  // the raw bytes inside, *escaped whether there was a backslash.
  bool Str(const char** s, size_t* len, bool* escaped) {
    ++p_;
    const char* start = p_;
    bool esc = false;
    while (p_ < e_) {
      SkipPlain();
      if (p_ == e_) break;
      unsigned char c = static_cast<unsigned char>(*p_);
      if (c == '"') {
        *s = start;
        *len = static_cast<size_t>(p_ - start);
        *escaped = esc;
        ++p_;
        return true;
      }
      if (c < 0x20) return false;  // RapidJSON refuses raw control characters
      if (c == '\\') {
        esc = true;
        if (e_ - p_ < 2) return false;
        char x = p_[1];
        if (x == 'u') {
          if (e_ - p_ < 6 || !Hex(p_[2]) || !Hex(p_[3]) || !Hex(p_[4]) || !Hex(p_[5])) return false;
          // A surrogate (D800-DFFF) must pair up: RapidJSON's rules, not repeated here.
          char h0 = p_[2], h1 = p_[3];
          if ((h0 == 'd' || h0 == 'D') && !(h1 >= '0' && h1 <= '7')) return false;
          p_ += 6;
          continue;
        }
        if (x != '"' && x != '\\' && x != '/' && x != 'b' && x != 'f' && x != 'n' && x != 'r' && x != 't') return false;
        p_ += 2;
        continue;
      }
      ++p_;
    }
    return false;
  }
  // Past the string bytes that need no look: up to a '"', a '\\' or a control character.
  void SkipPlain() {
#if defined(__SSE2__)
    const __m128i quote = _mm_set1_epi8('"'), bslash = _mm_set1_epi8('\\'), ctl = _mm_set1_epi8(0x1F);
    while (e_ - p_ >= 16) {
      __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p_));
      __m128i hit = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(v, quote), _mm_cmpeq_epi8(v, bslash)),
                                 _mm_cmpeq_epi8(_mm_min_epu8(v, ctl), v));  // v <= 0x1F
      int mask = _mm_movemask_epi8(hit);
      if (mask) {
        p_ += __builtin_ctz(static_cast<unsigned>(mask));
        return;
      }
      p_ += 16;
    }
#endif
    while (p_ < e_) {
      unsigned char c = static_cast<unsigned char>(*p_);
      if (c == '"' || c == '\\' || c < 0x20) return;
      ++p_;
    }
  }
  // Integers up to 18 digits (Int64 / Uint64 as RapidJSON's would carry them) and plain
  // decimals (Double, whose value the handler ignores); exponents and longer numbers unsure.
  template <typename H>
  bool Num(H& h) {
    bool neg = false;
    if (*p_ == '-') {
      neg = true;
      ++p_;
    }
    if (p_ == e_ || *p_ < '0' || *p_ > '9') return false;
    uint64_t v = 0;
    int digits = 0;
    if (*p_ == '0') {
      ++p_;
      digits = 1;
      if (p_ < e_ && *p_ >= '0' && *p_ <= '9') return false;  // a leading zero
    } else {
      while (p_ < e_ && *p_ >= '0' && *p_ <= '9') {
        if (++digits > 18) return false;
        v = v * 10 + static_cast<uint64_t>(*p_++ - '0');
      }
    }
    bool frac = false;
    if (p_ < e_ && *p_ == '.') {
      ++p_;
      if (p_ == e_ || *p_ < '0' || *p_ > '9') return false;
      while (p_ < e_ && *p_ >= '0' && *p_ <= '9') ++p_;
      frac = true;
    }
    if (p_ < e_ && (*p_ == 'e' || *p_ == 'E')) return false;
    if (frac) return h.Double(0.0);
    return neg ? h.Int64(-static_cast<int64_t>(v)) : h.Uint64(v);
  }
  template <typename H>
  bool Value(H& h, int depth) {
    if (p_ == e_) return false;
    switch (*p_) {
      case '{': {
        if (depth >= kMaxFastDepth) return false;
        ++p_;
        if (!h.StartObject()) return false;
        SkipWs();
        if (p_ < e_ && *p_ == '}') {
          ++p_;
          return h.EndObject(0);
        }
        rapidjson::SizeType members = 0;
        for (;;) {
          if (p_ == e_ || *p_ != '"') return false;
          const char* k;
          size_t klen;
          bool kesc;
          if (!Str(&k, &klen, &kesc) || kesc) return false;
          if (!h.Key(k, static_cast<rapidjson::SizeType>(klen), false)) return false;
          SkipWs();
          if (p_ == e_ || *p_ != ':') return false;
          ++p_;
          SkipWs();
          if (!Value(h, depth + 1)) return false;
          ++members;
          SkipWs();
          if (p_ == e_) return false;
          if (*p_ == ',') {
            ++p_;
            SkipWs();
            continue;
          }
          if (*p_ != '}') return false;
          ++p_;
          return h.EndObject(members);
        }
      }
      case '[': {
        if (depth >= kMaxFastDepth) return false;
        ++p_;
        if (!h.StartArray()) return false;
        SkipWs();
        if (p_ < e_ && *p_ == ']') {
          ++p_;
          return h.EndArray(0);
        }
        rapidjson::SizeType n = 0;
        for (;;) {
          if (!Value(h, depth + 1)) return false;
          ++n;
          SkipWs();
          if (p_ == e_) return false;
          if (*p_ == ',') {
            ++p_;
            SkipWs();
            continue;
          }
          if (*p_ != ']') return false;
          ++p_;
          return h.EndArray(n);
        }
      }
      case '"': {
        const char* s;
        size_t len;
        bool esc;
        if (!Str(&s, &len, &esc)) return false;
        if (esc && h.ReadsStringValue()) return false;
        return h.String(s, static_cast<rapidjson::SizeType>(len), false);
      }
      case 't': return Lit("true", 4) && h.Bool(true);
      case 'f': return Lit("false", 5) && h.Bool(false);
      case 'n': return Lit("null", 4) && h.Null();
      default: return Num(h);
    }
  }

  const char* b_;
  const char* p_;
  const char* e_;
};

}  // namespace

// --- ChunkShapeMemo ---

bool ChunkShapeMemo::Parse(std::string_view json, ChunkInfo* out) {
  const size_t n = json.size();
  if (valid_ && n >= size_t{plen_} + slen_ && std::memcmp(json.data(), prefix_, plen_) == 0 &&
      std::memcmp(json.data() + n - slen_, suffix_, slen_) == 0) {
    // The text is a JSON string from the prefix's opening quote to the suffix's '"'.
    size_t text_end = n - slen_;
    FastChunkReader fr(json.substr(0, text_end + 1));
    if (fr.StringAt(plen_ - 1) && fr.Tell() == text_end + 1) {
      *out = info_;
      out->choices[0].text.end = static_cast<uint32_t>(text_end);
      ++hits_;
      return true;
    }
  }
  if (!ParseChunkFast(json, out)) {
    valid_ = false;
    return ParseChunkFull(json, out);
  }
  Remember(json, *out);
  return true;
}

void ChunkShapeMemo::Remember(std::string_view json, const ChunkInfo& info) {
  valid_ = false;
  if (info.num_choices != 1 || !info.choices[0].has_text) return;
  const ChunkChoice& c = info.choices[0];
  const uint32_t tb = c.text.begin, te = c.text.end;
  // Every other range before the text: they stay where they are in the next chunk.
  for (const ByteRange& r : {info.id, info.created, info.model, info.usage, c.role})
    if (!r.empty() && r.end > tb) return;
  if (tb == 0 || json[tb - 1] != '"' || te >= json.size() || json[te] != '"') return;
  if (tb > kMaxPrefix || json.size() - te > kMaxSuffix) return;
  plen_ = static_cast<uint16_t>(tb);
  slen_ = static_cast<uint16_t>(json.size() - te);
  std::memcpy(prefix_, json.data(), plen_);
  std::memcpy(suffix_, json.data() + te, slen_);
  info_ = info;
  valid_ = true;
}

bool ParseChunk(std::string_view json, ChunkInfo* out) {
  return ParseChunkFast(json, out) || ParseChunkFull(json, out);
}

bool ParseChunkFast(std::string_view json, ChunkInfo* out) {
  *out = ChunkInfo{};
  FastChunkReader fr(json);
  ChunkHandler<FastChunkReader> h;
  h.out = out;
  h.ms = &fr;
  h.json = json;
  if (fr.Parse(h) == FastChunkReader::Result::kOk && !h.too_deep && out->json_object &&
      OnlyJsonWhitespaceFrom(json, fr.Tell()))
    return true;
  *out = ChunkInfo{};
  return false;
}

bool ParseChunkFull(std::string_view json, ChunkInfo* out) {
  *out = ChunkInfo{};
  thread_local rapidjson::Reader reader;
  rapidjson::MemoryStream ms(json.data(), json.size());
  ChunkHandler<rapidjson::MemoryStream> h;
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
