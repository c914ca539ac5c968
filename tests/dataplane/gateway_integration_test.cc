// Integration tests of llmgw's request path: round trips, streaming, uploads, headers,
// retries and fallbacks, errors, the access log, local endpoints and the OpenAI SDK. Real
// gateway process, scripted upstreams on loopback, the snapshot published into shm by the
// test (as llmcd would). Load and abuse cases are in gateway_load_integration_test.cc.
#include <gtest/gtest.h>
#include <sys/resource.h>

#include <algorithm>
#include <cstdlib>

#include "tests/dataplane/gateway_test_util.h"
#include "tests/dataplane/harness.h"

namespace llmgw::testing {
namespace {

TEST(GatewayTest, NonStreamingRoundTripKeepsRequestIdAndCountsStats) {
  TestUpstream up;
  Gateway gw(OneModel({up.port()}));
  ASSERT_NE(gw.port(), 0);
  ASSERT_TRUE(gw.WaitReady());
  Response r = Request(gw.port(), Post("/v1/chat/completions", kChat, "X-Request-ID: abc-123\r\n"));
  EXPECT_EQ(r.status, 200);
  EXPECT_NE(r.body.find("\"chat.completion\""), std::string::npos) << r.body;
  EXPECT_EQ(r.Header("x-request-id"), "abc-123");
  std::string seen = up.last_request();
  EXPECT_NE(seen.find("X-Request-ID: abc-123"), std::string::npos);
  EXPECT_NE(seen.find(kChat), std::string::npos);  // body forwarded unchanged
  // A generated id when the client sent none.
  Response r2 = Request(gw.port(), Post("/v1/chat/completions", kChat));
  EXPECT_EQ(r2.status, 200);
  EXPECT_GE(r2.Header("x-request-id").size(), 16u);
  // Stats land in the thread's slot (the heartbeat tick publishes within ms).
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  shm::StatsTotals t;
  SumStatsNow(gw, &t);
  EXPECT_GE(t.requests_total, 3u);  // /ready probes count too
  EXPECT_EQ(t.models[0].requests_by_code[shm::StatusCodeIndex(200)], 2u);
  EXPECT_EQ(t.models[0].prompt_tokens, 10u);
  EXPECT_EQ(t.models[0].completion_tokens, 14u);
  EXPECT_EQ(t.backends[0].requests, 2u);
  EXPECT_EQ(t.backends[0].in_flight, 0u);
  EXPECT_EQ(t.live_threads, 1u);
}

TEST(GatewayTest, AliasIsRewrittenToTheModelName) {
  TestUpstream up;
  Gateway gw(OneModel({up.port()}));
  ASSERT_TRUE(gw.WaitReady());
  std::string body = R"({"messages":[],"model" : "alias1","user":"u"})";
  Response r = Request(gw.port(), Post("/v1/completions", body));
  EXPECT_EQ(r.status, 200);
  EXPECT_NE(up.last_request().find(R"({"messages":[],"model" : "m1","user":"u"})"), std::string::npos)
      << up.last_request();
  EXPECT_NE(up.last_request().find("POST /v1/completions "), std::string::npos);
}

TEST(GatewayTest, StreamingEventsArriveSeparatelyInTime) {
  TestUpstream::Options o;
  o.events = 4;
  o.interval_ms = 150;
  TestUpstream up(o);
  Gateway gw(OneModel({up.port()}));
  ASSERT_TRUE(gw.WaitReady());
  int fd = ConnectTo(gw.port());
  ASSERT_GE(fd, 0);
  uint64_t t0 = MonoMs();
  SendAll(fd, Post("/v1/chat/completions", R"({"model":"m1","stream":true,"messages":[]})"));
  std::string buf;
  std::vector<uint64_t> at;
  for (int i = 0; i < 4; ++i) {
    std::string needle = "\"t" + std::to_string(i) + "\"";
    ASSERT_TRUE(ReadUntil(fd, &buf, [&](const std::string& b) { return b.find(needle) != std::string::npos; }, 3000))
        << buf;
    at.push_back(MonoMs() - t0);
  }
  EXPECT_NE(buf.find("Content-Type: text/event-stream"), std::string::npos);
  // Each event is relayed when it happens, not batched at the end.
  for (int i = 1; i < 4; ++i) EXPECT_GE(at[i] - at[i - 1], 100u) << i;
  ASSERT_TRUE(ReadUntil(fd, &buf, [](const std::string& b) { return b.find("0\r\n\r\n") != std::string::npos; }, 3000));
  EXPECT_NE(buf.find("data: [DONE]"), std::string::npos);
  ::close(fd);
}

TEST(GatewayTest, ChunkedUploadAndExpectContinue) {
  TestUpstream up;
  Gateway gw(OneModel({up.port()}));
  ASSERT_TRUE(gw.WaitReady());
  int fd = ConnectTo(gw.port());
  std::string a = R"({"model":"m1",)";
  std::string b = R"("messages":[]})";
  char h1[16], h2[16];
  std::snprintf(h1, sizeof(h1), "%zx", a.size());
  std::snprintf(h2, sizeof(h2), "%zx", b.size());
  SendAll(fd, "POST /v1/chat/completions HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n"
              "Expect: 100-continue\r\n\r\n");
  std::string buf;
  Response cont = ReadResponse(fd, &buf, 2000);
  EXPECT_EQ(cont.status, 100);
  SendAll(fd, std::string(h1) + "\r\n" + a + "\r\n");
  std::this_thread::sleep_for(std::chrono::milliseconds(30));
  SendAll(fd, std::string(h2) + "\r\n" + b + "\r\n0\r\n\r\n");
  Response r = ReadResponse(fd, &buf);
  EXPECT_EQ(r.status, 200) << r.body;
  EXPECT_NE(up.last_request().find(a + b), std::string::npos);
  EXPECT_NE(up.last_request().find("Content-Length: " + std::to_string(a.size() + b.size())), std::string::npos);
  ::close(fd);
}

TEST(GatewayTest, UpstreamKeepAliveIsReused) {
  TestUpstream up;
  Gateway gw(OneModel({up.port()}));
  ASSERT_TRUE(gw.WaitReady());
  for (int i = 0; i < 20; ++i) {
    Response r = Request(gw.port(), Post("/v1/chat/completions", kChat));
    ASSERT_EQ(r.status, 200);
  }
  EXPECT_EQ(up.requests(), 20);
  EXPECT_EQ(up.connections(), 1);
}

TEST(GatewayTest, ClientLeavingMidStreamReleasesUpstreamQuickly) {
  TestUpstream::Options o;
  o.events = 1000;
  o.interval_ms = 20;
  TestUpstream up(o);
  Gateway gw(OneModel({up.port()}));
  ASSERT_TRUE(gw.WaitReady());
  int fd = ConnectTo(gw.port());
  SendAll(fd, Post("/v1/chat/completions", R"({"model":"m1","stream":true})"));
  std::string buf;
  ASSERT_TRUE(ReadUntil(fd, &buf, [](const std::string& b) { return b.find("\"t1\"") != std::string::npos; }, 3000));
  uint64_t closed_at = MonoMs();
  ::close(fd);
  uint64_t end = closed_at + 2000;
  while (up.stream_abort_ms() == 0 && MonoMs() < end) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  ASSERT_NE(up.stream_abort_ms(), 0u);
  EXPECT_LE(up.stream_abort_ms() - closed_at, 50u);
}

TEST(GatewayTest, DeadBackendIsRetriedTransparently) {
  TestUpstream good;
  // A port with nothing listening: connect is refused.
  int tmp = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(tmp, reinterpret_cast<sockaddr*>(&a), sizeof(a));
  socklen_t len = sizeof(a);
  getsockname(tmp, reinterpret_cast<sockaddr*>(&a), &len);
  uint16_t dead = ntohs(a.sin_port);
  ::close(tmp);
  TestUpstream::Options fail;
  fail.status = 503;
  TestUpstream failing(fail);
  Gateway gw(OneModel({dead, failing.port(), good.port()}), "  retries: { max: 2, backoff_ms: 1 }\n");
  ASSERT_TRUE(gw.WaitReady());
  for (int i = 0; i < 6; ++i) {
    Response r = Request(gw.port(), Post("/v1/chat/completions", kChat));
    EXPECT_EQ(r.status, 200) << r.body;
  }
  EXPECT_EQ(good.requests(), 6);
  std::this_thread::sleep_for(std::chrono::milliseconds(30));
  shm::StatsTotals t;
  SumStatsNow(gw, &t);
  EXPECT_GT(t.retries, 0u);
}

size_t CountNoCase(const std::string& hay, const std::string& needle) {
  std::string h = hay, n = needle;
  for (auto& ch : h) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  for (auto& ch : n) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  size_t count = 0;
  for (size_t pos = h.find(n); pos != std::string::npos; pos = h.find(n, pos + 1)) ++count;
  return count;
}

// Sends one request and returns the raw response head (up to the blank line) and the response.
std::string RawHead(uint16_t port, const std::string& req, Response* r) {
  int fd = ConnectTo(port);
  if (fd < 0) return "";
  SendAll(fd, req);
  std::string buf;
  ReadUntil(fd, &buf, [](const std::string& b) {
    std::string copy = b;
    Response t;
    return ParseResponse(&copy, &t);
  }, 5000);
  ::close(fd);
  std::string head = buf.substr(0, buf.find("\r\n\r\n") + 2);
  ParseResponse(&buf, r);
  return head;
}

TEST(GatewayTest, ClientEndToEndHeadersAreForwardedHopByHopAreNot) {
  TestUpstream up;
  Gateway gw(OneModel({up.port()}));
  ASSERT_TRUE(gw.WaitReady());
  std::string big_cookie(6000, 'c');  // far beyond any fixed per-header field
  Response r = Request(gw.port(), Post("/v1/chat/completions", kChat,
                                       "traceparent: 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01\r\n"
                                       "OpenAI-Organization: org-123\r\n"
                                       "x-custom-thing:   spaced value  \r\n"
                                       "Authorization: Bearer sk-test\r\n"
                                       "Cookie: " + big_cookie + "\r\n"
                                       "Connection: keep-alive, X-Drop-Me\r\n"
                                       "X-Drop-Me: secret\r\n"
                                       "Keep-Alive: timeout=5\r\n"
                                       "TE: trailers\r\n"
                                       "Trailer: X-Something\r\n"
                                       "Proxy-Authorization: Basic abc\r\n"
                                       "Upgrade: h2c\r\n"
                                       "X-Request-ID: rid-7\r\n"));
  ASSERT_EQ(r.status, 200) << r.body;
  std::string seen = up.last_request();
  std::string head = seen.substr(0, seen.find("\r\n\r\n") + 2);
  EXPECT_NE(head.find("\r\ntraceparent: 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01\r\n"), std::string::npos) << head;
  EXPECT_NE(head.find("\r\nOpenAI-Organization: org-123\r\n"), std::string::npos) << head;
  EXPECT_NE(head.find("\r\nx-custom-thing: spaced value\r\n"), std::string::npos) << head;
  EXPECT_NE(head.find("\r\nAuthorization: Bearer sk-test\r\n"), std::string::npos) << head;
  EXPECT_NE(head.find("\r\nCookie: " + big_cookie + "\r\n"), std::string::npos);
  EXPECT_EQ(CountNoCase(head, "\r\nx-request-id: rid-7\r\n"), 1u) << head;
  EXPECT_EQ(CountNoCase(head, "\r\nhost: 127.0.0.1:" + std::to_string(up.port()) + "\r\n"), 1u) << head;
  EXPECT_EQ(CountNoCase(head, "\r\nhost:"), 1u) << head;
  EXPECT_EQ(CountNoCase(head, "\r\ncontent-length: " + std::to_string(kChat.size()) + "\r\n"), 1u) << head;
  EXPECT_EQ(CountNoCase(head, "\r\ncontent-type: application/json\r\n"), 1u) << head;
  EXPECT_EQ(CountNoCase(head, "\r\nconnection: keep-alive\r\n"), 1u) << head;
  for (const char* gone : {"x-drop-me", "keep-alive:", "\r\nte:", "trailer:", "proxy-authorization", "upgrade:",
                           "expect:", "transfer-encoding"})
    EXPECT_EQ(CountNoCase(head, gone), 0u) << gone << " in\n" << head;
  // Without a client Content-Type llmgw names the body's type itself (it is JSON).
  Request(gw.port(), "POST /v1/chat/completions HTTP/1.1\r\nHost: t\r\nContent-Length: " +
                         std::to_string(kChat.size()) + "\r\nX-Trace: 1\r\n\r\n" + kChat);
  seen = up.last_request();
  EXPECT_EQ(CountNoCase(seen, "\r\ncontent-type: application/json\r\n"), 1u) << seen;
  EXPECT_EQ(CountNoCase(seen, "\r\nx-trace: 1\r\n"), 1u) << seen;
}

TEST(GatewayTest, UpstreamEndToEndResponseHeadersAreRelayed) {
  TestUpstream::Options o;
  o.extra_headers =
      "OpenAI-Processing-Ms: 12\r\n"
      "x-ratelimit-remaining-requests: 99\r\n"
      "Set-Cookie: a=b\r\n"
      "Cache-Control: no-store\r\n"
      "Connection: keep-alive, X-Hop\r\n"
      "X-Hop: secret\r\n"
      "Keep-Alive: timeout=5\r\n"
      "Proxy-Thing: x\r\n"
      "Trailer: X-T\r\n"
      "X-Request-ID: upstream-made\r\n";
  TestUpstream up(o);
  Gateway gw(OneModel({up.port()}));
  ASSERT_TRUE(gw.WaitReady());
  for (bool stream : {false, true}) {
    SCOPED_TRACE(stream ? "streaming" : "non-streaming");
    std::string body = stream ? R"({"model":"m1","stream":true,"messages":[]})" : kChat;
    Response r;
    std::string head = RawHead(gw.port(), Post("/v1/chat/completions", body, "X-Request-ID: mine-1\r\n"), &r);
    ASSERT_EQ(r.status, 200) << head;
    EXPECT_EQ(CountNoCase(head, "\r\nopenai-processing-ms: 12\r\n"), 1u) << head;
    EXPECT_EQ(CountNoCase(head, "\r\nx-ratelimit-remaining-requests: 99\r\n"), 1u) << head;
    EXPECT_EQ(CountNoCase(head, "\r\nset-cookie: a=b\r\n"), 1u) << head;
    EXPECT_EQ(CountNoCase(head, "\r\ncache-control:"), 1u) << head;  // the upstream's, no second one
    EXPECT_EQ(CountNoCase(head, "\r\ncache-control: no-store\r\n"), 1u) << head;
    EXPECT_EQ(CountNoCase(head, "\r\ncontent-type:"), 1u) << head;
    EXPECT_EQ(r.Header("content-type"), stream ? "text/event-stream" : "application/json");
    EXPECT_EQ(CountNoCase(head, "\r\nx-request-id:"), 1u) << head;
    EXPECT_EQ(r.Header("x-request-id"), "mine-1");
    EXPECT_EQ(CountNoCase(head, "\r\nconnection:"), 1u) << head;
    for (const char* gone : {"x-hop", "keep-alive:", "proxy-thing", "trailer:"})
      EXPECT_EQ(CountNoCase(head, gone), 0u) << gone << " in\n" << head;
    if (stream) {
      EXPECT_EQ(CountNoCase(head, "\r\ntransfer-encoding: chunked\r\n"), 1u) << head;
      EXPECT_NE(r.body.find("data: [DONE]"), std::string::npos) << r.body;
    } else {
      EXPECT_EQ(CountNoCase(head, "\r\ncontent-length:"), 1u) << head;
      EXPECT_NE(r.body.find("chat.completion"), std::string::npos) << r.body;
    }
  }
}

TEST(GatewayTest, ForwardedHeadersStayWithinMaxHeaderBytes) {
  TestUpstream up;
  Gateway gw(OneModel({up.port()}), "  max_header_bytes: 2048\n");
  ASSERT_TRUE(gw.WaitReady());
  // 170 small headers (about 1200 bytes of names and values, what the limit counts) are
  // all forwarded...
  std::string extra;
  for (int i = 0; i < 170; ++i) extra += "x-h" + std::to_string(i) + ": v\r\n";
  Response ok = Request(gw.port(), Post("/v1/chat/completions", kChat, extra));
  EXPECT_EQ(ok.status, 200) << ok.body;
  EXPECT_NE(up.last_request().find("\r\nx-h169: v\r\n"), std::string::npos);
  // ...and many more than the limit allows get 431, not a truncated forward.
  extra.clear();
  for (int i = 0; i < 400; ++i) extra += "x-h" + std::to_string(i) + ": v\r\n";
  ExpectOpenAiError(Request(gw.port(), Post("/v1/chat/completions", kChat, extra)), 431, "header_too_large");
  EXPECT_EQ(up.requests(), 1);
}

TEST(GatewayTest, BadInputsGetOpenAiErrors) {
  TestUpstream up;
  Gateway gw(OneModel({up.port()}), "  max_body_bytes: 1000\n  max_header_bytes: 2048\n");
  ASSERT_TRUE(gw.WaitReady());
  uint16_t p = gw.port();
  ExpectOpenAiError(Request(p, Post("/v1/chat/completions", "{not json")), 400, "invalid_json");
  ExpectOpenAiError(Request(p, Post("/v1/chat/completions", "[1,2]")), 400, "invalid_json");
  ExpectOpenAiError(Request(p, Post("/v1/chat/completions", R"({"messages":[]})")), 400, "missing_model");
  ExpectOpenAiError(Request(p, Post("/v1/chat/completions", R"({"model":7})")), 400, "invalid_model");
  ExpectOpenAiError(Request(p, Post("/v1/chat/completions", R"({"model":"ghost"})")), 404, "model_not_found");
  // Model names longer than the snapshot holds (95 bytes): a clear 400, not a lookup of
  // a truncated name.
  ExpectOpenAiError(Request(p, Post("/v1/chat/completions", "{\"model\":\"" + std::string(96, 'm') + "\"}")), 400,
                    "invalid_model");
  ExpectOpenAiError(Request(p, Post("/v1/chat/completions", "{\"model\":\"" + std::string(95, 'm') + "\"}")), 404,
                    "model_not_found");
  // A huge number anywhere (here the priority field and a sampling parameter) is harmless.
  ExpectOpenAiError(Request(p, Post("/v1/chat/completions", R"({"model":"ghost","temperature":1e300,"priority":1e300})")),
                    404, "model_not_found");
  ExpectOpenAiError(Request(p, "GET /nowhere HTTP/1.1\r\nHost: t\r\n\r\n"), 404, "not_found");
  ExpectOpenAiError(Request(p, "GET /v1/chat/completions HTTP/1.1\r\nHost: t\r\n\r\n"), 405, "method_not_allowed");
  ExpectOpenAiError(Request(p, "POST /v1/models HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n"), 405,
                    "method_not_allowed");
  ExpectOpenAiError(Request(p, Post("/v1/chat/completions", std::string(1001, ' '))), 413, "payload_too_large");
  ExpectOpenAiError(Request(p, "POST /v1/chat/completions HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
                               "7d0\r\n" + std::string(2000, ' ') + "\r\n0\r\n\r\n"),
                    413, "payload_too_large");
  ExpectOpenAiError(Request(p, "GET /health HTTP/1.1\r\nHost: t\r\nX-Big: " + std::string(4000, 'a') + "\r\n\r\n"),
                    431, "header_too_large");
  ExpectOpenAiError(Request(p, "POST /v1/chat/completions HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n"
                               "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
                    400, "bad_request");
  ExpectOpenAiError(Request(p, "GARBAGE\r\n\r\n"), 400, "bad_request");
  EXPECT_EQ(up.requests(), 0);
}

TEST(GatewayTest, ModelsHealthAndReadiness) {
  TestUpstream up;
  Gateway gw(OneModel({up.port()}), "", /*publish=*/false);
  ASSERT_NE(gw.port(), 0);
  EXPECT_EQ(Request(gw.port(), "GET /health HTTP/1.1\r\nHost: t\r\n\r\n").status, 200);
  EXPECT_EQ(Request(gw.port(), "GET /ready HTTP/1.1\r\nHost: t\r\n\r\n").status, 503);
  ExpectOpenAiError(Request(gw.port(), Post("/v1/chat/completions", kChat)), 503, "not_ready");
  gw.Publish();
  ASSERT_TRUE(gw.WaitReady());
  Response m = Request(gw.port(), "GET /v1/models HTTP/1.1\r\nHost: t\r\n\r\n");
  EXPECT_EQ(m.status, 200);
  EXPECT_NE(m.body.find("\"object\":\"list\""), std::string::npos);
  EXPECT_NE(m.body.find("{\"id\":\"m1\",\"object\":\"model\""), std::string::npos) << m.body;
  EXPECT_NE(m.body.find("{\"id\":\"alias1\",\"object\":\"model\""), std::string::npos) << m.body;
  // GET /v1/models/{id} (the SDK's models.retrieve): names and aliases, %-decoded.
  Response one = Request(gw.port(), "GET /v1/models/alias%31 HTTP/1.1\r\nHost: t\r\n\r\n");
  EXPECT_EQ(one.status, 200);
  EXPECT_EQ(one.body, "{\"id\":\"alias1\",\"object\":\"model\",\"created\":0,\"owned_by\":\"llmgw\",\"root\":\"m1\"}");
  ExpectOpenAiError(Request(gw.port(), "GET /v1/models/ghost HTTP/1.1\r\nHost: t\r\n\r\n"), 404, "model_not_found");
  ExpectOpenAiError(Request(gw.port(), "DELETE /v1/models/m1 HTTP/1.1\r\nHost: t\r\n\r\n"), 405,
                    "method_not_allowed");
}

uint16_t DeadPort() {
  int tmp = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(tmp, reinterpret_cast<sockaddr*>(&a), sizeof(a));
  socklen_t len = sizeof(a);
  getsockname(tmp, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(tmp);
  return ntohs(a.sin_port);
}

TEST(GatewayTest, FallbackModelServesWhenThePrimaryIsDown) {
  TestUpstream good;
  std::string models = "models:\n  - name: m1\n    fallbacks: [m2]\n    backends:\n      - { url: \"http://127.0.0.1:" +
                       std::to_string(DeadPort()) + "\" }\n  - name: m2\n    backends:\n      - { url: \"http://127.0.0.1:" +
                       std::to_string(good.port()) + "\" }\n";
  Gateway gw(models, "  retries: { max: 2, backoff_ms: 1 }\n");
  ASSERT_TRUE(gw.WaitReady());
  Response r = Request(gw.port(), Post("/v1/chat/completions", R"({"model":"m1","messages":[]})"));
  EXPECT_EQ(r.status, 200) << r.body;
  // The fallback model's name goes upstream.
  EXPECT_NE(good.last_request().find(R"({"model":"m2","messages":[]})"), std::string::npos) << good.last_request();
}

TEST(GatewayTest, AccessLogWritesOneJsonLinePerRequest) {
  TestUpstream up;
  std::string path = "/tmp/dp-access-" + std::to_string(::getpid()) + ".log";
  ::unlink(path.c_str());
  {
    Gateway gw(OneModel({up.port()}), "  access_log: { enabled: true, path: \"" + path + "\" }\n");
    ASSERT_TRUE(gw.WaitReady());
    ASSERT_EQ(Request(gw.port(), Post("/v1/chat/completions", kChat, "X-Request-ID: logged-1\r\nUser-Agent: test-agent/1\r\n")).status, 200);
    // The line is written when the response has fully left; a graceful stop waits for it.
    EXPECT_EQ(gw.Stop(SIGTERM), 0);
  }
  FILE* f = std::fopen(path.c_str(), "r");
  ASSERT_NE(f, nullptr);
  char line[4096];
  bool found = false;
  while (std::fgets(line, sizeof(line), f)) {
    std::string l(line);
    if (l.find("logged-1") == std::string::npos) continue;
    found = true;
    EXPECT_NE(l.find("\"msg\":\"access\""), std::string::npos) << l;
    EXPECT_NE(l.find("\"status\":200"), std::string::npos) << l;
    EXPECT_NE(l.find("\"model\":\"m1\""), std::string::npos) << l;
    EXPECT_NE(l.find("\"completion_tokens\":7"), std::string::npos) << l;
    // What nginx/Envoy operators expect (issue 16).
    EXPECT_NE(l.find("\"client\":\"127.0.0.1:"), std::string::npos) << l;
    EXPECT_NE(l.find("\"upstream\":\"127.0.0.1:" + std::to_string(up.port()) + "\""), std::string::npos) << l;
    EXPECT_NE(l.find("\"upstream_status\":\"200\""), std::string::npos) << l;
    EXPECT_NE(l.find("\"user_agent\":\"test-agent/1\""), std::string::npos) << l;
    EXPECT_NE(l.find("\"bytes_in\":"), std::string::npos) << l;
    EXPECT_EQ(l.find("\"bytes_in\":0,"), std::string::npos) << l;
  }
  std::fclose(f);
  ::unlink(path.c_str());
  EXPECT_TRUE(found);
}

// Issue 16: a stream cut after its first byte was counted and logged as 200 (the head the
// client got); it is a failure with its own code, 520, in the stats and the access log.
// An unknown model's 404 was never counted in llm_gateway_requests_total.
TEST(GatewayTest, StreamCutAfterTheFirstByteCountsAs520AndUnknownModelAs404) {
  TestUpstream::Options o;
  o.events = 5;
  o.close_after_events = 2;
  TestUpstream up(o);
  std::string path = "/tmp/dp-access-cut-" + std::to_string(::getpid()) + ".log";
  ::unlink(path.c_str());
  {
    Gateway gw(OneModel({up.port()}), "  retries: { max: 0 }\n  access_log: { enabled: true, path: \"" +
                                          path + "\" }\n");
    ASSERT_TRUE(gw.WaitReady());
    Response r = Request(gw.port(), Post("/v1/chat/completions", R"({"model":"m1","stream":true})",
                                         "X-Request-ID: cut-1\r\n"));
    EXPECT_EQ(r.status, 200) << "the head had left before the cut";
    Response nf = Request(gw.port(), Post("/v1/chat/completions", R"({"model":"nope"})"));
    EXPECT_EQ(nf.status, 404);
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    shm::StatsTotals t;
    SumStatsNow(gw, &t);
    EXPECT_EQ(t.models[0].requests_by_code[shm::StatusCodeIndex(520)], 1u);
    EXPECT_EQ(t.models[0].requests_by_code[shm::StatusCodeIndex(200)], 0u);
    EXPECT_EQ(t.unrouted_by_code[shm::StatusCodeIndex(404)], 1u);
    EXPECT_EQ(gw.Stop(SIGTERM), 0);
  }
  std::string log;
  if (FILE* f = std::fopen(path.c_str(), "r")) {
    char buf[4096];
    for (size_t n; (n = std::fread(buf, 1, sizeof(buf), f)) > 0;) log.append(buf, n);
    std::fclose(f);
  }
  ::unlink(path.c_str());
  size_t at = log.find("cut-1");
  ASSERT_NE(at, std::string::npos) << log;
  std::string l = log.substr(log.rfind('\n', at) == std::string::npos ? 0 : log.rfind('\n', at) + 1);
  l = l.substr(0, l.find('\n'));
  EXPECT_NE(l.find("\"status\":520"), std::string::npos) << l;
  EXPECT_NE(l.find("stream_cut"), std::string::npos) << l;
}

TEST(GatewayTest, UnsafeRequestIdIsReplaced) {
  TestUpstream up;
  Gateway gw(OneModel({up.port()}));
  ASSERT_TRUE(gw.WaitReady());
  Response r = Request(gw.port(), Post("/v1/chat/completions", kChat, "X-Request-ID: has space\"quote\r\n"));
  EXPECT_EQ(r.status, 200);
  std::string id = r.Header("x-request-id");
  EXPECT_EQ(id.find(' '), std::string::npos);
  EXPECT_GE(id.size(), 16u);
  EXPECT_NE(up.last_request().find("X-Request-ID: " + id), std::string::npos);
}

TEST(GatewayTest, StalePooledConnectionIsReplacedWithoutARetry) {
  TestUpstream::Options o;
  o.close_after_response = true;
  TestUpstream up(o);
  Gateway gw(OneModel({up.port()}), "  retries: { max: 0 }\n");
  ASSERT_TRUE(gw.WaitReady());
  for (int i = 0; i < 5; ++i) {
    ASSERT_EQ(Request(gw.port(), Post("/v1/chat/completions", kChat)).status, 200) << i;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));  // let the close land
  }
  EXPECT_EQ(up.connections(), 5);
  std::this_thread::sleep_for(std::chrono::milliseconds(30));
  shm::StatsTotals t;
  SumStatsNow(gw, &t);
  EXPECT_EQ(t.retries, 0u);
  EXPECT_EQ(t.backends[0].ErrorsTotal(), 0u);
}

// The official OpenAI Node SDK, unmodified, against the gateway. scripts/install-deps.sh
// installs node and runs `npm ci` in tests/dataplane/sdk; without them this test fails (a
// skip would pass silently in CI while testing nothing).
TEST(GatewayTest, OfficialOpenAiNodeSdkWorksUnmodified) {
  std::string dir = std::string(LLMGW_SOURCE_DIR) + "/tests/dataplane/sdk";
  ASSERT_EQ(std::system("command -v node >/dev/null 2>&1"), 0)
      << "node is not installed: run scripts/install-deps.sh";
  ASSERT_EQ(::access((dir + "/node_modules/openai/package.json").c_str(), R_OK), 0)
      << "the openai SDK is not installed: run scripts/install-deps.sh (npm ci in tests/dataplane/sdk)";
  TestUpstream::Options o;
  o.events = 3;
  TestUpstream up(o);
  Gateway gw(OneModel({up.port()}));
  ASSERT_TRUE(gw.WaitReady());
  std::string cmd = "timeout 20 node " + dir + "/sdk_client.mjs http://127.0.0.1:" + std::to_string(gw.port()) + "/v1";
  FILE* p = ::popen(cmd.c_str(), "r");
  ASSERT_NE(p, nullptr);
  std::string out;
  char buf[4096];
  while (std::fgets(buf, sizeof(buf), p)) out += buf;
  int rc = ::pclose(p);
  ASSERT_EQ(rc, 0) << out;
  EXPECT_NE(out.find("\"content\":\"hi\""), std::string::npos) << out;
  EXPECT_NE(out.find("\"completion_tokens\":7"), std::string::npos) << out;
  EXPECT_NE(out.find("\"deltas\":[\"t0\",\"t1\",\"t2\"]"), std::string::npos) << out;
  EXPECT_NE(out.find("\"models\":[\"m1\",\"alias1\"]"), std::string::npos) << out;
  EXPECT_NE(out.find("\"retrieved\":{\"id\":\"alias1\",\"root\":\"m1\"}"), std::string::npos) << out;
  EXPECT_NE(out.find("\"retrieve_missing_status\":404"), std::string::npos) << out;
  EXPECT_NE(out.find("\"error_status\":404"), std::string::npos) << out;
  EXPECT_NE(out.find("\"error_code\":\"model_not_found\""), std::string::npos) << out;
}

}  // namespace
}  // namespace llmgw::testing
