// Environment overrides: each variable replaces its key, bad values are config errors
// naming the variable, empty or unset variables change nothing.
#include "common/env_overrides.h"

#include <gtest/gtest.h>

#include <map>
#include <string>

namespace llmgw {
namespace {

std::map<std::string, std::string> g_env;
const char* FakeEnv(const char* name) {
  auto it = g_env.find(name);
  return it == g_env.end() ? nullptr : it->second.c_str();
}

ConfigResult Base() {
  return ParseConfig(
      "instance: fromfile\nlog_level: info\ngateway: { listen: 127.0.0.1:8080, threads: 2 }\n"
      "models:\n  - name: m\n    backends: [ { url: \"http://127.0.0.1:8001\" } ]\n",
      "t.yaml");
}

TEST(EnvOverridesTest, EachVariableReplacesItsKey) {
  g_env = {{"LLMGW_INSTANCE", "host-7"}, {"LLMGW_LISTEN", "0.0.0.0:9443"}, {"LLMGW_THREADS", "0"},
           {"LLMGW_LOG_LEVEL", "debug"}};
  ConfigResult r = Base();
  ASSERT_TRUE(r.ok()) << r.ErrorText();
  ApplyEnvOverrides(&r, FakeEnv);
  ASSERT_TRUE(r.ok()) << r.ErrorText();
  EXPECT_EQ(r.config.instance, "host-7");
  EXPECT_EQ(r.config.ShmName(), "/llmgw-host-7");
  EXPECT_EQ(r.config.gateway.listen, "0.0.0.0:9443");
  EXPECT_EQ(r.config.gateway.threads, 0u);
  EXPECT_EQ(r.config.log_level, "debug");
  EXPECT_EQ(EnvOverridesInEffect(FakeEnv).size(), 4u);
}

TEST(EnvOverridesTest, UnsetOrEmptyChangesNothing) {
  g_env = {{"LLMGW_LISTEN", ""}};
  ConfigResult r = Base();
  ApplyEnvOverrides(&r, FakeEnv);
  EXPECT_TRUE(r.ok());
  EXPECT_EQ(r.config.instance, "fromfile");
  EXPECT_EQ(r.config.gateway.listen, "127.0.0.1:8080");
  EXPECT_EQ(r.config.gateway.threads, 2u);
  EXPECT_TRUE(EnvOverridesInEffect(FakeEnv).empty());
}

TEST(EnvOverridesTest, BadValuesAreErrorsNamingTheVariable) {
  g_env = {{"LLMGW_INSTANCE", "a/b"}, {"LLMGW_LISTEN", "nohost"}, {"LLMGW_THREADS", "-1"},
           {"LLMGW_LOG_LEVEL", "loud"}};
  ConfigResult r = Base();
  ApplyEnvOverrides(&r, FakeEnv);
  ASSERT_EQ(r.errors.size(), 4u) << r.ErrorText();
  std::string text = r.ErrorText();
  for (const char* var : {"$LLMGW_INSTANCE", "$LLMGW_LISTEN", "$LLMGW_THREADS", "$LLMGW_LOG_LEVEL"})
    EXPECT_NE(text.find(var), std::string::npos) << var << " in\n" << text;
  EXPECT_EQ(r.config.instance, "fromfile");  // nothing half-applied
  g_env = {{"LLMGW_THREADS", "4x"}};
  ConfigResult r2 = Base();
  ApplyEnvOverrides(&r2, FakeEnv);
  EXPECT_FALSE(r2.ok());
  g_env = {{"LLMGW_THREADS", "1025"}};
  ConfigResult r3 = Base();
  ApplyEnvOverrides(&r3, FakeEnv);
  EXPECT_FALSE(r3.ok());
}

}  // namespace
}  // namespace llmgw
