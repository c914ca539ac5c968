// The data plane's hot-path promise, enforced: after warm-up, whole requests through the
// data-plane components (accept, client parsing, routing, the upstream pool and codec,
// relay and framing, stats) make zero heap allocations on the worker's thread:
// non-streaming, streaming, and a request retried after a backend's 503. Everything runs
// in this process: the worker on its own thread over a ShmRegion in ordinary memory, two
// scripted upstreams on threads, the client on the test thread, all on loopback.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <openssl/crypto.h>
#include <openssl/ssl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <new>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "common/config.h"
#include "common/sha256.h"
#include "common/shm.h"
#include "common/snapshot_builder.h"
#include "dataplane/worker.h"
#include "tests/tls/test_pki.h"

// Our operator new/delete pair malloc/free; GCC cannot see that through the inlined
// std::allocator and would warn about a mismatch that is not there.
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"

namespace {
std::atomic<bool> g_armed{false};
std::atomic<bool> g_have_worker{false};
pthread_t g_worker;
std::atomic<size_t> g_allocs{0};
}  // namespace

// Counts allocations made on the worker's thread while armed (the upstreams and the
// client on other threads may allocate as they like).
void* operator new(size_t n) {
  if (g_armed.load(std::memory_order_relaxed) && g_have_worker.load(std::memory_order_acquire) &&
      pthread_equal(pthread_self(), g_worker))
    g_allocs.fetch_add(1, std::memory_order_relaxed);
  void* p = std::malloc(n ? n : 1);
  if (!p) throw std::bad_alloc();
  return p;
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, size_t) noexcept { std::free(p); }

// OpenSSL allocates with malloc, not operator new: its allocations on the worker's thread
// are counted too (installed before OpenSSL allocates anything). OpenSSL 3's record writer
// mallocs a 40-byte WPACKET sub-packet per record it writes (crypto/packet.c) whatever
// the caller does; those are counted apart, every other OpenSSL allocation with ours.
std::atomic<size_t> g_ssl_packet_allocs{0};
namespace {
bool CountedHere() {
  return g_armed.load(std::memory_order_relaxed) && g_have_worker.load(std::memory_order_acquire) &&
         pthread_equal(pthread_self(), g_worker);
}
void CountSsl(const char* file) {
  if (!CountedHere()) return;
  if (file && std::strstr(file, "crypto/packet.c")) g_ssl_packet_allocs.fetch_add(1, std::memory_order_relaxed);
  else g_allocs.fetch_add(1, std::memory_order_relaxed);
}
void* SslMalloc(size_t n, const char* file, int) {
  CountSsl(file);
  return std::malloc(n);
}
void* SslRealloc(void* p, size_t n, const char* file, int) {
  CountSsl(file);
  return std::realloc(p, n);
}
void SslFree(void* p, const char*, int) { std::free(p); }
const bool g_ssl_counted = CRYPTO_set_mem_functions(SslMalloc, SslRealloc, SslFree) == 1;
}  // namespace

namespace llmgw::dataplane {
namespace {

int Listen(uint16_t* port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0 || ::listen(fd, 64) != 0) return -1;
  socklen_t len = sizeof(a);
  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  *port = ntohs(a.sin_port);
  return fd;
}

// A connection's byte stream: the socket, or TLS over it (the https upstream).
struct Io {
  int fd = -1;
  SSL* ssl = nullptr;
  ssize_t Recv(char* p, size_t n) {
    if (!ssl) return ::recv(fd, p, n, 0);
    int r = SSL_read(ssl, p, static_cast<int>(n));
    return r > 0 ? r : -1;
  }
  ssize_t Send(const std::string& s) {
    if (!ssl) return ::send(fd, s.data(), s.size(), MSG_NOSIGNAL);
    int r = SSL_write(ssl, s.data(), static_cast<int>(s.size()));
    return r > 0 ? r : -1;
  }
};

// Reads one HTTP message head (and a Content-Length body) from fd into *msg.
bool ReadRequest(Io* io, std::string* buf, std::string* msg) {
  char tmp[8192];
  while (true) {
    size_t he = buf->find("\r\n\r\n");
    if (he != std::string::npos) {
      size_t cl = 0;
      size_t p = buf->find("Content-Length: ");
      if (p != std::string::npos && p < he) cl = std::strtoul(buf->c_str() + p + 16, nullptr, 10);
      if (buf->size() >= he + 4 + cl) {
        *msg = buf->substr(0, he + 4 + cl);
        buf->erase(0, he + 4 + cl);
        return true;
      }
    }
    ssize_t n = io->Recv(tmp, sizeof(tmp));
    if (n <= 0) return false;
    buf->append(tmp, static_cast<size_t>(n));
  }
}

// A keep-alive upstream: 503 when the body asks this upstream to fail ("fail":"<name>"),
// an SSE stream when it asks for one, else a small JSON answer with usage.
class Upstream {
 public:
  // tls: serves HTTPS with this context (the caller keeps it alive).
  explicit Upstream(std::string name, SSL_CTX* tls = nullptr) : name_(std::move(name)), tls_(tls) {
    fd_ = Listen(&port_);
    thread_ = std::thread([this] { Serve(); });
  }
  ~Upstream() {
    ::shutdown(fd_, SHUT_RDWR);
    thread_.join();
    ::close(fd_);
    {
      std::lock_guard<std::mutex> lock(mu_);
      for (int c : open_) ::shutdown(c, SHUT_RDWR);  // ends their reads
    }
    for (auto& t : conns_) t.join();
  }
  uint16_t port() const { return port_; }

