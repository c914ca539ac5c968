// The stored fleet config (common/fleet_config.h): which keys it may hold, and the merge
// with a host's local file (fleet-wide keys from the stored document, local keys from the
// file, a fleet-wide key the document leaves out at its default).
#include "common/fleet_config.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <string>

namespace llmgw {
namespace {

class FleetConfigTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/llmgw-fleetcfg-XXXXXX";
    dir_ = mkdtemp(tmpl);
  }
  void TearDown() override { std::system(("rm -rf " + dir_).c_str()); }
  std::string Write(const std::string& name, const std::string& text) {
    std::string p = dir_ + "/" + name;
    std::ofstream(p) << text;
    return p;
  }
  std::string dir_;
};

const char kLocal[] =
    "instance: fc-local\n"
    "gateway: { listen: 127.0.0.1:8123, threads: 3, retries: { max: 5 } }\n"
    "admin: { grpc_listen: 127.0.0.1:9191 }\n"
    "health: { interval_ms: 777 }\n"
    "fleet: { etcd: { endpoints: [\"http://127.0.0.1:2379\"], prefix: /x/ } }\n"
    "models:\n  - name: local-model\n    backends: [ { url: \"http://127.0.0.1:1\" } ]\n";

TEST(FleetConfigKeys, ReloadKeysAreFleetWideRestartKeysAndKeysFileAreLocal) {
  EXPECT_TRUE(IsFleetWideKey("models"));
  EXPECT_TRUE(IsFleetWideKey("keys"));
  EXPECT_TRUE(IsFleetWideKey("health.interval_ms"));
  EXPECT_TRUE(IsFleetWideKey("gateway.retries.max"));
  EXPECT_TRUE(IsFleetWideKey("limits.global.rps"));
  EXPECT_FALSE(IsFleetWideKey("gateway.listen"));
  EXPECT_FALSE(IsFleetWideKey("gateway.threads"));
  EXPECT_FALSE(IsFleetWideKey("instance"));
  EXPECT_FALSE(IsFleetWideKey("admin.grpc_listen"));
  EXPECT_FALSE(IsFleetWideKey("fleet.etcd.endpoints"));
  EXPECT_FALSE(IsFleetWideKey("auth.keys_file"));
  EXPECT_FALSE(IsFleetWideKey("no.such.key"));
}

TEST_F(FleetConfigTest, MergedConfigTakesFleetWideKeysFromTheStoredDocumentAndLocalOnesFromTheFile) {
  std::string local = Write("local.yaml", kLocal);
  const std::string fleet =
      "gateway: { timeouts: { connect_ms: 1234 } }\n"
      "models:\n  - name: fleet-model\n    policy: round_robin\n"
      "    backends: [ { id: f1, url: \"http://127.0.0.1:2\" } ]\n";
  ConfigResult r = LoadConfigWithFleet(local, fleet, "<fleet>", true);
  ASSERT_TRUE(r.ok()) << r.ErrorText();
  EXPECT_EQ(r.config.instance, "fc-local");
  EXPECT_EQ(r.config.gateway.listen, "127.0.0.1:8123");
  EXPECT_EQ(r.config.gateway.threads, 3u);
  EXPECT_EQ(r.config.admin.grpc_listen, "127.0.0.1:9191");
  EXPECT_EQ(r.config.fleet.etcd.prefix, "/x/");
  ASSERT_EQ(r.config.models.size(), 1u);
  EXPECT_EQ(r.config.models[0].name, "fleet-model");
  EXPECT_EQ(r.config.gateway.timeouts.connect_ms, 1234u);
  // Fleet-wide keys the stored document leaves out are at their defaults, not the file's.
  EXPECT_EQ(r.config.health.interval_ms, HealthConfig{}.interval_ms);
  EXPECT_EQ(r.config.gateway.retries.max, RetriesConfig{}.max);
  EXPECT_EQ(r.config.source_file, local);
}

