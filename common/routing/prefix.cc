// ExtractPrefix: RapidJSON's SAX reader in in-situ mode over a read-only body. In-situ
// mode decodes each string through the input stream's Put* calls instead of the reader's
// heap stack; our stream writes those bytes straight to the caller's buffer (and drops
// what does not fit), so no allocation happens whatever the body holds. Strings we do not
// want are written at the same spot and overwritten by the next one.
#include "common/routing/prefix.h"

#include <cstdint>
#include <cstring>

#include <rapidjson/reader.h>

namespace llmgw::routing {
namespace {

// Reads from a const buffer; "in-situ" writes land in [out, out + room).
class CaptureStream {
 public:
  using Ch = char;
  CaptureStream(std::string_view in, char* out, size_t room)
      : cur_(in.data()), begin_(in.data()), end_(in.data() + in.size()), out_(out), room_(room) {}

  Ch Peek() const { return cur_ < end_ ? *cur_ : '\0'; }
  Ch Take() { return cur_ < end_ ? *cur_++ : '\0'; }
  size_t Tell() const { return static_cast<size_t>(cur_ - begin_); }

  Ch* PutBegin() {
    written_ = 0;
    return out_;
  }
  void Put(Ch c) {
    if (written_ < room_) out_[written_] = c;
    if (written_ < sizeof(head_)) head_[written_] = c;
    ++written_;
  }
  // The first bytes of the last string, whatever room is left: keys are compared here,
  // since the window may be too small (or full) to hold them.
  std::string_view Head(size_t len) const { return {head_, len < sizeof(head_) ? len : sizeof(head_)}; }
  void Flush() {}
  size_t PutEnd(Ch* /*begin*/) { return written_; }

  // The handler moves the write window past a string it keeps.
  void Advance(size_t n) {
    out_ += n;
    room_ -= n;
  }
  size_t room() const { return room_; }

 private:
  const char* cur_;
  const char* begin_;
  const char* end_;
  char* out_;
  size_t room_;
  size_t written_ = 0;
  char head_[16] = {};
};

constexpr int kMaxDepth = 32;  // deeper bodies are not worth following (and bound recursion)

// Tracks where in the document we are; keeps the strings that make the prompt.
class PrefixHandler : public rapidjson::BaseReaderHandler<rapidjson::UTF8<>, PrefixHandler> {
 public:
  explicit PrefixHandler(CaptureStream* s) : s_(s) {}

  size_t kept = 0;
  bool full = false;

  bool Null() { return Value(); }
  bool Bool(bool) { return Value(); }
  bool Int(int) { return Value(); }
  bool Uint(unsigned) { return Value(); }
  bool Int64(int64_t) { return Value(); }
  bool Uint64(uint64_t) { return Value(); }
  bool Double(double) { return Value(); }
  bool RawNumber(const char*, rapidjson::SizeType, bool) { return Value(); }

  bool String(const char* str, rapidjson::SizeType len, bool) {
    if (Wanted()) Keep(str, len);
    Value();
    return !full;
  }
  bool Key(const char*, rapidjson::SizeType len, bool) {
    // Keys we look for are short; a longer one matches none of them.
    std::string_view k = len <= 15 ? s_->Head(len) : std::string_view("-");
    if (depth_ == 1) top_key_ = k == "messages" ? kMessages : k == "prompt" ? kPrompt : kOther;
    else if (depth_ == 3) key3_ = k == "content" ? kContent : kOther;
    else if (depth_ == 5) key5_ = k == "text" ? kText : kOther;
    return true;
  }
  bool StartObject() { return Open(true); }
  bool EndObject(rapidjson::SizeType) { return Close(); }
  bool StartArray() { return Open(false); }
  bool EndArray(rapidjson::SizeType) { return Close(); }

 private:
  enum Tag : uint8_t { kOther, kMessages, kPrompt, kContent, kText };

  // Which string values make the prompt, by position:
  //   {"prompt": S} / {"prompt": [S...]}
  //   {"messages": [{"content": S}]} / {"messages": [{"content": [{"text": S}]}]}
  bool Wanted() const {
    if (top_key_ == kPrompt) return depth_ == 1 || (depth_ == 2 && !is_object_[2]);
    if (top_key_ != kMessages || depth_ < 3 || !is_object_[3] || key3_ != kContent) return false;
    if (depth_ == 3) return true;
    return depth_ == 5 && is_object_[5] && !is_object_[4] && key5_ == kText;
  }
  void Keep(const char* str, size_t len) {
    (void)str;  // already in place: the stream wrote it at the window's start
    size_t room = s_->room();
    size_t n = len < room ? len : room;
    s_->Advance(n);
    kept += n;
    if (s_->room() == 0) {
      full = true;
      return;
    }
    // Separator so "ab"+"c" and "a"+"bc" hash differently.
    char nl = '\n';
    std::memcpy(s_->PutBegin(), &nl, 1);
    s_->Advance(1);
    ++kept;
    if (s_->room() == 0) full = true;
  }
  bool Value() { return true; }
  bool Open(bool object) {
    if (depth_ + 1 >= kMaxDepth) return false;
    ++depth_;
    is_object_[depth_] = object;
    return true;
  }
  bool Close() {
    bool done_with_prompt = depth_ == 2 && (top_key_ == kMessages || top_key_ == kPrompt);
    if (depth_ == 3) key3_ = kOther;
    if (depth_ == 5) key5_ = kOther;
    --depth_;
    return !done_with_prompt;  // stop parsing: we have the whole prompt
  }

  CaptureStream* s_;
  int depth_ = 0;
  bool is_object_[kMaxDepth + 1] = {};
  Tag top_key_ = kOther, key3_ = kOther, key5_ = kOther;
};

}  // namespace

size_t ExtractPrefix(std::string_view body, char* buf, size_t cap) {
  if (!buf || cap == 0) return 0;
  CaptureStream stream(body, buf, cap);
  PrefixHandler handler(&stream);
  // The reader's own stack is never touched in in-situ, recursive, non-string-number mode,
  // so this allocator is never asked for memory.
  rapidjson::GenericReader<rapidjson::UTF8<>, rapidjson::UTF8<>, rapidjson::CrtAllocator> reader(nullptr, 0);
  reader.Parse<rapidjson::kParseInsituFlag | rapidjson::kParseStopWhenDoneFlag>(stream, handler);
  // A parse error after some prompt bytes were kept still leaves a useful prefix; the
  // handler stopping us on purpose shows up as kParseErrorTermination.
  return handler.kept;
}

}  // namespace llmgw::routing
