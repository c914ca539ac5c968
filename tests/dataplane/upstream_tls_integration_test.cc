// Issue 13 end to end: llmgw (real process) in front of llmgw-mock over TLS (--tls, with a
// throwaway CA made by the test) and in each hosted provider's flavour (--provider):
// answers non-streaming and streaming, pooled TLS connections reused (handshakes counted
// by the mock), a bad certificate refused with its reason, the client's credentials never
// reaching a backend, a rotated key file picked up under load, and the official OpenAI
// Node SDK through llmgw to all four flavours (openai, azure, anthropic, gemini), streamed
// answers included. Everything on loopback.
#include <curl/curl.h>
#include <gtest/gtest.h>

#include <atomic>
#include <fstream>
#include <thread>

#include "tests/dataplane/harness.h"
#include "tests/dataplane/mock_server.h"
#include "tests/tls/test_pki.h"
#include "tests/tls/tls_mock_stat.h"
#include "tests/tls/tls_http_server.h"

namespace llmgw::testing {
namespace {

const std::string kChat = R"({"model":"m1","messages":[{"role":"user","content":"hello"}]})";
const std::string kStream = R"({"model":"m1","stream":true,"messages":[{"role":"user","content":"hello"}]})";
const std::string kClientAuth = "Authorization: Bearer client-secret\r\n";

std::string TlsBackend(uint16_t port, const std::string& ca, const std::string& extra = "") {
  return "models:\n  - name: m1\n    aliases: [alias1]\n    backends:\n      - { id: t, url: \"https://127.0.0.1:" +
         std::to_string(port) + "\", tls: { ca_file: \"" + ca + "\" }" + extra + " }\n";
}

void ExpectChatCompletion(const Response& r) {
  EXPECT_EQ(r.status, 200) << r.body;
  EXPECT_NE(r.body.find("\"object\":\"chat.completion\""), std::string::npos) << r.body;
  EXPECT_NE(r.body.find("\"role\":\"assistant\""), std::string::npos) << r.body;
}

void ExpectChunks(const Response& r) {
  EXPECT_EQ(r.status, 200) << r.body;
  EXPECT_NE(r.body.find("\"object\":\"chat.completion.chunk\""), std::string::npos) << r.body;
  EXPECT_NE(r.body.find("data: [DONE]"), std::string::npos) << r.body;
}

class UpstreamTlsTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(pki_.ok()) << pki_.error(); }
  llmgw::test::TestPki pki_;
};

TEST_F(UpstreamTlsTest, HttpsBackendAnswersAndPooledConnectionsAreReused) {
  MockServer mock({"--token-interval-ms", "0", "--output-tokens", "4", "--tls", pki_.server_cert(), pki_.server_key()});
  ASSERT_GT(mock.port(), 0);
  Gateway gw(TlsBackend(mock.port(), pki_.ca_cert()));
  ASSERT_TRUE(gw.WaitReady());
  constexpr int kRequests = 40;
  int fd = ConnectTo(gw.port());
  ASSERT_GE(fd, 0);
  std::string buf;
  for (int i = 0; i < kRequests; ++i) {
    SendAll(fd, Post("/v1/chat/completions", i % 2 ? kStream : kChat));
    Response r = ReadResponse(fd, &buf, 5000);
    if (i % 2) ExpectChunks(r);
    else ExpectChatCompletion(r);
    if (::testing::Test::HasFailure()) break;
  }
  ::close(fd);
  // Every TLS connection the mock accepted is one handshake (its TLS front opens one
  // inner connection per handshake); the stats fetch itself is one more.
  long handshakes = test::TlsMockStat(mock.port(), pki_.ca_cert(), "connections_total") - 1;
  EXPECT_GE(handshakes, 1);
  EXPECT_LE(handshakes, 2) << "pooled TLS connections were not reused";
  EXPECT_EQ(test::TlsMockStat(mock.port(), pki_.ca_cert(), "requests_total"), kRequests);
}