TEST_F(FleetConfigTest, StoredDocumentSettingALocalKeyIsRefusedWithItsLine) {
  const std::string fleet =
      "models:\n  - name: m\n    backends: [ { url: \"http://127.0.0.1:2\" } ]\n"
      "gateway:\n  listen: 0.0.0.0:80\n";
  auto errors = CheckFleetConfigText(fleet, "push.yaml");
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(errors[0].key, "gateway.listen");
  EXPECT_EQ(errors[0].line, 5);
  EXPECT_NE(errors[0].ToString().find("push.yaml:5: gateway.listen: is local to each host"), std::string::npos)
      << errors[0].ToString();
}

TEST_F(FleetConfigTest, BrokenStoredDocumentIsRefusedWithItsOwnLineNumbers) {
  std::string local = Write("local.yaml", kLocal);
  ConfigResult r = LoadConfigWithFleet(local, "models:\n  - name: m\n    backends: [ { url: \"ftp://x\" } ]\n",
                                       "push.yaml", true);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.errors[0].file, "push.yaml");
  EXPECT_EQ(r.errors[0].line, 3);
  r = LoadConfigWithFleet(local, "models: [\n", "push.yaml", true);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.errors[0].key, "(syntax)");
  r = LoadConfigWithFleet(local, "health: { interval_ms: 100 }\n", "push.yaml", true);  // no models
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.errors[0].key, "models");
}

TEST_F(FleetConfigTest, KeysFromTheLocalKeysFileAreCheckedAgainstTheStoredModels) {
  Write("keys.yaml", "- { id: k1, key_sha256: \"" + std::string(64, 'a') + "\", models: [fleet-model] }\n");
  std::string local = Write("local.yaml", std::string(kLocal) + "auth: { keys_file: keys.yaml }\n");
  const std::string fleet =
      "auth: { required: true }\n"
      "models:\n  - name: fleet-model\n    backends: [ { url: \"http://127.0.0.1:2\" } ]\n";
  ConfigResult r = LoadConfigWithFleet(local, fleet, "<fleet>", true);
  ASSERT_TRUE(r.ok()) << r.ErrorText();  // auth.required is met by the local keys file
  ASSERT_EQ(r.config.keys.size(), 1u);
  EXPECT_EQ(r.config.keys[0].id, "k1");
  EXPECT_TRUE(r.config.auth.required);
  // The key names a model the stored config does not have: refused on the merged config.
  r = LoadConfigWithFleet(local, "models:\n  - name: other\n    backends: [ { url: \"http://127.0.0.1:2\" } ]\n",
                          "<fleet>", true);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.ErrorText().find("fleet-model"), std::string::npos) << r.ErrorText();
}

TEST_F(FleetConfigTest, LocalFileNeedsNoModelsOnceAFleetConfigIsStored) {
  std::string local = Write("local.yaml", "instance: fc-nomodels\ngateway: { listen: 127.0.0.1:8124 }\n");
  ConfigResult r = LoadConfigWithFleet(local, "models:\n  - name: m\n    backends: [ { url: \"http://127.0.0.1:2\" } ]\n",
                                       "<fleet>", true);
  ASSERT_TRUE(r.ok()) << r.ErrorText();
  EXPECT_EQ(r.config.instance, "fc-nomodels");
  ASSERT_EQ(r.config.models.size(), 1u);
  // A broken local key is still reported with the local file's line.
  local = Write("local.yaml", "instance: fc-nomodels\ngateway:\n  threads: lots\n");
  r = LoadConfigWithFleet(local, "models:\n  - name: m\n    backends: [ { url: \"http://127.0.0.1:2\" } ]\n", "<fleet>",
                          true);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.errors[0].file, local);
  EXPECT_EQ(r.errors[0].line, 3);
  EXPECT_EQ(r.errors[0].key, "gateway.threads");
}

TEST_F(FleetConfigTest, BrokenLocalFileNamesTheLocalFile) {
  std::string local = Write("local.yaml", "instance: [\n");
  ConfigResult r = LoadConfigWithFleet(local, "models:\n  - name: m\n    backends: [ { url: \"http://127.0.0.1:2\" } ]\n",
                                       "<fleet>", true);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.errors[0].file, local);
}

}  // namespace
}  // namespace llmgw
