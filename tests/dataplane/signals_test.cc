// SignalThread and ReopenAppendFile: SIGHUP is harmless, SIGUSR1 bumps the reopen
// generation, SIGTERM requests the drain; a reopened descriptor writes to the new file
// after a rotation (rename) while its number stays the same.
#include "dataplane/signals.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <sstream>
#include <thread>

#include "dataplane/worker.h"

namespace llmgw::dataplane {
namespace {

template <typename P>
bool WaitFor(P pred, int ms) {
  for (int i = 0; i < ms / 10; ++i) {
    if (pred()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return pred();
}

std::string Slurp(const std::string& p) {
  std::ifstream f(p);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

TEST(SignalsTest, HupIsHarmlessUsr1BumpsTheGenerationTermRequestsStop) {
  g_stop_requested.store(false);
  SignalThread t;
  t.Start();
  uint64_t gen = g_reopen_logs.load();
  ASSERT_EQ(kill(getpid(), SIGHUP), 0);  // the default action would end this test binary
  ASSERT_EQ(kill(getpid(), SIGUSR1), 0);
  EXPECT_TRUE(WaitFor([&] { return g_reopen_logs.load() == gen + 1; }, 2000));
  EXPECT_FALSE(g_stop_requested.load());
  ASSERT_EQ(kill(getpid(), SIGTERM), 0);
  EXPECT_TRUE(WaitFor([] { return g_stop_requested.load(); }, 2000));
  t.Stop();
  g_stop_requested.store(false);
}

TEST(SignalsTest, ReopenAppendFileFollowsARotation) {
  char tmpl[] = "/tmp/llmgw-sigtest-XXXXXX";
  std::string dir = mkdtemp(tmpl);
  std::string path = dir + "/access.log";
  int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(write(fd, "one\n", 4), 4);
  ASSERT_EQ(rename(path.c_str(), (path + ".1").c_str()), 0);  // logrotate's move
  ASSERT_EQ(write(fd, "two\n", 4), 4);                          // still the old file
  ASSERT_TRUE(ReopenAppendFile(fd, path.c_str()).ok());
  ASSERT_EQ(write(fd, "three\n", 6), 6);
  EXPECT_EQ(Slurp(path + ".1"), "one\ntwo\n");
  EXPECT_EQ(Slurp(path), "three\n");
  EXPECT_EQ(fcntl(fd, F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);
  close(fd);
  EXPECT_FALSE(ReopenAppendFile(fd, (dir + "/no/such/dir/x.log").c_str()).ok());
  (void)std::system(("rm -rf '" + dir + "'").c_str());
}

}  // namespace
}  // namespace llmgw::dataplane
