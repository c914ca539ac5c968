// llmgw in front of the real llmgw-mock (the simulated vLLM of bench/mock): streaming,
// upstream keep-alive and cancellation seen from the model server's own counters.
#include <gtest/gtest.h>

#include "tests/dataplane/harness.h"

namespace llmgw::testing {
namespace {

// Runs llmgw-mock on a free port; killed (by its pid) on destruction.
class MockServer {
 public:
  explicit MockServer(std::vector<std::string> extra) {
    int out[2];
    if (::pipe2(out, O_CLOEXEC) != 0) return;
    std::vector<std::string> args = {LLMGW_MOCK_BIN, "--listen", "127.0.0.1:0", "--model", "m1"};
    args.insert(args.end(), extra.begin(), extra.end());
    pid_ = ::fork();
    if (pid_ == 0) {
      ::dup2(out[1], 1);
      std::vector<char*> argv;
      for (auto& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      execv(LLMGW_MOCK_BIN, argv.data());
      _exit(127);
    }
    ::close(out[1]);
    std::string line;
    ReadUntil(out[0], &line, [](const std::string& b) { return b.find('\n') != std::string::npos; }, 5000);
    ::close(out[0]);
    if (line.rfind("listening ", 0) == 0) port_ = static_cast<uint16_t>(std::atoi(line.c_str() + line.rfind(':') + 1));
  }
  ~MockServer() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      int st;
      ::waitpid(pid_, &st, 0);
    }
  }
  uint16_t port() const { return port_; }
  // A counter from GET /mock/stats.
  long Stat(const std::string& key) {
    Response r = Request(port_, "GET /mock/stats HTTP/1.1\r\nHost: m\r\n\r\n", 2000);
    size_t p = r.body.find("\"" + key + "\":");
    if (p == std::string::npos) return -1;
    return std::atol(r.body.c_str() + p + key.size() + 3);
  }

 private:
  pid_t pid_ = -1;
  uint16_t port_ = 0;
};

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