 private:
  void Serve() {
    while (true) {
      int c = ::accept(fd_, nullptr, nullptr);
      if (c < 0) return;
      std::lock_guard<std::mutex> lock(mu_);
      open_.insert(c);
      conns_.emplace_back([this, c] { Conn(c); });
    }
  }
  void Conn(int c) {
    std::string buf, req;
    Io io{c, nullptr};
    if (tls_) {
      io.ssl = SSL_new(tls_);
      SSL_set_fd(io.ssl, c);
      if (SSL_accept(io.ssl) != 1) {
        SSL_free(io.ssl);
        io.ssl = nullptr;
        buf = "x";  // nothing is served on a failed handshake
      }
    }
    while ((!tls_ || io.ssl) && ReadRequest(&io, &buf, &req)) {
      std::string out;
      if (req.find("\"fail\":\"" + name_ + "\"") != std::string::npos) {
        out = "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
        (void)!io.Send(out);
        break;
      }
      if (req.find("\"stream\":true") != std::string::npos) {
        std::string body;
        for (int i = 0; i < 8; ++i) {
          std::string ev = "data: {\"choices\":[{\"delta\":{\"content\":\"t" + std::to_string(i) + "\"}}]}\n\n";
          char hex[16];
          std::snprintf(hex, sizeof(hex), "%zx\r\n", ev.size());
          body += hex + ev + "\r\n";
        }
        std::string last = "data: {\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":8}}\n\ndata: [DONE]\n\n";
        char hex[16];
        std::snprintf(hex, sizeof(hex), "%zx\r\n", last.size());
        body += hex + last + "\r\n0\r\n\r\n";
        out = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n" + body;
      } else {
        std::string body =
            "{\"id\":\"x\",\"choices\":[{\"message\":{\"content\":\"hi\"}}],\"usage\":{\"prompt_tokens\":3,"
            "\"completion_tokens\":1}}";
        out = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: " +
              std::to_string(body.size()) + "\r\n\r\n" + body;
      }
      if (io.Send(out) < 0) break;
    }
    if (io.ssl) SSL_free(io.ssl);
    std::lock_guard<std::mutex> lock(mu_);
    open_.erase(c);
    ::close(c);
  }
  std::string name_;
  SSL_CTX* tls_ = nullptr;
  std::mutex mu_;
  std::set<int> open_;             // connections still served
  std::vector<std::thread> conns_;  // one thread each, joined at the end
  int fd_ = -1;
  uint16_t port_ = 0;
  std::thread thread_;
};

// One keep-alive client connection; returns the status of each answer, its body read
// to its end (Content-Length or the last chunk).
class Client {
 public:
  explicit Client(uint16_t port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ok_ = ::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0;
    timeval tv{10, 0};
    setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  }
  ~Client() { ::close(fd_); }
  bool ok() const { return ok_; }
  int Post(const std::string& body, std::string* answer, const std::string& headers = "") {
    std::string req = "POST /v1/chat/completions HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n" + headers +
                      "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
    if (::send(fd_, req.data(), req.size(), MSG_NOSIGNAL) < 0) return -1;
    char tmp[8192];
    while (true) {
      size_t he = buf_.find("\r\n\r\n");
      if (he != std::string::npos) {
        bool chunked = buf_.find("Transfer-Encoding: chunked") < he;
        size_t p = buf_.find("Content-Length: ");
        size_t end = std::string::npos;
        if (chunked) {
          size_t z = buf_.find("\r\n0\r\n\r\n", he);
          if (z != std::string::npos) end = z + 7;
        } else if (p < he) {
          size_t cl = std::strtoul(buf_.c_str() + p + 16, nullptr, 10);
          if (buf_.size() >= he + 4 + cl) end = he + 4 + cl;
        }
        if (end != std::string::npos) {
          *answer = buf_.substr(0, end);
          buf_.erase(0, end);
          return std::atoi(answer->c_str() + 9);
        }
      }
      ssize_t n = ::recv(fd_, tmp, sizeof(tmp), 0);
      if (n <= 0) return -1;
      buf_.append(tmp, static_cast<size_t>(n));
    }
  }

