// The JSON-lines logger writes one parseable object per line with escaping and fields.
#include "common/log.h"

#include <gtest/gtest.h>
#include <rapidjson/document.h>
#include <unistd.h>

#include <string>

namespace llmgw {
namespace {

TEST(LogTest, FormatsValidJsonWithFieldsAndRequestId) {
  char buf[1024];
  size_t n = FormatLogLine(buf, sizeof(buf), LogLevel::kWarn, "quote \" and\nnewline",
                           {{"backend", "http://x:1"}, {"n", 42}, {"ok", true}, {"r", 0.5}}, "req-1");
  ASSERT_GT(n, 0u);
  ASSERT_EQ(buf[n - 1], '\n');
  std::string line(buf, n - 1);
  rapidjson::Document d;
  d.Parse(line.c_str());
  ASSERT_FALSE(d.HasParseError()) << line;
  EXPECT_STREQ(d["level"].GetString(), "warn");
  EXPECT_STREQ(d["msg"].GetString(), "quote \" and\nnewline");
  EXPECT_STREQ(d["request_id"].GetString(), "req-1");
  EXPECT_STREQ(d["backend"].GetString(), "http://x:1");
  EXPECT_EQ(d["n"].GetInt(), 42);
  EXPECT_TRUE(d["ok"].GetBool());
  EXPECT_DOUBLE_EQ(d["r"].GetDouble(), 0.5);
}

TEST(LogTest, TruncatesLongLinesButStaysJson) {
  char buf[128];
  std::string big(1000, 'a');
  size_t n = FormatLogLine(buf, sizeof(buf), LogLevel::kInfo, big, {}, {});
  ASSERT_LE(n, sizeof(buf));
  EXPECT_EQ(buf[n - 2], '}');
}

TEST(LogTest, LevelFiltersAndWritesToFd) {
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  SetLogFd(fds[1]);
  SetLogLevel(LogLevel::kWarn);
  LOG_INFO("hidden");
  LOG_ERROR("shown", {{"k", "v"}});
  SetLogFd(2);
  SetLogLevel(LogLevel::kInfo);
  close(fds[1]);
  char buf[4096];
  ssize_t n = read(fds[0], buf, sizeof(buf));
  close(fds[0]);
  ASSERT_GT(n, 0);
  std::string out(buf, static_cast<size_t>(n));
  EXPECT_EQ(out.find("hidden"), std::string::npos);
  EXPECT_NE(out.find("\"msg\":\"shown\""), std::string::npos);
  LogLevel l;
  EXPECT_TRUE(ParseLogLevel("debug", &l));
  EXPECT_EQ(l, LogLevel::kDebug);
  EXPECT_FALSE(ParseLogLevel("loud", &l));
}

}  // namespace
}  // namespace llmgw
