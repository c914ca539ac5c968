// POST /v1/responses through llmgw: routed by its "model" like chat completions, the body
// and the answer (streamed events too) passed through unchanged to OpenAI-compatible
// backends (the real llmgw-mock, and a scripted upstream that records the bytes it got);
// an anthropic backend of the model is skipped (the request fails over), and a model with
// only anthropic backends answers an OpenAI-shaped error. Per provider: azure serves it on
// its versionless v1 path with the deployment as the model, gemini (whose OpenAI-compatible
// endpoint has no Responses API) is skipped like anthropic.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <string>
#include <thread>

#include "tests/dataplane/harness.h"
#include "tests/dataplane/mock_server.h"

namespace llmgw::testing {
namespace {

// A model "m1" with an anthropic backend and an OpenAI-compatible one, and a model "claude"
// with the anthropic backend only. The anthropic mock must never be asked.
class ResponsesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ::setenv("LLMGW_TEST_ANTHROPIC_KEY", "mock-key", 1);  // the anthropic flavour's default key
    oai_ = std::make_unique<MockServer>(std::vector<std::string>{"--token-interval-ms", "0"});
    ant_ = std::make_unique<MockServer>(std::vector<std::string>{"--provider", "anthropic", "--token-interval-ms", "0"});
    ASSERT_NE(oai_->port(), 0);
    ASSERT_NE(ant_->port(), 0);
    std::string ant = "{ url: \"http://127.0.0.1:" + std::to_string(ant_->port()) +
                      "\", provider: anthropic, upstream_model: m1, api_key_env: LLMGW_TEST_ANTHROPIC_KEY";
    std::string models = "models:\n"
                         "  - name: m1\n    policy: round_robin\n    backends:\n"
                         "      - " + ant + ", id: ant-a }\n"
                         "      - { url: \"http://127.0.0.1:" + std::to_string(oai_->port()) + "\", id: oai }\n"
                         "  - name: claude\n    backends:\n"
                         "      - " + ant + ", id: ant-b }\n";
    gw_ = std::make_unique<Gateway>(models);
    ASSERT_TRUE(gw_->WaitReady());
  }
  uint64_t Tokens(std::atomic<uint64_t> shm::ModelStats::*field) {
    uint64_t n = 0;
    for (uint32_t i = 0; i < shm::kMaxStatsSlots; ++i)
      for (uint32_t m = 0; m < shm::kMaxModels; ++m) n += (gw_->region()->slots[i].models[m].*field).load();
    return n;
  }
  // Stats are written when the request ends, just after its last bytes: wait a moment.
  template <typename F>
  uint64_t Eventually(F f, uint64_t want) {
    uint64_t v = 0;
    for (int i = 0; i < 100 && (v = f()) < want; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(20));
    return v;
  }
  Response Call(const std::string& body) {
    return Request(gw_->port(), Post("/v1/responses", body), 5000);
  }
  std::unique_ptr<MockServer> oai_, ant_;
  std::unique_ptr<Gateway> gw_;
};

TEST_F(ResponsesTest, RoutedByModelAnthropicBackendSkipped) {
  for (int i = 0; i < 4; ++i) {
    Response r = Call(R"({"model":"m1","input":"hello there"})");
    ASSERT_EQ(r.status, 200) << r.body;
    EXPECT_EQ(r.Header("content-type"), "application/json");
    EXPECT_NE(r.body.find("\"object\":\"response\""), std::string::npos) << r.body;
    EXPECT_NE(r.body.find("\"type\":\"output_text\",\"text\":\"Hello from the mock\""), std::string::npos) << r.body;
    EXPECT_NE(r.body.find("\"input_tokens\":"), std::string::npos) << r.body;
  }
  EXPECT_EQ(oai_->Stat("requests_total"), 4);
  EXPECT_EQ(ant_->Stat("requests_total"), 0) << "an anthropic backend cannot serve /v1/responses";
  // Its usage (input_tokens / output_tokens) is counted like chat's: tokens/min limits and
  // cost see /v1/responses traffic too.
  EXPECT_GE(Eventually([&] { return Tokens(&shm::ModelStats::completion_tokens); }, 4 * 4), 4u * 4);
  EXPECT_GE(Tokens(&shm::ModelStats::prompt_tokens), 4u);
}

TEST_F(ResponsesTest, StreamedEventsPassThroughUnchanged) {
  for (int i = 0; i < 2; ++i) {  // round robin: one of them is first offered the anthropic backend
    Response r = Call(R"({"model":"m1","input":"hi","stream":true})");
    ASSERT_EQ(r.status, 200) << r.body;
    EXPECT_EQ(r.Header("content-type").rfind("text/event-stream", 0), 0u) << r.Header("content-type");
    EXPECT_NE(r.body.find("event: response.created\n"), std::string::npos) << r.body;
    EXPECT_NE(r.body.find("\"type\":\"response.output_text.delta\""), std::string::npos) << r.body;
    EXPECT_NE(r.body.find("\"delta\":\" mock\""), std::string::npos) << r.body;
    EXPECT_NE(r.body.find("event: response.completed\n"), std::string::npos) << r.body;
    EXPECT_EQ(r.body.find("[DONE]"), std::string::npos) << "not rewritten into chat chunks\n" << r.body;
    EXPECT_EQ(r.body.find("chat.completion"), std::string::npos) << r.body;
  }
  EXPECT_EQ(ant_->Stat("requests_total"), 0);
}

