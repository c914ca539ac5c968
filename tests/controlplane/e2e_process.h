// Helpers for end-to-end tests with the real binaries on loopback: child processes (stdout
// first line read with a deadline, stderr to a log file, SIGKILLed on scope exit), a
// blocking HTTP/1.1 call with one deadline, a closed-loop load generator that counts every
// failed request, and the admin gRPC stub with fast reconnects.
#pragma once

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "llmgw/admin/v1/admin.grpc.pb.h"

namespace llmgw::e2e {

namespace pb = ::llmgw::admin::v1;
using Clock = std::chrono::steady_clock;

template <typename P>
bool WaitFor(P pred, int timeout_ms) {
  auto end = Clock::now() + std::chrono::milliseconds(timeout_ms);
  while (Clock::now() < end) {
    if (pred()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return pred();
}

inline std::string ReadFile(const std::string& path) {
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

inline void WriteFileAtomically(const std::string& path, const std::string& text) {
  std::string tmp = path + ".tmp";
  {
    std::ofstream f(tmp, std::ios::trunc);
    f << text;
  }
  std::rename(tmp.c_str(), path.c_str());
}

inline int FreePort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof(sa));
  socklen_t len = sizeof(sa);
  getsockname(fd, reinterpret_cast<sockaddr*>(&sa), &len);
  close(fd);
  return ntohs(sa.sin_port);
}

// A child process. When `read_port` is set, its first stdout line must be
// "listening 127.0.0.1:<port>" within 5 s (llmgw and llmgw-mock both print it).
class Proc {
 public:
  Proc(const std::vector<std::string>& argv, const std::string& log, bool read_port) {
    // Everything the child needs is prepared before fork: the parent has threads (load,
    // gRPC), so the child only calls async-signal-safe functions before exec.
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    int log_fd = open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    int out[2];
    if (pipe2(out, O_CLOEXEC) != 0) return;
    pid_ = fork();
    if (pid_ == 0) {
      dup2(out[1], 1);
      if (log_fd >= 0) dup2(log_fd, 2);
      execv(args[0], args.data());
      _exit(127);
    }
    if (log_fd >= 0) close(log_fd);
    close(out[1]);
    if (read_port) {
      std::string line;
      auto end = Clock::now() + std::chrono::seconds(5);
      while (Clock::now() < end && line.find('\n') == std::string::npos) {
        pollfd p{out[0], POLLIN, 0};
        if (poll(&p, 1, 100) <= 0) continue;
        char c;
        if (read(out[0], &c, 1) != 1) break;
        line.push_back(c);
      }
      auto colon = line.rfind(':');
      if (line.rfind("listening 127.0.0.1:", 0) == 0 && colon != std::string::npos)
        port_ = std::atoi(line.c_str() + colon + 1);
    }
    out_ = out[0];  // kept open: a later stdout line must not kill the child with SIGPIPE
  }
  ~Proc() {
    Kill();
    if (out_ >= 0) close(out_);
  }
  Proc(const Proc&) = delete;
  Proc& operator=(const Proc&) = delete;
  void Kill() {
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
      pid_ = -1;
    }
  }
  // Sends sig and waits up to timeout_ms; returns the exit status, or -1 on timeout.
  int Stop(int sig, int timeout_ms) {
    if (pid_ <= 0) return -1;
    kill(pid_, sig);
    int st = 0;
    bool done = WaitFor([&] { return waitpid(pid_, &st, WNOHANG) == pid_; }, timeout_ms);
    if (!done) return -1;
    pid_ = -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
  }
  pid_t pid() const { return pid_; }
  int port() const { return port_; }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }

 private:
  pid_t pid_ = -1;
  int port_ = 0;
  int out_ = -1;
};

struct HttpResult {
  int status = 0;  // 0: no complete response
  std::string body;
  std::string error;
};

