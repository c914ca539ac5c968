// Integration test: llmgw-bench against a real llmgw-mock counts tokens, requests and
// errors by kind the way the mock reports them.
#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "tests/bench/mock_process.h"

namespace llmgw::testing {
namespace {

std::string RunBench(const std::string& args) {
  std::string cmd = std::string("timeout 20 ") + LLMGW_BENCH_BIN + " --no-progress " + args + " 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  pclose(p);
  return out;
}

double Num(const std::string& j, const std::string& key) {
  size_t p = j.find("\"" + key + "\":");
  return p == std::string::npos ? -1 : std::atof(j.c_str() + p + key.size() + 3);
}

TEST(LoadgenIntegrationTest, ClosedLoopCountsTokensAndRequests) {
  MockProcess m({"--listen", "127.0.0.1:0", "--model", "m", "--output-tokens", "6", "--token-interval-ms", "20"});
  ASSERT_GT(m.port(), 0);
  std::string j = RunBench("--target 127.0.0.1:" + std::to_string(m.port()) +
                           " --concurrency 3 --requests 30 --duration 10 --model m --stream-ratio 0.5");
  EXPECT_EQ(Num(j, "sent"), 30) << j;
  EXPECT_EQ(Num(j, "ok"), 30) << j;
  EXPECT_EQ(Num(j, "errors_total"), 0) << j;
  size_t tpr = j.find("\"tokens_per_request\":");
  ASSERT_NE(tpr, std::string::npos);
  EXPECT_EQ(Num(j.substr(tpr), "min"), 6);
  EXPECT_EQ(Num(j.substr(tpr), "max"), 6);
  size_t itl = j.find("\"inter_token_ms\":");
  EXPECT_GT(Num(j.substr(itl), "p50"), 10.0);  // tokens really were spaced by the step time
}

TEST(LoadgenIntegrationTest, OpenLoopReportsErrorsByKind) {
  MockProcess m({"--listen", "127.0.0.1:0", "--model", "m", "--token-interval-ms", "0", "--error-rate", "1",
                 "--error-status", "503"});
  ASSERT_GT(m.port(), 0);
  std::string j = RunBench("--target 127.0.0.1:" + std::to_string(m.port()) + " --rate 200 --duration 0.5 --model m");
  EXPECT_GT(Num(j, "sent"), 20) << j;
  EXPECT_EQ(Num(j, "ok"), 0) << j;
  EXPECT_EQ(Num(j, "http_503"), Num(j, "sent")) << j;
}

std::string MockStats(int port) {
  Client c(port);
  return BodyOf(c.Request("GET", "/mock/stats"));
}

// Oracle mode: every request of prefix group g goes to target g % 2 only. Each mock then
// misses its prefix cache once per group it owns (the rest hit the 4 shared blocks), so
// the fleet misses exactly once per group; any group reaching both mocks would add a miss.
TEST(LoadgenIntegrationTest, OracleModeSendsEachGroupOnlyToItsTarget) {
  std::vector<std::string> flags{"--listen", "127.0.0.1:0", "--model", "m", "--output-tokens", "3",
                                 "--token-interval-ms", "5", "--max-num-seqs", "8"};
  MockProcess m0(flags), m1(flags);
  ASSERT_GT(m0.port(), 0);
  ASSERT_GT(m1.port(), 0);
  const std::string before0 = MockStats(m0.port()), before1 = MockStats(m1.port());
  EXPECT_EQ(Num(before0, "busy_slot_seconds"), 0) << before0;
  EXPECT_EQ(Num(before0, "max_num_seqs"), 8) << before0;
  // 64-token prefixes = 4 blocks of 16; prompt 16 more unique tokens; completions (no role tag).
  std::string j = RunBench("--affinity-targets 127.0.0.1:" + std::to_string(m0.port()) + ",127.0.0.1:" +
                           std::to_string(m1.port()) +
                           " --rate 150 --duration 0.6 --model m --endpoint completions --prefix-groups 4"
                           " --prefix-tokens 64 --prompt-tokens fixed:16 --prefix-zipf 1 --seed 5");
  ASSERT_EQ(Num(j, "errors_total"), 0) << j;
  const double sent = Num(j, "sent");
  ASSERT_GT(sent, 40) << j;
  size_t spt = j.find("\"sent_per_target\":[");
  ASSERT_NE(spt, std::string::npos) << j;
  unsigned long long to0 = 0, to1 = 0;
  ASSERT_EQ(std::sscanf(j.c_str() + spt + 19, "%llu,%llu", &to0, &to1), 2) << j;
  EXPECT_EQ(static_cast<double>(to0 + to1), sent);
  const std::string s0 = MockStats(m0.port()), s1 = MockStats(m1.port());
  EXPECT_EQ(Num(s0, "requests_total"), static_cast<double>(to0)) << s0;
  EXPECT_EQ(Num(s1, "requests_total"), static_cast<double>(to1)) << s1;
  EXPECT_GT(to0, to1);  // target 0 owns groups 0 and 2: weights 1 + 1/3 against 1/2 + 1/4
  auto misses = [](const std::string& st) {
    return Num(st, "requests_total") - Num(st, "prefix_cache_hit_tokens") / 64.0;
  };
  EXPECT_EQ(misses(s0), 2) << s0;  // groups 0 and 2, first request of each
  EXPECT_EQ(misses(s1), 2) << s1;  // groups 1 and 3

  // busy_slot_seconds: grew while requests ran (each ran ~4 steps of >= 5 ms), and stays
  // put while the mock is idle though uptime moves on.
  const double busy = Num(s0, "busy_slot_seconds");
  EXPECT_GT(busy, static_cast<double>(to0) * 0.015) << s0;
  EXPECT_LT(busy, Num(s0, "uptime_seconds") * 8) << s0;
  usleep(200000);
  const std::string later = MockStats(m0.port());
  EXPECT_EQ(Num(later, "busy_slot_seconds"), busy) << later;
  EXPECT_GE(Num(later, "uptime_seconds"), Num(s0, "uptime_seconds") + 0.19) << later;
}

// A stand-in upstream whose every answer is a 200 SSE stream: one token, then `event:
// error` (what llmgw sends when the upstream fails mid-stream), then a clean end of the
// chunked body. Keep-alive, one thread per connection, stops at destruction. The other
// modes close the connection (FIN) instead: after that answer although it did not say
// `Connection: close`, with no answer at all, or after the head and part of the body of
// a non-streamed answer.
class ErrorStreamServer {
 public:
  enum Mode { kKeepAlive, kCloseAfterAnswer, kCloseWithoutAnswer, kCutNonStreamedBody };
  explicit ErrorStreamServer(Mode mode = kKeepAlive) : mode_(mode) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int one = 1;
    ::setsockopt(fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(fd_, 16) != 0) return;
    socklen_t len = sizeof a;
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    accept_ = std::thread([this] {
      for (;;) {
        int c = ::accept(fd_, nullptr, nullptr);
        if (c < 0) return;
        std::lock_guard<std::mutex> l(mu_);
        conns_.push_back(c);
        workers_.emplace_back([this, c] { Serve(c, mode_); });
      }
    });
  }
  ~ErrorStreamServer() {
    ::shutdown(fd_, SHUT_RDWR);
    ::close(fd_);
    if (accept_.joinable()) accept_.join();
    std::lock_guard<std::mutex> l(mu_);
    for (int c : conns_) ::shutdown(c, SHUT_RDWR);
    for (auto& t : workers_) t.join();
    for (int c : conns_) ::close(c);
  }
  int port() const { return port_; }

