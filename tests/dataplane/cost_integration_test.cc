// Cost end to end: the real llmgw and llmcd in front of a scripted upstream (whose usage is
// 5 prompt + 7 completion tokens an answer). Requests with a key; llmcd's /metrics then
// shows llm_gateway_cost_usd_total{key,model} equal to that key's tokens on the model times
// the model's price (models[].price), and no cost series for a model without a price.
// Streamed answers count too: in front of llmgw-mock, a stream's tokens come from the
// usage llmgw asks the backend for (stream_options.include_usage, added when the client
// did not ask and stripped again before the client sees it).
#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <string>
#include <thread>

#include "common/sha256.h"
#include "harness.h"
#include "mock_server.h"
#include "tests/controlplane/test_support.h"

namespace llmgw::testing {
namespace {

const std::string kSecret = "sk-test-cost-0123456789";

// The value of the series `name{labels}` in a Prometheus text exposition; -1 when absent.
double Series(const std::string& text, const std::string& series) {
  size_t p = text.find("\n" + series + " ");
  if (p == std::string::npos) return -1;
  return std::strtod(text.c_str() + p + 1 + series.size() + 1, nullptr);
}

class CostTest : public ::testing::Test {
 protected:
  void SetUp() override {
    up_ = std::make_unique<TestUpstream>(TestUpstream::Options{});
    Start(up_->port(), "");
  }
  // llmgw and llmcd for a "priced" and a "free" model on the backend at `port`.
  void Start(uint16_t port, const std::string& backend_extra) {
    metrics_port_ = test::FreePort();
    std::string url = "\"http://127.0.0.1:" + std::to_string(port) + "\"" + backend_extra;
    std::string models = "models:\n"
                         "  - name: priced\n"
                         "    price: { input_per_mtok: 2.5, output_per_mtok: 12 }\n"
                         "    backends: [{ url: " + url + " }]\n"
                         "  - name: free\n"
                         "    backends: [{ url: " + url + ", id: free-b }]\n";
    std::string gw = "admin: { grpc_listen: \"127.0.0.1:0\", metrics_listen: \"127.0.0.1:" +
                     std::to_string(metrics_port_) + "\" }\n"
                     "control: { tick_ms: 20, heartbeat_ms: 200 }\n"
                     "keys:\n  - { id: team-a, key_sha256: \"" + Sha256Hex(kSecret) + "\" }\n";
    gw_ = std::make_unique<Gateway>(models, gw, /*publish=*/false);
    cd_pid_ = ::fork();
    if (cd_pid_ == 0) {
      int null = ::open("/dev/null", O_WRONLY);
      ::dup2(null, 1);
      std::string config = "/tmp/" + gw_->config().instance + ".yaml";
      execl(LLMCD_BIN, LLMCD_BIN, "--config", config.c_str(), static_cast<char*>(nullptr));
      _exit(127);
    }
    ASSERT_TRUE(gw_->WaitReady(5000)) << "llmgw never got llmcd's snapshot";
  }
  void TearDown() override {
    if (cd_pid_ > 0) Gateway::StopPid(cd_pid_, SIGTERM);
    gw_.reset();
  }
  Response Chat(const std::string& model, const std::string& headers, const std::string& stream = "") {
    std::string body = "{\"model\":\"" + model + "\"," + stream + "\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}";
    return Request(gw_->port(), Post("/v1/chat/completions", body, headers), 5000);
  }
  // Waits until the series reach at least the values wanted; the last exposition read.
  std::string WaitForSeries(const std::vector<std::pair<std::string, double>>& want) {
    std::string text;
    for (auto end = std::chrono::steady_clock::now() + std::chrono::seconds(5); std::chrono::steady_clock::now() < end;) {
      text = Metrics();
      bool all = true;
      for (const auto& [series, v] : want) all = all && Series(text, series) >= v;
      if (all) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return text;
  }
  std::string Metrics() {
    return Request(metrics_port_, "GET /metrics HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n", 2000).body;
  }

  std::unique_ptr<TestUpstream> up_;
  std::unique_ptr<Gateway> gw_;
  pid_t cd_pid_ = -1;
  uint16_t metrics_port_ = 0;
};

TEST_F(CostTest, CostIsTheKeysTokensTimesTheModelsPrice) {
  const std::string auth = "Authorization: Bearer " + kSecret + "\r\n";
  for (int i = 0; i < 3; ++i) ASSERT_EQ(Chat("priced", auth).status, 200);
  ASSERT_EQ(Chat("priced", "").status, 200);   // anonymous
  ASSERT_EQ(Chat("free", auth).status, 200);

  const std::string kl = "{key=\"team-a\",model=\"priced\"}";
  const std::string prompt_s = "llm_gateway_key_tokens_total{kind=\"prompt\",key=\"team-a\",model=\"priced\"}";
  const std::string completion_s = "llm_gateway_key_tokens_total{kind=\"completion\",key=\"team-a\",model=\"priced\"}";
  const std::string anonymous_s = "llm_gateway_key_tokens_total{kind=\"completion\",key=\"anonymous\",model=\"priced\"}";
  std::string text;
  double prompt = 0, completion = 0;
  // llmcd folds the data plane's counters every tick, and each llmgw thread publishes its
  // own at its own tick: wait until the key's three answers and the anonymous one count
  // (they may have been served by different threads: waiting for the key's alone failed in CI).
  for (auto end = std::chrono::steady_clock::now() + std::chrono::seconds(5); std::chrono::steady_clock::now() < end;) {
    text = Metrics();
    prompt = Series(text, prompt_s);
    completion = Series(text, completion_s);
    if (prompt >= 15 && completion >= 21 && Series(text, anonymous_s) >= 7) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ASSERT_EQ(prompt, 15) << text;      // 3 answers x 5
  ASSERT_EQ(completion, 21) << text;  // 3 answers x 7
  double cost = Series(text, "llm_gateway_cost_usd_total" + kl);
  EXPECT_NEAR(cost, prompt * 2.5 / 1e6 + completion * 12 / 1e6, 1e-12) << text;
  EXPECT_NEAR(cost, 0.0002895, 1e-12) << text;
  EXPECT_NEAR(Series(text, "llm_gateway_cost_usd_total{key=\"anonymous\",model=\"priced\"}"),
              5 * 2.5 / 1e6 + 7 * 12 / 1e6, 1e-12)
      << text;
  EXPECT_EQ(text.find("llm_gateway_cost_usd_total{key=\"team-a\",model=\"free\"}"), std::string::npos)
      << "a model without a price has no cost series\n" << text;
}

// Streamed answers: llmgw-mock (4 completion tokens an answer) reports usage only when
// asked. Two streams whose client did not ask (llmgw asks for it, and strips it from what
// the client gets) and one whose client did: all three are the key's tokens and its cost.
class StreamedCostTest : public CostTest {
 protected:
  void SetUp() override {
    mock_ = std::make_unique<MockServer>(std::vector<std::string>{"--token-interval-ms", "0", "--output-tokens", "4"});
    ASSERT_GT(mock_->port(), 0);
    Start(mock_->port(), ", upstream_model: m1");
  }
  std::unique_ptr<MockServer> mock_;
};

TEST_F(StreamedCostTest, StreamedTokensAreCountedInTheKeysCost) {
  const std::string auth = "Authorization: Bearer " + kSecret + "\r\n";
  for (int i = 0; i < 2; ++i) {
    Response r = Chat("priced", auth, "\"stream\":true,");
    ASSERT_EQ(r.status, 200) << r.body;
    EXPECT_NE(r.body.find("data: [DONE]"), std::string::npos) << r.body;
    EXPECT_EQ(r.body.find("\"usage\""), std::string::npos) << "the usage llmgw asked for reached the client\n" << r.body;
  }
  Response with_usage = Chat("priced", auth, "\"stream\":true,\"stream_options\":{\"include_usage\":true},");
  ASSERT_EQ(with_usage.status, 200) << with_usage.body;
  size_t p = with_usage.body.find("\"prompt_tokens\":");
  ASSERT_NE(p, std::string::npos) << with_usage.body;
  const double prompt_each = std::strtod(with_usage.body.c_str() + p + 16, nullptr);
  ASSERT_GT(prompt_each, 0);
  EXPECT_NE(with_usage.body.find("\"completion_tokens\":4"), std::string::npos) << with_usage.body;

  const std::string prompt_s = "llm_gateway_key_tokens_total{kind=\"prompt\",key=\"team-a\",model=\"priced\"}";
  const std::string completion_s = "llm_gateway_key_tokens_total{kind=\"completion\",key=\"team-a\",model=\"priced\"}";
  std::string text = WaitForSeries({{prompt_s, 3 * prompt_each}, {completion_s, 3 * 4}});
  ASSERT_EQ(Series(text, prompt_s), 3 * prompt_each) << text;
  ASSERT_EQ(Series(text, completion_s), 3 * 4) << text;
  EXPECT_NEAR(Series(text, "llm_gateway_cost_usd_total{key=\"team-a\",model=\"priced\"}"),
              3 * prompt_each * 2.5 / 1e6 + 3 * 4 * 12 / 1e6, 1e-12)
      << text;
}

}  // namespace
}  // namespace llmgw::testing
