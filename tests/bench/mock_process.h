// Test helpers for bench/ integration tests: start a real llmgw-mock on port 0 (reading its
// "listening" line with a deadline, killing it on scope exit) and a tiny blocking HTTP
// client with timeouts on every read. LLMGW_MOCK_BIN is defined by tests/bench/CMakeLists.txt.
#pragma once

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <string>
#include <vector>

namespace llmgw::testing {

inline int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

class MockProcess {
 public:
  explicit MockProcess(std::vector<std::string> args) {
    int out[2];
    if (pipe(out) != 0) return;
    pid_ = fork();
    if (pid_ == 0) {
      dup2(out[1], 1);
      close(out[0]);
      close(out[1]);
      std::vector<char*> argv;
      static std::string bin = LLMGW_MOCK_BIN;  // absolute path from CMake
      argv.push_back(bin.data());
      for (auto& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      execv(bin.c_str(), argv.data());
      _exit(127);
    }
    close(out[1]);
    std::string line;
    int64_t deadline = NowMs() + 5000;
    while (line.find('\n') == std::string::npos && NowMs() < deadline) {
      pollfd p{out[0], POLLIN, 0};
      if (poll(&p, 1, 100) <= 0) continue;
      char buf[128];
      ssize_t n = read(out[0], buf, sizeof buf);
      if (n <= 0) break;
      line.append(buf, static_cast<size_t>(n));
    }
    close(out[0]);
    first_line_ = line.substr(0, line.find('\n'));
    size_t colon = first_line_.rfind(':');
    if (first_line_.rfind("listening 127.0.0.1:", 0) == 0) port_ = std::atoi(first_line_.c_str() + colon + 1);
  }
  ~MockProcess() {
    if (pid_ > 0 && !exited_) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
  }
  int port() const { return port_; }
  const std::string& first_line() const { return first_line_; }
  // Waits up to timeout_ms for the process to exit; returns its exit status or -1.
  int WaitExit(int timeout_ms) {
    int64_t deadline = NowMs() + timeout_ms;
    while (NowMs() < deadline) {
      int st = 0;
      if (waitpid(pid_, &st, WNOHANG) == pid_) {
        exited_ = true;
        return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
      }
      usleep(10000);
    }
    return -1;
  }

 private:
  pid_t pid_ = -1;
  int port_ = 0;
  bool exited_ = false;
  std::string first_line_;
};

// One client connection with deadline-bounded reads.
class Client {
 public:
  explicit Client(int port) {
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(static_cast<uint16_t>(port));
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd_, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) {
      close(fd_);
      fd_ = -1;
    }
  }
  ~Client() { Close(); }
  void Close() {
    if (fd_ >= 0) close(fd_);
    fd_ = -1;
  }
  bool ok() const { return fd_ >= 0; }
  bool Send(std::string_view s) { return fd_ >= 0 && send(fd_, s.data(), s.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(s.size()); }
  // Reads what arrives within timeout_ms (stops early at EOF). Returns false on EOF/reset.
  bool ReadFor(int timeout_ms, std::string* out) {
    int64_t deadline = NowMs() + timeout_ms;
    for (;;) {
      int64_t left = deadline - NowMs();
      if (left <= 0) return true;
      pollfd p{fd_, POLLIN, 0};
      if (poll(&p, 1, static_cast<int>(left)) <= 0) return true;
      char buf[65536];
      ssize_t n = recv(fd_, buf, sizeof buf, 0);
      if (n <= 0) return false;
      out->append(buf, static_cast<size_t>(n));
    }
  }
  // Reads until `needle` appears in the data, EOF, or the deadline.
  bool ReadUntil(std::string_view needle, int timeout_ms, std::string* out) {
    int64_t deadline = NowMs() + timeout_ms;
    while (out->find(needle) == std::string::npos) {
      int64_t left = deadline - NowMs();
      if (left <= 0) return false;
      pollfd p{fd_, POLLIN, 0};
      if (poll(&p, 1, static_cast<int>(left)) <= 0) return false;
      char buf[65536];
      ssize_t n = recv(fd_, buf, sizeof buf, 0);
      if (n <= 0) return out->find(needle) != std::string::npos;
      out->append(buf, static_cast<size_t>(n));
    }
    return true;
  }
  // One full response with Content-Length (no chunked support needed for these callers).
  std::string Request(std::string_view method, std::string_view path, std::string_view body = {}) {
    std::string req = std::string(method) + " " + std::string(path) + " HTTP/1.1\r\nHost: t\r\n";
    if (!body.empty() || method == "POST")
      req += "Content-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) + "\r\n";
    req += "\r\n";
    req += body;
    if (!Send(req)) return {};
    std::string out;
    if (!ReadUntil("\r\n\r\n", 5000, &out)) return out;
    size_t hdr_end = out.find("\r\n\r\n") + 4;
    size_t cl = out.find("content-length: ");
    size_t len = cl == std::string::npos ? 0 : std::stoul(out.substr(cl + 16));
    int64_t deadline = NowMs() + 5000;
    while (out.size() < hdr_end + len && NowMs() < deadline) {
      if (!ReadFor(50, &out)) break;
    }
    return out;
  }
  int fd() const { return fd_; }

 private:
  int fd_ = -1;
};

inline int StatusOf(const std::string& resp) {
  return resp.size() > 12 ? std::atoi(resp.c_str() + 9) : 0;
}
inline std::string BodyOf(const std::string& resp) {
  size_t p = resp.find("\r\n\r\n");
  return p == std::string::npos ? std::string() : resp.substr(p + 4);
}
inline size_t CountOf(const std::string& s, std::string_view needle) {
  size_t n = 0;
  for (size_t p = s.find(needle); p != std::string::npos; p = s.find(needle, p + 1)) ++n;
  return n;
}

}  // namespace llmgw::testing
