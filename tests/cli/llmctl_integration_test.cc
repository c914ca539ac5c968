// The real build/bin/llmctl binary against the in-process fake admin service: `watch` on a
// pseudo-terminal made with forkpty (80x24, `q` quits), piped `watch` snapshots, and exit
// codes as the shell sees them.
#include <pty.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <algorithm>
#include <thread>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/cli/fake_admin.h"
#include "tests/cli/pty_reader.h"

namespace llmgw::cli {
namespace {

using ::testing::HasSubstr;
using namespace std::chrono_literals;

// Waits for the child up to `timeout`; kills it if it is still running. Returns the wait status.
int WaitOrKill(pid_t pid, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  int status = 0;
  while (std::chrono::steady_clock::now() < deadline) {
    if (waitpid(pid, &status, WNOHANG) == pid) return status;
    std::this_thread::sleep_for(10ms);
  }
  kill(pid, SIGKILL);
  waitpid(pid, &status, 0);
  ADD_FAILURE() << "llmctl did not exit in time";
  return status;
}

TEST(LlmctlBinaryTest, WatchOnAPtyQuitsOnQ) {
  testing::FakeServer server;
  winsize ws{};
  ws.ws_row = 24;
  ws.ws_col = 80;
  int master = -1;
  std::string addr = server.addr();
  pid_t pid = forkpty(&master, nullptr, nullptr, &ws);
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    execl(LLMCTL_BIN, "llmctl", "--addr", addr.c_str(), "watch", "--interval", "100",
          static_cast<char*>(nullptr));
    _exit(127);
  }
  std::string seen;
  bool drawn = testing::ReadUntil(master, "qwen-a", &seen, 5s) &&
               testing::ReadUntil(master, "\x1b[J", &seen, 5s, seen.rfind("\x1b[H"));
  EXPECT_TRUE(drawn) << seen;
  auto lines = testing::LastFrameLines(seen);
  EXPECT_LE(lines.size(), 24u);
  for (const auto& l : lines) EXPECT_LE(l.size(), 80u) << l;
  EXPECT_THAT(seen, HasSubstr("backends 2/3 healthy"));
  ASSERT_EQ(write(master, "q", 1), 1);
  int status = WaitOrKill(pid, 3s);
  testing::Drain(master, &seen, 200ms);
  close(master);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
  EXPECT_THAT(seen, HasSubstr("\x1b[?1049l"));  // alternate screen left on exit
}

// Runs the binary through the shell with stdout piped; returns exit code and stdout.
std::pair<int, std::string> Shell(const std::string& args, const std::string& env = "") {
  std::string cmd = env + " " + std::string(LLMCTL_BIN) + " " + args + " 2>/dev/null";
  FILE* p = popen(cmd.c_str(), "r");
  std::string out;
  std::array<char, 4096> buf;
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), p)) > 0) out.append(buf.data(), n);
  int status = pclose(p);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out};
}

TEST(LlmctlBinaryTest, PipedWatchPrintsSnapshotsAndExitCodesReachTheShell) {
  testing::FakeServer server;
  auto [rc, out] = Shell("--addr " + server.addr() + " watch --interval 100 --count 2 | cat");
  EXPECT_EQ(rc, 0);
  EXPECT_EQ(out.find('\x1b'), std::string::npos);
  size_t snapshots = 0;
  for (size_t pos = 0; (pos = out.find("--- ", pos)) != std::string::npos; ++pos) ++snapshots;
  EXPECT_EQ(snapshots, 2u) << out;

  EXPECT_EQ(Shell("--addr " + server.addr() + " drain nope").first, 5);
  EXPECT_EQ(Shell("--addr " + server.addr() + " drain qwen-a").first, 0);
  EXPECT_EQ(Shell("frobnicate").first, 2);
  {
    std::lock_guard<std::mutex> lock(server.admin.mu);
    server.admin.required_token = "s3cret";
  }
  EXPECT_EQ(Shell("--addr " + server.addr() + " status").first, 4);
  EXPECT_EQ(Shell("--addr " + server.addr() + " status", "LLMCTL_TOKEN=s3cret").first, 0);
  EXPECT_EQ(Shell("status", "LLMCTL_TOKEN=s3cret LLMCTL_ADDR=" + server.addr()).first, 0);
}

