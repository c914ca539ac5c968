// Client API keys in the config (DESIGN.md "Client API keys and limits"): inline `keys:`,
// auth.keys_file relative to the config file, the checks on ids, hashes and allowed
// models (errors name the file that holds the key and its line), the keys file as
// `llmctl keys add|revoke` writes it, and keys in the config diff.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>

#include "common/config.h"
#include "common/config_keys.h"

namespace llmgw {
namespace {

const std::string kHashA(64, 'a');
const std::string kHashB = std::string(63, 'b') + "C";  // upper case is accepted and lowered

constexpr const char* kModels =
    "models:\n"
    "  - name: llama\n"
    "    aliases: [default]\n"
    "    backends: [{ url: \"http://127.0.0.1:8001\" }]\n"
    "  - name: qwen\n"
    "    backends: [{ url: \"http://127.0.0.1:8002\" }]\n";

// A temp folder holding a config and (optionally) a keys file beside it.
class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/llmgw-keys-XXXXXX";
    dir_ = mkdtemp(tmpl);
  }
  ~TempDir() { std::system(("rm -rf " + dir_).c_str()); }
  std::string Write(const std::string& name, const std::string& text) {
    std::string p = dir_ + "/" + name;
    std::ofstream(p) << text;
    return p;
  }

 private:
  std::string dir_;
};

bool HasError(const ConfigResult& r, const std::string& file_suffix, int line, const std::string& key,
              const std::string& text) {
  for (const auto& e : r.errors)
    if (e.file.size() >= file_suffix.size() &&
        e.file.compare(e.file.size() - file_suffix.size(), file_suffix.size(), file_suffix) == 0 &&
        (line == 0 || e.line == line) && e.key == key && e.message.find(text) != std::string::npos)
      return true;
  return false;
}

TEST(ConfigApiKeysTest, InlineKeysAreParsedWithDefaults) {
  std::string yaml = std::string(kModels) +
                     "limits: { global: { rps: 100, burst: 300 } }\n"
                     "keys:\n"
                     "  - id: team-a\n"
                     "    key_sha256: \"" + kHashB + "\"\n"
                     "    models: [default]\n"
                     "    priority: 8\n"
                     "    limits: { rpm: 600, tpm: 200000, max_concurrent: 16 }\n"
                     "  - { id: team-b, key_sha256: \"" + kHashA + "\" }\n";
  ConfigResult r = ParseConfig(yaml, "c.yaml");
  ASSERT_TRUE(r.ok()) << r.ErrorText();
  ASSERT_EQ(r.config.keys.size(), 2u);
  const KeyConfig& a = r.config.keys[0];
  EXPECT_EQ(a.id, "team-a");
  EXPECT_EQ(a.key_sha256, std::string(63, 'b') + "c");
  EXPECT_EQ(a.models, std::vector<std::string>{"default"});
  EXPECT_EQ(a.priority, 8u);
  EXPECT_EQ(a.limits.rpm, 600u);
  EXPECT_EQ(a.limits.tpm, 200000u);
  EXPECT_EQ(a.limits.max_concurrent, 16u);
  EXPECT_EQ(a.source, "c.yaml");
  EXPECT_EQ(a.line, 9);
  const KeyConfig& b = r.config.keys[1];
  EXPECT_TRUE(b.models.empty());
  EXPECT_EQ(b.priority, static_cast<uint32_t>(kDefaultClientPriority));
  EXPECT_EQ(b.limits.rpm, 0u);
  EXPECT_EQ(r.config.limits.global.rps, 100u);
  EXPECT_EQ(r.config.limits.global.burst, 300u);
  EXPECT_FALSE(r.config.auth.required);
}

