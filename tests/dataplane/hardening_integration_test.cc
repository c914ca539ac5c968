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

}  // namespace
}  // namespace llmgw::testing