TEST_F(UpstreamTlsTest, ConcurrentStreamsOverTls) {
  MockServer mock({"--token-interval-ms", "2", "--output-tokens", "20", "--tls", pki_.server_cert(), pki_.server_key()});
  ASSERT_GT(mock.port(), 0);
  Gateway gw(TlsBackend(mock.port(), pki_.ca_cert()), "", true, 2);
  ASSERT_TRUE(gw.WaitReady());
  std::atomic<int> ok{0};
  std::vector<std::thread> ts;
  for (int t = 0; t < 8; ++t)
    ts.emplace_back([&] {
      for (int i = 0; i < 10; ++i) {
        Response r = Request(gw.port(), Post("/v1/chat/completions", i % 2 ? kStream : kChat));
        if (r.status == 200 && (i % 2 == 0 || r.body.find("data: [DONE]") != std::string::npos)) ++ok;
      }
    });
  for (auto& t : ts) t.join();
  EXPECT_EQ(ok.load(), 80);
  long handshakes = test::TlsMockStat(mock.port(), pki_.ca_cert(), "connections_total") - 1;
  EXPECT_LT(handshakes, 80);
}

TEST_F(UpstreamTlsTest, NewConnectionsResumeTheThreadsSession) {
  MockServer mock({"--token-interval-ms", "20", "--output-tokens", "10", "--tls", pki_.server_cert(), pki_.server_key()});
  ASSERT_GT(mock.port(), 0);
  Gateway gw(TlsBackend(mock.port(), pki_.ca_cert()));
  ASSERT_TRUE(gw.WaitReady());
  ExpectChatCompletion(Request(gw.port(), Post("/v1/chat/completions", kChat)));  // one full handshake
  // Overlapping streams need more connections than the one pooled: each new one resumes
  // the session the first connection's ticket left in the thread's cache.
  std::vector<std::thread> ts;
  std::atomic<int> ok{0};
  for (int t = 0; t < 6; ++t)
    ts.emplace_back([&] { ok += Request(gw.port(), Post("/v1/chat/completions", kStream)).status == 200; });
  for (auto& t : ts) t.join();
  EXPECT_EQ(ok.load(), 6);
  long all = test::TlsMockStat(mock.port(), pki_.ca_cert(), "tls_handshakes_total");
  long resumed = test::TlsMockStat(mock.port(), pki_.ca_cert(), "tls_resumed_total");
  // Every new connection offers the cached session (the debug log says so); OpenSSL's
  // server (the mock) sometimes refuses a ticket several connections present at once, so
  // not every one resumes: at least one did, and llmgw's first handshake stays its only
  // guaranteed full one.
  EXPECT_GE(resumed, 1) << all << " handshakes (one of them the stats fetch)";
  EXPECT_GE(all, 3);
}

TEST_F(UpstreamTlsTest, BadCertificateIsRefusedWithItsReasonAndFailsOver) {
  // The backend presents a self-signed certificate no configured CA signed.
  MockServer rogue({"--token-interval-ms", "0", "--tls", pki_.rogue_cert(), pki_.rogue_key()});
  ASSERT_GT(rogue.port(), 0);
  {
    Gateway gw(TlsBackend(rogue.port(), pki_.ca_cert()), "  retries: { max: 1, backoff_ms: 1 }\n");
    ASSERT_TRUE(gw.WaitReady());
    Response r = Request(gw.port(), Post("/v1/chat/completions", kChat));
    EXPECT_EQ(r.status, 502) << r.body;
    EXPECT_NE(r.body.find("\"error\""), std::string::npos) << r.body;
    EXPECT_NE(r.body.find("certificate verify failed"), std::string::npos) << r.body;
  }
  // With a good backend beside it, the refused one is a connect failure: failed over.
  MockServer good({"--token-interval-ms", "0", "--tls", pki_.server_cert(), pki_.server_key()});
  ASSERT_GT(good.port(), 0);
  std::string y = "models:\n  - name: m1\n    backends:\n"
                  "      - { id: rogue, url: \"https://127.0.0.1:" + std::to_string(rogue.port()) +
                  "\", tls: { ca_file: \"" + pki_.ca_cert() + "\" } }\n"
                  "      - { id: good, url: \"https://127.0.0.1:" + std::to_string(good.port()) +
                  "\", tls: { ca_file: \"" + pki_.ca_cert() + "\" } }\n";
  Gateway gw(y);
  ASSERT_TRUE(gw.WaitReady());
  for (int i = 0; i < 6; ++i) ExpectChatCompletion(Request(gw.port(), Post("/v1/chat/completions", kChat)));
  // The wrong name on a good certificate is refused too (server_name overrides the URL's host).
  Gateway named("models:\n  - name: m1\n    backends:\n      - { url: \"https://127.0.0.1:" + std::to_string(good.port()) +
                    "\", tls: { ca_file: \"" + pki_.ca_cert() + "\", server_name: \"other.test\" } }\n",
                "  retries: { max: 0 }\n");
  ASSERT_TRUE(named.WaitReady());
  Response r = Request(named.port(), Post("/v1/chat/completions", kChat));
  EXPECT_EQ(r.status, 502) << r.body;
  EXPECT_NE(r.body.find("certificate verify failed"), std::string::npos) << r.body;
}

