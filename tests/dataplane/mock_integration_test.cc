// llmgw in front of the real llmgw-mock (the simulated vLLM of bench/mock): streaming,
// upstream keep-alive and cancellation seen from the model server's own counters.
#include <gtest/gtest.h>

#include "tests/dataplane/harness.h"
#include "tests/dataplane/mock_server.h"

namespace llmgw::testing {
namespace {

const std::string kChat = R"({"model":"m1","messages":[{"role":"user","content":"hello"}]})";

void ExpectOpenAiError(const Response& r, int status, const std::string& code) {
  EXPECT_EQ(r.status, status) << r.body;
  EXPECT_NE(r.body.find("\"error\":{\"message\":"), std::string::npos) << r.body;
  EXPECT_NE(r.body.find("\"code\":\"" + code + "\""), std::string::npos) << r.body;
  EXPECT_EQ(r.Header("content-type"), "application/json");
}

TEST(GatewayMockTest, PipelinedRequestsAnsweredInOrder) {
  MockServer mock({"--token-interval-ms", "0", "--output-tokens", "4"});
  ASSERT_NE(mock.port(), 0);
  Gateway gw(OneModel({mock.port()}));
  ASSERT_TRUE(gw.WaitReady());
  int fd = ConnectTo(gw.port());
  std::string all = Post("/v1/chat/completions", kChat, "X-Request-ID: one\r\n") +
                    "GET /health HTTP/1.1\r\nHost: t\r\nX-Request-ID: two\r\n\r\n" +
                    Post("/v1/embeddings", R"({"model":"nope"})", "X-Request-ID: three\r\n") +
                    Post("/v1/chat/completions", R"({"model":"m1","stream":true,"messages":[{"role":"user","content":"x"}]})",
                         "X-Request-ID: four\r\n") +
                    Post("/v1/completions", R"({"model":"m1","prompt":"hi"})", "X-Request-ID: five\r\n");
  SendAll(fd, all);
  std::string buf;
  const char* ids[] = {"one", "two", "three", "four", "five"};
  int statuses[] = {200, 200, 404, 200, 200};
  for (int i = 0; i < 5; ++i) {
    Response r = ReadResponse(fd, &buf);
    EXPECT_EQ(r.Header("x-request-id"), ids[i]);
    EXPECT_EQ(r.status, statuses[i]) << i << " " << r.body;
    if (i == 3) {
      EXPECT_NE(r.body.find("data: [DONE]"), std::string::npos) << r.body;
    }
  }
  ::close(fd);
  EXPECT_EQ(mock.Stat("requests_total"), 3);
}

TEST(GatewayMockTest, AllBackendsFailingGivesOpenAiErrorAfterRetries) {
  MockServer a({"--token-interval-ms", "0"}), b({"--token-interval-ms", "0"});
  ASSERT_NE(a.port(), 0);
  ASSERT_NE(b.port(), 0);
  ASSERT_TRUE(a.SetFaults(R"({"error_rate":1.0,"error_status":500})"));
  ASSERT_TRUE(b.SetFaults(R"({"error_rate":1.0,"error_status":503})"));
  Gateway gw(OneModel({a.port(), b.port()}), "  retries: { max: 1, backoff_ms: 1 }\n");
  ASSERT_TRUE(gw.WaitReady());
  ExpectOpenAiError(Request(gw.port(), Post("/v1/chat/completions", kChat)), 502, "upstream_error");
  EXPECT_EQ(a.Stat("requests_total") + b.Stat("requests_total"), 2);  // one try and one retry
}

TEST(GatewayMockTest, Upstream4xxPassesThroughWithoutRetry) {
  MockServer a({"--token-interval-ms", "0"}), b({"--token-interval-ms", "0"});
  ASSERT_TRUE(a.SetFaults(R"({"error_rate":1.0,"error_status":422})"));
  ASSERT_TRUE(b.SetFaults(R"({"error_rate":1.0,"error_status":422})"));
  Gateway gw(OneModel({a.port(), b.port()}));
  ASSERT_TRUE(gw.WaitReady());
  Response r = Request(gw.port(), Post("/v1/chat/completions", kChat));
  EXPECT_EQ(r.status, 422);
  EXPECT_NE(r.body.find("injected fault"), std::string::npos) << r.body;
  EXPECT_EQ(a.Stat("requests_total") + b.Stat("requests_total"), 1);
}

TEST(GatewayMockTest, HungFirstByteGives504AndFreesTheMock) {
  MockServer mock({"--token-interval-ms", "0"});
  ASSERT_TRUE(mock.SetFaults(R"({"hang_first_byte":true})"));
  Gateway gw(OneModel({mock.port()}), "  timeouts: { first_byte_ms: 200 }\n");
  ASSERT_TRUE(gw.WaitReady());
  uint64_t t0 = MonoMs();
  ExpectOpenAiError(Request(gw.port(), Post("/v1/chat/completions", kChat), 3000), 504, "upstream_timeout");
  EXPECT_GE(MonoMs() - t0, 190u);
  EXPECT_LT(MonoMs() - t0, 1500u);
  // The timed-out upstream connection is closed, so the mock drops the hung request.
  long waiting = -1;
  for (uint64_t end = MonoMs() + 1000; MonoMs() < end; std::this_thread::sleep_for(std::chrono::milliseconds(10)))
    if ((waiting = mock.Stat("connections_open")) <= 1) break;  // 1: our own /mock/stats call
  EXPECT_LE(waiting, 1);
}

TEST(GatewayMockTest, MockDyingMidStreamEndsWithSseErrorEvent) {
  MockServer mock({"--token-interval-ms", "5", "--output-tokens", "20"});
  ASSERT_TRUE(mock.SetFaults(R"({"close_mid_stream_after":3})"));
  Gateway gw(OneModel({mock.port()}));
  ASSERT_TRUE(gw.WaitReady());
  int fd = ConnectTo(gw.port());
  SendAll(fd, Post("/v1/chat/completions", R"({"model":"m1","stream":true,"messages":[{"role":"user","content":"x"}]})"));
  std::string buf;
  ReadUntil(fd, &buf, [](const std::string&) { return false; }, 2000);  // until the gateway closes
  EXPECT_NE(buf.find("data: {"), std::string::npos) << buf;
  EXPECT_NE(buf.find("event: error\ndata: {\"error\":{"), std::string::npos) << buf;
  EXPECT_EQ(buf.find("[DONE]"), std::string::npos) << buf;
  EXPECT_EQ(mock.Stat("requests_total"), 1);  // bytes went out: no retry after the first byte
  ::close(fd);
}

TEST(GatewayMockTest, StreamsTheMockTokenByToken) {
  MockServer mock({"--token-interval-ms", "20", "--output-tokens", "5"});
  ASSERT_NE(mock.port(), 0);
  Gateway gw(OneModel({mock.port()}));
  ASSERT_TRUE(gw.WaitReady());
  int fd = ConnectTo(gw.port());
  SendAll(fd, Post("/v1/chat/completions",
                   R"({"model":"alias1","stream":true,"messages":[{"role":"user","content":"hello"}]})"));
  std::string buf;
  std::vector<uint64_t> at;
  size_t seen = 0;
  uint64_t t0 = MonoMs();
  while (MonoMs() - t0 < 5000) {
    if (!ReadUntil(fd, &buf, [&](const std::string& b) { return b.find("data: ", seen) != std::string::npos; }, 3000))
      break;
    seen = buf.find("data: ", seen) + 6;
    at.push_back(MonoMs());
    if (buf.find("[DONE]") != std::string::npos) break;
  }
  EXPECT_NE(buf.find("data: [DONE]"), std::string::npos) << buf;
  ASSERT_GE(at.size(), 5u);
  EXPECT_GE(at.back() - at.front(), 40u);  // events came over time, not all at once
  ::close(fd);
}

TEST(GatewayMockTest, UpstreamConnectionIsReused) {
  MockServer mock({"--token-interval-ms", "0", "--output-tokens", "4"});
  ASSERT_NE(mock.port(), 0);
  Gateway gw(OneModel({mock.port()}));
  ASSERT_TRUE(gw.WaitReady());
  long before = mock.Stat("connections_total");
  for (int i = 0; i < 10; ++i)
    ASSERT_EQ(Request(gw.port(), Post("/v1/chat/completions", R"({"model":"m1","messages":[{"role":"user","content":"x"}]})")).status, 200);
  // +1 for the gateway's one upstream connection (our own /mock/stats calls are separate).
  EXPECT_EQ(mock.Stat("connections_total") - before, 2);
  EXPECT_GE(mock.Stat("requests_total"), 10);
}

TEST(GatewayMockTest, ClientLeavingCancelsGenerationOnTheMock) {
  MockServer mock({"--token-interval-ms", "20", "--output-tokens", "1000"});
  ASSERT_NE(mock.port(), 0);
  Gateway gw(OneModel({mock.port()}));
  ASSERT_TRUE(gw.WaitReady());
  int fd = ConnectTo(gw.port());
  SendAll(fd, Post("/v1/chat/completions", R"({"model":"m1","stream":true,"messages":[{"role":"user","content":"x"}]})"));
  std::string buf;
  ASSERT_TRUE(ReadUntil(fd, &buf, [](const std::string& b) { return b.find("data: ") != std::string::npos; }, 3000));
  ::close(fd);
  uint64_t closed = MonoMs();
  long cancelled = 0;
  while (MonoMs() - closed < 2000 && (cancelled = mock.Stat("cancelled_total")) < 1)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  EXPECT_EQ(cancelled, 1);
  EXPECT_LE(MonoMs() - closed, 200u);
  EXPECT_EQ(mock.Stat("running"), 0);
}

}  // namespace
}  // namespace llmgw::testing
