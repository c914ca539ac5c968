// Regression tests for the defects hostile testing found (issue 17), each against a real
// llmgw process and scripted upstreams on loopback: interim 1xx answers from a backend,
// and long streams judged as slow calls.
#include <gtest/gtest.h>

#include "tests/dataplane/harness.h"

namespace llmgw::testing {
namespace {

const std::string kChat = R"({"model":"m1","messages":[{"role":"user","content":"hello"}]})";
const std::string kStreamChat = R"({"model":"m1","stream":true,"messages":[{"role":"user","content":"hi"}]})";

void SumStatsNow(Gateway& gw, shm::StatsTotals* t) {
  shm::SumStats(*gw.region(), 4, shm::NowUnixMs() + 1000, 10000, t);
}

// A backend (or a proxy in front of it) that sends `103 Early Hints` first: llmgw must skip
// the interim answer, relay the final one, and never pool the connection with an answer
// still pending — before the fix alice got a final `103` and bob got alice's answer.
TEST(HardeningTest, EarlyHintsAreSkippedAndNoAnswerGoesToTheNextClient) {
  TestUpstream::Options o;
  o.number_answers = true;
  o.interim = "HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n";
  TestUpstream up(o);
  Gateway gw(OneModel({up.port()}));
  ASSERT_TRUE(gw.WaitReady());
  int fd = ConnectTo(gw.port());
  ASSERT_GE(fd, 0);
  std::string buf;
  ASSERT_TRUE(SendAll(fd, Post("/v1/chat/completions", kChat)));
  Response alice = ReadResponse(fd, &buf);
  EXPECT_EQ(alice.status, 200) << alice.body;
  EXPECT_NE(alice.body.find("\"n\":1,"), std::string::npos) << alice.body;
  EXPECT_EQ(alice.Header("link"), "");  // the interim's headers are not the answer's
  ASSERT_TRUE(SendAll(fd, Post("/v1/chat/completions", kChat)));
  Response bob = ReadResponse(fd, &buf);
  EXPECT_EQ(bob.status, 200) << bob.body;
  EXPECT_NE(bob.body.find("\"n\":2,"), std::string::npos) << bob.body;
  ::close(fd);
  // A stream behind an interim answer: the events arrive, framed once.
  Response s = Request(gw.port(), Post("/v1/chat/completions", kStreamChat));
  EXPECT_EQ(s.status, 200);
  EXPECT_EQ(s.Header("content-type"), "text/event-stream");
  EXPECT_NE(s.body.find("data: [DONE]"), std::string::npos) << s.body;
  EXPECT_EQ(up.connections(), 1);  // the pooled connection stayed in step
}

TEST(HardeningTest, SeveralInterimAnswersIncluding100ContinueAreSkipped) {
  TestUpstream::Options o;
  o.number_answers = true;
  o.interim = "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 102 Processing\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: <x>\r\n\r\n";
  TestUpstream up(o);
  Gateway gw(OneModel({up.port()}));
  ASSERT_TRUE(gw.WaitReady());
  for (int i = 1; i <= 3; ++i) {
    Response r = Request(gw.port(), Post("/v1/chat/completions", kChat));
    EXPECT_EQ(r.status, 200) << i << " " << r.body;
    EXPECT_NE(r.body.find("\"n\":" + std::to_string(i) + ","), std::string::npos) << r.body;
  }
}

// `100 Continue` and then nothing: the request times out as one without a first byte
// (504), and the connection, whose answer may still come, is closed rather than pooled,
// so the next request is answered on a fresh connection.
TEST(HardeningTest, InterimWithoutAFinalAnswerTimesOutAndIsNotPooled) {
  TestUpstream::Options o;
  o.number_answers = true;
  o.interim = "HTTP/1.1 100 Continue\r\n\r\n";
  o.hang_after_interim = 1;
  TestUpstream up(o);
  Gateway gw(OneModel({up.port()}), "  timeouts: { first_byte_ms: 300 }\n  retries: { max: 0 }\n");
  ASSERT_TRUE(gw.WaitReady());
  Response first = Request(gw.port(), Post("/v1/chat/completions", kChat), 5000);
  EXPECT_EQ(first.status, 504) << first.body;
  EXPECT_NE(first.body.find("\"code\":\"upstream_timeout\""), std::string::npos) << first.body;
  Response second = Request(gw.port(), Post("/v1/chat/completions", kChat), 5000);
  EXPECT_EQ(second.status, 200) << second.body;
  EXPECT_NE(second.body.find("\"n\":2,"), std::string::npos) << second.body;
  EXPECT_EQ(up.connections(), 2);
}

// The slow-call rule of the circuit breaker is about a backend that is slow to answer, not
// about a long generation: a stream that starts at once but lasts longer than
// slow_call_ms is not a slow call; an answer whose head comes after it is.
TEST(HardeningTest, SlowCallsAreJudgedOnTimeToFirstByteNotOnStreamLength) {
  TestUpstream::Options fast_o;
  fast_o.events = 8;
  fast_o.interval_ms = 60;  // ~480 ms per stream, over slow_call_ms
  TestUpstream fast(fast_o);
  TestUpstream::Options slow_o;
  slow_o.head_delay_ms = 400;  // the head itself comes after slow_call_ms
  TestUpstream slow(slow_o);
  std::string models =
      "circuit_breaker: { slow_call_ms: 250 }\n"
      "models:\n"
      "  - name: m1\n    backends:\n      - { url: \"http://127.0.0.1:" + std::to_string(fast.port()) + "\" }\n"
      "  - name: m2\n    backends:\n      - { url: \"http://127.0.0.1:" + std::to_string(slow.port()) + "\" }\n";
  Gateway gw(models);
  ASSERT_TRUE(gw.WaitReady());
  for (int i = 0; i < 3; ++i) {
    Response r = Request(gw.port(), Post("/v1/chat/completions", kStreamChat), 5000);
    ASSERT_EQ(r.status, 200);
    ASSERT_NE(r.body.find("data: [DONE]"), std::string::npos);
  }
  Response r = Request(gw.port(), Post("/v1/chat/completions", R"({"model":"m2","messages":[]})"), 5000);
  ASSERT_EQ(r.status, 200);
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  shm::StatsTotals t;
  SumStatsNow(gw, &t);
  EXPECT_EQ(t.backends[0].requests, 3u);
  EXPECT_EQ(t.backends[0].slow_calls, 0u);
  EXPECT_EQ(t.backends[1].requests, 1u);
  EXPECT_EQ(t.backends[1].slow_calls, 1u);
}


// A free loopback port for a gateway that two processes must share (an upgrade).
uint16_t FreePort() {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a));
  socklen_t len = sizeof(a);
  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(fd);
  return ntohs(a.sin_port);
}