TEST(LlmctlBinaryTest, TlsFailureIsOneLineOnStderr) {
  char tmpl[] = "/tmp/llmctl_tls_XXXXXX";
  std::string dir = mkdtemp(tmpl);
  std::string cert = dir + "/cert.pem", key = dir + "/key.pem";
  std::string gen = "timeout 20 openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=localhost "
                    "-addext subjectAltName=DNS:localhost -keyout " + key + " -out " + cert +
                    " >/dev/null 2>&1";
  ASSERT_EQ(std::system(gen.c_str()), 0);
  auto read = [](const std::string& p) {
    std::ifstream in(p);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  };
  testing::FakeServer server(read(cert), read(key));
  // stderr only (stdout dropped): the handshake failure must not bring gRPC's log lines along.
  std::string cmd = std::string(LLMCTL_BIN) + " --addr " + server.addr() + " --timeout 2 --ca-file " +
                    cert + " --tls-server-name wrong.example status 2>&1 >/dev/null";
  FILE* p = popen(cmd.c_str(), "r");
  std::string err;
  std::array<char, 4096> buf;
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), p)) > 0) err.append(buf.data(), n);
  int status = pclose(p);
  EXPECT_EQ(WEXITSTATUS(status), 3);
  EXPECT_EQ(std::count(err.begin(), err.end(), '\n'), 1) << err;
  EXPECT_THAT(err, HasSubstr("llmctl: cannot reach llmcd at " + server.addr()));
  EXPECT_EQ(Shell("--addr " + server.addr() + " --ca-file " + cert +
                  " --tls-server-name localhost status").first, 0);
  std::filesystem::remove_all(dir);
}

// Runs the completion function from deploy/llmctl.bash-completion in a real bash.
std::string Complete(const std::string& words, int cword) {
  std::string script = std::string(LLMGW_SOURCE_DIR) + "/deploy/llmctl.bash-completion";
  std::string cmd = "bash --norc --noprofile -c 'source " + script + "; COMP_WORDS=(" + words +
                    "); COMP_CWORD=" + std::to_string(cword) +
                    "; _llmctl; echo \"${COMPREPLY[*]}\"' 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  std::string out;
  std::array<char, 4096> buf;
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), p)) > 0) out.append(buf.data(), n);
  pclose(p);
  while (!out.empty() && out.back() == '\n') out.pop_back();
  return out;
}

TEST(LlmctlBinaryTest, BashCompletion) {
  EXPECT_EQ(Complete("llmctl \"\"", 1),
            "status backends drain undrain reset config routing watch fleet keys version help completion");
  EXPECT_EQ(Complete("llmctl con", 1), "config");
  EXPECT_EQ(Complete("llmctl -o json config \"\"", 4), "show reload check diff push");
  EXPECT_EQ(Complete("llmctl -o \"\"", 2), "table json");
  EXPECT_EQ(Complete("llmctl help wa", 2), "watch");
  EXPECT_EQ(Complete("llmctl keys \"\"", 2), "list add revoke");
  EXPECT_EQ(Complete("llmctl keys add team --r", 4), "--rpm");
  // Backend ids come from the server the line points at.
  testing::FakeServer server;
  EXPECT_EQ(Complete(std::string(LLMCTL_BIN) + " --addr " + server.addr() + " drain \"\"", 4),
            "http://127.0.0.1:8001 http://127.0.0.1:8002 qwen-a");
  EXPECT_EQ(Complete(std::string(LLMCTL_BIN) + " --addr " + server.addr() + " reset q", 4), "qwen-a");
}

}  // namespace
}  // namespace llmgw::cli
