// ExtractPrefix: the prompt's leading bytes from chat and completions bodies.
#include <gtest/gtest.h>

#include <string>

#include "common/routing/prefix.h"

namespace llmgw::routing {
namespace {

std::string Extract(std::string_view body, size_t cap = 256) {
  std::string buf(cap + 8, '#');
  size_t n = ExtractPrefix(body, buf.data(), cap);
  EXPECT_LE(n, cap);
  for (size_t i = cap; i < buf.size(); ++i) EXPECT_EQ(buf[i], '#') << "wrote past cap at " << i;
  return buf.substr(0, n);
}

TEST(ExtractPrefixTest, ChatMessagesInOrder) {
  EXPECT_EQ(Extract(R"({"model":"m","stream":true,"messages":[
      {"role":"system","content":"You are terse."},
      {"role":"user","content":"Hi \"there\"\n"}],"temperature":0})"),
            "You are terse.\nHi \"there\"\n\n");
}

TEST(ExtractPrefixTest, ContentPartsAndFieldOrder) {
  EXPECT_EQ(Extract(R"({"messages":[{"content":[{"type":"text","text":"part one"},
      {"type":"image_url","image_url":{"url":"http://x/y.png"}},{"text":"two","type":"text"}],
      "role":"user"}],"model":"m","user":"u1"})"),
            "part one\ntwo\n");
  // Keys other than content inside messages are ignored, whatever their order.
  EXPECT_EQ(Extract(R"({"messages":[{"name":"bob","content":"x","role":"user"}]})"), "x\n");
}

TEST(ExtractPrefixTest, CompletionsPrompt) {
  EXPECT_EQ(Extract(R"({"model":"m","prompt":"Once upon a time","max_tokens":5})"), "Once upon a time\n");
  EXPECT_EQ(Extract(R"({"prompt":["a","b"],"model":"m"})"), "a\nb\n");
  EXPECT_EQ(Extract(R"({"prompt":[1,2,3]})"), "") << "token ids: no text prefix";
}

TEST(ExtractPrefixTest, StopsAtCapAndSharedPrefixesMatch) {
  std::string system(5000, 'S');
  std::string a = R"({"messages":[{"role":"system","content":")" + system + R"("},{"role":"user","content":"A"}]})";
  std::string b = R"({"messages":[{"role":"system","content":")" + system + R"("},{"role":"user","content":"B"}]})";
  std::string pa = Extract(a, 64), pb = Extract(b, 64);
  EXPECT_EQ(pa, std::string(64, 'S'));
  EXPECT_EQ(pa, pb);
  EXPECT_NE(Extract(a, 6000), Extract(b, 6000));
}

TEST(ExtractPrefixTest, EscapesDecoded) {
  EXPECT_EQ(Extract(R"({"prompt":"caf\u00e9 \ud83d\ude00 tab\t"})"), "caf\xc3\xa9 \xf0\x9f\x98\x80 tab\t\n");
}

TEST(ExtractPrefixTest, BadInputGivesNothingOrWhatWasRead) {
  EXPECT_EQ(Extract(""), "");
  EXPECT_EQ(Extract("not json"), "");
  EXPECT_EQ(Extract(R"({"messages":"oops"})"), "");
  EXPECT_EQ(Extract(R"({"messages":[{"content":"ok"},{"content":"tru)"), "ok\n") << "truncated body";
  EXPECT_EQ(Extract(R"([{"prompt":"x"}])"), "") << "not an object at the top";
  EXPECT_EQ(Extract(R"({"nested":{"prompt":"no"},"other":"x"})"), "");
  std::string deep(100000, '[');
  EXPECT_EQ(Extract(deep), "") << "deep nesting is cut off, not recursed into";
  std::string deep_prompt = R"({"prompt":)" + std::string(50, '[') + "\"x\"" + std::string(50, ']') + "}";
  EXPECT_EQ(Extract(deep_prompt), "");
  char one;
  EXPECT_EQ(ExtractPrefix(R"({"prompt":"abc"})", &one, 1), 1u);
  EXPECT_EQ(one, 'a');
  EXPECT_EQ(ExtractPrefix(R"({"prompt":"abc"})", nullptr, 0), 0u);
}

}  // namespace
}  // namespace llmgw::routing