// Clients that send one request after another, as fast as answers come: on one keep-alive
// connection (reconnecting when an answer says `Connection: close`), or a new connection
// each time. Any request without a complete 200 answer is a failure.
struct LoadClients {
  std::atomic<bool> stop{false};
  std::atomic<int> ok{0}, failed{0};
  std::mutex mu;
  std::vector<std::string> failures;
  std::vector<std::thread> threads;
  void Fail(const std::string& why) {
    ++failed;
    std::lock_guard<std::mutex> g(mu);
    if (failures.size() < 10) failures.push_back(why);
  }
  void Run(uint16_t port, int keepalive, int per_request) {
    for (int i = 0; i < keepalive + per_request; ++i) {
      bool keep = i < keepalive;
      threads.emplace_back([this, port, keep] {
        int fd = -1;
        int served_here = 0;
        std::string buf;
        while (!stop.load()) {
          if (fd < 0) {
            fd = ConnectTo(port);
            served_here = 0;
            buf.clear();
            if (fd < 0) {
              Fail("connect refused");
              std::this_thread::sleep_for(std::chrono::milliseconds(5));
              continue;
            }
          }
          std::string req = Post("/v1/chat/completions", kChat, keep ? "" : "Connection: close\r\n");
          if (!SendAll(fd, req)) {
            Fail("send failed");
            ::close(fd);
            fd = -1;
            continue;
          }
          Response r = ReadResponse(fd, &buf, 3000);
          if (!r.complete || r.status != 200) {
            Fail(std::string(keep ? "keep-alive" : "per-request") + " connection, answer " +
                 std::to_string(served_here + 1) + " on it: " +
                 (r.complete ? "status " + std::to_string(r.status) : "no answer (EOF or timeout)") + " at " +
                 std::to_string(MonoMs() % 100000));
            ::close(fd);
            fd = -1;
            continue;
          }
          ++ok;
          ++served_here;
          if (!keep || r.Header("connection") == "close") {
            ::close(fd);
            fd = -1;
          }
        }
        if (fd >= 0) ::close(fd);
      });
    }
  }
  void Join() {
    stop = true;
    for (auto& t : threads) t.join();
  }
};

