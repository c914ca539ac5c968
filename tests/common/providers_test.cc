// The providers' request targets, credential headers and probes (common/providers/): what
// each hosted API expects, written into a caller's buffer.
#include "common/providers/provider.h"

#include <gtest/gtest.h>

#include <string>

namespace llmgw::providers {
namespace {

struct Written {
  std::string path, headers, probe;
};

Written Write(ProviderKind k, const ProviderParams& p, std::string_view op = "/v1/chat/completions") {
  char buf[512];
  const Provider& prov = ProviderFor(k);
  EXPECT_EQ(prov.kind(), k);
  Written w;
  OutBuf a(buf, sizeof buf);
  prov.WritePath(p, op, &a);
  EXPECT_TRUE(a.ok());
  w.path = std::string(a.view());
  OutBuf b(buf, sizeof buf);
  prov.WriteAuthHeaders(p, &b);
  EXPECT_TRUE(b.ok());
  w.headers = std::string(b.view());
  OutBuf c(buf, sizeof buf);
  prov.WriteProbePath(p, &c);
  w.probe = std::string(c.view());
  return w;
}

TEST(ProvidersTest, NamesRoundTrip) {
  for (auto k : {ProviderKind::kOpenAiCompatible, ProviderKind::kOpenAi, ProviderKind::kAzure,
                 ProviderKind::kAnthropic, ProviderKind::kGemini}) {
    ProviderKind back;
    ASSERT_TRUE(ParseProvider(ProviderName(k), &back));
    EXPECT_EQ(back, k);
  }
  ProviderKind k;
  EXPECT_FALSE(ParseProvider("bedrock", &k));
}

TEST(ProvidersTest, OpenAiCompatibleKeepsPathsAndSendsAKeyOnlyWhenConfigured) {
  Written w = Write(ProviderKind::kOpenAiCompatible, {.base_path = "/vllm"});
  EXPECT_EQ(w.path, "/vllm/v1/chat/completions");
  EXPECT_EQ(w.headers, "");
  EXPECT_TRUE(ProviderFor(ProviderKind::kOpenAiCompatible).scraped());
  EXPECT_FALSE(ProviderFor(ProviderKind::kOpenAiCompatible).translates());
  w = Write(ProviderKind::kOpenAiCompatible, {.api_key = "vk"});
  EXPECT_EQ(w.headers, "Authorization: Bearer vk\r\n");
}

TEST(ProvidersTest, OpenAiBearerAndOrganization) {
  Written w = Write(ProviderKind::kOpenAi, {.api_key = "sk-1", .organization = "org-7"});
  EXPECT_EQ(w.path, "/v1/chat/completions");
  EXPECT_EQ(w.headers, "Authorization: Bearer sk-1\r\nOpenAI-Organization: org-7\r\n");
  EXPECT_EQ(w.probe, "/v1/models");
  EXPECT_FALSE(ProviderFor(ProviderKind::kOpenAi).scraped());
}

TEST(ProvidersTest, AzureDeploymentPathApiVersionAndApiKeyHeader) {
  ProviderParams p{.api_key = "az", .deployment = "gpt-4o", .api_version = "2024-10-21"};
  Written w = Write(ProviderKind::kAzure, p);
  EXPECT_EQ(w.path, "/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21");
  EXPECT_EQ(w.headers, "api-key: az\r\n");
  EXPECT_EQ(w.probe, "/openai/models?api-version=2024-10-21");
  EXPECT_EQ(Write(ProviderKind::kAzure, p, "/v1/embeddings").path,
            "/openai/deployments/gpt-4o/embeddings?api-version=2024-10-21");
}

TEST(ProvidersTest, AnthropicMessagesPathAndHeaders) {
  Written w = Write(ProviderKind::kAnthropic, {.api_key = "ak"});
  EXPECT_EQ(w.path, "/v1/messages");
  EXPECT_EQ(w.headers, "x-api-key: ak\r\nanthropic-version: 2023-06-01\r\n");
  EXPECT_EQ(w.probe, "/v1/models");
  EXPECT_TRUE(ProviderFor(ProviderKind::kAnthropic).translates());
}

TEST(ProvidersTest, GeminiOpenAiCompatibleEndpoint) {
  Written w = Write(ProviderKind::kGemini, {.api_key = "gk"});
  EXPECT_EQ(w.path, "/v1beta/openai/chat/completions");
  EXPECT_EQ(w.headers, "Authorization: Bearer gk\r\n");
  EXPECT_EQ(w.probe, "/v1beta/openai/models");
}

// Which OpenAI endpoints each provider serves (the others skip its backends), and the
// Responses API on Azure: its versionless v1 path, the deployment as the body's model.
TEST(ProvidersTest, EndpointsServedAndAzureResponsesApi) {
  for (auto k : {ProviderKind::kOpenAiCompatible, ProviderKind::kOpenAi, ProviderKind::kAzure}) {
    SCOPED_TRACE(ProviderName(k));
    for (std::string_view op : {"/v1/chat/completions", "/v1/completions", "/v1/embeddings", "/v1/responses"})
      EXPECT_TRUE(ProviderFor(k).Serves(op)) << op;
  }
  const Provider& anthropic = ProviderFor(ProviderKind::kAnthropic);
  EXPECT_TRUE(anthropic.Serves("/v1/chat/completions"));
  for (std::string_view op : {"/v1/completions", "/v1/embeddings", "/v1/responses"}) EXPECT_FALSE(anthropic.Serves(op));
  const Provider& gemini = ProviderFor(ProviderKind::kGemini);
  EXPECT_TRUE(gemini.Serves("/v1/chat/completions"));
  EXPECT_TRUE(gemini.Serves("/v1/embeddings"));
  EXPECT_FALSE(gemini.Serves("/v1/responses"));
  EXPECT_FALSE(gemini.Serves("/v1/completions"));

  ProviderParams p{.api_key = "az", .deployment = "gpt-4o", .api_version = "2024-10-21", .base_path = "/pfx"};
  EXPECT_EQ(Write(ProviderKind::kAzure, p, "/v1/responses").path, "/pfx/openai/v1/responses");
  const Provider& azure = ProviderFor(ProviderKind::kAzure);
  EXPECT_EQ(azure.BodyModel(p, "/v1/responses"), "gpt-4o");
  EXPECT_EQ(azure.BodyModel(p, "/v1/chat/completions"), "");  // the deployment URL names it
  EXPECT_EQ(ProviderFor(ProviderKind::kOpenAi).BodyModel(p, "/v1/responses"), "");
}

// Gemini's errors (a JSON array of Google API errors) become OpenAI's error object; one
// already in OpenAI's shape is kept; anything else still gets OpenAI's shape.
TEST(ProvidersTest, GeminiErrorsAreReshapedIntoOpenAis) {
  const Provider& g = ProviderFor(ProviderKind::kGemini);
  EXPECT_TRUE(g.reshapes_errors());
  EXPECT_FALSE(ProviderFor(ProviderKind::kOpenAi).reshapes_errors());
  EXPECT_FALSE(ProviderFor(ProviderKind::kAzure).reshapes_errors());
  char scratch[8192], buf[1024];
  auto reshape = [&](int status, std::string_view body, int* out_status) {
    OutBuf out(buf, sizeof buf);
    *out_status = g.ReshapeError(status, body, scratch, sizeof scratch, &out);
    EXPECT_TRUE(out.ok());
    return std::string(out.view());
  };
  int st = 0;
  EXPECT_EQ(reshape(400,
                    R"([{"error":{"code":400,"message":"Invalid JSON payload received. Unknown name \"top_k\": Cannot find field.",)"
                    R"("status":"INVALID_ARGUMENT","details":[{"@type":"type.googleapis.com/google.rpc.BadRequest"}]}}])",
                    &st),
            R"({"error":{"message":"Invalid JSON payload received. Unknown name \"top_k\": Cannot find field.",)"
            R"("type":"invalid_request_error","param":null,"code":"INVALID_ARGUMENT"}})");
  EXPECT_EQ(st, 400);
  EXPECT_EQ(reshape(404, R"({"error":{"code":404,"message":"models/x is not found","status":"NOT_FOUND"}})", &st),
            R"({"error":{"message":"models/x is not found","type":"not_found_error","param":null,"code":"NOT_FOUND"}})");
  const std::string openai = R"({"error":{"message":"m","type":"invalid_request_error","param":null,"code":null}})";
  EXPECT_EQ(reshape(400, openai, &st), openai);
  EXPECT_EQ(reshape(401, "<html>nope</html>", &st),
            R"({"error":{"message":"the gemini backend answered with an error","type":"authentication_error",)"
            R"("param":null,"code":"UNKNOWN"}})");
  EXPECT_EQ(st, 401);
  // Any scratch alignment and size (the data plane's is answer * 2 + 4096 bytes).
  for (size_t offset : {1, 3, 7}) {
    OutBuf out(buf, sizeof buf);
    EXPECT_EQ(g.ReshapeError(404, R"([{"error":{"code":404,"message":"x","status":"NOT_FOUND"}}])", scratch + offset,
                             sizeof scratch - 13, &out),
              404);
    EXPECT_NE(out.view().find("\"code\":\"NOT_FOUND\""), std::string_view::npos) << out.view();
  }
}