TEST_F(ResponsesTest, ModelWithOnlyAnthropicBackendsGetsAnOpenAiError) {
  Response r = Call(R"({"model":"claude","input":"hi"})");
  EXPECT_EQ(r.status, 503) << r.body;
  EXPECT_NE(r.body.find("\"error\":{\"message\":"), std::string::npos) << r.body;
  EXPECT_NE(r.body.find("anthropic backends serve only /v1/chat/completions"), std::string::npos) << r.body;
  EXPECT_EQ(r.Header("content-type"), "application/json");
  EXPECT_EQ(ant_->Stat("requests_total"), 0);
  // Chat completions to the same model still reach it (the skip is per endpoint).
  Response chat = Request(gw_->port(),
                          Post("/v1/chat/completions", R"({"model":"claude","max_tokens":8,"messages":[{"role":"user","content":"hi"}]})"),
                          5000);
  EXPECT_EQ(chat.status, 200) << chat.body;
}

// Azure serves /v1/responses (its mock flavour answers only on /openai/v1/responses with
// the deployment as the body's model and its api-key); a gemini backend of the same model
// is skipped, and a model with only gemini backends gets an OpenAI-shaped error.
TEST(ResponsesProviderTest, AzureServesItGeminiIsSkipped) {
  ::setenv("LLMGW_TEST_HOSTED_KEY", "hosted-key", 1);
  MockServer azure({"--provider", "azure", "--api-key", "hosted-key", "--deployment", "gpt-4o", "--token-interval-ms", "0"});
  MockServer gemini({"--provider", "gemini", "--api-key", "hosted-key", "--token-interval-ms", "0"});
  ASSERT_NE(azure.port(), 0);
  ASSERT_NE(gemini.port(), 0);
  std::string gem = "{ url: \"http://127.0.0.1:" + std::to_string(gemini.port()) +
                    "\", provider: gemini, upstream_model: m1, api_key_env: LLMGW_TEST_HOSTED_KEY";
  Gateway gw("models:\n"
             "  - name: m1\n    policy: round_robin\n    backends:\n"
             "      - " + gem + ", id: gem-a }\n"
             "      - { url: \"http://127.0.0.1:" + std::to_string(azure.port()) +
                 "\", id: az, provider: azure, api_key_env: LLMGW_TEST_HOSTED_KEY, deployment: gpt-4o, "
                 "api_version: \"2024-10-21\" }\n"
             "  - name: g\n    backends:\n"
             "      - " + gem + ", id: gem-b }\n");
  ASSERT_TRUE(gw.WaitReady());
  for (int i = 0; i < 4; ++i) {
    Response r = Request(gw.port(), Post("/v1/responses", R"({"model":"m1","input":"hello there"})"), 5000);
    ASSERT_EQ(r.status, 200) << r.body;
    EXPECT_NE(r.body.find("\"object\":\"response\""), std::string::npos) << r.body;
  }
  Response s = Request(gw.port(), Post("/v1/responses", R"({"model":"m1","input":"hi","stream":true})"), 5000);
  ASSERT_EQ(s.status, 200) << s.body;
  EXPECT_NE(s.body.find("event: response.completed\n"), std::string::npos) << s.body;
  EXPECT_EQ(azure.Stat("requests_total"), 5);
  EXPECT_EQ(azure.Stat("provider_auth_failures_total"), 0);
  // Every HTTP request the gemini mock got, this stats read included: nothing else.
  EXPECT_EQ(gemini.Stat("http_requests_total"), 1) << "gemini cannot serve /v1/responses";
  Response g = Request(gw.port(), Post("/v1/responses", R"({"model":"g","input":"hi"})"), 5000);
  EXPECT_EQ(g.status, 503) << g.body;
  EXPECT_NE(g.body.find("\"error\":{\"message\":"), std::string::npos) << g.body;
  EXPECT_NE(g.body.find("gemini backends do not serve /v1/responses"), std::string::npos) << g.body;
  EXPECT_EQ(gemini.Stat("http_requests_total"), 2);  // the two stats reads
  // Chat completions to the gemini-only model still reach it.
  Response chat = Request(gw.port(), Post("/v1/chat/completions", R"({"model":"g","messages":[{"role":"user","content":"hi"}]})"), 5000);
  EXPECT_EQ(chat.status, 200) << chat.body;
}

// The body reaches the backend byte for byte (fields llmgw does not know included) and the
// backend's answer reaches the client as it was.
TEST(ResponsesPassThroughTest, BodyAndAnswerUnchanged) {
  TestUpstream up;
  Gateway gw(OneModel({up.port()}));
  ASSERT_TRUE(gw.WaitReady());
  const std::string body =
      R"({"model":"m1","input":[{"role":"user","content":"hi"}],"instructions":"be brief","store":false,"reasoning":{"effort":"low"}})";
  Response r = Request(gw.port(), Post("/v1/responses", body), 5000);
  ASSERT_EQ(r.status, 200) << r.body;
  std::string seen = up.last_request();
  EXPECT_EQ(seen.rfind("POST /v1/responses HTTP/1.1\r\n", 0), 0u) << seen;
  EXPECT_NE(seen.find("\r\n\r\n" + body), std::string::npos) << seen;
  EXPECT_NE(r.body.find("\"port\":" + std::to_string(up.port())), std::string::npos) << r.body;
}

}  // namespace
}  // namespace llmgw::testing