// tls.server_name is the SNI sent (and the name checked) for a URL that is an IP address;
// a backend that requires a client certificate gets tls.client_cert_file, and refuses a
// gateway that has none.
TEST_F(UpstreamTlsTest, ServerNameIsSentAsSniAndClientCertificatesAreShown) {
  const std::string answer = R"({"id":"x","object":"chat.completion","choices":[{"index":0,)"
                             R"("message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}]})";
  llmgw::test::TlsHttpServer server(
      pki_.server_cert(), pki_.server_key(), [&](const std::string&) { return llmgw::test::TlsHttpServer::Answer{200, answer}; },
      pki_.ca_cert());
  ASSERT_TRUE(server.ok());
  auto config = [&](const std::string& client) {
    return "models:\n  - name: m1\n    backends:\n      - { url: \"https://127.0.0.1:" + std::to_string(server.port()) +
           "\", tls: { ca_file: \"" + pki_.ca_cert() + "\", server_name: backend.test" + client + " } }\n";
  };
  {
    Gateway gw(config(", client_cert_file: \"" + pki_.client_cert() + "\", client_key_file: \"" + pki_.client_key() +
                      "\""),
               "  retries: { max: 0 }\n");
    ASSERT_TRUE(gw.WaitReady());
    ExpectChatCompletion(Request(gw.port(), Post("/v1/chat/completions", kChat)));
    ASSERT_EQ(server.server_names().size(), 1u);
    EXPECT_EQ(server.server_names()[0], "backend.test");
    EXPECT_EQ(server.heads()[0].rfind("POST /v1/chat/completions HTTP/1.1\r\n", 0), 0u) << server.heads()[0];
  }
  Gateway gw(config(""), "  retries: { max: 0 }\n");
  ASSERT_TRUE(gw.WaitReady());
  Response r = Request(gw.port(), Post("/v1/chat/completions", kChat));
  EXPECT_EQ(r.status, 502) << r.body;
  EXPECT_NE(r.body.find("tls"), std::string::npos) << r.body;
  EXPECT_EQ(server.heads().size(), 1u);  // the refused gateway's request was never read
  EXPECT_GE(server.handshakes_failed(), 1);
}

TEST_F(UpstreamTlsTest, HttpsBackendIsNeverSentPlaintext) {
  // A plain HTTP server behind an https:// URL: it sees a ClientHello, never the request
  // (it waits for the rest of a request; the handshake runs under the connect deadline).
  TestUpstream plain;
  Gateway gw("models:\n  - name: m1\n    backends:\n      - { url: \"https://127.0.0.1:" + std::to_string(plain.port()) +
                 "\", tls: { ca_file: \"" + pki_.ca_cert() + "\" } }\n",
             "  retries: { max: 0 }\n  timeouts: { connect_ms: 300 }\n");
  ASSERT_TRUE(gw.WaitReady());
  Response r = Request(gw.port(), Post("/v1/chat/completions", kChat, kClientAuth));
  EXPECT_EQ(r.status, 504) << r.body;
  EXPECT_NE(r.body.find("connect timed out"), std::string::npos) << r.body;
  EXPECT_EQ(plain.requests(), 0);
  EXPECT_EQ(plain.last_request().find("client-secret"), std::string::npos);
}

