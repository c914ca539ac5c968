// Unit tests of the top-level JSON field reader.
#include "dataplane/request_json.h"

#include <gtest/gtest.h>

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

}  // namespace
}  // namespace llmgw::dataplane
