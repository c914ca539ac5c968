// Integration tests of llmgw under load and abuse: many and idle connections, slow and
// chaotic clients, memory bounds, two threads on one port, the admission queue and its
// priorities, SIGTERM's drain and a publisher gone. Real gateway process, scripted
// upstreams on loopback, the snapshot published into shm by the test (as llmcd would).
// The request path itself is in gateway_integration_test.cc.
#include <gtest/gtest.h>
#include <sys/resource.h>

#include <algorithm>
#include <cstdlib>

#include "tests/dataplane/gateway_test_util.h"
#include "tests/dataplane/harness.h"

namespace llmgw::testing {
namespace {

TEST(GatewayTest, ManyIdleConnectionsDoNotBlockService) {
  TestUpstream up;
  Gateway gw(OneModel({up.port()}));
  ASSERT_TRUE(gw.WaitReady());
  std::vector<int> idle;
  for (int i = 0; i < 500; ++i) {
    int fd = ConnectTo(gw.port());
    ASSERT_GE(fd, 0);
    idle.push_back(fd);
  }
  SendAll(idle[0], "POST /v1/chat/completions HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\n{\"mo");  // stalls
  uint64_t t0 = MonoMs();
  Response r = Request(gw.port(), Post("/v1/chat/completions", kChat));
  EXPECT_EQ(r.status, 200);
  EXPECT_LT(MonoMs() - t0, 1000u);
  for (int fd : idle) ::close(fd);
}

TEST(GatewayTest, SigtermDrainsInFlightAndExitsZero) {
  TestUpstream::Options o;
  o.events = 5;
  o.interval_ms = 60;
  TestUpstream up(o);
  Gateway gw(OneModel({up.port()}), "  drain_ms: 5000\n");
  ASSERT_TRUE(gw.WaitReady());
  int fd = ConnectTo(gw.port());
  SendAll(fd, Post("/v1/chat/completions", R"({"model":"m1","stream":true})"));
  std::string buf;
  ASSERT_TRUE(ReadUntil(fd, &buf, [](const std::string& b) { return b.find("\"t0\"") != std::string::npos; }, 3000));
  std::thread reader([&] {
    ReadUntil(fd, &buf, [](const std::string& b) { return b.find("0\r\n\r\n") != std::string::npos; }, 5000);
  });
  int rc = gw.Stop(SIGTERM, 5000);
  reader.join();
  EXPECT_EQ(rc, 0);
  EXPECT_NE(buf.find("data: [DONE]"), std::string::npos) << buf;  // the stream finished
  EXPECT_LT(ConnectTo(gw.port()), 0);  // no longer accepting
  ::close(fd);
}

TEST(GatewayTest, SlowReadingClientKeepsMemoryBounded) {
  TestUpstream::Options o;
  o.events = 3000;
  o.event_pad = 16000;  // ~48 MB of stream in total
  TestUpstream up(o);
  Gateway gw(OneModel({up.port()}));
  ASSERT_TRUE(gw.WaitReady());
  long rss_before = gw.RssKb();
  int fd = ConnectTo(gw.port());
  SendAll(fd, Post("/v1/chat/completions", R"({"model":"m1","stream":true})"));
  std::this_thread::sleep_for(std::chrono::milliseconds(500));  // the client reads nothing
  long rss_stalled = gw.RssKb();
  int sent_while_stalled = up.events_sent();
  // The upstream was stopped by backpressure long before the end of the stream, and the
  // gateway did not buffer what it could not deliver.
  EXPECT_LT(sent_while_stalled, 1500);
  EXPECT_LT(rss_stalled - rss_before, 4096) << rss_before << " -> " << rss_stalled;
  std::string buf;
  ASSERT_TRUE(ReadUntil(fd, &buf, [](const std::string& b) {
    return b.size() > 5 && b.compare(b.size() - 5, 5, "0\r\n\r\n") == 0; }, 20000))
      << buf.size() << " bytes, upstream sent " << up.events_sent() << " tail " << buf.substr(buf.size() - 100);
  EXPECT_NE(buf.find("data: [DONE]"), std::string::npos);
  EXPECT_EQ(up.events_sent(), 3000);
  ::close(fd);
}

TEST(GatewayTest, TwoThreadsServeOnePort) {
  TestUpstream up;
  Gateway gw(OneModel({up.port()}), "", true, /*threads=*/2);
  ASSERT_TRUE(gw.WaitReady());
  for (int i = 0; i < 40; ++i) ASSERT_EQ(Request(gw.port(), Post("/v1/chat/completions", kChat)).status, 200);
  std::this_thread::sleep_for(std::chrono::milliseconds(30));
  shm::StatsTotals t;
  SumStatsNow(gw, &t);
  EXPECT_EQ(t.live_threads, 2u);
  EXPECT_EQ(t.models[0].requests_by_code[shm::StatusCodeIndex(200)], 40u);
}

TEST(GatewayTest, PipelinedInputBeyondTheBufferLimitWaitsAndStaysInOrder) {
  TestUpstream::Options o;
  o.events = 3;
  o.interval_ms = 100;
  TestUpstream up(o);
  Gateway gw(OneModel({up.port()}), "  max_body_bytes: 200000\n");
  ASSERT_TRUE(gw.WaitReady());
  int fd = ConnectTo(gw.port());
  std::string big = R"({"model":"m1","messages":[{"role":"user","content":")" + std::string(50000, 'a') + R"("}]})";
  std::string all = Post("/v1/chat/completions", R"({"model":"m1","stream":true})", "X-Request-ID: s\r\n");
  for (int i = 0; i < 4; ++i) all += Post("/v1/chat/completions", big, "X-Request-ID: b" + std::to_string(i) + "\r\n");
  std::thread writer([&] { SendAll(fd, all); });  // 200 KB pipelined behind a slow stream
  std::string buf;
  Response first = ReadResponse(fd, &buf, 5000);
  EXPECT_EQ(first.Header("x-request-id"), "s");
  EXPECT_NE(first.body.find("[DONE]"), std::string::npos);
  for (int i = 0; i < 4; ++i) {
    Response r = ReadResponse(fd, &buf, 5000);
    EXPECT_EQ(r.status, 200) << i;
    // An append, not "b" + std::to_string(i): GCC 12 -O3 reports a false -Wrestrict on
    // that here (CI's Release build).
    std::string id = "b";
    id += std::to_string(i);
    EXPECT_EQ(r.Header("x-request-id"), id);
  }
  writer.join();
  EXPECT_EQ(up.requests(), 5);
  ::close(fd);
}

TEST(GatewayTest, IdleConnectionsCostLittleMemory) {
  rlimit rl{};
  getrlimit(RLIMIT_NOFILE, &rl);
  if (rl.rlim_cur < 8192 && rl.rlim_max > rl.rlim_cur) {
    rl.rlim_cur = std::min<rlim_t>(rl.rlim_max, 8192);
    setrlimit(RLIMIT_NOFILE, &rl);
  }
  if (rl.rlim_cur < 4100) GTEST_SKIP() << "RLIMIT_NOFILE too low for 2000 connections: " << rl.rlim_cur;
  TestUpstream up;
  Gateway gw(OneModel({up.port()}));
  ASSERT_TRUE(gw.WaitReady());
  long before = gw.RssKb();
  std::vector<int> fds;
  for (int i = 0; i < 2000; ++i) {
    int fd = ConnectTo(gw.port());
    ASSERT_GE(fd, 0);
    fds.push_back(fd);
  }
  // Every connection has been accepted and served once it answers a request.
  ASSERT_EQ(Request(gw.port(), "GET /health HTTP/1.1\r\nHost: t\r\n\r\n").status, 200);
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  long after = gw.RssKb();
  double per_conn_kb = static_cast<double>(after - before) / 2000.0;
  std::printf("RSS per idle connection: %.2f KB\n", per_conn_kb);
#if defined(__SANITIZE_ADDRESS__)
  EXPECT_LT(per_conn_kb, 6.0);  // redzones around every allocation
#else
  EXPECT_LT(per_conn_kb, 2.0);  // the issue's target
#endif
  for (int fd : fds) ::close(fd);
}

TEST(GatewayTest, SlowClientHeadGets408) {
  TestUpstream up;
  Gateway gw(OneModel({up.port()}), "  timeouts: { client_header_ms: 200 }\n");
  ASSERT_TRUE(gw.WaitReady());
  int fd = ConnectTo(gw.port());
  uint64_t t0 = MonoMs();
  SendAll(fd, "POST /v1/chat/completions HTTP/1.1\r\nHost: t\r\n");  // and nothing more
  std::string buf;
  Response r = ReadResponse(fd, &buf, 3000);
  ExpectOpenAiError(r, 408, "timeout");
  EXPECT_GE(MonoMs() - t0, 190u);
  EXPECT_EQ(r.Header("connection"), "close");
  ::close(fd);
}

std::string OneSlotModel(uint16_t port) {
  return "models:\n  - name: m1\n    backends:\n      - { url: \"http://127.0.0.1:" + std::to_string(port) +
         "\", max_concurrent: 1 }\n";
}

TEST(GatewayTest, FullBackendQueuesTheRequestUntilASlotFrees) {
  TestUpstream::Options o;
  o.events = 3;
  o.interval_ms = 150;
  TestUpstream up(o);
  Gateway gw(OneSlotModel(up.port()), "  admission: { queue_size: 8, queue_timeout_ms: 5000 }\n");
  ASSERT_TRUE(gw.WaitReady());
  int fd = ConnectTo(gw.port());
  SendAll(fd, Post("/v1/chat/completions", R"({"model":"m1","stream":true})"));
  std::string buf;
  ASSERT_TRUE(ReadUntil(fd, &buf, [](const std::string& b) { return b.find("\"t0\"") != std::string::npos; }, 3000));
  uint64_t t0 = MonoMs();
  // max_concurrent 1 is taken: this one waits, then runs when the stream is done.
  Response r = Request(gw.port(), Post("/v1/chat/completions", kChat), 5000);
  EXPECT_EQ(r.status, 200) << r.body;
  EXPECT_GE(MonoMs() - t0, 200u);
  EXPECT_NE(buf.find("\"t0\""), std::string::npos);
  ::close(fd);
  shm::StatsTotals t;
  SumStatsNow(gw, &t);
  EXPECT_EQ(t.admission_queued, 1u);
  EXPECT_EQ(t.admission_rejected, 0u);
}

// On a one-slot model (OneSlotModel), a stream that has started holds the only backend
// slot, so the next requests queue. Returns its connection (the caller closes it), or -1.
int OccupyTheOnlySlot(uint16_t port) {
  int fd = ConnectTo(port);
  SendAll(fd, Post("/v1/chat/completions", R"({"model":"m1","stream":true})"));
  std::string buf;
  if (ReadUntil(fd, &buf, [](const std::string& b) { return b.find("\"t0\"") != std::string::npos; }, 3000)) return fd;
  ::close(fd);
  return -1;
}

TEST(GatewayTest, AdmissionTimeoutAndFullQueueGive429WithRetryAfter) {
  TestUpstream::Options o;
  o.events = 3;
  o.interval_ms = 300;
  TestUpstream up(o);
  Gateway gw(OneSlotModel(up.port()), "  admission: { queue_size: 1, queue_timeout_ms: 100 }\n");
  ASSERT_TRUE(gw.WaitReady());
  int fd = OccupyTheOnlySlot(gw.port());
  ASSERT_GE(fd, 0) << "the stream that takes the only slot did not start";
  // One waiter fits and times out; a second one at the same priority finds the queue full.
  int w = ConnectTo(gw.port());
  SendAll(w, Post("/v1/chat/completions", kChat));
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  Response full = Request(gw.port(), Post("/v1/chat/completions", kChat), 3000);
  ExpectOpenAiError(full, 429, "overloaded");
  EXPECT_EQ(full.Header("retry-after"), "1");
  std::string wb;
  Response waited = ReadResponse(w, &wb, 3000);
  ExpectOpenAiError(waited, 429, "overloaded");
  ::close(w);
  ::close(fd);
}

TEST(GatewayTest, HigherPriorityEvictsALowerOneFromAFullQueue) {
  TestUpstream::Options o;
  o.events = 3;
  o.interval_ms = 200;
  TestUpstream up(o);
  Gateway gw(OneSlotModel(up.port()), "  admission: { queue_size: 1, queue_timeout_ms: 5000 }\n");
  ASSERT_TRUE(gw.WaitReady());
  int fd = OccupyTheOnlySlot(gw.port());
  ASSERT_GE(fd, 0) << "the stream that takes the only slot did not start";
  int low = ConnectTo(gw.port());
  SendAll(low, Post("/v1/chat/completions", R"({"model":"m1","priority":1})"));  // yields
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  int high = ConnectTo(gw.port());
  SendAll(high, Post("/v1/chat/completions", R"({"model":"m1"})"));  // the client's level, higher
  std::string lb, hb;
  ExpectOpenAiError(ReadResponse(low, &lb, 3000), 429, "overloaded");
  EXPECT_EQ(ReadResponse(high, &hb, 3000).status, 200);
  ::close(low);
  ::close(high);
  ::close(fd);
}

// A priority declared in the body is bounded by the client's level (0..10, higher first;
// 5 until client keys): INT32_MAX, 1e300 or 6 are the same as 5, so they cannot push an
// earlier waiter at that level out of a full queue (before: -2147483648 or 1e300 did).
TEST(GatewayTest, SelfDeclaredPriorityCannotEvictOthers) {
  TestUpstream::Options o;
  o.events = 3;
  o.interval_ms = 200;
  TestUpstream up(o);
  Gateway gw(OneSlotModel(up.port()), "  admission: { queue_size: 1, queue_timeout_ms: 5000 }\n");
  ASSERT_TRUE(gw.WaitReady());
  int fd = OccupyTheOnlySlot(gw.port());
  ASSERT_GE(fd, 0) << "the stream that takes the only slot did not start";
  int waiter = ConnectTo(gw.port());
  SendAll(waiter, Post("/v1/chat/completions", R"({"model":"m1"})"));
  std::this_thread::sleep_for(std::chrono::milliseconds(30));
  for (const char* claim : {"2147483647", "-2147483648", "1e300", "6", "-1e300"}) {
    Response r = Request(gw.port(), Post("/v1/chat/completions", std::string(R"({"model":"m1","priority":)") + claim + "}"),
                         3000);
    ExpectOpenAiError(r, 429, "overloaded");
  }
  std::string wb;
  EXPECT_EQ(ReadResponse(waiter, &wb, 3000).status, 200) << "the first waiter kept its place";
  ::close(waiter);
  ::close(fd);
}

// Clients that misbehave in every way at once (half requests, early closes mid-stream,
// garbage, pipelining) against a mix of good, failing and dying backends: the gateway
// keeps serving and nothing crashes (run it under ASan to catch memory errors).
TEST(GatewayTest, ChaoticClientsDoNotBreakTheGateway) {
  TestUpstream::Options so;
  so.events = 20;
  so.interval_ms = 2;
  TestUpstream streaming(so);
  TestUpstream::Options fo;
  fo.status = 500;
  TestUpstream failing(fo);
  TestUpstream::Options co;
  co.events = 20;
  co.close_after_events = 3;
  TestUpstream dying(co);
  Gateway gw(OneModel({streaming.port(), failing.port(), dying.port()}),
             "  retries: { max: 2, backoff_ms: 1 }\n", true, 2);
  ASSERT_TRUE(gw.WaitReady());
  std::atomic<int> answered{0};
  auto worker = [&](int seed) {
    uint64_t r = static_cast<uint64_t>(seed) * 2654435761u + 1;
    auto next = [&] { r ^= r << 13; r ^= r >> 7; r ^= r << 17; return r; };
    for (int i = 0; i < 60; ++i) {
      int fd = ConnectTo(gw.port());
      if (fd < 0) continue;
      std::string req = Post("/v1/chat/completions", next() % 2 ? R"({"model":"m1","stream":true})" : kChat);
      switch (next() % 6) {
        case 0: SendAll(fd, req.substr(0, next() % req.size())); break;  // half a request
        case 1: SendAll(fd, req); std::this_thread::sleep_for(std::chrono::microseconds(next() % 3000)); break;
        case 2: SendAll(fd, "\x01\x02 garbage\r\n\r\n"); break;
        case 3: SendAll(fd, req + req + req); break;
        default: {
          SendAll(fd, req);
          std::string buf;
          if (ReadResponse(fd, &buf, 3000).status != 0) answered++;
        }
      }
      ::close(fd);
    }
  };
  std::vector<std::thread> ts;
  for (int i = 0; i < 6; ++i) ts.emplace_back(worker, i + 1);
  for (auto& t : ts) t.join();
  EXPECT_GT(answered.load(), 0);
  EXPECT_EQ(Request(gw.port(), "GET /health HTTP/1.1\r\nHost: t\r\n\r\n").status, 200);
  EXPECT_EQ(gw.Stop(SIGTERM), 0);  // still alive, and drains cleanly
}

TEST(GatewayTest, KeepsServingWhenThePublisherIsGone) {
  TestUpstream up;
  Gateway gw(OneModel({up.port()}), "", /*publish=*/false);
  // A short-lived publisher process stands in for an llmcd that publishes once and dies.
  auto snap = gw.BuildSnap();
  ASSERT_NE(snap, nullptr);
  pid_t pub = ::fork();
  if (pub == 0) {
    gw.PublishBuilt(snap.get());
    _exit(0);
  }
  int st = 0;
  ::waitpid(pub, &st, 0);
  ASSERT_TRUE(gw.WaitReady());
  std::this_thread::sleep_for(std::chrono::milliseconds(100));  // no heartbeat since
  EXPECT_EQ(Request(gw.port(), Post("/v1/chat/completions", kChat)).status, 200);
  EXPECT_EQ(Request(gw.port(), "GET /ready HTTP/1.1\r\nHost: t\r\n\r\n").status, 200);
}

}  // namespace
}  // namespace llmgw::testing