 private:
  int fd_ = -1;
  bool ok_ = false;
  std::string buf_;
};

// The worker under test: cfg's snapshot published in a ShmRegion in ordinary memory, a
// loopback listener, and the Worker running on its own thread (the one whose allocations
// are counted). The destructor stops and joins it, also when an assertion returned early.
class WorkerThread {
 public:
  WorkerThread() = default;
  WorkerThread(const WorkerThread&) = delete;
  WorkerThread& operator=(const WorkerThread&) = delete;
  ~WorkerThread() {
    if (!loop_.joinable()) return;
    g_stop_requested = true;
    loop_.join();
    g_stop_requested = false;
  }
  // Once; `region` may be prepared before (the leases llmcd would grant).
  ::testing::AssertionResult Start(const Config& cfg) {
    auto snap = std::make_unique<shm::Snapshot>();
    SlotAssigner slots;
    if (!BuildSnapshot(cfg, &slots, snap.get()).ok()) return ::testing::AssertionFailure() << "BuildSnapshot failed";
    shm::SnapshotWriter(region.get()).Publish(snap.get());
    Result<int> lfd = OpenListener("127.0.0.1", 0);
    if (!lfd.ok()) return ::testing::AssertionFailure() << lfd.error().message();
    sockaddr_in la{};
    socklen_t ll = sizeof(la);
    getsockname(lfd.value(), reinterpret_cast<sockaddr*>(&la), &ll);
    port_ = ntohs(la.sin_port);
    worker_ = std::make_unique<Worker>(cfg, region.get(), 0, std::vector<int>{lfd.value()});
    Status st = worker_->Init();
    if (!st.ok()) return ::testing::AssertionFailure() << st.error().message();
    g_stop_requested = false;
    loop_ = std::thread([this] {
      g_worker = pthread_self();
      g_have_worker.store(true, std::memory_order_release);
      worker_->Run();
    });
    return ::testing::AssertionSuccess();
  }
  uint16_t port() const { return port_; }

  std::unique_ptr<shm::ShmRegion> region = std::make_unique<shm::ShmRegion>();

 private:
  std::unique_ptr<Worker> worker_;
  std::thread loop_;
  uint16_t port_ = 0;
};

TEST(RequestAllocationTest, WholeRequestsAllocateNothingAfterWarmUp) {
  Upstream a("A"), b("B");
  std::string yaml = "instance: alloc-test\nlog_level: error\ngateway:\n  listen: 127.0.0.1:0\n  threads: 1\n"
                     "  retries: { max: 2, backoff_ms: 0 }\n"
                     "models:\n  - name: m\n    backends:\n"
                     "      - { url: \"http://127.0.0.1:" + std::to_string(a.port()) + "\" }\n"
                     "      - { url: \"http://127.0.0.1:" + std::to_string(b.port()) + "\" }\n";
  ConfigResult cr = ParseConfig(yaml, "alloc.yaml");
  ASSERT_TRUE(cr.ok()) << cr.ErrorText();
  WorkerThread w;
  ASSERT_TRUE(w.Start(cr.config));
  shm::ShmRegion* region = w.region.get();

  const std::string plain = R"({"model":"m","messages":[{"role":"user","content":"hello"}]})";
  const std::string stream = R"({"model":"m","stream":true,"messages":[{"role":"user","content":"hello"}]})";
  // Whichever backend is picked first for this one answers 503 when it is A: then the
  // attempt is retried on B.
  const std::string retry = R"({"model":"m","fail":"A","messages":[{"role":"user","content":"hello"}]})";
  {
    Client c(w.port());
    ASSERT_TRUE(c.ok());
    std::string ans;
    auto round = [&](int n) {
      for (int i = 0; i < n; ++i) {
        ASSERT_EQ(c.Post(plain, &ans), 200) << ans;
        ASSERT_NE(ans.find("\"content\":\"hi\""), std::string::npos) << ans;
        ASSERT_EQ(c.Post(stream, &ans), 200) << ans;
        ASSERT_NE(ans.find("data: [DONE]"), std::string::npos) << ans;
        ASSERT_EQ(c.Post(retry, &ans), 200) << ans;
      }
    };
    round(50);  // warm-up: pools, free lists and buffers reach their working size
    uint64_t retries_before = region->slots[0].retries.load();
    g_allocs = 0;
    g_armed = true;
    round(100);
    g_armed = false;
    EXPECT_EQ(g_allocs.load(), 0u) << "heap allocations on the worker thread during 300 requests";
    // The retry path really ran while counting (A is picked first about half the time).
    EXPECT_GT(region->slots[0].retries.load(), retries_before);
  }
}