// ---- hosted providers (the mock's flavours check each one's key, path and shape)

std::string KeyFile(const std::string& dir, const std::string& name, const std::string& key) {
  std::string path = dir + "/" + name;
  std::ofstream(path) << key << "\n";
  return path;
}

struct Flavour {
  const char* provider;
  const char* backend_extra;  // config beyond url/provider/key
  std::vector<std::string> mock_extra;
};

class ProviderFlavourTest : public UpstreamTlsTest, public ::testing::WithParamInterface<Flavour> {};

TEST_P(ProviderFlavourTest, AnswersInOpenAiShapeWithTheBackendsKeyNeverTheClients) {
  const Flavour& f = GetParam();
  std::vector<std::string> args = {"--token-interval-ms", "0", "--output-tokens", "4", "--provider", f.provider,
                                   "--api-key", "backend-secret"};
  args.insert(args.end(), f.mock_extra.begin(), f.mock_extra.end());
  MockServer mock(args);
  ASSERT_GT(mock.port(), 0);
  std::string key = KeyFile(pki_.dir(), std::string(f.provider) + ".key", "backend-secret");
  std::string y = "models:\n  - name: m1\n    backends:\n      - { url: \"http://127.0.0.1:" +
                  std::to_string(mock.port()) + "\", provider: " + f.provider + ", api_key_file: \"" + key + "\"" +
                  f.backend_extra + " }\n";
  Gateway gw(y);
  ASSERT_TRUE(gw.WaitReady());
  ExpectChatCompletion(Request(gw.port(), Post("/v1/chat/completions", kChat, kClientAuth)));
  Response s = Request(gw.port(), Post("/v1/chat/completions", kStream, kClientAuth));
  ExpectChunks(s);
  // The client sent its own key with every request; the mock saw only the backend's.
  EXPECT_EQ(mock.Stat("provider_auth_failures_total"), 0);
  EXPECT_EQ(mock.Stat("requests_total"), 2);
}

INSTANTIATE_TEST_SUITE_P(
    Flavours, ProviderFlavourTest,
    ::testing::Values(Flavour{"openai", "", {}},
                      Flavour{"azure", ", deployment: gpt-4o, api_version: \"2024-10-21\"", {"--deployment", "gpt-4o"}},
                      Flavour{"gemini", "", {}}, Flavour{"anthropic", "", {}}),
    [](const ::testing::TestParamInfo<Flavour>& i) { return std::string(i.param.provider); });