 private:
  static void Serve(int c, Mode mode) {
    std::string in;
    char buf[8192];
    for (;;) {
      size_t hdr = in.find("\r\n\r\n");
      if (hdr != std::string::npos) {
        size_t cl = in.find("Content-Length: ");
        size_t body = cl == std::string::npos ? 0 : std::strtoul(in.c_str() + cl + 16, nullptr, 10);
        if (in.size() >= hdr + 4 + body) {
          in.erase(0, hdr + 4 + body);
          if (mode == kCloseWithoutAnswer) {
            ::shutdown(c, SHUT_RDWR);
            return;
          }
          if (mode == kCutNonStreamedBody) {
            std::string r = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"id\":";
            ::send(c, r.data(), r.size(), MSG_NOSIGNAL);
            ::shutdown(c, SHUT_RDWR);
            return;
          }
          auto chunk = [](const std::string& d) {
            char h[16];
            std::snprintf(h, sizeof h, "%zx\r\n", d.size());
            return h + d + "\r\n";
          };
          std::string r =
              "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n" +
              chunk("data: {\"choices\":[{\"delta\":{\"content\":\"a\"}}]}\n\n") +
              chunk("event: error\ndata: {\"error\":{\"message\":\"upstream closed\",\"type\":"
                    "\"upstream_error\",\"param\":null,\"code\":\"upstream_protocol\"}}\n\n") +
              "0\r\n\r\n";
          if (::send(c, r.data(), r.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(r.size())) return;
          if (mode == kCloseAfterAnswer) {
            ::shutdown(c, SHUT_RDWR);
            return;
          }
          continue;
        }
      }
      ssize_t n = ::recv(c, buf, sizeof buf, 0);
      if (n <= 0) return;
      in.append(buf, static_cast<size_t>(n));
    }
  }
  Mode mode_;
  int fd_ = -1;
  int port_ = 0;
  std::thread accept_;
  std::mutex mu_;
  std::vector<int> conns_;
  std::vector<std::thread> workers_;
};

// Issue 17: a stream that ends with `event: error` failed, though its status was 200 and
// its HTTP framing clean; llmgw-bench used to count it as a success.
TEST(LoadgenIntegrationTest, StreamEndedByErrorEventIsAFailure) {
  ErrorStreamServer srv;
  ASSERT_GT(srv.port(), 0);
  std::string j = RunBench("--target 127.0.0.1:" + std::to_string(srv.port()) +
                           " --concurrency 2 --requests 10 --duration 10 --model m --stream-ratio 1");
  EXPECT_EQ(Num(j, "sent"), 10) << j;
  EXPECT_EQ(Num(j, "ok"), 0) << j;
  EXPECT_EQ(Num(j, "stream_error"), 10) << j;
  EXPECT_EQ(Num(j, "errors_total"), 10) << j;
}

// What a failure looked like is in its kind (the chaos suite tells a clean failure from a
// broken one by it): before these kinds existed, all three were "reset".
TEST(LoadgenIntegrationTest, KeptAliveConnectionClosedUnderTheNextRequestIsClosedOnReuse) {
  ErrorStreamServer srv(ErrorStreamServer::kCloseAfterAnswer);
  ASSERT_GT(srv.port(), 0);
  std::string j = RunBench("--target 127.0.0.1:" + std::to_string(srv.port()) +
                           " --concurrency 1 --requests 6 --duration 10 --model m --stream-ratio 1");
  EXPECT_EQ(Num(j, "sent"), 6) << j;
  EXPECT_GE(Num(j, "stream_error"), 3) << j;     // every fresh connection's answer
  EXPECT_GE(Num(j, "closed_on_reuse"), 1) << j;  // the next request, sent on the closed one
  EXPECT_EQ(Num(j, "reset"), -1) << j;           // not in the errors at all
  EXPECT_EQ(Num(j, "stream_error") + Num(j, "closed_on_reuse"), 6) << j;
}

TEST(LoadgenIntegrationTest, ConnectionClosedWithNoAnswerIsReset) {
  ErrorStreamServer srv(ErrorStreamServer::kCloseWithoutAnswer);
  ASSERT_GT(srv.port(), 0);
  std::string j = RunBench("--target 127.0.0.1:" + std::to_string(srv.port()) +
                           " --concurrency 1 --requests 4 --duration 10 --model m --stream-ratio 1");
  EXPECT_EQ(Num(j, "sent"), 4) << j;
  EXPECT_EQ(Num(j, "reset"), 4) << j;
}

TEST(LoadgenIntegrationTest, NonStreamedAnswerCutAfterItsHeadIsClosedMidBody) {
  ErrorStreamServer srv(ErrorStreamServer::kCutNonStreamedBody);
  ASSERT_GT(srv.port(), 0);
  std::string j = RunBench("--target 127.0.0.1:" + std::to_string(srv.port()) +
                           " --concurrency 1 --requests 4 --duration 10 --model m --stream-ratio 0");
  EXPECT_EQ(Num(j, "sent"), 4) << j;
  EXPECT_EQ(Num(j, "closed_mid_body"), 4) << j;
}

}  // namespace
}  // namespace llmgw::testing
