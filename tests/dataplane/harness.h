// Test harness for llmgw integration tests: a small scripted upstream (blocking, one
// thread per connection) standing in for llmgw-mock, a raw HTTP/1.1 client with timeouts,
// and a fixture that writes a config, publishes a snapshot into shm directly (as llmcd
// would) and runs build/bin/llmgw as a child process.
#pragma once

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "common/config.h"
#include "common/shm.h"
#include "common/snapshot_builder.h"

namespace llmgw::testing {

inline uint64_t MonoMs() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                   std::chrono::steady_clock::now().time_since_epoch())
                                   .count());
}

// Reads until `pred(buf)` or timeout; returns false on timeout/EOF before pred.
inline bool ReadUntil(int fd, std::string* buf, const std::function<bool(const std::string&)>& pred,
                      int timeout_ms) {
  uint64_t end = MonoMs() + static_cast<uint64_t>(timeout_ms);
  while (!pred(*buf)) {
    uint64_t now = MonoMs();
    if (now >= end) return false;
    pollfd p{fd, POLLIN, 0};
    int r = ::poll(&p, 1, static_cast<int>(end - now));
    if (r <= 0) return false;
    char tmp[16384];
    ssize_t n = ::read(fd, tmp, sizeof(tmp));
    if (n <= 0) return pred(*buf);
    buf->append(tmp, static_cast<size_t>(n));
  }
  return true;
}

inline bool SendAll(int fd, std::string_view s) {
  while (!s.empty()) {
    ssize_t n = ::send(fd, s.data(), s.size(), MSG_NOSIGNAL);
    if (n <= 0) return false;
    s.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

inline int ConnectTo(uint16_t port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) < 0) {
    ::close(fd);
    return -1;
  }
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  return fd;
}

// A parsed HTTP response.
struct Response {
  int status = 0;
  std::map<std::string, std::string> headers;  // lower-case names
  std::string body;                            // de-chunked
  bool complete = false;
  bool malformed = false;  // the framing was broken (ParseResponse reported a failure)
  std::string Header(const std::string& k) const {
    auto it = headers.find(k);
    return it == headers.end() ? "" : it->second;
  }
};

// Tries to parse one response from the front of buf; on success erases it from buf.
inline bool ParseResponse(std::string* buf, Response* r) {
  size_t he = buf->find("\r\n\r\n");
  if (he == std::string::npos) return false;
  Response out;
  std::string head = buf->substr(0, he);
  size_t sp = head.find(' ');
  out.status = std::atoi(head.c_str() + sp + 1);
  size_t pos = head.find("\r\n");
  while (pos != std::string::npos && pos < head.size()) {
    size_t next = head.find("\r\n", pos + 2);
    std::string line = head.substr(pos + 2, next == std::string::npos ? std::string::npos : next - pos - 2);
    size_t c = line.find(':');
    if (c != std::string::npos) {
      std::string k = line.substr(0, c);
      for (auto& ch : k) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
      std::string v = line.substr(c + 1);
      while (!v.empty() && v[0] == ' ') v.erase(0, 1);
      out.headers[k] = v;
    }
    pos = next;
  }
  size_t body_start = he + 4;
  if (out.status == 100) {
    buf->erase(0, body_start);
    *r = out;
    r->complete = true;
    return true;
  }
  if (out.headers.count("content-length")) {
    size_t n = std::stoul(out.headers["content-length"]);
    if (buf->size() < body_start + n) return false;
    out.body = buf->substr(body_start, n);
    buf->erase(0, body_start + n);
  } else if (out.headers["transfer-encoding"] == "chunked") {
    size_t p = body_start;
    std::string body;
    while (true) {
      size_t le = buf->find("\r\n", p);
      if (le == std::string::npos) return false;
      // Not std::stoul: a malformed size line from the gateway must fail the test with the
      // bytes shown, not throw out of a client thread (std::terminate, then a hang to the
      // ctest timeout).
      std::string size_line = buf->substr(p, le - p);
      char* size_end = nullptr;
      size_t n = std::strtoul(size_line.c_str(), &size_end, 16);
      if (size_line.empty() || size_end == size_line.c_str() || (*size_end != '\0' && *size_end != ';')) {
        ADD_FAILURE() << "malformed chunk size line '" << size_line << "' in a chunked answer:\n" << *buf;
        out.body = body;
        buf->clear();
        out.complete = true;
        out.malformed = true;
        *r = out;
        return true;
      }
      if (buf->size() < le + 2 + n + 2) return false;
      body.append(*buf, le + 2, n);
      p = le + 2 + n + 2;
      if (n == 0) break;
    }
    out.body = body;
    buf->erase(0, p);
  } else {
    out.body = buf->substr(body_start);
    buf->clear();
  }
  out.complete = true;
  *r = out;
  return true;
}