TEST_F(UpstreamTlsTest, AnthropicAnswersAreTranslatedWithUsageAndErrorsInOpenAiShape) {
  MockServer mock({"--token-interval-ms", "0", "--output-tokens", "3", "--provider", "anthropic", "--api-key", "ak"});
  ASSERT_GT(mock.port(), 0);
  std::string key = KeyFile(pki_.dir(), "a.key", "ak");
  Gateway gw("models:\n  - name: m1\n    backends:\n      - { url: \"http://127.0.0.1:" + std::to_string(mock.port()) +
             "\", provider: anthropic, api_key_file: \"" + key + "\" }\n");
  ASSERT_TRUE(gw.WaitReady());
  Response r = Request(gw.port(), Post("/v1/chat/completions", kChat));
  ExpectChatCompletion(r);
  EXPECT_NE(r.body.find("\"completion_tokens\":3"), std::string::npos) << r.body;
  EXPECT_NE(r.body.find("\"finish_reason\":\"stop\""), std::string::npos) << r.body;
  Response s = Request(gw.port(), Post("/v1/chat/completions",
                                       R"({"model":"m1","stream":true,"stream_options":{"include_usage":true},)"
                                       R"("messages":[{"role":"user","content":"hello"}]})"));
  ExpectChunks(s);
  EXPECT_NE(s.body.find("\"delta\":{\"role\":\"assistant\""), std::string::npos) << s.body;
  EXPECT_NE(s.body.find("\"completion_tokens\":3"), std::string::npos) << s.body;
  EXPECT_EQ(s.body.find("event: "), std::string::npos) << "Anthropic's event names reached the client";
  // A request that cannot be put in Anthropic's shape (a tool call whose arguments are
  // not a JSON object) is the client's error, in OpenAI's shape.
  Response bad = Request(gw.port(), Post("/v1/chat/completions", R"({"model":"m1","messages":[{"role":"assistant",)"
                                                                 R"("tool_calls":[{"id":"x","type":"function",)"
                                                                 R"("function":{"name":"f","arguments":"[1]"}}]}]})"));
  EXPECT_EQ(bad.status, 400) << bad.body;
  EXPECT_NE(bad.body.find("\"error\":{"), std::string::npos) << bad.body;
  EXPECT_NE(bad.body.find("\"message\""), std::string::npos) << bad.body;
}

// An Anthropic stream that stops being Anthropic's shape after output started (an event
// whose data is cut JSON, then a clean end of the HTTP answer) ends like every broken
// stream in llmgw: the SSE error event and the terminating chunk, the client connection
// kept alive for its next request. Before, with resume off and the client asking for
// usage itself (no stream filter), it just ended: a truncated answer that looked complete.
TEST_F(UpstreamTlsTest, AnthropicStreamUntranslatableMidWayEndsWithTheErrorEventLikeAnyBrokenStream) {
  MockServer mock({"--token-interval-ms", "1", "--output-tokens", "8", "--provider", "anthropic", "--api-key", "ak"});
  ASSERT_GT(mock.port(), 0);
  std::string key = KeyFile(pki_.dir(), "a.key", "ak");
  const std::string models = "models:\n  - name: m1\n    backends:\n      - { url: \"http://127.0.0.1:" +
                             std::to_string(mock.port()) + "\", provider: anthropic, api_key_file: \"" + key + "\" }\n";
  const std::string usage = R"({"model":"m1","stream":true,"stream_options":{"include_usage":true},)"
                            R"("messages":[{"role":"user","content":"hello"}]})";
  for (const char* resume : {"  resume_streams: false\n", ""}) {
    for (const std::string& body : {usage, kStream}) {
      SCOPED_TRACE(std::string(resume) + body);
      ASSERT_TRUE(mock.SetFaults(R"({"reset":true,"garbage_event_mid_stream_after":3})"));
      Gateway gw(models, resume);
      ASSERT_TRUE(gw.WaitReady());
      int fd = ConnectTo(gw.port());
      ASSERT_GE(fd, 0);
      std::string buf;
      ASSERT_TRUE(SendAll(fd, Post("/v1/chat/completions", body)));
      Response r = ReadResponse(fd, &buf, 8000);
      ASSERT_TRUE(r.complete) << buf;
      EXPECT_FALSE(r.malformed);
      EXPECT_EQ(r.status, 200);
      EXPECT_EQ(r.Header("connection"), "keep-alive");
      EXPECT_NE(r.body.find("\"delta\":{\"content\":"), std::string::npos) << "output had started\n" << r.body;
      size_t err = r.body.find("event: error\ndata: {\"error\":{");
      EXPECT_NE(err, std::string::npos) << r.body;
      EXPECT_NE(r.body.find("not translatable"), std::string::npos) << r.body;
      EXPECT_EQ(r.body.find("[DONE]"), std::string::npos) << r.body;
      EXPECT_EQ(r.body.find("\"finish_reason\":\"stop\""), std::string::npos) << "a cut answer passed off as done\n" << r.body;
      if (err != std::string::npos) {
        EXPECT_EQ(r.body.substr(err).find("\n\n"), r.body.size() - err - 2) << "the error event is the last\n" << r.body;
      }
      EXPECT_GE(mock.Stat("garbage_events_mid_stream_total"), 1);
      // The next request on the same connection, the backend sane again: a whole stream.
      ASSERT_TRUE(mock.SetFaults(R"({"reset":true})"));
      ASSERT_TRUE(SendAll(fd, Post("/v1/chat/completions", body)));
      Response next = ReadResponse(fd, &buf, 8000);
      ASSERT_TRUE(next.complete) << "no answer on the kept-alive connection: " << buf;
      ExpectChunks(next);
      EXPECT_EQ(next.body.find("event: error"), std::string::npos) << next.body;
      ::close(fd);
    }
  }
}

