// Config loader defects found by hostile testing (issue 17): non-UTF-8 bytes are refused
// with their line and column (they used to reach llmcd's JSON log and its protobuf
// answers, where they broke both), and a backend URL's password never appears in an
// error message.
#include <gtest/gtest.h>

#include <string>

#include "common/config.h"
#include "common/utf8.h"

namespace llmgw {
namespace {

const char kGood[] = "models:\n  - name: m\n    backends:\n      - { url: http://127.0.0.1:9 }\n";

TEST(ConfigHardeningTest, NonUtf8BytesAreRefusedWithLineAndColumn) {
  ConfigResult r = ParseConfig("models:\n  - name: m\n    policy: r\xe9ound\n    backends: []\n", "latin1.yaml");
  ASSERT_FALSE(r.ok());
  ASSERT_EQ(r.errors.size(), 1u) << r.ErrorText();
  EXPECT_EQ(r.errors[0].line, 3);
  EXPECT_EQ(r.errors[0].key, "(encoding)");
  EXPECT_NE(r.errors[0].message.find("not valid UTF-8: byte 0xE9 at column 14"), std::string::npos)
      << r.ErrorText();
  // The message itself is clean UTF-8, so it can go into logs and gRPC answers as is.
  EXPECT_EQ(FirstInvalidUtf8(r.ErrorText()), std::string_view::npos) << r.ErrorText();
}

TEST(ConfigHardeningTest, InvalidByteOnTheFirstLineAndTruncatedSequence) {
  ConfigResult r = ParseConfig("\xff\nmodels: []\n", "a.yaml");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.errors[0].line, 1);
  EXPECT_NE(r.errors[0].message.find("column 1;"), std::string::npos) << r.ErrorText();
  // A name cut in the middle of a two-byte character, at the very end of the file.
  r = ParseConfig(std::string(kGood) + "# caf\xc3", "b.yaml");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.errors[0].line, 5);
  EXPECT_NE(r.errors[0].message.find("byte 0xC3 at column 6"), std::string::npos) << r.ErrorText();
}

TEST(ConfigHardeningTest, WellFormedUtf8IsAccepted) {
  ConfigResult r = ParseConfig("# modèle: 日本語 🚀\n" + std::string(kGood), "utf8.yaml");
  EXPECT_TRUE(r.ok()) << r.ErrorText();
}

TEST(ConfigHardeningTest, UrlCredentialsAreRefusedWithoutEchoingThePassword) {
  ConfigResult r = ParseConfig(
      "models:\n  - name: m\n    backends:\n      - { url: \"http://admin:s3cr3t-pw@10.0.0.1:8000/v1\" }\n",
      "creds.yaml");
  ASSERT_FALSE(r.ok());
  std::string text = r.ErrorText();
  EXPECT_EQ(text.find("s3cr3t-pw"), std::string::npos) << text;
  EXPECT_EQ(text.find("admin"), std::string::npos) << text;
  EXPECT_NE(text.find("credentials in the URL"), std::string::npos) << text;
  EXPECT_NE(text.find("http://***@10.0.0.1:8000/v1"), std::string::npos) << text;
}

TEST(ConfigHardeningTest, RedactUrlCredentials) {
  EXPECT_EQ(RedactUrlCredentials("http://u:p@h:1/x"), "http://***@h:1/x");
  EXPECT_EQ(RedactUrlCredentials("http://token@h"), "http://***@h");
  EXPECT_EQ(RedactUrlCredentials("http://u:p@q@h"), "http://***@h");  // the last @ ends userinfo
  EXPECT_EQ(RedactUrlCredentials("http://h:1/a@b"), "http://h:1/a@b");  // @ in the path is not userinfo
  EXPECT_EQ(RedactUrlCredentials("http://h:1"), "http://h:1");
  EXPECT_EQ(RedactUrlCredentials("u:p@h"), "***@h");
}

}  // namespace
}  // namespace llmgw