TEST(ConfigApiKeysTest, BadKeysAreReportedWithLineAndKeyWithoutEchoingTheValue) {
  std::string yaml = std::string(kModels) +  // keys start at line 7
                     "keys:\n"
                     "  - { id: team-a, key_sha256: \"sk-live-secret\" }\n"
                     "  - { id: \"bad id\", key_sha256: \"" + kHashA + "\" }\n"
                     "  - { id: team-c, key_sha256: \"" + kHashB + "\", models: [lama] }\n"
                     "  - { id: team-d, key_sha256: \"" + kHashB.substr(0, 60) + "dddd\", priority: 11 }\n"
                     "  - { id: anonymous, key_sha256: \"" + std::string(64, 'e') + "\" }\n"
                     "  - { key_sha256: \"" + std::string(64, 'f') + "\", limits: { rpm: -1 } }\n";
  ConfigResult r = ParseConfig(yaml, "c.yaml");
  EXPECT_TRUE(HasError(r, "c.yaml", 8, "keys[0].key_sha256", "64 hex digits")) << r.ErrorText();
  EXPECT_EQ(r.ErrorText().find("sk-live-secret"), std::string::npos) << "the secret was echoed";
  EXPECT_TRUE(HasError(r, "c.yaml", 9, "keys[1].id", "[A-Za-z0-9_.:@-]")) << r.ErrorText();
  EXPECT_TRUE(HasError(r, "c.yaml", 10, "keys[2].models[0]", "did you mean 'llama'")) << r.ErrorText();
  EXPECT_TRUE(HasError(r, "c.yaml", 11, "keys[3].priority", "at most 10")) << r.ErrorText();
  EXPECT_TRUE(HasError(r, "c.yaml", 12, "keys[4].id", "reserved")) << r.ErrorText();
  EXPECT_TRUE(HasError(r, "c.yaml", 13, "keys[5].id", "is required")) << r.ErrorText();
  EXPECT_TRUE(HasError(r, "c.yaml", 13, "keys[5].limits.rpm", "negative")) << r.ErrorText();
}

TEST(ConfigApiKeysTest, KeysFileIsReadRelativeToTheConfigAndMergedWithInlineKeys) {
  TempDir d;
  d.Write("keys.yaml", "keys:\n  - { id: file-key, key_sha256: \"" + kHashA + "\", models: [qwen] }\n");
  std::string cfg = d.Write("gw.yaml", std::string(kModels) +
                                           "auth: { required: true, keys_file: keys.yaml }\n"
                                           "keys: [{ id: inline-key, key_sha256: \"" + kHashB + "\" }]\n");
  ConfigResult r = LoadConfigFile(cfg);
  ASSERT_TRUE(r.ok()) << r.ErrorText();
  ASSERT_EQ(r.config.keys.size(), 2u);
  EXPECT_EQ(r.config.keys[0].id, "inline-key");
  EXPECT_EQ(r.config.keys[1].id, "file-key");
  EXPECT_EQ(r.config.keys[1].source, r.config.keys_file_path);
  EXPECT_EQ(r.config.keys[1].line, 2);
  EXPECT_EQ(r.config.keys_file_path.substr(r.config.keys_file_path.size() - 10), "/keys.yaml");

  // A plain list is the same schema; an empty file holds no keys.
  d.Write("keys.yaml", "- { id: listed, key_sha256: \"" + kHashA + "\" }\n");
  r = LoadConfigFile(cfg);
  ASSERT_TRUE(r.ok()) << r.ErrorText();
  EXPECT_EQ(r.config.keys.back().id, "listed");
  d.Write("keys.yaml", "");
  r = LoadConfigFile(cfg);
  ASSERT_TRUE(r.ok()) << r.ErrorText();
  EXPECT_EQ(r.config.keys.size(), 1u);
}

TEST(ConfigApiKeysTest, KeysFileErrorsNameTheKeysFile) {
  TempDir d;
  std::string cfg = d.Write("gw.yaml", std::string(kModels) +
                                           "auth: { keys_file: keys.yaml }\n"
                                           "keys: [{ id: dup, key_sha256: \"" + kHashB + "\" }]\n");
  ConfigResult r = LoadConfigFile(cfg);
  EXPECT_TRUE(HasError(r, "gw.yaml", 7, "auth.keys_file", "cannot read")) << r.ErrorText();

  d.Write("keys.yaml",
          "keys:\n"
          "  - { id: ok, key_sha256: \"" + kHashA + "\" }\n"
          "  - { id: dup, key_sha256: \"" + std::string(64, 'd') + "\" }\n"
          "  - { id: same-hash, key_sha256: \"" + kHashA + "\" }\n"
          "  - { id: typo, key_sha256: \"" + std::string(64, '1') + "\", modles: [llama] }\n");
  r = LoadConfigFile(cfg);
  EXPECT_TRUE(HasError(r, "keys.yaml", 3, "keys", "duplicate key id 'dup'")) << r.ErrorText();
  EXPECT_TRUE(HasError(r, "keys.yaml", 4, "keys", "same key_sha256 as key 'ok'")) << r.ErrorText();
  EXPECT_TRUE(HasError(r, "keys.yaml", 5, "keys[3].modles", "did you mean 'models'")) << r.ErrorText();
}