// Gemini's OpenAI-compatible endpoint answers errors as a JSON array of Google API errors,
// which OpenAI's SDKs cannot read: llmgw gives the client OpenAI's error object with the
// same status. Here the client sends a vLLM-only field Gemini does not know.
TEST_F(UpstreamTlsTest, GeminiErrorsReachTheClientInOpenAisShape) {
  MockServer mock({"--token-interval-ms", "0", "--provider", "gemini", "--api-key", "gk"});
  ASSERT_GT(mock.port(), 0);
  std::string key = KeyFile(pki_.dir(), "g.key", "gk");
  Gateway gw("models:\n  - name: m1\n    backends:\n      - { url: \"http://127.0.0.1:" + std::to_string(mock.port()) +
             "\", provider: gemini, api_key_file: \"" + key + "\" }\n");
  ASSERT_TRUE(gw.WaitReady());
  for (const std::string& stream : {std::string(), std::string("\"stream\":true,")}) {
    Response r = Request(gw.port(), Post("/v1/chat/completions", "{\"model\":\"m1\"," + stream +
                                                                     "\"top_k\":5,\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}"));
    EXPECT_EQ(r.status, 400) << r.body;
    EXPECT_EQ(r.Header("content-type"), "application/json");
    EXPECT_EQ(r.body,
              "{\"error\":{\"message\":\"Invalid JSON payload received. Unknown name \\\"top_k\\\": Cannot find field.\","
              "\"type\":\"invalid_request_error\",\"param\":null,\"code\":\"INVALID_ARGUMENT\"}}");
  }
  // The same backend's answers are untouched.
  ExpectChatCompletion(Request(gw.port(), Post("/v1/chat/completions", kChat)));
  ExpectChunks(Request(gw.port(), Post("/v1/chat/completions", kStream)));
}

TEST_F(UpstreamTlsTest, AnthropicOverloadIsRetriedElsewhereAndItsErrorsKeepTheirStatus) {
  // 529 (overloaded) and 5xx from Anthropic fail over like any backend's.
  MockServer busy({"--token-interval-ms", "0", "--provider", "anthropic", "--api-key", "ak"});
  MockServer good({"--token-interval-ms", "0", "--provider", "anthropic", "--api-key", "ak"});
  ASSERT_GT(busy.port(), 0);
  ASSERT_GT(good.port(), 0);
  ASSERT_TRUE(busy.SetFaults(R"({"error_rate":1,"error_status":529})"));
  std::string key = KeyFile(pki_.dir(), "a.key", "ak");
  auto backend = [&](uint16_t port) {
    return "      - { url: \"http://127.0.0.1:" + std::to_string(port) + "\", provider: anthropic, api_key_file: \"" + key +
           "\" }\n";
  };
  {
    Gateway gw("models:\n  - name: m1\n    policy: round_robin\n    backends:\n" + backend(busy.port()) +
                   backend(good.port()),
               "  retries: { max: 2, backoff_ms: 1 }\n");
    ASSERT_TRUE(gw.WaitReady());
    for (int i = 0; i < 6; ++i) ExpectChatCompletion(Request(gw.port(), Post("/v1/chat/completions", kChat)));
    EXPECT_GE(busy.Stat("http_requests_total"), 3);  // round robin: it was tried first for half of them
  }
  // Anthropic refusing the key: its 401 comes back as 401, in OpenAI's error shape.
  std::string wrong = KeyFile(pki_.dir(), "w.key", "wrong");
  Gateway gw("models:\n  - name: m1\n    backends:\n      - { url: \"http://127.0.0.1:" + std::to_string(good.port()) +
             "\", provider: anthropic, api_key_file: \"" + wrong + "\" }\n");
  ASSERT_TRUE(gw.WaitReady());
  Response r = Request(gw.port(), Post("/v1/chat/completions", kChat));
  EXPECT_EQ(r.status, 401) << r.body;
  EXPECT_EQ(r.body.rfind("{\"error\":{", 0), 0u) << r.body;
  EXPECT_EQ(r.body.find("\"type\":\"error\""), std::string::npos) << "Anthropic's own shape reached the client: " << r.body;
}

