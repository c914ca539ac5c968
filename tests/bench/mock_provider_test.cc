// llmgw-mock's --tls and --provider flavours, as a client sees them: HTTPS with a throwaway
// CA, and for each provider its key header, paths and request shape checked, refusals in
// that provider's error shape, answers (streamed or not) in its shape. Real processes on
// loopback; the client is libcurl, never resolving a name.
#include <curl/curl.h>
#include <gtest/gtest.h>
#include <rapidjson/document.h>

#include <string>
#include <vector>

#include "tests/bench/mock_process.h"
#include "tests/tls/test_pki.h"

namespace llmgw::testing {
namespace {

struct Reply {
  long status = 0;
  std::string body;
  std::string error;
};

size_t Collect(char* p, size_t s, size_t n, void* u) {
  static_cast<std::string*>(u)->append(p, s * n);
  return s * n;
}

Reply Fetch(const std::string& url, const std::vector<std::string>& headers, const std::string& body = "",
            const std::string& ca = "") {
  Reply r;
  CURL* h = curl_easy_init();
  curl_slist* hl = nullptr;
  for (const auto& x : headers) hl = curl_slist_append(hl, x.c_str());
  if (!body.empty()) hl = curl_slist_append(hl, "Content-Type: application/json");
  char err[CURL_ERROR_SIZE] = {};
  curl_easy_setopt(h, CURLOPT_URL, url.c_str());
  curl_easy_setopt(h, CURLOPT_PROXY, "");
  curl_easy_setopt(h, CURLOPT_HTTPHEADER, hl);
  curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 5000L);
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, Collect);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, &r.body);
  curl_easy_setopt(h, CURLOPT_ERRORBUFFER, err);
  if (!body.empty()) curl_easy_setopt(h, CURLOPT_POSTFIELDS, body.c_str());
  if (!ca.empty()) curl_easy_setopt(h, CURLOPT_CAINFO, ca.c_str());
  CURLcode rc = curl_easy_perform(h);
  if (rc != CURLE_OK) r.error = err[0] ? err : curl_easy_strerror(rc);
  curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &r.status);
  curl_slist_free_all(hl);
  curl_easy_cleanup(h);
  return r;
}

rapidjson::Document Json(const std::string& s) {
  rapidjson::Document d;
  d.Parse(s.c_str());
  EXPECT_FALSE(d.HasParseError()) << s;
  return d;
}

const char kChat[] = R"({"model":"m1","messages":[{"role":"user","content":"hi"}],"max_tokens":3})";

class MockProviderTest : public ::testing::Test {
 protected:
  std::string Base(const MockProcess& m) { return "http://127.0.0.1:" + std::to_string(m.port()); }
};

TEST_F(MockProviderTest, TlsServesHttpsToClientsTrustingItsCa) {
  llmgw::test::TestPki pki;
  ASSERT_TRUE(pki.ok()) << pki.error();
  MockProcess m({"--listen", "127.0.0.1:0", "--model", "m1", "--token-interval-ms", "0", "--tls", pki.server_cert(),
                 pki.server_key()});
  ASSERT_GT(m.port(), 0) << m.first_line();
  std::string url = "https://127.0.0.1:" + std::to_string(m.port());
  Reply ok = Fetch(url + "/v1/chat/completions", {}, kChat, pki.ca_cert());
  ASSERT_EQ(ok.error, "");
  EXPECT_EQ(ok.status, 200);
  EXPECT_EQ(Json(ok.body)["object"].GetString(), std::string("chat.completion"));
  Reply refused = Fetch(url + "/v1/models", {});  // system store: the test CA is unknown
  EXPECT_EQ(refused.status, 0);
  EXPECT_NE(refused.error.find("certificate"), std::string::npos) << refused.error;
  Reply plain = Fetch("http://127.0.0.1:" + std::to_string(m.port()) + "/v1/models", {});
  EXPECT_NE(plain.status, 200);  // plaintext to a TLS port gets no answer
  MockProcess bad({"--listen", "127.0.0.1:0", "--tls", "/nonexistent.crt", "/nonexistent.key"});
  EXPECT_EQ(bad.port(), 0);
  EXPECT_EQ(bad.WaitExit(3000), 1);
}

