// MockServer: the real llmgw-mock (bench/mock) on a free loopback port for data-plane
// integration tests, with its fault switch and counters. Needs LLMGW_MOCK_BIN.
#pragma once

#include "tests/dataplane/harness.h"

namespace llmgw::testing {

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
  // POST /mock/faults with a JSON body; true when the mock accepted it.
  bool SetFaults(const std::string& json) {
    Response r = Request(port_, "POST /mock/faults HTTP/1.1\r\nHost: m\r\nContent-Type: application/json\r\n"
                                "Content-Length: " + std::to_string(json.size()) + "\r\n\r\n" + json, 2000);
    return r.status == 200;
  }
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

}  // namespace llmgw::testing
