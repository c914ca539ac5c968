// llmctl's config commands against an in-process fake admin service: config show (table
// and JSON), reload (accepted and rejected), check on real files without a server, and diff
// of a local file against the server's config. The other commands are in cli_test.cc.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <rapidjson/document.h>

#include <mutex>
#include <string>

#include "tests/cli/cli_test_support.h"

namespace llmgw::cli {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using namespace test_support;  // RunLlmctl, TempDir, ClosedPort, ParseJson, CliTest, ...

// ---- config ----

TEST_F(CliTest, ConfigShowTableAndJson) {
  {
    std::lock_guard<std::mutex> lock(server_.admin.mu);
    server_.admin.config.set_yaml(ReadFile(SourcePath("deploy/examples/design-example.yaml")));
  }
  Result r = Cli({"config", "show"});
  ASSERT_EQ(r.rc, kExitOk) << r.err;
  EXPECT_THAT(r.out, HasSubstr("# /etc/llmgw/llmgw.yaml, version 4"));
  EXPECT_THAT(r.out, HasSubstr("policy: p2c_kv"));
  Result j = Cli({"config", "show", "-o", "json"});
  auto got = ParseJson<admin::v1::GetConfigResponse>(j.out);
  EXPECT_EQ(got.version(), 4u);
  EXPECT_THAT(got.yaml(), HasSubstr("llama-3.1-8b"));
}

TEST_F(CliTest, ConfigReloadOkAndRejected) {
  Result r = Cli({"config", "reload"});
  ASSERT_EQ(r.rc, kExitOk) << r.err;
  EXPECT_THAT(r.out, HasSubstr("config version 5"));
  EXPECT_THAT(r.out, HasSubstr("policy p2c_kv -> least_queue"));
  {
    std::lock_guard<std::mutex> lock(server_.admin.mu);
    server_.admin.reload.Clear();
    server_.admin.reload.set_ok(false);
    server_.admin.reload.add_errors("/etc/llmgw/llmgw.yaml:7: models[0].policy: unknown policy 'fast'");
  }
  Result bad = Cli({"config", "reload"});
  EXPECT_EQ(bad.rc, kExitUsage);
  EXPECT_THAT(bad.err, HasSubstr("reload rejected"));
  EXPECT_THAT(bad.err, HasSubstr("/etc/llmgw/llmgw.yaml:7: models[0].policy: unknown policy"));
  Result bad_json = Cli({"config", "reload", "-o", "json"});
  EXPECT_EQ(bad_json.rc, kExitUsage);
  auto got = ParseJson<admin::v1::ReloadConfigResponse>(bad_json.out);
  EXPECT_FALSE(got.ok());
  EXPECT_EQ(got.errors_size(), 1);
}

TEST(CliConfigCheckTest, GoodFileNeedsNoServer) {
  std::string closed = "127.0.0.1:" + std::to_string(ClosedPort());
  std::string file = SourcePath("deploy/examples/design-example.yaml");
  Result r = RunLlmctl({"--addr", closed, "config", "check", file});
  EXPECT_EQ(r.rc, kExitOk) << r.err;
  EXPECT_THAT(r.out, HasSubstr(file + ": ok (1 models, 2 backends)"));
  Result j = RunLlmctl({"-o", "json", "config", "check", file});
  auto got = ParseJson<admin::v1::ValidateConfigResponse>(j.out);
  EXPECT_TRUE(got.ok());
  EXPECT_EQ(got.errors_size(), 0);
}

TEST(CliConfigCheckTest, BadFilePrintsFileLineKeyMessage) {
  TempDir dir;
  std::string file = dir.Write("bad.yaml",
                               "instance: default\n"
                               "models:\n"
                               "  - name: m\n"
                               "    policy: fastest\n"
                               "    backends:\n"
                               "      - { url: ftp://x:1 }\n");
  Result r = RunLlmctl({"config", "check", file});
  EXPECT_EQ(r.rc, kExitUsage);
  EXPECT_TRUE(r.out.empty());
  std::istringstream lines(r.err);
  int n = 0;
  for (std::string l; std::getline(lines, l); ++n) {
    ASSERT_EQ(l.rfind(file + ":", 0), 0u) << l;  // FILE:LINE: key: message
    EXPECT_THAT(l.substr(file.size()), ::testing::MatchesRegex(":[0-9]+: [^:]+: .+"));
  }
  EXPECT_GE(n, 1);
  EXPECT_THAT(r.err, HasSubstr(file + ":4: "));
  Result j = RunLlmctl({"-o", "json", "config", "check", file});
  EXPECT_EQ(j.rc, kExitUsage);
  auto got = ParseJson<admin::v1::ValidateConfigResponse>(j.out);
  EXPECT_FALSE(got.ok());
  EXPECT_EQ(got.errors_size(), n);
}

TEST(CliConfigCheckTest, MissingFile) {
  Result r = RunLlmctl({"config", "check", "/nonexistent/llmgw.yaml"});
  EXPECT_EQ(r.rc, kExitUsage);
  EXPECT_THAT(r.err, HasSubstr("/nonexistent/llmgw.yaml:0: (file): cannot read"));
}

class CliDiffTest : public CliTest {
 protected:
  void SetUp() override {
    running_ = ReadFile(SourcePath("deploy/examples/design-example.yaml"));
    std::lock_guard<std::mutex> lock(server_.admin.mu);
    server_.admin.config.set_yaml(running_);
  }
  std::string running_;
  TempDir dir_;
};

TEST_F(CliDiffTest, SameConfigHasNoChanges) {
  // Spelling out a default (threads: 0 is the default) is not a change either.
  std::string file = dir_.Write("same.yaml", running_ + "log_level: info\n");
  Result r = Cli({"config", "diff", file});
  ASSERT_EQ(r.rc, kExitOk) << r.err;
  EXPECT_THAT(r.out, HasSubstr("no changes"));
}

TEST_F(CliDiffTest, ReportsModelsBackendsAndKeys) {
  std::string next = R"(instance: default
gateway:
  listen: 127.0.0.1:8080
  retries: { max: 3 }
admin:
  grpc_listen: 127.0.0.1:9090
models:
  - name: llama-3.1-8b
    aliases: [default]
    policy: least_queue
    backends:
      - { url: http://127.0.0.1:8001, max_concurrent: 16, weight: 2 }
      - { url: http://127.0.0.1:8003, max_concurrent: 16, weight: 1 }
  - name: qwen
    policy: round_robin
    backends:
      - { url: http://127.0.0.1:9001 }
)";
  std::string file = dir_.Write("next.yaml", next);
  Result r = Cli({"config", "diff", file});
  ASSERT_EQ(r.rc, kExitOk) << r.err;
  EXPECT_THAT(r.out, HasSubstr("~ model llama-3.1-8b: policy: p2c_kv -> least_queue\n"));
  EXPECT_THAT(r.out, HasSubstr("+ model qwen: aliases [], fallbacks [], policy round_robin, price.input_per_mtok 0, price.output_per_mtok 0, rps 0, 1 backends\n"));
  EXPECT_THAT(r.out, HasSubstr("~ backend http://127.0.0.1:8001: weight: 1 -> 2\n"));
  EXPECT_THAT(r.out, HasSubstr("+ backend http://127.0.0.1:8003: "));
  EXPECT_THAT(r.out, HasSubstr("+ backend http://127.0.0.1:9001: "));
  EXPECT_THAT(r.out, HasSubstr("- backend http://127.0.0.1:8002\n"));
  EXPECT_THAT(r.out, HasSubstr("~ key gateway.retries.max: 2 -> 3\n"));
  // The design example's health/circuit values differ from nothing else; keys equal by
  // effective value are not listed.
  EXPECT_THAT(r.out, Not(HasSubstr("gateway.listen")));

  Result j = Cli({"config", "diff", file, "-o", "json"});
  ASSERT_EQ(j.rc, kExitOk) << j.err;
  rapidjson::Document d;
  ASSERT_FALSE(d.Parse(j.out.c_str()).HasParseError()) << j.out;
  EXPECT_TRUE(d["changed"].GetBool());
  bool saw_removed = false;
  for (const auto& c : d["changes"].GetArray()) {
    if (std::string(c["change"].GetString()) == "removed") {
      EXPECT_STREQ(c["kind"].GetString(), "backend");
      EXPECT_STREQ(c["name"].GetString(), "http://127.0.0.1:8002");
      saw_removed = true;
    }
  }
  EXPECT_TRUE(saw_removed);
}

TEST_F(CliDiffTest, RemovedModel) {
  std::string file = dir_.Write("empty.yaml",
                                "models:\n  - name: other\n    backends:\n      - { url: http://127.0.0.1:7000 }\n");
  Result r = Cli({"config", "diff", file});
  ASSERT_EQ(r.rc, kExitOk) << r.err;
  EXPECT_THAT(r.out, HasSubstr("- model llama-3.1-8b\n"));
  EXPECT_THAT(r.out, HasSubstr("+ model other: "));
}

TEST_F(CliDiffTest, InvalidLocalFileIsRejectedBeforeAskingTheServer) {
  std::string file = dir_.Write("bad.yaml", "models: 5\n");
  Result r = Cli({"config", "diff", file});
  EXPECT_EQ(r.rc, kExitUsage);
  EXPECT_THAT(r.err, HasSubstr(file + ":"));
}

}  // namespace
}  // namespace llmgw::cli
