// `llmctl watch` on a pseudo-terminal, in-process: RunCli runs in a thread with the pty's
// slave side as its keyboard and screen (80x24); the test reads the master side, checks the
// frame fits, then types `q` and expects a clean exit with the terminal restored.
#include <pty.h>
#include <termios.h>
#include <unistd.h>

#include <future>
#include <streambuf>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "cli/cli.h"
#include "tests/cli/fake_admin.h"
#include "tests/cli/pty_reader.h"

namespace llmgw::cli {
namespace {

using ::testing::HasSubstr;
using namespace std::chrono_literals;

// An ostream that writes straight to a file descriptor (the pty slave).
class FdBuf : public std::streambuf {
 public:
  explicit FdBuf(int fd) : fd_(fd) {}

 protected:
  int overflow(int c) override {
    if (c == EOF) return 0;
    char ch = static_cast<char>(c);
    return write(fd_, &ch, 1) == 1 ? c : EOF;
  }
  std::streamsize xsputn(const char* s, std::streamsize n) override {
    std::streamsize done = 0;
    while (done < n) {
      ssize_t w = write(fd_, s + done, static_cast<size_t>(n - done));
      if (w <= 0) break;
      done += w;
    }
    return done;
  }

 private:
  int fd_;
};

TEST(WatchTtyTest, RendersFullScreenAndQuitsOnQ) {
  testing::FakeServer server;
  int master = -1, slave = -1;
  winsize ws{};
  ws.ws_row = 24;
  ws.ws_col = 80;
  ASSERT_EQ(openpty(&master, &slave, nullptr, nullptr, &ws), 0);
  termios before{};
  ASSERT_EQ(tcgetattr(slave, &before), 0);

  FdBuf buf(slave);
  std::ostream screen(&buf);
  std::ostringstream err;
  Env env;
  env.in_fd = slave;
  env.out_fd = slave;
  auto run = std::async(std::launch::async, [&] {
    return RunCli({"--addr", server.addr(), "watch", "--interval", "100"}, screen, err, env);
  });

  std::string seen;
  ASSERT_TRUE(testing::ReadUntil(master, "qwen-a", &seen, 5s)) << seen;
  // Wait for a second frame so we know it refreshes in place.
  size_t first = seen.rfind("\x1b[H");
  ASSERT_TRUE(testing::ReadUntil(master, "\x1b[H", &seen, 5s, first + 1));
  ASSERT_TRUE(testing::ReadUntil(master, "\x1b[J", &seen, 5s, first + 1));
  EXPECT_THAT(seen, HasSubstr("\x1b[?1049h"));  // alternate screen entered

  auto lines = testing::LastFrameLines(seen);
  EXPECT_LE(lines.size(), 24u);
  for (const auto& l : lines) EXPECT_LE(l.size(), 80u) << l;
  EXPECT_THAT(lines.at(0), HasSubstr("(q quits)"));
  EXPECT_THAT(lines.at(1), HasSubstr("backends 2/3 healthy"));
  EXPECT_THAT(lines.at(3), ::testing::MatchesRegex("ID +MODEL +STATE +INFL +RUN +WAIT +KV% +LAT +TTFT99 +ERR%"));
  EXPECT_THAT(lines.at(5), HasSubstr("circuit_open"));

  // Keys are read without Enter: the watch put the terminal in non-canonical mode.
  termios during{};
  ASSERT_EQ(tcgetattr(slave, &during), 0);
  EXPECT_EQ(during.c_lflag & ICANON, 0u);

  ASSERT_EQ(write(master, "q", 1), 1);
  ASSERT_EQ(run.wait_for(3s), std::future_status::ready) << "q did not quit";
  EXPECT_EQ(run.get(), kExitOk) << err.str();
  testing::ReadUntil(master, "\x1b[?1049l", &seen, 1s);
  EXPECT_THAT(seen, HasSubstr("\x1b[?1049l"));  // alternate screen left
  termios after{};
  ASSERT_EQ(tcgetattr(slave, &after), 0);
  EXPECT_EQ(after.c_lflag, before.c_lflag);  // terminal modes restored
  close(master);
  close(slave);
}

TEST(WatchTtyTest, SmallWindowStillFits) {
  testing::FakeServer server;
  int master = -1, slave = -1;
  winsize ws{};
  ws.ws_row = 6;
  ws.ws_col = 50;
  ASSERT_EQ(openpty(&master, &slave, nullptr, nullptr, &ws), 0);
  FdBuf buf(slave);
  std::ostream screen(&buf);
  std::ostringstream err;
  Env env;
  env.in_fd = slave;
  env.out_fd = slave;
  auto run = std::async(std::launch::async, [&] {
    return RunCli({"--addr", server.addr(), "watch", "--interval", "100"}, screen, err, env);
  });
  std::string seen;
  ASSERT_TRUE(testing::ReadUntil(master, "more backends", &seen, 5s)) << seen;
  ASSERT_TRUE(testing::ReadUntil(master, "\x1b[J", &seen, 5s, seen.rfind("\x1b[H")));
  auto lines = testing::LastFrameLines(seen);
  EXPECT_LE(lines.size(), 6u);
  for (const auto& l : lines) EXPECT_LE(l.size(), 50u) << l;
  ASSERT_EQ(write(master, "q", 1), 1);
  ASSERT_EQ(run.wait_for(3s), std::future_status::ready);
  EXPECT_EQ(run.get(), kExitOk);
  close(master);
  close(slave);
}

}  // namespace
}  // namespace llmgw::cli