TEST_F(MockProviderTest, OpenAiFlavourWantsItsBearerKey) {
  MockProcess m({"--listen", "127.0.0.1:0", "--model", "m1", "--token-interval-ms", "0", "--provider", "openai",
                 "--api-key", "sk-good"});
  ASSERT_GT(m.port(), 0);
  Reply no = Fetch(Base(m) + "/v1/chat/completions", {"Authorization: Bearer client-key"}, kChat);
  EXPECT_EQ(no.status, 401);
  EXPECT_EQ(Json(no.body)["error"]["code"].GetString(), std::string("invalid_api_key"));
  Reply yes = Fetch(Base(m) + "/v1/chat/completions", {"Authorization: Bearer sk-good"}, kChat);
  EXPECT_EQ(yes.status, 200) << yes.body;
  EXPECT_EQ(Json(yes.body)["choices"][0]["message"]["role"].GetString(), std::string("assistant"));
  Reply stats = Fetch(Base(m) + "/mock/stats", {});
  EXPECT_EQ(Json(stats.body)["provider_auth_failures_total"].GetInt(), 1);
  // A field OpenAI does not know (vLLM's extras) is refused as OpenAI refuses it.
  Reply extra = Fetch(Base(m) + "/v1/chat/completions", {"Authorization: Bearer sk-good"},
                      R"({"model":"m1","messages":[{"role":"user","content":"hi"}],"ignore_eos":true})");
  EXPECT_EQ(extra.status, 400) << extra.body;
  EXPECT_EQ(Json(extra.body)["error"]["message"].GetString(),
            std::string("Unrecognized request argument supplied: ignore_eos"));
  Reply legacy = Fetch(Base(m) + "/v1/completions", {"Authorization: Bearer sk-good"},
                       R"({"model":"m1","prompt":"hi","max_tokens":2,"messages":[]})");
  EXPECT_EQ(legacy.status, 400) << legacy.body;  // messages is chat's, not completions'
  EXPECT_EQ(Fetch(Base(m) + "/v1/completions", {"Authorization: Bearer sk-good"},
                  R"({"model":"m1","prompt":"hi","max_tokens":2})").status, 200);
}

TEST_F(MockProviderTest, OpenAiFlavourWithAnOrganizationWantsItNamed) {
  MockProcess m({"--listen", "127.0.0.1:0", "--model", "m1", "--token-interval-ms", "0", "--provider", "openai",
                 "--api-key", "sk-good", "--organization", "org-1"});
  ASSERT_GT(m.port(), 0);
  Reply none = Fetch(Base(m) + "/v1/chat/completions", {"Authorization: Bearer sk-good"}, kChat);
  EXPECT_EQ(none.status, 401);
  EXPECT_EQ(Json(none.body)["error"]["code"].GetString(), std::string("mismatched_organization"));
  EXPECT_EQ(Fetch(Base(m) + "/v1/chat/completions", {"Authorization: Bearer sk-good", "OpenAI-Organization: org-2"}, kChat)
                .status,
            401);
  EXPECT_EQ(Fetch(Base(m) + "/v1/chat/completions", {"Authorization: Bearer sk-good", "OpenAI-Organization: org-1"}, kChat)
                .status,
            200);
}