TEST_F(UpstreamTlsTest, ClientAuthorizationNeverReachesABackendWithItsOwnKey) {
  TestUpstream up;
  std::string key = KeyFile(pki_.dir(), "v.key", "vllm-key");
  Gateway gw("models:\n  - name: m1\n    backends:\n      - { url: \"http://127.0.0.1:" + std::to_string(up.port()) +
             "\", api_key_file: \"" + key + "\" }\n");
  ASSERT_TRUE(gw.WaitReady());
  Response r = Request(gw.port(), Post("/v1/chat/completions", kChat,
                                       kClientAuth + "api-key: client-2\r\nX-Api-Key: client-3\r\nX-Other: kept\r\n"));
  EXPECT_EQ(r.status, 200) << r.body;
  std::string seen = up.last_request();
  EXPECT_NE(seen.find("Authorization: Bearer vllm-key\r\n"), std::string::npos) << seen;
  EXPECT_EQ(seen.find("client-secret"), std::string::npos) << seen;
  EXPECT_EQ(seen.find("client-2"), std::string::npos) << seen;
  EXPECT_EQ(seen.find("client-3"), std::string::npos) << seen;
  EXPECT_NE(seen.find("X-Other: kept\r\n"), std::string::npos) << seen;
}

TEST_F(UpstreamTlsTest, RotatedKeyFileIsPickedUpByReloadUnderLoad) {
  TestUpstream up;
  std::string key = KeyFile(pki_.dir(), "o.key", "old-key");
  Gateway gw("models:\n  - name: m1\n    backends:\n      - { url: \"http://127.0.0.1:" + std::to_string(up.port()) +
             "\", provider: openai, api_key_file: \"" + key + "\" }\n");
  ASSERT_TRUE(gw.WaitReady());
  std::atomic<bool> stop{false};
  std::atomic<int> ok{0}, failed{0};
  std::vector<std::thread> load;
  for (int t = 0; t < 4; ++t)
    load.emplace_back([&] {
      while (!stop) (Request(gw.port(), Post("/v1/chat/completions", kChat, kClientAuth)).status == 200 ? ok : failed)++;
    });
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  EXPECT_NE(up.last_request().find("Authorization: Bearer old-key\r\n"), std::string::npos) << up.last_request();
  // The key file is rewritten (a rotation) and the config reloaded, as llmcd does when
  // the file changes: requests under way keep going, the next ones carry the new key.
  KeyFile(pki_.dir(), "o.key", "new-key");
  ASSERT_TRUE(gw.Reload());
  int ok_at_reload = ok.load();
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  stop = true;
  for (auto& t : load) t.join();
  std::string last = up.last_request();
  EXPECT_NE(last.find("Authorization: Bearer new-key\r\n"), std::string::npos) << last;
  EXPECT_EQ(last.find("old-key"), std::string::npos) << last;
  EXPECT_EQ(last.find("client-secret"), std::string::npos) << last;
  EXPECT_GT(ok.load(), ok_at_reload + 10);
  EXPECT_EQ(failed.load(), 0);
}