// The documented binary upgrade: start the new llmgw beside the old one, SIGTERM the old
// one. Under steady load — keep-alive connections and a connection per request — not one
// request may fail: the new llmgw takes the old one's listening sockets (their accept
// queues), and the old one's idle keep-alive connections stay open long enough for a
// request on its way to be answered with `Connection: close`.
TEST(HardeningTest, BinaryUpgradeUnderLoadLosesNoRequest) {
  TestUpstream up;
  uint16_t port = FreePort();
  Gateway gw(OneModel({up.port()}), "  drain_ms: 5000\n", true, 2, 0, port);
  ASSERT_EQ(gw.port(), port);
  ASSERT_TRUE(gw.WaitReady());
  LoadClients load;
  load.Run(port, 6, 3);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  uint16_t new_port = 0;
  pid_t next = gw.Spawn(&new_port);
  ASSERT_GT(next, 0);
  EXPECT_EQ(new_port, port);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  int before_stop = load.ok.load();
  std::fprintf(stderr, "SIGTERM at %llu\n", static_cast<unsigned long long>(MonoMs() % 100000));
  EXPECT_EQ(gw.Stop(SIGTERM, 8000), 0);
  std::fprintf(stderr, "old exited at %llu\n", static_cast<unsigned long long>(MonoMs() % 100000));
  int at_old_exit = load.ok.load();
  std::this_thread::sleep_for(std::chrono::milliseconds(400));
  load.Join();
  int after = load.ok.load();
  EXPECT_EQ(load.failed.load(), 0) << [&] {
    std::string s;
    for (auto& f : load.failures) s += f + "; ";
    return s;
  }();
  EXPECT_GT(before_stop, 50);
  EXPECT_GT(after - at_old_exit, 50) << "the new llmgw serves once the old one is gone";
  EXPECT_EQ(Gateway::StopPid(next, SIGTERM), 0);
}

// drain_ms passing with a stream still running: the stream ends with the SSE error event
// and its terminating chunk (before: cut without a word), and the count is logged.
TEST(HardeningTest, DrainDeadlineEndsAStreamWithTheSseErrorEvent) {
  TestUpstream::Options o;
  o.events = 100;
  o.interval_ms = 50;
  TestUpstream up(o);
  Gateway gw(OneModel({up.port()}), "  drain_ms: 300\n");
  ASSERT_TRUE(gw.WaitReady());
  int fd = ConnectTo(gw.port());
  SendAll(fd, Post("/v1/chat/completions", kStreamChat));
  std::string buf;
  ASSERT_TRUE(ReadUntil(fd, &buf, [](const std::string& b) { return b.find("\"t0\"") != std::string::npos; }, 3000));
  std::thread reader([&] {
    ReadUntil(fd, &buf, [](const std::string& b) { return b.find("\r\n0\r\n\r\n") != std::string::npos; }, 5000);
  });
  int rc = gw.Stop(SIGTERM, 5000);
  reader.join();
  EXPECT_EQ(rc, 0);
  Response r;
  ASSERT_TRUE(ParseResponse(&buf, &r)) << "the chunked body is terminated: " << buf;
  EXPECT_NE(r.body.find("\"pad\":\"\"}\n\nevent: error\ndata: {\"error\":"), std::string::npos) << r.body;
  EXPECT_NE(r.body.find("\"code\":\"shutting_down\""), std::string::npos) << r.body;
  EXPECT_EQ(r.body.find("data: [DONE]"), std::string::npos);
  ::close(fd);
}