TEST(ConfigApiKeysTest, RequiredWithoutAnyKeyIsRefused) {
  ConfigResult r = ParseConfig(std::string(kModels) + "auth: { required: true }\n", "c.yaml");
  EXPECT_TRUE(HasError(r, "c.yaml", 0, "auth.required", "every request would get 401")) << r.ErrorText();
  r = ParseConfig(std::string(kModels) + "limits: { global: { burst: 5 } }\n", "c.yaml");
  EXPECT_TRUE(HasError(r, "c.yaml", 0, "limits.global.burst", "needs limits.global.rps")) << r.ErrorText();
}

TEST(ConfigApiKeysTest, RenderedKeysFileParsesBackToTheSameKeys) {
  ConfigResult base = ParseConfig(kModels, "c.yaml");
  ASSERT_TRUE(base.ok());
  std::vector<KeyConfig> keys(2);
  keys[0].id = "team-a";
  keys[0].key_sha256 = kHashA;
  keys[0].models = {"llama", "default"};
  keys[0].priority = 9;
  keys[0].limits = {600, 200000, 16};
  keys[1].id = "team-b@corp";
  keys[1].key_sha256 = std::string(64, '0');
  std::vector<KeyConfig> back;
  auto errors = ParseKeysFile(RenderKeysFile(keys), "k.yaml", base.config, &back);
  ASSERT_TRUE(errors.empty()) << errors[0].ToString() << "\n" << RenderKeysFile(keys);
  ASSERT_EQ(back.size(), 2u);
  for (size_t i = 0; i < 2; ++i) {
    EXPECT_EQ(back[i].id, keys[i].id);
    EXPECT_EQ(back[i].key_sha256, keys[i].key_sha256);
    EXPECT_EQ(back[i].models, keys[i].models);
    EXPECT_EQ(back[i].priority, keys[i].priority);
    EXPECT_EQ(back[i].limits.rpm, keys[i].limits.rpm);
    EXPECT_EQ(back[i].limits.tpm, keys[i].limits.tpm);
    EXPECT_EQ(back[i].limits.max_concurrent, keys[i].limits.max_concurrent);
  }
  back.clear();
  errors = ParseKeysFile(RenderKeysFile({}), "k.yaml", base.config, &back);
  EXPECT_TRUE(errors.empty());
  EXPECT_TRUE(back.empty());
}

TEST(ConfigApiKeysTest, KeyChangesReachTheReloadSummary) {
  auto cfg = [](const std::string& keys) { return ParseConfig(std::string(kModels) + keys, "c.yaml"); };
  ConfigResult a = cfg("keys: [{ id: a, key_sha256: \"" + kHashA + "\", limits: { rpm: 10 } }]\n");
  ConfigResult b = cfg("keys: [{ id: a, key_sha256: \"" + kHashA + "\", limits: { rpm: 20 } },"
                       " { id: b, key_sha256: \"" + std::string(64, 'b') + "\" }]\n");
  ConfigResult c = cfg("models_placeholder: 1\n");
  ASSERT_TRUE(a.ok() && b.ok()) << a.ErrorText() << b.ErrorText();
  std::string summary = ConfigChangesSummary(DiffConfigs(a.config, b.config));
  EXPECT_NE(summary.find("api key a limits.rpm 10 -> 20\n"), std::string::npos) << summary;
  EXPECT_NE(summary.find("added api key b\n"), std::string::npos) << summary;
  summary = ConfigChangesSummary(DiffConfigs(b.config, a.config));
  EXPECT_NE(summary.find("removed api key b\n"), std::string::npos) << summary;
  EXPECT_FALSE(c.ok());  // unknown top-level keys are still refused
}

}  // namespace
}  // namespace llmgw