// https backends (issue 13): once the pooled TLS connections are up, requests over them
// (encrypt, decrypt, relay) allocate nothing either — operator new and OpenSSL's mallocs,
// but for the sub-packets OpenSSL 3's record writer mallocs per record (counted apart).
// One backend is a hosted provider (its path and key header written per request).
TEST(RequestAllocationTest, HttpsRequestsOnPooledConnectionsAllocateNothing) {
  ASSERT_TRUE(g_ssl_counted) << "CRYPTO_set_mem_functions came too late";
  llmgw::test::TestPki pki;
  ASSERT_TRUE(pki.ok()) << pki.error();
  SSL_CTX* sctx = SSL_CTX_new(TLS_server_method());
  ASSERT_EQ(SSL_CTX_use_certificate_chain_file(sctx, pki.server_cert().c_str()), 1);
  ASSERT_EQ(SSL_CTX_use_PrivateKey_file(sctx, pki.server_key().c_str(), SSL_FILETYPE_PEM), 1);
  ::setenv("LLMGW_ALLOC_TEST_KEY", "sk-alloc", 1);
  {
    Upstream a("A", sctx), b("B", sctx);
    std::string tls = "tls: { ca_file: \"" + pki.ca_cert() + "\" }";
    std::string yaml = "instance: alloc-test-tls\nlog_level: error\ngateway:\n  listen: 127.0.0.1:0\n  threads: 1\n"
                       "models:\n  - name: m\n    backends:\n"
                       "      - { url: \"https://127.0.0.1:" + std::to_string(a.port()) + "\", " + tls + " }\n"
                       "      - { url: \"https://127.0.0.1:" + std::to_string(b.port()) + "\", " + tls +
                       ", provider: openai, api_key_env: LLMGW_ALLOC_TEST_KEY }\n";
    ConfigResult cr = ParseConfig(yaml, "alloc.yaml");
    if (cr.ok()) ResolveBackendKeys(&cr.config, &cr.errors);
    ASSERT_TRUE(cr.ok()) << cr.ErrorText();
    WorkerThread w;
    ASSERT_TRUE(w.Start(cr.config));
    shm::ShmRegion* region = w.region.get();
    const std::string plain = R"({"model":"m","messages":[{"role":"user","content":"hello"}]})";
    const std::string stream = R"({"model":"m","stream":true,"messages":[{"role":"user","content":"hello"}]})";
    {
      Client c(w.port());
      ASSERT_TRUE(c.ok());
      std::string ans;
      auto round = [&](int n) {
        for (int i = 0; i < n; ++i) {
          ASSERT_EQ(c.Post(plain, &ans), 200) << ans;
          ASSERT_NE(ans.find("\"content\":\"hi\""), std::string::npos) << ans;
          ASSERT_EQ(c.Post(stream, &ans), 200) << ans;
          ASSERT_NE(ans.find("data: [DONE]"), std::string::npos) << ans;
        }
      };
      round(50);
      uint64_t requests_before = region->slots[0].requests_total.load();
      g_allocs = 0;
      g_ssl_packet_allocs = 0;
      g_armed = true;
      round(100);
      g_armed = false;
      EXPECT_EQ(g_allocs.load(), 0u) << "heap allocations on the worker thread during 200 https requests";
      // OpenSSL's own per-record sub-packets (see above): 4 per request here, the request
      // going out as one record (SSL_MODE_RELEASE_BUFFERS, say, would add its record
      // buffers to g_allocs; a record per request piece made it ~11).
      EXPECT_LE(g_ssl_packet_allocs.load(), 200u * 6);
      // The worker's counters reach shm at its next tick: wait for the 200 counted requests.
      for (int i = 0; i < 100 && region->slots[0].requests_total.load() < requests_before + 200; ++i)
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
      EXPECT_GE(region->slots[0].requests_total.load(), requests_before + 200);
    }
  }
  SSL_CTX_free(sctx);
}