// An upstream that dies in the middle of an SSE line: llmgw's error event must not be
// glued onto the half-written line (SSE parsers would never see it).
TEST(HardeningTest, ErrorEventAfterAHalfWrittenSseLineStartsOnItsOwn) {
  // The byte path (resume off, the client asked for usage: no StreamFilter): the upstream's
  // half-written event went out, so the error event needs a blank line before it.
  const std::string byte_path = "  resume_streams: false\n";
  const std::string with_usage =
      R"({"model":"m1","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"hi"}]})";
  TestUpstream::Options o;
  o.events = 5;
  o.close_after_events = 2;
  o.partial_event = "data: {\"choices\":[{\"delta\":{\"content\":\"tr";
  TestUpstream up(o);
  Gateway gw(OneModel({up.port()}), byte_path);
  ASSERT_TRUE(gw.WaitReady());
  Response r = Request(gw.port(), Post("/v1/chat/completions", with_usage), 5000);
  EXPECT_EQ(r.status, 200);
  EXPECT_NE(r.body.find("\"content\":\"tr\n\nevent: error\ndata: {\"error\":"), std::string::npos) << r.body;
  // After whole events nothing is added before the event.
  TestUpstream::Options o2 = o;
  o2.partial_event.clear();
  TestUpstream up2(o2);
  Gateway gw2(OneModel({up2.port()}), byte_path);
  ASSERT_TRUE(gw2.WaitReady());
  Response r2 = Request(gw2.port(), Post("/v1/chat/completions", with_usage), 5000);
  EXPECT_NE(r2.body.find("\"pad\":\"\"}\n\nevent: error\n"), std::string::npos) << r2.body;
  EXPECT_EQ(r2.body.find("\n\n\n"), std::string::npos) << r2.body;
  // Through StreamFilter (resume on: the default) only whole events reach the client: the
  // half-written one never does, and the error event follows the last whole one.
  TestUpstream up3(o);
  Gateway gw3(OneModel({up3.port()}));
  ASSERT_TRUE(gw3.WaitReady());
  Response r3 = Request(gw3.port(), Post("/v1/chat/completions", kStreamChat), 5000);
  EXPECT_EQ(r3.status, 200);
  EXPECT_EQ(r3.body.find("\"content\":\"tr"), std::string::npos) << r3.body;
  EXPECT_NE(r3.body.find("\"pad\":\"\"}\n\nevent: error\n"), std::string::npos) << r3.body;
  EXPECT_EQ(r3.body.find("\n\n\n"), std::string::npos) << r3.body;
}