TEST_F(MockProviderTest, AzureFlavourWantsDeploymentPathApiVersionAndApiKey) {
  MockProcess m({"--listen", "127.0.0.1:0", "--model", "m1", "--token-interval-ms", "0", "--provider", "azure",
                 "--api-key", "az-good", "--deployment", "gpt-4o"});
  ASSERT_GT(m.port(), 0);
  const std::string path = "/openai/deployments/gpt-4o/chat/completions";
  Reply yes = Fetch(Base(m) + path + "?api-version=2024-10-21", {"api-key: az-good"}, kChat);
  EXPECT_EQ(yes.status, 200) << yes.body;
  EXPECT_EQ(Json(yes.body)["object"].GetString(), std::string("chat.completion"));
  EXPECT_EQ(Fetch(Base(m) + path, {"api-key: az-good"}, kChat).status, 404);  // no api-version
  Reply dep = Fetch(Base(m) + "/openai/deployments/other/chat/completions?api-version=1", {"api-key: az-good"}, kChat);
  EXPECT_EQ(dep.status, 404);
  EXPECT_EQ(Json(dep.body)["error"]["code"].GetString(), std::string("DeploymentNotFound"));
  EXPECT_EQ(Fetch(Base(m) + "/v1/chat/completions?api-version=1", {"api-key: az-good"}, kChat).status, 404);
  EXPECT_EQ(Fetch(Base(m) + path + "?api-version=1", {"Authorization: Bearer az-good"}, kChat).status, 401);
  Reply models = Fetch(Base(m) + "/openai/models?api-version=2024-10-21", {"api-key: az-good"});
  EXPECT_EQ(models.status, 200);
  Reply extra = Fetch(Base(m) + path + "?api-version=1", {"api-key: az-good"},
                      R"({"messages":[{"role":"user","content":"hi"}],"continue_final_message":true})");
  EXPECT_EQ(extra.status, 400) << extra.body;
  // The Responses API: the versionless v1 path, the deployment named in the body's model.
  Reply resp = Fetch(Base(m) + "/openai/v1/responses", {"api-key: az-good"}, R"({"model":"gpt-4o","input":"hi"})");
  EXPECT_EQ(resp.status, 200) << resp.body;
  EXPECT_EQ(Json(resp.body)["object"].GetString(), std::string("response"));
  EXPECT_EQ(Fetch(Base(m) + "/openai/v1/responses", {"api-key: az-good"}, R"({"model":"m1","input":"hi"})").status, 404);
  EXPECT_EQ(Fetch(Base(m) + "/openai/v1/responses", {"api-key: wrong"}, R"({"model":"gpt-4o","input":"hi"})").status,
            401);
}

TEST_F(MockProviderTest, GeminiFlavourServesItsOpenAiCompatibleEndpoint) {
  MockProcess m({"--listen", "127.0.0.1:0", "--model", "m1", "--token-interval-ms", "0", "--provider", "gemini",
                 "--api-key", "g-good"});
  ASSERT_GT(m.port(), 0);
  Reply yes = Fetch(Base(m) + "/v1beta/openai/chat/completions", {"Authorization: Bearer g-good"}, kChat);
  EXPECT_EQ(yes.status, 200) << yes.body;
  EXPECT_EQ(Fetch(Base(m) + "/v1/chat/completions", {"Authorization: Bearer g-good"}, kChat).status, 404);
  EXPECT_EQ(Fetch(Base(m) + "/v1beta/openai/models", {"Authorization: Bearer g-good"}).status, 200);
  EXPECT_EQ(Fetch(Base(m) + "/v1beta/openai/models", {"x-goog-api-key: g-good"}).status, 401);
  // Not served by Gemini's OpenAI-compatible endpoint: the Responses API, legacy completions.
  EXPECT_EQ(Fetch(Base(m) + "/v1beta/openai/responses", {"Authorization: Bearer g-good"}, R"({"model":"m1","input":"hi"})")
                .status,
            404);
  EXPECT_EQ(Fetch(Base(m) + "/v1beta/openai/completions", {"Authorization: Bearer g-good"},
                  R"({"model":"m1","prompt":"hi"})").status,
            404);
  Reply extra = Fetch(Base(m) + "/v1beta/openai/chat/completions", {"Authorization: Bearer g-good"},
                      R"({"model":"m1","messages":[{"role":"user","content":"hi"}],"top_k":5})");
  EXPECT_EQ(extra.status, 400) << extra.body;
  // Google's error shape: a JSON array of API errors.
  auto e = Json(extra.body);
  ASSERT_TRUE(e.IsArray() && e.Size() == 1 && e[0].HasMember("error")) << extra.body;
  EXPECT_EQ(e[0]["error"]["status"].GetString(), std::string("INVALID_ARGUMENT"));
  EXPECT_EQ(e[0]["error"]["code"].GetInt(), 400);
  EXPECT_EQ(e[0]["error"]["message"].GetString(),
            std::string("Invalid JSON payload received. Unknown name \"top_k\": Cannot find field."));
}

