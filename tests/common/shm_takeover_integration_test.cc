// Issue 17, defect 3, end to end: another local user creates /dev/shm/llmgw-<instance>
// before the gateway starts (open to everyone, or owned by them). The real llmgw and llmcd
// must refuse to attach, exit non-zero and say which object, whose it is and its mode,
// instead of reading routing snapshots from (or publishing them into) an attacker's object.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "common/shm.h"

namespace llmgw {
namespace {

struct RunResult {
  bool exited = false;  // false: still running at the deadline (then killed)
  int code = -1;
  std::string output;   // stdout and stderr
};

// Runs argv with stdout+stderr into a file; kills it if it runs past timeout_ms.
RunResult RunFor(const std::vector<std::string>& argv, int timeout_ms) {
  char path[] = "/tmp/llmgw-shm-it-out-XXXXXX";
  int out = ::mkstemp(path);
  RunResult r;
  if (out < 0) return r;
  pid_t pid = ::fork();
  if (pid == 0) {
    ::dup2(out, 1);
    ::dup2(out, 2);
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    ::execv(args[0], args.data());
    _exit(127);
  }
  ::close(out);
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  int status = 0;
  for (;;) {
    pid_t w = ::waitpid(pid, &status, WNOHANG);
    if (w == pid) {
      r.exited = true;
      r.code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      break;
    }
    if (std::chrono::steady_clock::now() >= deadline) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, &status, 0);
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  r.output = ss.str();
  ::unlink(path);
  return r;
}

class ShmTakeoverTest : public ::testing::Test {
 protected:
  void SetUp() override {
    instance_ = "takeover-" + std::to_string(::getpid());
    name_ = "/llmgw-" + instance_;
    shm::Unlink(name_);
    char tmpl[] = "/tmp/llmgw-shm-it-XXXXXX";
    dir_ = ::mkdtemp(tmpl);
    config_ = dir_ + "/gw.yaml";
    std::ofstream(config_) << "instance: " << instance_
                           << "\ngateway: { listen: 127.0.0.1:0, threads: 1 }\n"
                              "admin: { grpc_listen: 127.0.0.1:0, metrics_listen: 127.0.0.1:0 }\n"
                              "models:\n  - name: m\n    backends:\n      - { url: http://127.0.0.1:9 }\n";
  }
  void TearDown() override {
    planted_.reset();
    shm::Unlink(name_);
    std::remove(config_.c_str());
    ::rmdir(dir_.c_str());
  }
  // The attacker's object: a valid, initialised region (so layout checks cannot catch
  // it), then opened to everyone and, when we can, handed to another user.
  void Plant(mode_t mode, uid_t owner) {
    auto obj = shm::ShmObject::Open(name_);
    ASSERT_TRUE(obj.ok()) << obj.error().message();
    planted_ = std::move(obj.value());
    int fd = ::shm_open(name_.c_str(), O_RDWR, 0);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(::fchmod(fd, mode), 0);
    if (owner != static_cast<uid_t>(-1)) {
      ASSERT_EQ(::fchown(fd, owner, static_cast<gid_t>(-1)), 0);
    }
    ::close(fd);
  }
  void ExpectRefused(const std::vector<std::string>& argv, const std::string& mode,
                     const std::string& owner) {
    RunResult r = RunFor(argv, 10000);
    ASSERT_TRUE(r.exited) << argv[0] << " attached the planted object and kept running:\n" << r.output;
    EXPECT_NE(r.code, 0) << r.output;
    EXPECT_NE(r.output.find("/dev/shm" + name_), std::string::npos) << r.output;
    EXPECT_NE(r.output.find("mode " + mode), std::string::npos) << r.output;
    EXPECT_NE(r.output.find(owner), std::string::npos) << r.output;
    EXPECT_NE(r.output.find("rm /dev/shm" + name_), std::string::npos) << "says what to do:\n" << r.output;
  }

  std::string instance_, name_, dir_, config_;
  std::unique_ptr<shm::ShmObject> planted_;
};

TEST_F(ShmTakeoverTest, WorldWritableObjectIsRefusedByLlmgwAndLlmcd) {
  Plant(0666, static_cast<uid_t>(-1));
  std::string me = "uid " + std::to_string(::geteuid());
  ExpectRefused({LLMGW_BIN, "--config", config_}, "0666", me);
  ExpectRefused({LLMCD_BIN, "--config", config_}, "0666", me);
}

TEST_F(ShmTakeoverTest, ObjectOfAnotherUserIsRefusedByLlmgwAndLlmcd) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to give the object another owner";
  Plant(0666, 65534);
  ExpectRefused({LLMGW_BIN, "--config", config_}, "0666", "uid 65534");
  ExpectRefused({LLMCD_BIN, "--config", config_}, "0666", "uid 65534");
}

}  // namespace
}  // namespace llmgw