// A client that stops reading its stream holds the backend slot only for
// timeouts.client_send_ms, not until total_ms: before, with every slot held by such
// clients every other client got 429 after the queue timeout.
TEST(HardeningTest, AClientThatStopsReadingLosesItsSlot) {
  TestUpstream::Options o;
  o.events = 3000;
  o.event_pad = 16000;  // ~48 MB: fills every socket buffer on the way
  TestUpstream up(o);
  Gateway gw("models:\n  - name: m1\n    backends:\n      - { url: \"http://127.0.0.1:" + std::to_string(up.port()) +
                 "\", max_concurrent: 1 }\n",
             "  timeouts: { client_send_ms: 300 }\n  admission: { queue_size: 4, queue_timeout_ms: 4000 }\n");
  ASSERT_TRUE(gw.WaitReady());
  int stalled = ConnectTo(gw.port());
  int small = 4096;
  setsockopt(stalled, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
  SendAll(stalled, Post("/v1/chat/completions", kStreamChat));  // and never read
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  uint64_t t0 = MonoMs();
  Response r = Request(gw.port(), Post("/v1/chat/completions", kChat), 6000);
  EXPECT_EQ(r.status, 200) << r.body;
  EXPECT_LT(MonoMs() - t0, 2500u) << "served once the stalled reader was dropped";
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  shm::StatsTotals t;
  SumStatsNow(gw, &t);
  EXPECT_EQ(t.errors_by_kind[static_cast<int>(ErrorKind::kClientTooSlow)], 1u);
  ::close(stalled);
}

int ConnectFrom(const char* ip, uint16_t port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  inet_pton(AF_INET, ip, &a.sin_addr);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) {
    ::close(fd);
    return -1;
  }
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

// gateway.max_requests_per_client: one address beyond its cap gets 429, another address
// is served, and the cap frees up as requests end.
TEST(HardeningTest, RequestsPerClientAddressAreCapped) {
  TestUpstream::Options o;
  o.events = 4;
  o.interval_ms = 150;
  TestUpstream up(o);
  Gateway gw(OneModel({up.port()}), "  max_requests_per_client: 2\n");
  ASSERT_TRUE(gw.WaitReady());
  int a1 = ConnectFrom("127.0.0.1", gw.port());
  int a2 = ConnectFrom("127.0.0.1", gw.port());
  ASSERT_GE(a1, 0);
  ASSERT_GE(a2, 0);
  SendAll(a1, Post("/v1/chat/completions", kStreamChat));
  SendAll(a2, Post("/v1/chat/completions", kStreamChat));
  std::string b1, b2;
  ASSERT_TRUE(ReadUntil(a1, &b1, [](const std::string& b) { return b.find("\"t0\"") != std::string::npos; }, 3000));
  ASSERT_TRUE(ReadUntil(a2, &b2, [](const std::string& b) { return b.find("\"t0\"") != std::string::npos; }, 3000));
  int a3 = ConnectFrom("127.0.0.1", gw.port());
  SendAll(a3, Post("/v1/chat/completions", kChat));
  std::string b3;
  Response over = ReadResponse(a3, &b3, 3000);
  EXPECT_EQ(over.status, 429) << over.body;
  EXPECT_NE(over.body.find("\"code\":\"rate_limit_exceeded\""), std::string::npos) << over.body;
  int other = ConnectFrom("127.0.0.2", gw.port());
  ASSERT_GE(other, 0);
  SendAll(other, Post("/v1/chat/completions", kChat));
  std::string bo;
  EXPECT_EQ(ReadResponse(other, &bo, 3000).status, 200) << "another address is not capped";
  ::close(other);
  // Once the streams end, the address is below its cap again.
  ASSERT_TRUE(ReadUntil(a1, &b1, [](const std::string& b) { return b.find("0\r\n\r\n") != std::string::npos; }, 5000));
  ASSERT_TRUE(ReadUntil(a2, &b2, [](const std::string& b) { return b.find("0\r\n\r\n") != std::string::npos; }, 5000));
  SendAll(a3, Post("/v1/chat/completions", kChat));
  Response again = ReadResponse(a3, &b3, 3000);
  EXPECT_EQ(again.status, 200) << again.body;
  ::close(a1);
  ::close(a2);
  ::close(a3);
}

// A backend removed by a reload: llmgw's idle keep-alive connections to it close when the
// snapshot without it arrives (before: they stayed open for the life of the process).
TEST(HardeningTest, IdlePooledConnectionsOfARemovedBackendClose) {
  TestUpstream a, b;
  Gateway gw(OneModel({a.port(), b.port()}, "    policy: round_robin\n"));
  ASSERT_TRUE(gw.WaitReady());
  for (int i = 0; i < 4; ++i) ASSERT_EQ(Request(gw.port(), Post("/v1/chat/completions", kChat)).status, 200);
  ASSERT_GE(a.open_connections(), 1) << "a pooled connection to a";
  auto snap = gw.BuildSnap();
  ASSERT_NE(snap, nullptr);
  snap->backends[0].state = static_cast<uint8_t>(shm::BackendState::kEmpty);  // a is gone
  gw.PublishBuilt(snap.get());
  uint64_t end = MonoMs() + 2000;
  while (a.open_connections() > 0 && MonoMs() < end) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  EXPECT_EQ(a.open_connections(), 0);
  EXPECT_GE(b.open_connections(), 1) << "the other backend's pooled connection stays";
  EXPECT_EQ(Request(gw.port(), Post("/v1/chat/completions", kChat)).status, 200);
}

}  // namespace
}  // namespace llmgw::testing
