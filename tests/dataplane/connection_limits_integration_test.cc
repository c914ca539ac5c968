// Integration tests of llmgw's connection limits: the soft RLIMIT_NOFILE raised to the
// hard one at start, accept backing off (not spinning) at the descriptor limit, and
// gateway.max_connections closing connections beyond each thread's share.
#include <gtest/gtest.h>
#include <sys/resource.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "tests/dataplane/harness.h"

namespace llmgw::testing {
namespace {

// llmgw lifts its soft RLIMIT_NOFILE to the hard one at start: started with a soft limit of
// 256 (and a higher hard one), it still holds 600 client connections open and answers each.
TEST(GatewayTest, RaisesTheSoftDescriptorLimitToTheHardOne) {
  constexpr rlim_t kLowSoft = 256;
  constexpr int kConns = 600;
  rlimit mine{};
  ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &mine), 0);
  if (mine.rlim_max < 2 * kConns + 64) GTEST_SKIP() << "hard RLIMIT_NOFILE too low: " << mine.rlim_max;
  rlimit want = mine;
  if (want.rlim_cur < 2 * kConns + 64) want.rlim_cur = 2 * kConns + 64;  // for our own sockets
  rlimit low{kLowSoft, mine.rlim_max};
  ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &low), 0);  // the forked llmgw inherits soft 256
  TestUpstream up;
  Gateway gw(OneModel({up.port()}));
  ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &want), 0);
  ASSERT_TRUE(gw.WaitReady());
  std::vector<int> fds;
  for (int i = 0; i < kConns; ++i) {
    int fd = ConnectTo(gw.port());
    ASSERT_GE(fd, 0);
    fds.push_back(fd);
  }
  int ok = 0;
  for (int fd : fds) {  // all still open at once: llmgw holds kConns > 256 descriptors
    std::string buf;
    SendAll(fd, "GET /health HTTP/1.1\r\nHost: t\r\n\r\n");
    if (ReadResponse(fd, &buf, 2000).status == 200) ++ok;
  }
  EXPECT_EQ(ok, kConns);
  for (int fd : fds) ::close(fd);
  setrlimit(RLIMIT_NOFILE, &mine);
}

// At its descriptor limit llmgw neither spins on a failing accept nor stops accepting:
// started with RLIMIT_NOFILE 40 (soft and hard), it gets 60 clients at once (the
// limit hits accept); the ones beyond it wait in the backlog while llmgw stays nearly idle,
// and once the others leave, the last ten are served.
TEST(GatewayTest, AcceptAtTheDescriptorLimitBacksOffAndResumes) {
  TestUpstream up;
  Gateway gw(OneModel({up.port()}), "", true, 1, /*nofile=*/40);
  ASSERT_TRUE(gw.WaitReady());
  auto cpu_ms = [&] {
    FILE* f = std::fopen(("/proc/" + std::to_string(gw.pid()) + "/stat").c_str(), "r");
    if (!f) return -1L;
    char buf[1024];
    size_t n = std::fread(buf, 1, sizeof(buf) - 1, f);
    std::fclose(f);
    buf[n] = 0;
    const char* p = std::strrchr(buf, ')');
    long utime = 0, stime = 0;
    // Fields after the command: state(3) ... utime(14) stime(15).
    std::sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %ld %ld", &utime, &stime);
    return (utime + stime) * 1000 / sysconf(_SC_CLK_TCK);
  };
  std::vector<int> fds;
  for (int i = 0; i < 60; ++i) {
    int fd = ConnectTo(gw.port());  // completes in the kernel backlog even when not accepted
    ASSERT_GE(fd, 0);
    fds.push_back(fd);
  }
  for (int fd : fds) SendAll(fd, "GET /health HTTP/1.1\r\nHost: t\r\n\r\n");
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  long c0 = cpu_ms();
  std::this_thread::sleep_for(std::chrono::milliseconds(1000));
  long c1 = cpu_ms();
  EXPECT_LT(c1 - c0, 300) << "llmgw burns CPU at its descriptor limit";
  int first_served = 0;
  for (int i = 0; i < 20; ++i) {  // the first ones were accepted before the limit bit
    std::string buf;
    if (ReadResponse(fds[i], &buf, 1000).status == 200) ++first_served;
    ::close(fds[i]);
  }
  EXPECT_GT(first_served, 0);
  for (int i = 20; i < 50; ++i) ::close(fds[i]);  // accepted or still waiting: gone either way
  int late_served = 0;
  for (int i = 50; i < 60; ++i) {  // beyond the limit: served after the others left
    std::string buf;
    if (ReadResponse(fds[i], &buf, 3000).status == 200) ++late_served;
  }
  EXPECT_EQ(late_served, 10);
  for (int i = 50; i < 60; ++i) ::close(fds[i]);
}

// gateway.max_connections is enforced: with a limit of 3 on one thread, a 4th client is
// closed at accept while the first three are served; once one leaves, a new one is served.
TEST(GatewayTest, MaxConnectionsClosesConnectionsBeyondTheLimit) {
  TestUpstream up;
  Gateway gw(OneModel({up.port()}), "  max_connections: 3\n", true, 1);
  ASSERT_TRUE(gw.WaitReady());
  // WaitReady's probes have closed; give the gateway a moment to see them go.
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  std::vector<int> fds;
  for (int i = 0; i < 3; ++i) {
    int fd = ConnectTo(gw.port());
    ASSERT_GE(fd, 0);
    std::string buf;
    SendAll(fd, "GET /health HTTP/1.1\r\nHost: t\r\n\r\n");
    ASSERT_EQ(ReadResponse(fd, &buf, 2000).status, 200) << "connection " << i;
    fds.push_back(fd);
  }
  int extra = ConnectTo(gw.port());  // the TCP handshake completes in the kernel backlog
  ASSERT_GE(extra, 0);
  SendAll(extra, "GET /health HTTP/1.1\r\nHost: t\r\n\r\n");
  std::string buf;
  EXPECT_NE(ReadResponse(extra, &buf, 2000).status, 200) << "a 4th connection was served";
  ::close(extra);
  ::close(fds.back());
  fds.pop_back();
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  int again = ConnectTo(gw.port());
  ASSERT_GE(again, 0);
  SendAll(again, "GET /health HTTP/1.1\r\nHost: t\r\n\r\n");
  EXPECT_EQ(ReadResponse(again, &buf, 2000).status, 200);
  ::close(again);
  for (int fd : fds) ::close(fd);
}

}  // namespace
}  // namespace llmgw::testing