TEST_F(MockProviderTest, AnthropicFlavourChecksTheMessagesShapeAndAnswersInIt) {
  MockProcess m({"--listen", "127.0.0.1:0", "--model", "claude", "--token-interval-ms", "0", "--provider",
                 "anthropic", "--api-key", "ak-good", "--output-tokens", "3"});
  ASSERT_GT(m.port(), 0);
  const std::vector<std::string> h = {"x-api-key: ak-good", "anthropic-version: 2023-06-01"};
  const std::string url = Base(m) + "/v1/messages";
  Reply yes = Fetch(url, h,
                    R"({"model":"claude","max_tokens":16,"system":"be brief","messages":[{"role":"user","content":"hi"}],)"
                    R"("stop_sequences":["\n\n"],"temperature":0.5,)"
                    R"("tools":[{"name":"f","description":"d","input_schema":{"type":"object"}}]})");
  ASSERT_EQ(yes.status, 200) << yes.body;
  auto d = Json(yes.body);
  EXPECT_EQ(d["type"].GetString(), std::string("message"));
  EXPECT_EQ(d["content"][0]["type"].GetString(), std::string("text"));
  EXPECT_EQ(d["stop_reason"].GetString(), std::string("end_turn"));
  EXPECT_EQ(d["usage"]["output_tokens"].GetInt(), 3);
  EXPECT_GT(d["usage"]["input_tokens"].GetInt(), 0);

  Reply stream = Fetch(url, h, R"({"model":"claude","max_tokens":2,"stream":true,"messages":[{"role":"user","content":"hi"}]})");
  ASSERT_EQ(stream.status, 200);
  const std::string& s = stream.body;
  size_t order[] = {s.find("event: message_start\n"), s.find("event: content_block_start\n"),
                    s.find("event: content_block_delta\n"), s.find("event: content_block_stop\n"),
                    s.find("event: message_delta\n"), s.find("event: message_stop\n")};
  for (size_t i = 0; i < std::size(order); ++i) {
    ASSERT_NE(order[i], std::string::npos) << i << "\n" << s;
    if (i) {
      EXPECT_LT(order[i - 1], order[i]) << s;
    }
  }
  EXPECT_NE(s.find("\"stop_reason\":\"max_tokens\""), std::string::npos) << s;
  EXPECT_EQ(s.find("[DONE]"), std::string::npos);

  auto refused = [&](const std::vector<std::string>& hdrs, const std::string& body, long status, const char* type) {
    Reply r = Fetch(url, hdrs, body);
    EXPECT_EQ(r.status, status) << body << "\n" << r.body;
    auto e = Json(r.body);
    ASSERT_TRUE(e.IsObject() && e.HasMember("type") && e.HasMember("error")) << r.body;
    EXPECT_EQ(e["type"].GetString(), std::string("error"));
    EXPECT_EQ(e["error"]["type"].GetString(), std::string(type)) << r.body;
  };
  refused(h, R"({"model":"claude","messages":[{"role":"user","content":"hi"}]})", 400, "invalid_request_error");
  refused(h, R"({"model":"claude","max_tokens":5,"messages":[{"role":"system","content":"x"},{"role":"user","content":"hi"}]})",
          400, "invalid_request_error");
  refused(h, R"({"model":"claude","max_tokens":5,"stop":["x"],"messages":[{"role":"user","content":"hi"}]})", 400,
          "invalid_request_error");
  refused({"x-api-key: wrong", "anthropic-version: 2023-06-01"}, kChat, 401, "authentication_error");
  refused({"x-api-key: ak-good"}, kChat, 400, "invalid_request_error");
  refused(h, R"({"model":"other","max_tokens":5,"messages":[{"role":"user","content":"hi"}]})", 404, "not_found_error");
  Reply openai_path = Fetch(Base(m) + "/v1/chat/completions", h, kChat);
  EXPECT_EQ(openai_path.status, 404);
  Reply models = Fetch(Base(m) + "/v1/models", h);
  EXPECT_EQ(Json(models.body)["data"][0]["type"].GetString(), std::string("model"));
}

}  // namespace
}  // namespace llmgw::testing
