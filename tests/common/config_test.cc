// Config parsing and validation: the DESIGN.md example parses to the expected values, and
// each broken config is rejected with the right FILE:LINE and key path.
#include "common/config.h"

#include <gtest/gtest.h>

#include <stdlib.h>
#include <unistd.h>

#include <fstream>
#include <string>

namespace llmgw {
namespace {

TEST(ConfigTest, DesignExampleParsesToExpectedValues) {
  ConfigResult r = LoadConfigFile("deploy/examples/design-example.yaml");
  ASSERT_TRUE(r.ok()) << r.ErrorText();
  const Config& c = r.config;
  EXPECT_EQ(c.instance, "default");
  EXPECT_EQ(c.ShmName(), "/llmgw-default");
  EXPECT_EQ(c.gateway.listen, "127.0.0.1:8080");
  EXPECT_EQ(c.gateway.threads, 0u);
  EXPECT_EQ(c.gateway.max_body_bytes, 8388608u);
  EXPECT_EQ(c.gateway.timeouts.connect_ms, 2000u);
  EXPECT_EQ(c.gateway.timeouts.first_byte_ms, 120000u);
  EXPECT_EQ(c.gateway.timeouts.idle_ms, 60000u);
  EXPECT_EQ(c.gateway.timeouts.total_ms, 600000u);
  EXPECT_EQ(c.gateway.retries.max, 2u);
  EXPECT_EQ(c.gateway.retries.backoff_ms, 50u);
  EXPECT_EQ(c.admin.grpc_listen, "127.0.0.1:9090");
  EXPECT_EQ(c.admin.metrics_listen, "127.0.0.1:9100");
  EXPECT_EQ(c.admin.token_file, "");
  EXPECT_EQ(c.health.interval_ms, 2000u);
  EXPECT_EQ(c.health.timeout_ms, 1000u);
  EXPECT_EQ(c.health.unhealthy_after, 2u);
  EXPECT_EQ(c.health.healthy_after, 2u);
  EXPECT_TRUE(c.health.scrape_metrics);
  EXPECT_EQ(c.circuit_breaker.failure_threshold, 5u);
  EXPECT_EQ(c.circuit_breaker.success_threshold, 3u);
  EXPECT_EQ(c.circuit_breaker.open_ms, 30000u);
  EXPECT_EQ(c.circuit_breaker.half_open_requests, 3u);
  EXPECT_EQ(c.circuit_breaker.slow_call_ms, 5000u);
  ASSERT_EQ(c.models.size(), 1u);
  const ModelConfig& m = c.models[0];
  EXPECT_EQ(m.name, "llama-3.1-8b");
  ASSERT_EQ(m.aliases.size(), 1u);
  EXPECT_EQ(m.aliases[0], "default");
  EXPECT_EQ(m.policy, Policy::kP2cKv);
  EXPECT_TRUE(m.fallbacks.empty());
  ASSERT_EQ(m.backends.size(), 2u);
  EXPECT_EQ(m.backends[0].url, "http://127.0.0.1:8001");
  EXPECT_EQ(m.backends[0].id, "http://127.0.0.1:8001");
  EXPECT_EQ(m.backends[0].parsed.host, "127.0.0.1");
  EXPECT_EQ(m.backends[0].parsed.port, 8001);
  EXPECT_EQ(m.backends[0].max_concurrent, 16u);
  EXPECT_DOUBLE_EQ(m.backends[0].weight, 1.0);
  EXPECT_EQ(m.backends[1].parsed.port, 8002);
  EXPECT_EQ(c.FindModel("default"), &c.models[0]);
  EXPECT_EQ(c.FindModel("nope"), nullptr);
}

TEST(ConfigTest, DefaultsApplyWhenSectionsAreMissing) {
  ConfigResult r = ParseConfig(
      "models:\n  - name: m\n    backends:\n      - url: http://10.1.2.3:8000/base/\n", "min.yaml");
  ASSERT_TRUE(r.ok()) << r.ErrorText();
  EXPECT_EQ(r.config.instance, "default");
  EXPECT_EQ(r.config.gateway.retries.max, 2u);
  EXPECT_EQ(r.config.models[0].policy, Policy::kLeastConnections);
  EXPECT_EQ(r.config.models[0].backends[0].parsed.path, "/base");
  EXPECT_EQ(r.config.models[0].backends[0].max_concurrent, 64u);
}

TEST(ConfigTest, UrlParsing) {
  Url u;
  std::string why;
  EXPECT_TRUE(ParseUrl("http://host", &u, &why));
  EXPECT_EQ(u.port, 80);
  EXPECT_TRUE(ParseUrl("http://[::1]:9000", &u, &why)) << why;
  EXPECT_EQ(u.host, "::1");
  EXPECT_EQ(u.port, 9000);
  EXPECT_TRUE(ParseUrl("https://api.example.com/base/", &u, &why)) << why;
  EXPECT_TRUE(u.tls());
  EXPECT_EQ(u.port, 443);
  EXPECT_EQ(u.path, "/base");
  EXPECT_TRUE(ParseUrl("https://h:8443", &u, &why)) << why;
  EXPECT_EQ(u.port, 8443);
  EXPECT_FALSE(ParseUrl("http://h", &u, &why) && u.tls());
  EXPECT_FALSE(ParseUrl("ftp://x", &u, &why));
  EXPECT_FALSE(ParseUrl("http://:80", &u, &why));
  EXPECT_FALSE(ParseUrl("http://h:99999", &u, &why));
  EXPECT_FALSE(ParseUrl("http://h:0", &u, &why));
}

TEST(ConfigTest, DidYouMean) {
  EXPECT_EQ(DidYouMean("timeout", {"timeouts", "retries"}), "timeouts");
  EXPECT_EQ(DidYouMean("zzzzzzzz", {"timeouts", "retries"}), "");
}

struct BadCase {
  const char* name;
  const char* yaml;
  int line;
  const char* key;
  const char* message;
};

constexpr const char* kModels =
    "models:\n"
    "  - name: m\n"
    "    backends:\n"
    "      - url: http://127.0.0.1:8001\n";

std::string WithModels(const std::string& head) { return head + kModels; }

class BadConfigTest : public ::testing::TestWithParam<BadCase> {};

TEST_P(BadConfigTest, RejectedWithLineAndKey) {
  const BadCase& c = GetParam();
  ConfigResult r = ParseConfig(c.yaml, "bad.yaml");
  ASSERT_FALSE(r.ok()) << c.name << " was accepted";
  bool found = false;
  for (const auto& e : r.errors) {
    if (e.line == c.line && e.key == c.key && e.message.find(c.message) != std::string::npos) found = true;
  }
  EXPECT_TRUE(found) << c.name << ": expected bad.yaml:" << c.line << ": " << c.key << ": ..." << c.message
                     << "...\ngot:\n" << r.ErrorText();
  std::string first = r.errors[0].ToString();
  EXPECT_EQ(first.rfind("bad.yaml:", 0), 0u) << first;
}

const std::string kUnknownTop = WithModels("instanse: x\n");
const std::string kUnknownGateway = WithModels("gateway:\n  listen: 127.0.0.1:1\n  timeout: {}\n");
const std::string kWrongTypeThreads = WithModels("gateway:\n  threads: many\n");
const std::string kNegativeDuration = WithModels("gateway:\n  timeouts:\n    connect_ms: -5\n");
const std::string kZeroDuration = WithModels("gateway:\n  timeouts: { idle_ms: 0 }\n");
const std::string kZeroInterval = WithModels("health:\n  interval_ms: 0\n");
const std::string kBadListen = WithModels("gateway:\n  listen: localhost\n");
const std::string kBadBool = WithModels("health:\n  scrape_metrics: maybe\n");
const std::string kBadRetries = WithModels("gateway:\n  retries: { max: 50 }\n");
const std::string kBadSample = WithModels("gateway:\n  access_log: { sample: 2 }\n");
const std::string kUnknownCb = WithModels("circuit_breaker:\n  failure_treshold: 3\n");
const std::string kBadInstance = WithModels("instance: \"a/b\"\n");
const std::string kBadLogLevel = WithModels("log_level: loud\n");
const std::string kBadHealthPath = WithModels("health:\n  path: health\n");
const std::string kTls = WithModels("admin:\n  tls_cert_file: /c.pem\n");
const std::string kBadGrpcListen = WithModels("admin:\n  grpc_listen: 127.0.0.1:http\n");
const std::string kBadFleet = WithModels("fleet:\n  role: boss\n");
const std::string kAgentNoController = WithModels("fleet:\n  role: agent\n");
const std::string kBadOtlp = WithModels("tracing:\n  otlp_endpoint: 127.0.0.1:4318\n");
const std::string kBadOtlpProtocol = WithModels("tracing:\n  protocol: grpc\n");
const std::string kBoundedLoad = WithModels("routing:\n  bounded_load: 0.5\n");

const BadCase kBadCases[] = {
    {"empty", "", 1, "(root)", "config is empty"},
    {"syntax", "models: [\n  - name: x\n", 2, "(syntax)", "illegal block entry"},
    {"root not map", "- a\n- b\n", 1, "", "must be a mapping"},
    {"unknown top key", kUnknownTop.c_str(), 1, "instanse", "did you mean 'instance'"},
    {"unknown gateway key", kUnknownGateway.c_str(), 3, "gateway.timeout", "did you mean 'timeouts'"},
    {"wrong type", kWrongTypeThreads.c_str(), 2, "gateway.threads", "whole number"},
    {"negative duration", kNegativeDuration.c_str(), 3, "gateway.timeouts.connect_ms", "negative"},
    {"zero duration", kZeroDuration.c_str(), 2, "gateway.timeouts.idle_ms", "greater than zero"},
    {"zero interval", kZeroInterval.c_str(), 2, "health.interval_ms", "greater than zero"},
    {"bad listen", kBadListen.c_str(), 2, "gateway.listen", "HOST:PORT"},
    {"bad bool", kBadBool.c_str(), 2, "health.scrape_metrics", "true or false"},
    {"retries too many", kBadRetries.c_str(), 2, "gateway.retries.max", "at most 10"},
    {"sample range", kBadSample.c_str(), 2, "gateway.access_log.sample", "between 0 and 1"},
    {"unknown cb key", kUnknownCb.c_str(), 2, "circuit_breaker.failure_treshold", "did you mean 'failure_threshold'"},
    {"bad instance", kBadInstance.c_str(), 1, "instance", "A-Za-z0-9"},
    {"bad log level", kBadLogLevel.c_str(), 1, "log_level", "one of"},
    {"health path", kBadHealthPath.c_str(), 2, "health.path", "must start with /"},
    {"tls half", kTls.c_str(), 2, "admin.tls_cert_file", "go together"},
    {"grpc listen port", kBadGrpcListen.c_str(), 2, "admin.grpc_listen", "port must be a number"},
    {"fleet role", kBadFleet.c_str(), 2, "fleet.role", "controller or agent"},
    {"agent needs controller", kAgentNoController.c_str(), 2, "fleet.controller", "required"},
    {"otlp endpoint not a URL", kBadOtlp.c_str(), 2, "tracing.otlp_endpoint", "http:// or https://"},
    {"otlp protocol", kBadOtlpProtocol.c_str(), 2, "tracing.protocol", "http/protobuf"},
    {"bounded load", kBoundedLoad.c_str(), 2, "routing.bounded_load", "between 1 and 100"},
    {"no models", "instance: x\n", 1, "models", "at least one model"},
    {"empty models", "models: []\n", 1, "models", "at least one model"},
    {"models not list", "models: {a: 1}\n", 1, "models", "must be a list"},
    {"model without name", "models:\n  - backends:\n      - url: http://h:1\n", 2, "models[0].name", "required"},
    {"model without backends", "models:\n  - name: m\n", 2, "models[0].backends", "at least one backend"},
    {"empty backends", "models:\n  - name: m\n    backends: []\n", 3, "models[0].backends", "at least one backend"},
    {"unknown policy", "models:\n  - name: m\n    policy: p2c\n    backends: [{url: http://h:1}]\n", 3,
     "models[0].policy", "unknown policy 'p2c'"},
    {"policy typo hint", "models:\n  - name: m\n    policy: round_robbin\n    backends: [{url: http://h:1}]\n", 3,
     "models[0].policy", "did you mean 'round_robin'"},
    {"malformed url", "models:\n  - name: m\n    backends:\n      - url: 127.0.0.1:8000\n", 4,
     "models[0].backends[0].url", "must start with http://"},
    {"url bad port", "models:\n  - name: m\n    backends:\n      - url: http://h:70000\n", 4,
     "models[0].backends[0].url", "port out of range"},
    {"ftp url", "models:\n  - name: m\n    backends:\n      - url: ftp://h:1\n", 4,
     "models[0].backends[0].url", "must start with http:// or https://"},
    {"hosted provider without key", "models:\n  - name: m\n    backends:\n      - url: https://h\n        provider: openai\n",
     5, "models[0].backends[0].provider", "needs a key"},
    {"unknown provider", "models:\n  - name: m\n    backends:\n      - url: https://h\n        provider: bedrock\n",
     5, "models[0].backends[0].provider", "must be one of openai_compatible, openai, azure, anthropic, gemini"},
    {"azure without deployment",
     "models:\n  - name: m\n    backends:\n      - url: https://h\n        provider: azure\n        api_key_env: K\n"
     "        api_version: \"2024-10-21\"\n",
     5, "models[0].backends[0].deployment", "required for provider azure"},
    // The snapshot carries where a key comes from to every fleet agent, in fixed fields.
    {"key file path too long", "models:\n  - name: m\n    backends:\n      - url: https://h\n        api_key_file: /kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk\n",
     4, "models[0].backends[0].api_key_file", "longer than 159 characters"},
    {"key variable name too long", "models:\n  - name: m\n    backends:\n      - url: https://h\n        api_key_env: KKKKKKKKKKKKKKKKKKKKKKKKKKKKKKKKKKKKKKKKKKKKKKKKKKKKKKKKKKKKKKKK\n",
     4, "models[0].backends[0].api_key_env", "longer than 63 characters"},
    {"key file and env", "models:\n  - name: m\n    backends:\n      - url: https://h\n        api_key_file: k\n"
     "        api_key_env: K\n", 6, "models[0].backends[0].api_key_env", "exclude each other"},
    {"tls on http", "models:\n  - name: m\n    backends:\n      - url: http://h:1\n        tls: {verify: false}\n",
     5, "models[0].backends[0].tls", "https:// backends only"},
    {"client cert without key",
     "models:\n  - name: m\n    backends:\n      - url: https://h\n        tls: {client_cert_file: c.pem}\n", 5,
     "models[0].backends[0].tls.client_cert_file", "go together"},
    {"unknown tls key", "models:\n  - name: m\n    backends:\n      - url: https://h\n        tls: {verfiy: false}\n",
     5, "models[0].backends[0].tls.verfiy", "did you mean 'verify'"},
    {"backend without url", "models:\n  - name: m\n    backends:\n      - weight: 1\n", 4,
     "models[0].backends[0].url", "required"},
    {"duplicate backend",
     "models:\n  - name: m\n    backends:\n      - url: http://h:1\n      - url: http://h:1\n", 5,
     "models[0].backends[1]", "duplicate backend"},
    {"duplicate backend across models",
     "models:\n  - name: a\n    backends: [{url: http://h:1}]\n  - name: b\n    backends: [{url: http://h:1}]\n", 5,
     "models[1].backends[0]", "duplicate backend"},
    {"zero max_concurrent", "models:\n  - name: m\n    backends:\n      - {url: http://h:1, max_concurrent: 0}\n", 4,
     "models[0].backends[0].max_concurrent", "greater than zero"},
    {"negative weight", "models:\n  - name: m\n    backends:\n      - {url: http://h:1, weight: -1}\n", 4,
     "models[0].backends[0].weight", "between 0"},
    {"unknown engine", "models:\n  - name: m\n    backends:\n      - {url: http://h:1, engine: vlm}\n", 4,
     "models[0].backends[0].engine", "did you mean 'vllm'"},
    {"unknown backend key", "models:\n  - name: m\n    backends:\n      - {url: http://h:1, wieght: 2}\n", 4,
     "models[0].backends[0].wieght", "did you mean 'weight'"},
    {"unknown fallback",
     "models:\n  - name: m\n    fallbacks: [lama]\n    backends: [{url: http://h:1}]\n  - name: llama\n    backends: [{url: http://h:2}]\n",
     3, "models[0].fallbacks[0]", "did you mean 'llama'"},
    {"self fallback", "models:\n  - name: m\n    fallbacks: [m]\n    backends: [{url: http://h:1}]\n", 3,
     "models[0].fallbacks[0]", "itself"},
    {"duplicate model",
     "models:\n  - name: m\n    backends: [{url: http://h:1}]\n  - name: m\n    backends: [{url: http://h:2}]\n", 4,
     "models[1].name", "duplicate model"},
    {"alias clash",
     "models:\n  - name: a\n    backends: [{url: http://h:1}]\n  - name: b\n    aliases: [a]\n    backends: [{url: http://h:2}]\n",
     5, "models[1].aliases[0]", "already used"},
    {"aliases not list", "models:\n  - name: m\n    aliases: x\n    backends: [{url: http://h:1}]\n", 3,
     "models[0].aliases", "list of strings"},
    {"unknown model key", "models:\n  - name: m\n    polcy: p2c_kv\n    backends: [{url: http://h:1}]\n", 3,
     "models[0].polcy", "did you mean 'policy'"},
    {"negative price",
     "models:\n  - name: m\n    price: { input_per_mtok: 2.5,\n             output_per_mtok: -1 }\n"
     "    backends: [{url: http://h:1}]\n",
     4, "models[0].price.output_per_mtok", "must be between 0 and"},
    {"price not a number", "models:\n  - name: m\n    price:\n      input_per_mtok: cheap\n    backends: [{url: http://h:1}]\n",
     4, "models[0].price.input_per_mtok", "must be a number"},
    {"unknown price key", "models:\n  - name: m\n    price:\n      input_per_token: 1\n    backends: [{url: http://h:1}]\n",
     4, "models[0].price.input_per_token", "did you mean 'input_per_mtok'"},
};

INSTANTIATE_TEST_SUITE_P(All, BadConfigTest, ::testing::ValuesIn(kBadCases),
                         [](const ::testing::TestParamInfo<BadCase>& i) {
                           std::string n;
                           for (const char* p = i.param.name; *p; ++p)
                             n += std::isalnum(static_cast<unsigned char>(*p)) ? *p : '_';
                           return n;
                         });

TEST(ConfigTest, ModelPriceParsesPerMillionTokens) {
  ConfigResult r = ParseConfig(
      "models:\n"
      "  - name: priced\n"
      "    price: { input_per_mtok: 2.5, output_per_mtok: 10 }\n"
      "    backends: [{url: http://h:1}]\n"
      "  - name: free\n"
      "    backends: [{url: http://h:2}]\n",
      "p.yaml");
  ASSERT_TRUE(r.ok()) << r.ErrorText();
  EXPECT_DOUBLE_EQ(r.config.models[0].price.input_per_mtok, 2.5);
  EXPECT_DOUBLE_EQ(r.config.models[0].price.output_per_mtok, 10);
  EXPECT_TRUE(r.config.models[0].price.priced());
  EXPECT_FALSE(r.config.models[1].price.priced());
}

TEST(ConfigTest, ReportsEveryErrorNotJustTheFirst) {
  ConfigResult r = ParseConfig(
      "gateway:\n  threads: x\n  listen: nope\nmodels:\n  - name: m\n    policy: zz\n    backends: [{url: ftp://h}]\n",
      "multi.yaml");
  EXPECT_GE(r.errors.size(), 4u) << r.ErrorText();
}

TEST(ConfigTest, MissingFileIsAClearError) {
  ConfigResult r = LoadConfigFile("/nonexistent/llmgw.yaml");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.ErrorText().find("/nonexistent/llmgw.yaml:0: (file): cannot read"), std::string::npos)
      << r.ErrorText();
}

// Provider keys come from a file (relative to the config, trailing newline dropped) or the
// environment; an unreadable or malformed key is an error that never shows the content.
TEST(ConfigTest, BackendKeysAreReadFromFileOrEnvAndNeverEchoed) {
  char dir[] = "/tmp/llmgw-keys-XXXXXX";
  ASSERT_NE(mkdtemp(dir), nullptr);
  std::string d = dir;
  { std::ofstream(d + "/openai.key") << "sk-test-123\n"; }
  { std::ofstream(d + "/bad.key") << "sk with space\n"; }
  setenv("LLMGW_TEST_ANTHROPIC_KEY", "ak-456", 1);
  std::string yaml =
      "models:\n  - name: m\n    backends:\n"
      "      - {url: 'https://a', provider: openai, api_key_file: openai.key}\n"
      "      - {url: 'https://b', provider: anthropic, api_key_env: LLMGW_TEST_ANTHROPIC_KEY}\n"
      "      - {url: 'http://c:1'}\n";
  { std::ofstream(d + "/llmgw.yaml") << yaml; }
  ConfigResult r = LoadConfigFile(d + "/llmgw.yaml", true);
  ASSERT_TRUE(r.ok()) << r.ErrorText();
  // Without read_backend_keys (llmgw) no key file is touched.
  EXPECT_EQ(LoadConfigFile(d + "/llmgw.yaml").config.models[0].backends[0].api_key, "");
  EXPECT_EQ(r.config.models[0].backends[0].api_key, "sk-test-123");
  EXPECT_EQ(r.config.models[0].backends[1].api_key, "ak-456");
  EXPECT_EQ(r.config.models[0].backends[2].api_key, "");
  EXPECT_TRUE(r.config.models[0].backends[0].hosted());
  EXPECT_FALSE(r.config.models[0].backends[2].hosted());

  { std::ofstream(d + "/llmgw.yaml") << "models:\n  - name: m\n    backends:\n"
                                        "      - {url: 'https://a', provider: openai, api_key_file: bad.key}\n"
                                        "      - {url: 'https://b', provider: openai, api_key_file: none.key}\n"
                                        "      - {url: 'https://c', provider: openai, api_key_env: LLMGW_TEST_UNSET_KEY}\n"; }
  unsetenv("LLMGW_TEST_UNSET_KEY");
  r = LoadConfigFile(d + "/llmgw.yaml", true);
  ASSERT_EQ(r.errors.size(), 3u) << r.ErrorText();
  std::string text = r.ErrorText();
  EXPECT_NE(text.find("backends[0].api_key_file: the key contains whitespace"), std::string::npos) << text;
  EXPECT_EQ(text.find("sk with space"), std::string::npos) << text;
  EXPECT_NE(text.find("backends[1].api_key_file: cannot read " + d + "/none.key"), std::string::npos) << text;
  EXPECT_NE(text.find("LLMGW_TEST_UNSET_KEY is not set"), std::string::npos) << text;
  for (const char* f : {"/openai.key", "/bad.key", "/llmgw.yaml"}) unlink((d + f).c_str());
  rmdir(dir);
  unsetenv("LLMGW_TEST_ANTHROPIC_KEY");
}

TEST(ConfigTest, KeyFingerprintTellsKeysApartWithoutShowingThem) {
  EXPECT_EQ(KeyFingerprint(""), "");
  std::string a = KeyFingerprint("sk-secret-a"), b = KeyFingerprint("sk-secret-b");
  EXPECT_EQ(a.rfind("sha256:", 0), 0u);
  EXPECT_EQ(a.size(), 15u);
  EXPECT_NE(a, b);
  EXPECT_EQ(a.find("secret"), std::string::npos);
}

}  // namespace
}  // namespace llmgw