// One request on a fresh connection (Connection: close), bounded by timeout_ms overall.
inline HttpResult HttpCall(int port, const std::string& method, const std::string& path,
                           const std::string& body = "", int timeout_ms = 5000) {
  HttpResult r;
  auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(static_cast<uint16_t>(port));
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) != 0) {
    r.error = std::string("connect: ") + strerror(errno);
    close(fd);
    return r;
  }
  std::string req = method + " " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n";
  if (method == "POST") req += "Content-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) + "\r\n";
  req += "\r\n" + body;
  if (send(fd, req.data(), req.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(req.size())) {
    r.error = "send failed";
    close(fd);
    return r;
  }
  std::string raw;
  for (;;) {
    int left = static_cast<int>(std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count());
    if (left <= 0) {
      r.error = "timeout";
      break;
    }
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, left) <= 0) continue;
    char buf[16384];
    ssize_t n = recv(fd, buf, sizeof(buf), 0);
    if (n < 0) {
      r.error = std::string("recv: ") + strerror(errno);
      break;
    }
    if (n == 0) break;
    raw.append(buf, static_cast<size_t>(n));
  }
  close(fd);
  size_t he = raw.find("\r\n\r\n");
  if (he == std::string::npos || raw.rfind("HTTP/1.1 ", 0) != 0) {
    if (r.error.empty()) r.error = "no response head";
    return r;
  }
  std::string head = raw.substr(0, he);
  for (auto& c : head) c = static_cast<char>(tolower(static_cast<unsigned char>(c)));
  r.body = raw.substr(he + 4);
  size_t cl = head.find("\r\ncontent-length:");
  if (cl != std::string::npos) {
    size_t want = std::strtoul(head.c_str() + cl + 17, nullptr, 10);
    if (r.body.size() < want) {
      if (r.error.empty()) r.error = "short body";
      return r;
    }
  }
  if (r.error.empty()) r.status = std::atoi(raw.c_str() + 9);
  return r;
}

inline const std::string kChatBody =
    R"({"model":"m","messages":[{"role":"user","content":"hello there"}],"max_tokens":4})";

// Closed-loop load through the gateway: `threads` clients, each sending one chat
// completion after the other. A request fails unless it is a complete 200.
class Load {
 public:
  Load(int gateway_port, int threads) {
    for (int i = 0; i < threads; ++i)
      threads_.emplace_back([this, gateway_port] {
        while (!stop_.load()) {
          HttpResult r = HttpCall(gateway_port, "POST", "/v1/chat/completions", kChatBody, 10000);
          if (r.status == 200) {
            ok_.fetch_add(1);
          } else {
            failed_.fetch_add(1);
            std::lock_guard<std::mutex> l(mu_);
            if (failures_.size() < 5) failures_.push_back(std::to_string(r.status) + " " + r.error + " " + r.body);
          }
        }
      });
  }
  ~Load() { Stop(); }
  void Stop() {
    stop_ = true;
    for (auto& t : threads_)
      if (t.joinable()) t.join();
  }
  uint64_t ok() const { return ok_.load(); }
  uint64_t failed() const { return failed_.load(); }
  std::string failures() {
    std::lock_guard<std::mutex> l(mu_);
    std::string s;
    for (const auto& f : failures_) s += f + "\n";
    return s;
  }
  // Waits until `n` more requests succeeded than at the call (bounded).
  bool WaitMore(uint64_t n, int timeout_ms) {
    uint64_t base = ok();
    return WaitFor([&] { return ok() >= base + n; }, timeout_ms);
  }

 private:
  std::atomic<bool> stop_{false};
  std::atomic<uint64_t> ok_{0}, failed_{0};
  std::mutex mu_;
  std::vector<std::string> failures_;
  std::vector<std::thread> threads_;
};

// A number field of the mock's /mock/stats JSON (-1 when unreadable).
inline long MockStat(int mock_port, const std::string& key) {
  HttpResult r = HttpCall(mock_port, "GET", "/mock/stats", "", 2000);
  if (r.status != 200) return -1;
  size_t p = r.body.find("\"" + key + "\":");
  if (p == std::string::npos) return -1;
  return std::atol(r.body.c_str() + p + key.size() + 3);
}

inline std::unique_ptr<pb::Admin::Stub> AdminStub(int port) {
  // llmcd may (re)start while we call: reconnect quickly instead of gRPC's 1 s+ backoff.
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 50);
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 50);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 200);
  return pb::Admin::NewStub(grpc::CreateCustomChannel("127.0.0.1:" + std::to_string(port),
                                                      grpc::InsecureChannelCredentials(), args));
}

inline std::unique_ptr<grpc::ClientContext> Ctx(int timeout_ms = 2000) {
  auto c = std::make_unique<grpc::ClientContext>();
  c->set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(timeout_ms));
  c->set_wait_for_ready(true);
  return c;
}

inline pb::BackendState StateOf(pb::Admin::Stub* stub, const std::string& id) {
  pb::ListBackendsResponse r;
  if (!stub->ListBackends(Ctx().get(), {}, &r).ok()) return pb::BACKEND_STATE_UNSPECIFIED;
  for (const auto& b : r.backends())
    if (b.id() == id) return b.state();
  return pb::BACKEND_STATE_UNSPECIFIED;
}

}  // namespace llmgw::e2e