// The same with client API keys and every kind of limit set: authentication, the model
// check, the limiter's admission (rates, tokens, concurrency) with its x-ratelimit-*
// headers, the tokens charged at the end, a backend's rps), and a wrong key's 401, allocate
// nothing either.
TEST(RequestAllocationTest, KeyedAndLimitedRequestsAllocateNothingAfterWarmUp) {
  Upstream a("A"), b("B");
  const std::string secret = "sk-alloc-test-0123456789";
  std::string yaml = "instance: alloc-keys-test\nlog_level: error\ngateway:\n  listen: 127.0.0.1:0\n  threads: 1\n"
                     "auth: { required: true }\nlimits: { global: { rps: 100000 } }\n"
                     "keys:\n  - { id: team, key_sha256: \"" + Sha256Hex(secret) +
                     "\", models: [m], limits: { rpm: 1000000, tpm: 100000000, max_concurrent: 8 } }\n"
                     "models:\n  - name: m\n    rps: 100000\n    backends:\n"
                     "      - { url: \"http://127.0.0.1:" + std::to_string(a.port()) + "\", rps: 100000 }\n"
                     "      - { url: \"http://127.0.0.1:" + std::to_string(b.port()) + "\" }\n";
  ConfigResult cr = ParseConfig(yaml, "alloc.yaml");
  ASSERT_TRUE(cr.ok()) << cr.ErrorText();
  WorkerThread w;
  shm::ShmRegion* region = w.region.get();
  // llmcd's quota leaser is not here: every thread slot gets a lease far above the run.
  for (auto& lease : region->leases) {
    for (uint32_t i = 0; i < shm::kNumLimiters; ++i) lease.grant[i].store(1000000000, std::memory_order_relaxed);
    lease.generation.store(1, std::memory_order_release);
  }
  ASSERT_TRUE(w.Start(cr.config));

  const std::string key = "Authorization: Bearer " + secret + "\r\n";
  const std::string wrong = "Authorization: Bearer sk-not-a-key\r\n";
  const std::string plain = R"({"model":"m","messages":[{"role":"user","content":"hello"}]})";
  const std::string stream = R"({"model":"m","stream":true,"messages":[{"role":"user","content":"hello"}]})";
  const uint32_t rpm = shm::LimiterIndex(shm::LimitKind::kKeyRpm, 0);
  {
    Client c(w.port());
    ASSERT_TRUE(c.ok());
    std::string ans;
    auto round = [&](int n) {
      for (int i = 0; i < n; ++i) {
        ASSERT_EQ(c.Post(plain, &ans, key), 200) << ans;
        ASSERT_NE(ans.find("x-ratelimit-remaining-requests"), std::string::npos) << ans;
        ASSERT_EQ(c.Post(stream, &ans, key), 200) << ans;
        ASSERT_NE(ans.find("data: [DONE]"), std::string::npos) << ans;
        ASSERT_EQ(c.Post(plain, &ans, wrong), 401) << ans;
      }
    };
    round(50);
    uint64_t checked_before = 0;
    for (const auto& slot : region->slots) checked_before += slot.limiter_use[rpm].checked.load();
    g_allocs = 0;
    g_armed = true;
    round(100);
    g_armed = false;
    EXPECT_EQ(g_allocs.load(), 0u) << "heap allocations on the worker thread during 300 keyed requests";
    // The key's limiter really ran while counting.
    uint64_t checked = 0;
    for (const auto& slot : region->slots) checked += slot.limiter_use[rpm].checked.load();
    EXPECT_EQ(checked - checked_before, 200u);
  }
}

// The counter itself sees an allocation made on the counted thread.
TEST(RequestAllocationTest, CounterSeesTheWorkerThread) {
  std::thread t([] {
    g_worker = pthread_self();
    g_have_worker.store(true, std::memory_order_release);
    g_allocs = 0;
    g_armed = true;
    auto* s = new std::string(100, 'x');
    g_armed = false;
    delete s;
    g_have_worker.store(false);
  });
  t.join();
  EXPECT_GE(g_allocs.load(), 1u);
}

}  // namespace
}  // namespace llmgw::dataplane
