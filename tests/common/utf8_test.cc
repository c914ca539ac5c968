// UTF-8 validation (common/utf8.h) and its use by the JSON log writer: every log line is
// valid JSON text whatever bytes a field carries (issue 17: a Latin-1 config byte made
// llmcd's log unparsable).
#include "common/utf8.h"

#include <gtest/gtest.h>
#include <rapidjson/document.h>

#include <string>

#include "common/log.h"

namespace llmgw {
namespace {

TEST(Utf8Test, AcceptsWellFormedSequences) {
  EXPECT_EQ(FirstInvalidUtf8(""), std::string_view::npos);
  EXPECT_EQ(FirstInvalidUtf8("plain ascii\n"), std::string_view::npos);
  EXPECT_EQ(FirstInvalidUtf8("é 日本 🚀 \xf4\x8f\xbf\xbf"), std::string_view::npos);  // up to U+10FFFF
}

TEST(Utf8Test, FindsTheFirstBadByte) {
  EXPECT_EQ(FirstInvalidUtf8("ab\xe9z"), 2u);          // Latin-1 é
  EXPECT_EQ(FirstInvalidUtf8("\xc3"), 0u);             // truncated
  EXPECT_EQ(FirstInvalidUtf8("x\xc0\xaf"), 1u);        // overlong '/'
  EXPECT_EQ(FirstInvalidUtf8("\xe0\x80\xaf"), 0u);     // overlong, 3 bytes
  EXPECT_EQ(FirstInvalidUtf8("\xed\xa0\x80"), 0u);     // surrogate U+D800
  EXPECT_EQ(FirstInvalidUtf8("\xf4\x90\x80\x80"), 0u); // above U+10FFFF
  EXPECT_EQ(FirstInvalidUtf8("\xf5\x80\x80\x80"), 0u);
  EXPECT_EQ(FirstInvalidUtf8("ok\xe6\x97"), 2u);       // 3-byte sequence cut short
  EXPECT_EQ(FirstInvalidUtf8("\x80"), 0u);             // lone continuation byte
}

bool IsValidJson(const std::string& line) {
  rapidjson::Document d;
  d.Parse<rapidjson::kParseValidateEncodingFlag>(line.c_str(), line.size());
  return !d.HasParseError() && d.IsObject();
}

TEST(Utf8Test, LogLinesStayValidJsonWithInvalidBytes) {
  char buf[1024];
  size_t n = FormatLogLine(buf, sizeof buf, LogLevel::kError, "config reload rejected",
                           {{"error", "c.yaml:5: unknown policy 'r\xe9ound' \xff\xfe"}}, {});
  std::string line(buf, n);
  EXPECT_TRUE(IsValidJson(line)) << line;
  EXPECT_NE(line.find("r\\ufffdound"), std::string::npos) << line;
  // Well-formed multibyte text is kept as is.
  n = FormatLogLine(buf, sizeof buf, LogLevel::kInfo, "modèle 日本", {{"k", "🚀"}}, {});
  line.assign(buf, n);
  EXPECT_TRUE(IsValidJson(line)) << line;
  EXPECT_NE(line.find("modèle 日本"), std::string::npos) << line;
  EXPECT_NE(line.find("🚀"), std::string::npos) << line;
}

TEST(Utf8Test, TruncatedLogFieldNeverEndsInsideASequence) {
  // Fill the line so the cap falls in the middle of multibyte characters.
  std::string v;
  for (int i = 0; i < 400; ++i) v += "日";
  char buf[256];
  size_t n = FormatLogLine(buf, sizeof buf, LogLevel::kInfo, "m", {{"v", v}}, {});
  std::string line(buf, n);
  EXPECT_TRUE(IsValidJson(line)) << line;
}

}  // namespace
}  // namespace llmgw