// ---- the official OpenAI Node SDK through llmgw to hosted flavours

std::string RunSdk(uint16_t port) {
  std::string dir = std::string(LLMGW_SOURCE_DIR) + "/tests/dataplane/sdk";
  std::string cmd = "timeout 20 node " + dir + "/sdk_client.mjs http://127.0.0.1:" + std::to_string(port) + "/v1";
  FILE* p = ::popen(cmd.c_str(), "r");
  if (!p) return "popen failed";
  std::string out;
  char buf[4096];
  while (std::fgets(buf, sizeof(buf), p)) out += buf;
  int rc = ::pclose(p);
  if (rc != 0) out = "exit " + std::to_string(rc) + ": " + out;
  return out;
}

// Each flavour checks its provider's key header, path and request fields (an unknown
// field is refused, as the real API refuses vLLM's extras), so an SDK call that passes
// proves llmgw sent that provider what it expects; the answers reach the SDK in OpenAI's
// shape, streamed included.
TEST_F(UpstreamTlsTest, OfficialOpenAiNodeSdkThroughLlmgwToAllFourProvidersOverTls) {
  std::string dir = std::string(LLMGW_SOURCE_DIR) + "/tests/dataplane/sdk";
  ASSERT_EQ(std::system("command -v node >/dev/null 2>&1"), 0) << "node is not installed: run scripts/install-deps.sh";
  ASSERT_EQ(::access((dir + "/node_modules/openai/package.json").c_str(), R_OK), 0)
      << "the openai SDK is not installed: run scripts/install-deps.sh (npm ci in tests/dataplane/sdk)";
  std::string key = KeyFile(pki_.dir(), "k", "hosted-key");
  struct Case {
    const char* provider;
    const char* extra;
    std::vector<std::string> mock;
  };
  for (const Case& k : {Case{"openai", ", organization: org-llmgw", {"--organization", "org-llmgw"}},
                        Case{"azure", ", deployment: gpt-4o, api_version: \"2024-10-21\"", {"--deployment", "gpt-4o"}},
                        Case{"anthropic", "", {}}, Case{"gemini", "", {}}}) {
    SCOPED_TRACE(k.provider);
    std::vector<std::string> args = {"--token-interval-ms", "0", "--output-tokens", "3", "--provider", k.provider,
                                     "--api-key", "hosted-key", "--tls", pki_.server_cert(), pki_.server_key()};
    args.insert(args.end(), k.mock.begin(), k.mock.end());
    MockServer mock(args);
    ASSERT_GT(mock.port(), 0);
    Gateway gw(TlsBackend(mock.port(), pki_.ca_cert(),
                          std::string(", provider: ") + k.provider + ", api_key_file: \"" + key + "\", upstream_model: m1" +
                              k.extra));
    ASSERT_TRUE(gw.WaitReady());
    std::string out = RunSdk(gw.port());
    EXPECT_EQ(out.rfind("exit ", 0), std::string::npos) << out;
    EXPECT_NE(out.find("\"content\":\""), std::string::npos) << out;
    EXPECT_EQ(out.find("\"content\":\"\""), std::string::npos) << out;
    EXPECT_NE(out.find("\"completion_tokens\":3"), std::string::npos) << out;
    EXPECT_NE(out.find("\"deltas\":[\""), std::string::npos) << out;
    EXPECT_NE(out.find("\"models\":[\"m1\",\"alias1\"]"), std::string::npos) << out;
    EXPECT_NE(out.find("\"error_status\":404"), std::string::npos) << out;
    // Both chat calls (the plain one and the stream) reached the provider and were accepted
    // (the key, the organization, the path and every field the provider checks).
    EXPECT_EQ(test::TlsMockStat(mock.port(), pki_.ca_cert(), "requests_total"), 2);
    EXPECT_EQ(test::TlsMockStat(mock.port(), pki_.ca_cert(), "provider_auth_failures_total"), 0);
  }
}

}  // namespace
}  // namespace llmgw::testing