inline Response ReadResponse(int fd, std::string* buf, int timeout_ms = 5000) {
  Response r;
  ReadUntil(fd, buf, [&](const std::string&) {
    std::string copy = *buf;
    Response t;
    return ParseResponse(&copy, &t);
  }, timeout_ms);
  ParseResponse(buf, &r);
  return r;
}

// One request on a fresh connection.
inline Response Request(uint16_t port, const std::string& raw, int timeout_ms = 5000) {
  int fd = ConnectTo(port);
  Response r;
  if (fd < 0) return r;
  SendAll(fd, raw);
  std::string buf;
  r = ReadResponse(fd, &buf, timeout_ms);
  ::close(fd);
  return r;
}

inline std::string Post(const std::string& path, const std::string& body, const std::string& extra = "") {
  return "POST " + path + " HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: " +
         std::to_string(body.size()) + "\r\n" + extra + "\r\n" + body;
}

// --------------------------------------------------------------------------------------
// Scripted upstream: answers /v1/* like an OpenAI server would. Streaming requests get
// `events` SSE events `interval_ms` apart, then `data: [DONE]`.
class TestUpstream {
 public:
  struct Options {
    int status = 200;           // answer status for every request
    int events = 3;
    int interval_ms = 0;
    bool close_immediately = false;  // accept then close (a dead-ish backend)
    bool hang = false;               // read the request, never answer
    int close_after_events = -1;     // streaming: drop the connection after N events
    std::string partial_event;       // streaming: sent (as is) just before that drop
    bool no_terminator = false;      // streaming: [DONE], then a close without the last chunk
    size_t event_pad = 0;            // streaming: extra bytes of padding per event
    bool close_after_response = false;  // keep-alive in words, then close anyway
    std::string extra_headers;          // "Name: value\r\n" lines added to 200 answers
    // Raw interim (1xx) responses sent before the final answer, e.g. a 103 Early Hints.
    std::string interim;
    int hang_after_interim = 0;         // the first N requests get `interim`, then nothing
    int head_delay_ms = 0;              // wait this long before answering each request
    // JSON answers carry "n": which request of this upstream they answer (1, 2, ...), so
    // a test can tell one client's answer from another's.
    bool number_answers = false;
    // How 200 answers are framed: kLength = Content-Length (JSON) / chunked (SSE);
    // kChunked = chunked for JSON too; kClose = no length at all, `Connection: close` and
    // the body ends when the upstream closes (both JSON and SSE).
    enum class Framing { kLength, kChunked, kClose };
    Framing framing = Framing::kLength;
  };
  TestUpstream() : TestUpstream(Options()) {}
  explicit TestUpstream(Options o) : opt_(o) {
    lfd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(lfd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(lfd_, reinterpret_cast<sockaddr*>(&a), sizeof(a));
    ::listen(lfd_, 1024);
    socklen_t len = sizeof(a);
    getsockname(lfd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    acceptor_ = std::thread([this] { AcceptLoop(); });
  }
  ~TestUpstream() {
    stop_ = true;
    ::shutdown(lfd_, SHUT_RDWR);
    ::close(lfd_);
    acceptor_.join();
    std::vector<std::thread> ts;
    {
      std::lock_guard<std::mutex> g(mu_);
      for (int fd : open_fds_) ::shutdown(fd, SHUT_RDWR);
      ts.swap(threads_);
    }
    for (auto& t : ts) t.join();
  }
  uint16_t port() const { return port_; }
  int connections() const { return connections_.load(); }
  int requests() const { return requests_.load(); }
  int open_connections() const { return open_.load(); }
  int events_sent() const { return events_sent_.load(); }
  // Monotonic ms when the upstream noticed a streaming client went away (0: not yet).
  uint64_t stream_abort_ms() const { return abort_ms_.load(); }
  std::string last_request() {
    std::lock_guard<std::mutex> g(mu_);
    return last_;
  }
  void set_status(int s) { opt_.status = s; }

 private:
  void AcceptLoop() {
    while (!stop_) {
      int fd = ::accept4(lfd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd < 0) {
        if (stop_) return;
        continue;
      }
      connections_++;
      if (opt_.close_immediately) {
        ::close(fd);
        continue;
      }
      std::lock_guard<std::mutex> g(mu_);
      open_fds_.push_back(fd);
      threads_.emplace_back([this, fd] { Serve(fd); });
    }
  }
  void Serve(int fd) {
    open_++;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    std::string buf;
    while (!stop_) {
      if (!ReadUntil(fd, &buf, [](const std::string& b) { return b.find("\r\n\r\n") != std::string::npos; }, 10000))
        break;
      size_t he = buf.find("\r\n\r\n");
      std::string head = buf.substr(0, he);
      std::string lower = head;
      for (auto& ch : lower) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
      size_t cl = 0;
      size_t p = lower.find("content-length:");
      if (p != std::string::npos) cl = std::stoul(lower.substr(p + 15));
      if (!ReadUntil(fd, &buf, [&](const std::string& b) { return b.size() >= he + 4 + cl; }, 10000)) break;
      std::string body = buf.substr(he + 4, cl);
      buf.erase(0, he + 4 + cl);
      requests_++;
      {
        std::lock_guard<std::mutex> g(mu_);
        last_ = head + "\r\n\r\n" + body;
      }
      bool stream = body.find("\"stream\":true") != std::string::npos ||
                    body.find("\"stream\": true") != std::string::npos;
      int status = opt_.status;
      if (opt_.head_delay_ms) std::this_thread::sleep_for(std::chrono::milliseconds(opt_.head_delay_ms));
      if (!opt_.interim.empty() && !SendAll(fd, opt_.interim)) break;
      if (opt_.hang || requests_.load() <= opt_.hang_after_interim) {
        std::string sink;
        ReadUntil(fd, &sink, [](const std::string&) { return false; }, 10000);
        break;
      }
      if (status != 200) {
        std::string b = "{\"error\":{\"message\":\"upstream says " + std::to_string(status) +
                        "\",\"type\":\"server_error\",\"param\":null,\"code\":null}}";
        SendAll(fd, "HTTP/1.1 " + std::to_string(status) + " X\r\nContent-Type: application/json\r\nContent-Length: " +
                        std::to_string(b.size()) + "\r\n\r\n" + b);
        continue;
      }
      if (!stream) {
        std::string b = "{\"id\":\"cmpl-1\",\"object\":\"chat.completion\",\"port\":" + std::to_string(port_) +
                        (opt_.number_answers ? ",\"n\":" + std::to_string(requests_.load()) : std::string()) +
                        ",\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":\"hi\"}}],"
                        "\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":7,\"total_tokens\":12}}";
        std::string head = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n" + opt_.extra_headers;
        if (opt_.framing == Options::Framing::kChunked) {
          // In two chunks, as a server writing its answer in pieces would.
          size_t half = b.size() / 2;
          char h1[32], h2[32];
          std::snprintf(h1, sizeof(h1), "%zx\r\n", half);
          std::snprintf(h2, sizeof(h2), "%zx\r\n", b.size() - half);
          if (!SendAll(fd, head + "Transfer-Encoding: chunked\r\n\r\n" + h1 + b.substr(0, half) + "\r\n" + h2 +
                               b.substr(half) + "\r\n0\r\n\r\n"))
            break;
        } else if (opt_.framing == Options::Framing::kClose) {
          SendAll(fd, head + "Connection: close\r\n\r\n" + b);
          break;
        } else if (!SendAll(fd, head + "Content-Length: " + std::to_string(b.size()) + "\r\n\r\n" + b)) {
          break;
        }
        if (opt_.close_after_response) break;
        continue;
      }
      const bool raw = opt_.framing == Options::Framing::kClose;  // SSE body ends at close
      if (!SendAll(fd, "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n" + opt_.extra_headers +
                           (raw ? "Connection: close\r\n\r\n" : "Transfer-Encoding: chunked\r\n\r\n")))
        break;
      bool aborted = false;
      std::string pad(opt_.event_pad, 'x');
      bool dropped = false;
      for (int i = 0; i < opt_.events && !aborted; ++i) {
        if (i == opt_.close_after_events) {
          if (!opt_.partial_event.empty()) {
            char hx[24];
            std::snprintf(hx, sizeof(hx), "%zx\r\n", opt_.partial_event.size());
            SendAll(fd, raw ? opt_.partial_event : std::string(hx) + opt_.partial_event + "\r\n");
          }
          dropped = true;
          break;
        }
        if (opt_.interval_ms) {
          // Wait for the interval, but notice at once if the gateway closes on us.
          pollfd pf{fd, POLLIN | POLLRDHUP, 0};
          int r = ::poll(&pf, 1, opt_.interval_ms);
          if (r > 0) {
            aborted = true;
            break;
          }
        }
        std::string ev = "data: {\"choices\":[{\"delta\":{\"content\":\"t" + std::to_string(i) + "\"}}],\"pad\":\"" +
                         pad + "\"}\n\n";
        char hex[16];
        std::snprintf(hex, sizeof(hex), "%zx\r\n", ev.size());
        if (!SendAll(fd, raw ? ev : std::string(hex) + ev + "\r\n")) aborted = true;
        events_sent_++;
      }
      if (dropped) break;
      if (aborted) {
        abort_ms_ = MonoMs();
        break;
      }
      std::string done = "data: [DONE]\n\n";
      if (raw) {
        SendAll(fd, done);
        break;  // the close ends the body
      }
      char hex[16];
      std::snprintf(hex, sizeof(hex), "%zx\r\n", done.size());
      if (opt_.no_terminator) {
        SendAll(fd, std::string(hex) + done + "\r\n");
        break;
      }
      if (!SendAll(fd, std::string(hex) + done + "\r\n0\r\n\r\n")) break;
    }
    open_--;
    ::close(fd);
  }

  Options opt_;
  int lfd_;
  uint16_t port_;
  std::atomic<bool> stop_{false};
  std::atomic<int> connections_{0}, requests_{0}, open_{0}, events_sent_{0};
  std::atomic<uint64_t> abort_ms_{0};
  std::thread acceptor_;
  std::mutex mu_;
  std::vector<std::thread> threads_;
  std::vector<int> open_fds_;
  std::string last_;
};

// --------------------------------------------------------------------------------------
// Runs llmgw on a config built from `models_yaml`; publishes the snapshot itself.
class Gateway {
 public:
  // nofile: when set, llmgw starts with RLIMIT_NOFILE soft = hard = nofile.
  // listen_port: 0 lets the kernel pick one.
  Gateway(const std::string& models_yaml, const std::string& gateway_yaml = "", bool publish = true,
          int threads = 1, rlim_t nofile = 0, uint16_t listen_port = 0)
      : nofile_(nofile) {
    static int counter = 0;
    instance_ = "dptest-" + std::to_string(::getpid()) + "-" + std::to_string(counter++);
    yaml_ = "instance: " + instance_ + "\nlog_level: " + std::string(getenv("DP_LOG") ? getenv("DP_LOG") : "warn") + "\ngateway:\n  listen: 127.0.0.1:" + std::to_string(listen_port) + "\n  threads: " + std::to_string(threads) + "\n" +
            gateway_yaml + models_yaml;
    path_ = "/tmp/" + instance_ + ".yaml";
    FILE* f = std::fopen(path_.c_str(), "w");
    std::fputs(yaml_.c_str(), f);
    std::fclose(f);
    if (!Parse()) return;
    auto obj = shm::ShmObject::Open(cfg_.ShmName());
    if (!obj.ok()) {
      std::fprintf(stderr, "shm open failed: %s\n", obj.error().message());
      return;
    }
    shm_ = std::move(obj.value());
    if (publish) Publish();
    Start();
  }
  ~Gateway() {
    Stop(SIGKILL);
    if (shm_) shm_->Close();
    shm::Unlink(cfg_.ShmName());
    ::unlink(path_.c_str());
  }
  std::unique_ptr<shm::Snapshot> BuildSnap() {
    auto snap = std::make_unique<shm::Snapshot>();
    SlotAssigner slots;
    Status st = BuildSnapshot(cfg_, &slots, snap.get());
    if (!st.ok()) {
      std::fprintf(stderr, "BuildSnapshot failed: %s\n", st.error().message());
      return nullptr;
    }
    return snap;
  }
  // No allocation: safe in a child forked from this multi-threaded test process.
  void PublishBuilt(shm::Snapshot* snap) {
    if (!snap) return;
    shm::SnapshotWriter w(shm_->region());
    w.Publish(snap);
  }
  void Publish() {
    auto snap = BuildSnap();
    PublishBuilt(snap.get());
  }
  // What llmcd does on a reload: the config parsed again, backend key files read again
  // (ResolveBackendKeys), the snapshot published.
  bool Reload() {
    if (!Parse()) return false;
    Publish();
    return true;
  }
  void Start() { pid_ = Spawn(&port_); }
  // Starts another llmgw on the same config file (say, the new binary of an upgrade) and
  // returns its pid once it printed its `listening` line (-1 if it did not); the caller
  // stops it with StopPid.
  pid_t Spawn(uint16_t* port) {
    int out[2];
    if (::pipe2(out, O_CLOEXEC) != 0) return -1;
    pid_t pid = ::fork();
    if (pid == 0) {
      ::dup2(out[1], 1);
      if (nofile_) {
        rlimit rl{nofile_, nofile_};
        ::setrlimit(RLIMIT_NOFILE, &rl);
      }
      execl(LLMGW_BIN, LLMGW_BIN, "--config", path_.c_str(), static_cast<char*>(nullptr));
      _exit(127);
    }
    ::close(out[1]);
    std::string line;
    ReadUntil(out[0], &line, [](const std::string& b) { return b.find('\n') != std::string::npos; }, 5000);
    ::close(out[0]);
    if (line.rfind("listening ", 0) != 0) {
      std::fprintf(stderr, "llmgw did not start: '%s'\n", line.c_str());
      return pid;
    }
    *port = static_cast<uint16_t>(std::atoi(line.c_str() + line.rfind(':') + 1));
    return pid;
  }
  // Sends sig and waits up to timeout_ms; returns the exit status (or -1).
  int Stop(int sig, int timeout_ms = 5000) {
    int rc = StopPid(pid_, sig, timeout_ms);
    pid_ = -1;
    return rc;
  }
  static int StopPid(pid_t pid, int sig, int timeout_ms = 5000) {
    if (pid <= 0) return -1;
    ::kill(pid, sig);
    uint64_t end = MonoMs() + static_cast<uint64_t>(timeout_ms);
    int st = 0;
    while (MonoMs() < end) {
      pid_t r = ::waitpid(pid, &st, WNOHANG);
      if (r == pid) return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    ::kill(pid, SIGKILL);
    ::waitpid(pid, &st, 0);
    return -1;
  }
  uint16_t port() const { return port_; }
  pid_t pid() const { return pid_; }
  // Resident set size of the gateway process in KB (from /proc).
  long RssKb() const {
    FILE* f = std::fopen(("/proc/" + std::to_string(pid_) + "/status").c_str(), "r");
    if (!f) return -1;
    char line[256];
    long kb = -1;
    while (std::fgets(line, sizeof(line), f))
      if (std::strncmp(line, "VmRSS:", 6) == 0) kb = std::atol(line + 6);
    std::fclose(f);
    return kb;
  }
  shm::ShmRegion* region() { return shm_->region(); }
  bool Parse() {
    auto cr = ParseConfig(yaml_, path_);
    if (cr.ok()) ResolveBackendKeys(&cr.config, &cr.errors);  // as llmcd does (api_key_file / api_key_env)
    if (!cr.ok()) {
      std::fprintf(stderr, "bad test config: %s\n", cr.ErrorText().c_str());
      return false;
    }
    cfg_ = cr.config;
    return true;
  }
  const Config& config() const { return cfg_; }
  bool WaitReady(int timeout_ms = 3000) {
    uint64_t end = MonoMs() + static_cast<uint64_t>(timeout_ms);
    while (MonoMs() < end) {
      Response r = Request(port_, "GET /ready HTTP/1.1\r\nHost: t\r\n\r\n", 1000);
      if (r.status == 200) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return false;
  }

 private:
  std::string instance_, yaml_, path_;
  Config cfg_;
  std::unique_ptr<shm::ShmObject> shm_;
  pid_t pid_ = -1;
  uint16_t port_ = 0;
  rlim_t nofile_ = 0;
};

inline std::string OneModel(const std::vector<uint16_t>& ports, const std::string& extra = "") {
  std::string y = "models:\n  - name: m1\n    aliases: [alias1]\n" + extra + "    backends:\n";
  for (uint16_t p : ports) y += "      - { url: \"http://127.0.0.1:" + std::to_string(p) + "\" }\n";
  return y;
}

}  // namespace llmgw::testing