// Stream resume continues a final assistant message: vLLM/SGLang (continue_final_message)
// and Anthropic (prefill) can; OpenAI, Azure and Gemini cannot and are skipped.
TEST(ProvidersTest, WhoContinuesAStream) {
  EXPECT_TRUE(ProviderFor(ProviderKind::kOpenAiCompatible).continues_streams());
  EXPECT_TRUE(ProviderFor(ProviderKind::kAnthropic).continues_streams());
  EXPECT_FALSE(ProviderFor(ProviderKind::kOpenAi).continues_streams());
  EXPECT_FALSE(ProviderFor(ProviderKind::kAzure).continues_streams());
  EXPECT_FALSE(ProviderFor(ProviderKind::kGemini).continues_streams());
}

TEST(ProvidersTest, OutBufStopsAtItsEndAndSaysSo) {
  char buf[8];
  OutBuf o(buf, sizeof buf);
  o.Put("1234").PutUint(567);
  EXPECT_TRUE(o.ok());
  EXPECT_EQ(o.view(), "1234567");
  o.Put("89");
  EXPECT_FALSE(o.ok());
  EXPECT_EQ(o.view(), "1234567");
  char j[64];
  OutBuf e(j, sizeof j);
  e.PutJsonEscaped("a\"b\\c\nd\x01");
  EXPECT_EQ(e.view(), "a\\\"b\\\\c\\nd\\u0001");
}

}  // namespace
}  // namespace llmgw::providers
