// Unit tests of the top-level JSON field reader.
#include "dataplane/request_json.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <string>

namespace llmgw::dataplane {
namespace {

RequestFields Read(const std::string& s) {
  RequestFields f;
  ReadRequestFields(s.data(), s.size(), "priority", &f);
  return f;
}

TEST(RequestJsonTest, ReadsTopLevelFieldsOnly) {
  std::string s = R"({"messages":[{"model":"inner","stream":false}],"model":"m\"x","stream":true,"user":"bob","priority":3})";
  RequestFields f = Read(s);
  ASSERT_TRUE(f.valid_json);
  EXPECT_TRUE(f.is_object);
  EXPECT_EQ(f.Model(), "m\"x");
  EXPECT_TRUE(f.stream);
  EXPECT_EQ(f.User(), "bob");
  EXPECT_TRUE(f.has_priority);
  EXPECT_EQ(f.priority, 3);
  EXPECT_EQ(s.substr(f.model_raw_begin, f.model_raw_end - f.model_raw_begin), R"("m\"x")");
}

// Numbers out of int64's range (a cast would be undefined behaviour) are clamped; other
// numeric fields (temperature, top_p) are not read at all.
TEST(RequestJsonTest, HugeAndFractionalNumbersAreSafe) {
  RequestFields f = Read(R"({"model":"m","temperature":1e300,"top_p":-1e300,"priority":1e300})");
  ASSERT_TRUE(f.valid_json);
  EXPECT_TRUE(f.has_priority);
  EXPECT_EQ(f.priority, INT64_MAX);
  f = Read(R"({"model":"m","priority":-1e300})");
  EXPECT_EQ(f.priority, INT64_MIN);
  f = Read(R"({"model":"m","priority":2.9})");
  EXPECT_EQ(f.priority, 2);
  f = Read(R"({"model":"m","temperature":0.7})");
  EXPECT_FALSE(f.has_priority);
}

TEST(RequestJsonTest, RawModelRangeWithSpaces) {
  std::string s = "{ \"model\" :  \"abc\" , \"x\":1}";
  RequestFields f = Read(s);
  ASSERT_TRUE(f.valid_json);
  EXPECT_EQ(s.substr(f.model_raw_begin, f.model_raw_end - f.model_raw_begin), "\"abc\"");
}

TEST(RequestJsonTest, RejectsInvalidAndNonObjects) {
  EXPECT_FALSE(Read("{").valid_json);
  EXPECT_FALSE(Read("{} x").valid_json);
  EXPECT_FALSE(Read("").valid_json);
  RequestFields arr = Read("[1]");
  EXPECT_TRUE(arr.valid_json);
  EXPECT_FALSE(arr.is_object);
  RequestFields num = Read(R"({"model":5})");
  EXPECT_TRUE(num.has_model);
  EXPECT_FALSE(num.model_is_string);
}

// Found by request_json_fuzz: the reader recursed once per level, so a body of '['
// overflowed the stack and crashed llmgw. Deep nesting is now a clean JSON error.
TEST(RequestJsonTest, DeepNestingIsAnErrorNotAStackOverflow) {
  for (const char* open : {"[", "{\"a\":"}) {
    std::string s = "{\"model\":\"m\",\"x\":";
    for (int i = 0; i < 1000000; ++i) s += open;
    RequestFields f = Read(s);
    EXPECT_FALSE(f.valid_json) << open;
    EXPECT_NE(std::string(f.error).find("nested deeper than 128 levels"), std::string::npos) << f.error;
  }
  // 100 levels (deeper than any tool schema) still parse, fields intact.
  std::string ok = "{\"model\":\"m\",\"tools\":";
  for (int i = 0; i < 99; ++i) ok += "[";
  for (int i = 0; i < 99; ++i) ok += "]";
  ok += ",\"stream\":true}";
  RequestFields f = Read(ok);
  ASSERT_TRUE(f.valid_json) << f.error;
  EXPECT_EQ(f.Model(), "m");
  EXPECT_TRUE(f.stream);
}

}  // namespace
}  // namespace llmgw::dataplane

namespace llmgw::dataplane {
namespace {

// Any JSON number may be a double far outside int64's range; turning one into an integer
// unclamped is undefined behaviour (x86 gives INT64_MIN for 1e300, so before the clamp the
// first expectation below failed).
TEST(RequestJsonTest, HugeNumbersAreClampedNotCast) {
  RequestFields f = Read(R"({"model":"m","temperature":1e300,"priority":1e300})");
  ASSERT_TRUE(f.valid_json);
  EXPECT_TRUE(f.has_priority);
  EXPECT_EQ(f.priority, INT64_MAX);
  f = Read(R"({"model":"m","priority":-1e300,"top_p":-1e300})");
  ASSERT_TRUE(f.valid_json);
  EXPECT_EQ(f.priority, INT64_MIN);
  f = Read(R"({"model":"m","priority":2.9})");
  EXPECT_EQ(f.priority, 2);
  f = Read(R"({"model":"m","priority":18446744073709551615})");
  EXPECT_EQ(f.priority, INT64_MAX);
  // A double anywhere else leaves the priority alone.
  f = Read(R"({"model":"m","temperature":1e300,"n":{"priority":1e300}})");
  ASSERT_TRUE(f.valid_json);
  EXPECT_FALSE(f.has_priority);
}

// One limit for model names: what the snapshot holds. A name at the limit is read whole;
// one byte more is flagged (the gateway answers 400), never silently cut to a prefix.
TEST(RequestJsonTest, ModelNameLimitIsTheSnapshots) {
  std::string at(kMaxModelName, 'a');
  RequestFields f = Read(R"({"model":")" + at + R"("})");
  ASSERT_TRUE(f.valid_json);
  EXPECT_FALSE(f.model_too_long);
  EXPECT_EQ(f.Model(), at);
  f = Read(R"({"model":")" + at + R"(b"})");
  ASSERT_TRUE(f.valid_json);
  EXPECT_TRUE(f.model_too_long);
  EXPECT_EQ(kMaxModelName + 1, shm::kNameLen);
}

}  // namespace
}  // namespace llmgw::dataplane
