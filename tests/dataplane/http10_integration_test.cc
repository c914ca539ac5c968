// Integration tests of llmgw's answers to HTTP/1.0 clients (and of `Connection: close`
// from HTTP/1.1 ones): never chunked coding toward HTTP/1.0, Content-Length when the length
// is known, otherwise a raw body ended by the close; keep-alive only when asked for and the
// length is known. Every test looks at the raw bytes the client receives.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "tests/dataplane/harness.h"

namespace llmgw::testing {
namespace {

const std::string kChat = R"({"model":"m1","messages":[{"role":"user","content":"hello"}]})";
const std::string kStreamChat = R"({"model":"m1","stream":true,"messages":[{"role":"user","content":"hi"}]})";

std::string Post10(const std::string& body, const std::string& extra = "") {
  return "POST /v1/chat/completions HTTP/1.0\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: " +
         std::to_string(body.size()) + "\r\n" + extra + "\r\n" + body;
}

// Everything the gateway sends until it closes the connection (or timeout_ms passes).
struct RawAnswer {
  std::string bytes;
  bool closed = false;  // the gateway closed (EOF) within the time
};

RawAnswer ReadToClose(int fd, int timeout_ms = 5000) {
  RawAnswer a;
  uint64_t end = MonoMs() + static_cast<uint64_t>(timeout_ms);
  while (true) {
    uint64_t now = MonoMs();
    if (now >= end) return a;
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(end - now)) <= 0) return a;
    char tmp[16384];
    ssize_t n = ::read(fd, tmp, sizeof(tmp));
    if (n <= 0) {
      a.closed = true;  // 0 = FIN; an error also ends the connection
      return a;
    }
    a.bytes.append(tmp, static_cast<size_t>(n));
  }
}

// One request on a fresh connection, read until the gateway closes it.
RawAnswer Exchange(uint16_t port, const std::string& raw, int timeout_ms = 5000) {
  int fd = ConnectTo(port);
  if (fd < 0) return {};
  SendAll(fd, raw);
  RawAnswer a = ReadToClose(fd, timeout_ms);
  ::close(fd);
  return a;
}

// The head (up to and including the blank line) and the body of a raw answer.
struct Split {
  std::string head, body;
};
Split SplitAnswer(const std::string& bytes) {
  size_t he = bytes.find("\r\n\r\n");
  if (he == std::string::npos) return {bytes, ""};
  return {bytes.substr(0, he + 4), bytes.substr(he + 4)};
}

bool HasHeaderLine(const std::string& head, const std::string& line) {
  return head.find("\r\n" + line + "\r\n") != std::string::npos;
}
bool HasHeaderName(const std::string& head, std::string name) {
  std::string lower = head;
  for (auto& ch : lower) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  for (auto& ch : name) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  return lower.find("\r\n" + name + ":") != std::string::npos;
}

// True when nothing arrives and the connection stays open for `ms`.
bool StaysOpenAndQuiet(int fd, int ms) {
  pollfd p{fd, POLLIN | POLLRDHUP, 0};
  return ::poll(&p, 1, ms) == 0;
}

// The SSE body as the client must see it: each event whole, `data: [DONE]` last, and not
// a byte of chunk framing.
void ExpectRawSse(const std::string& body, int events) {
  EXPECT_EQ(body.find("\r\n"), std::string::npos) << "chunk framing in the body: " << body;
  std::vector<std::string> ev;
  size_t pos = 0;
  while (pos < body.size()) {
    size_t e = body.find("\n\n", pos);
    ASSERT_NE(e, std::string::npos) << "incomplete event at the end: " << body.substr(pos);
    ev.push_back(body.substr(pos, e - pos));
    pos = e + 2;
  }
  ASSERT_EQ(ev.size(), static_cast<size_t>(events + 1)) << body;
  for (int i = 0; i < events; ++i) {
    EXPECT_EQ(ev[static_cast<size_t>(i)],
              "data: {\"choices\":[{\"delta\":{\"content\":\"t" + std::to_string(i) + "\"}}],\"pad\":\"\"}");
  }
  EXPECT_EQ(ev.back(), "data: [DONE]");
}

// HTTP/1.0 without keep-alive, upstream with Content-Length: the answer has the same
// Content-Length (matching the body), no chunked coding, `Connection: close`, and the
// connection closes after it.
TEST(GatewayHttp10Test, NonStreamingGetsContentLengthAndCloses) {
  TestUpstream up;
  Gateway gw(OneModel({up.port()}));
  ASSERT_TRUE(gw.WaitReady());
  RawAnswer a = Exchange(gw.port(), Post10(kChat));
  EXPECT_TRUE(a.closed);
  Split s = SplitAnswer(a.bytes);
  EXPECT_EQ(s.head.rfind("HTTP/1.1 200 OK\r\n", 0), 0u) << s.head;
  EXPECT_TRUE(HasHeaderLine(s.head, "Content-Length: " + std::to_string(s.body.size()))) << s.head;
  EXPECT_FALSE(HasHeaderName(s.head, "Transfer-Encoding")) << s.head;
  EXPECT_TRUE(HasHeaderLine(s.head, "Connection: close")) << s.head;
  EXPECT_TRUE(HasHeaderLine(s.head, "Content-Type: application/json")) << s.head;
  EXPECT_EQ(s.body.rfind("{\"id\":\"cmpl-1\",\"object\":\"chat.completion\"", 0), 0u) << s.body;
  EXPECT_EQ(s.body.back(), '}');
  // The upstream side is unchanged: HTTP/1.1 with keep-alive, so the pool keeps it.
  EXPECT_NE(up.last_request().find(" HTTP/1.1\r\n"), std::string::npos);
}

// HTTP/1.0 with `Connection: keep-alive` and a known length: `Connection: keep-alive`,
// Content-Length, and the connection serves the next requests. A later request on it
// without keep-alive gets `Connection: close` and the close.
TEST(GatewayHttp10Test, KeepAliveWithKnownLengthServesTheNextRequest) {
  TestUpstream up;
  Gateway gw(OneModel({up.port()}));
  ASSERT_TRUE(gw.WaitReady());
  int fd = ConnectTo(gw.port());
  ASSERT_GE(fd, 0);
  for (int i = 0; i < 2; ++i) {
    ASSERT_TRUE(SendAll(fd, Post10(kChat, "Connection: keep-alive\r\n")));
    std::string buf;
    Response r = ReadResponse(fd, &buf, 3000);
    ASSERT_TRUE(r.complete) << "request " << i;
    EXPECT_EQ(r.status, 200);
    EXPECT_EQ(r.Header("connection"), "keep-alive");
    EXPECT_EQ(r.Header("transfer-encoding"), "");
    EXPECT_EQ(r.Header("content-length"), std::to_string(r.body.size()));
    EXPECT_NE(r.body.find("\"chat.completion\""), std::string::npos);
    EXPECT_TRUE(buf.empty()) << "bytes beyond the Content-Length: " << buf;
    EXPECT_TRUE(StaysOpenAndQuiet(fd, 150)) << "request " << i;
  }
  // A local answer (/health) is kept alive the same way.
  ASSERT_TRUE(SendAll(fd, "GET /health HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"));
  std::string buf;
  Response h = ReadResponse(fd, &buf, 3000);
  EXPECT_EQ(h.status, 200);
  EXPECT_EQ(h.Header("connection"), "keep-alive");
  EXPECT_EQ(h.Header("content-length"), "15");
  EXPECT_EQ(h.body, "{\"status\":\"ok\"}");
  // Without keep-alive: answered, then closed.
  ASSERT_TRUE(SendAll(fd, Post10(kChat)));
  RawAnswer last = ReadToClose(fd, 3000);
  EXPECT_TRUE(last.closed);
  Split s = SplitAnswer(last.bytes);
  EXPECT_TRUE(HasHeaderLine(s.head, "Connection: close")) << s.head;
  EXPECT_TRUE(HasHeaderLine(s.head, "Content-Length: " + std::to_string(s.body.size()))) << s.head;
  ::close(fd);
  EXPECT_EQ(up.requests(), 3);
}

// HTTP/1.0 streaming (the upstream sends chunked SSE): the client gets the events raw,
// without chunk sizes, `Connection: close`, and the body ends at the close, with every
// event intact and `data: [DONE]` last. Asking for keep-alive changes nothing (the length
// is unknown).
TEST(GatewayHttp10Test, StreamingIsCloseDelimitedWithEveryEventIntact) {
  TestUpstream::Options o;
  o.events = 5;
  o.interval_ms = 20;
  TestUpstream up(o);
  Gateway gw(OneModel({up.port()}));
  ASSERT_TRUE(gw.WaitReady());
  for (const std::string extra : {"", "Connection: keep-alive\r\n"}) {
    RawAnswer a = Exchange(gw.port(), Post10(kStreamChat, extra));
    EXPECT_TRUE(a.closed) << extra;
    Split s = SplitAnswer(a.bytes);
    EXPECT_EQ(s.head.rfind("HTTP/1.1 200 OK\r\n", 0), 0u) << s.head;
    EXPECT_TRUE(HasHeaderLine(s.head, "Content-Type: text/event-stream")) << s.head;
    EXPECT_TRUE(HasHeaderLine(s.head, "Connection: close")) << s.head;
    EXPECT_FALSE(HasHeaderName(s.head, "Transfer-Encoding")) << s.head;
    EXPECT_FALSE(HasHeaderName(s.head, "Content-Length")) << s.head;
    ExpectRawSse(s.body, 5);
  }
  // The same gateway still answers HTTP/1.1 streams chunked.
  Response r = Request(gw.port(), Post("/v1/chat/completions", kStreamChat));
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.Header("transfer-encoding"), "chunked");
  ExpectRawSse(r.body, 5);
}

// The upstream frames its JSON answer chunked (no length known before the end): HTTP/1.0
// gets the JSON raw, ended by the close; HTTP/1.1 gets it chunked.
TEST(GatewayHttp10Test, ChunkedUpstreamJsonIsCloseDelimited) {
  TestUpstream::Options o;
  o.framing = TestUpstream::Options::Framing::kChunked;
  TestUpstream up(o);
  Gateway gw(OneModel({up.port()}));
  ASSERT_TRUE(gw.WaitReady());
  RawAnswer a = Exchange(gw.port(), Post10(kChat, "Connection: keep-alive\r\n"));
  EXPECT_TRUE(a.closed);
  Split s = SplitAnswer(a.bytes);
  EXPECT_EQ(s.head.rfind("HTTP/1.1 200 OK\r\n", 0), 0u) << s.head;
  EXPECT_TRUE(HasHeaderLine(s.head, "Connection: close")) << s.head;
  EXPECT_FALSE(HasHeaderName(s.head, "Transfer-Encoding")) << s.head;
  EXPECT_FALSE(HasHeaderName(s.head, "Content-Length")) << s.head;
  EXPECT_EQ(s.body.rfind("{\"id\":\"cmpl-1\",", 0), 0u) << s.body;
  EXPECT_EQ(s.body.find("\r\n"), std::string::npos) << s.body;
  EXPECT_NE(s.body.find("\"total_tokens\":12}}"), std::string::npos) << s.body;
  EXPECT_EQ(s.body.back(), '}');
  Response r = Request(gw.port(), Post("/v1/chat/completions", kChat));
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.Header("transfer-encoding"), "chunked");
  EXPECT_EQ(r.body, s.body);
}

// The upstream's own body is close-delimited (no length, `Connection: close`), JSON and
// SSE: llmgw relays it raw to HTTP/1.0 and chunked to HTTP/1.1, and finishes the request
// when the upstream closes (nothing is left to send for HTTP/1.0 then).
TEST(GatewayHttp10Test, CloseDelimitedUpstreamAnswers) {
  TestUpstream::Options o;
  o.framing = TestUpstream::Options::Framing::kClose;
  o.events = 3;
  TestUpstream up(o);
  Gateway gw(OneModel({up.port()}));
  ASSERT_TRUE(gw.WaitReady());
  RawAnswer a = Exchange(gw.port(), Post10(kChat), 3000);
  EXPECT_TRUE(a.closed);
  Split s = SplitAnswer(a.bytes);
  EXPECT_EQ(s.head.rfind("HTTP/1.1 200 OK\r\n", 0), 0u) << s.head;
  EXPECT_FALSE(HasHeaderName(s.head, "Transfer-Encoding")) << s.head;
  EXPECT_EQ(s.body.rfind("{\"id\":\"cmpl-1\",", 0), 0u) << s.body;
  EXPECT_EQ(s.body.back(), '}');
  Response j = Request(gw.port(), Post("/v1/chat/completions", kChat), 3000);
  EXPECT_EQ(j.status, 200);
  EXPECT_EQ(j.Header("transfer-encoding"), "chunked");
  EXPECT_EQ(j.body, s.body);  // complete: the terminating chunk came when the upstream closed
  RawAnswer sse = Exchange(gw.port(), Post10(kStreamChat), 3000);
  EXPECT_TRUE(sse.closed);
  Split ss = SplitAnswer(sse.bytes);
  EXPECT_TRUE(HasHeaderLine(ss.head, "Connection: close")) << ss.head;
  ExpectRawSse(ss.body, 3);
  Response r = Request(gw.port(), Post("/v1/chat/completions", kStreamChat), 3000);
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.Header("transfer-encoding"), "chunked");
  ExpectRawSse(r.body, 3);
}

// Local error answers to HTTP/1.0 (unknown model 404, invalid JSON 400, unknown path 404)
// carry a Content-Length that matches the OpenAI error body; closed unless keep-alive was
// asked for, in which case the connection goes on.
TEST(GatewayHttp10Test, ErrorAnswersHaveContentLength) {
  TestUpstream up;
  Gateway gw(OneModel({up.port()}));
  ASSERT_TRUE(gw.WaitReady());
  const std::string unknown = R"({"model":"nope","messages":[]})";
  RawAnswer a = Exchange(gw.port(), Post10(unknown));
  EXPECT_TRUE(a.closed);
  Split s = SplitAnswer(a.bytes);
  EXPECT_EQ(s.head.rfind("HTTP/1.1 404 Not Found\r\n", 0), 0u) << s.head;
  EXPECT_TRUE(HasHeaderLine(s.head, "Content-Length: " + std::to_string(s.body.size()))) << s.head;
  EXPECT_TRUE(HasHeaderLine(s.head, "Content-Type: application/json")) << s.head;
  EXPECT_TRUE(HasHeaderLine(s.head, "Connection: close")) << s.head;
  EXPECT_FALSE(HasHeaderName(s.head, "Transfer-Encoding")) << s.head;
  EXPECT_NE(s.body.find("\"code\":\"model_not_found\""), std::string::npos) << s.body;
  EXPECT_NE(s.body.find("\"param\":\"model\""), std::string::npos) << s.body;

  int fd = ConnectTo(gw.port());
  ASSERT_GE(fd, 0);
  ASSERT_TRUE(SendAll(fd, Post10(unknown, "Connection: keep-alive\r\n") + Post10("{oops", "Connection: keep-alive\r\n") +
                              "GET /nowhere HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"));
  std::string buf;
  const int want_status[] = {404, 400, 404};
  const char* want_code[] = {"model_not_found", "invalid_json", "not_found"};
  for (int i = 0; i < 3; ++i) {
    Response r = ReadResponse(fd, &buf, 3000);
    ASSERT_TRUE(r.complete) << i;
    EXPECT_EQ(r.status, want_status[i]);
    EXPECT_EQ(r.Header("content-length"), std::to_string(r.body.size()));
    EXPECT_EQ(r.Header("connection"), "keep-alive");
    EXPECT_EQ(r.Header("transfer-encoding"), "");
    EXPECT_NE(r.body.find(std::string("\"code\":\"") + want_code[i] + "\""), std::string::npos) << r.body;
  }
  EXPECT_TRUE(StaysOpenAndQuiet(fd, 100));
  ::close(fd);
  EXPECT_EQ(up.requests(), 0);
}

// `Expect: 100-continue` from an HTTP/1.0 client gets no 100 (no 1xx toward HTTP/1.0,
// RFC 9110 15.2); the body sent anyway is answered normally. HTTP/1.1 still gets its 100.
TEST(GatewayHttp10Test, NoInterimAnswerToHttp10) {
  TestUpstream up;
  Gateway gw(OneModel({up.port()}));
  ASSERT_TRUE(gw.WaitReady());
  int fd = ConnectTo(gw.port());
  ASSERT_GE(fd, 0);
  std::string req = Post10(kChat, "Expect: 100-continue\r\n");
  size_t head_len = req.size() - kChat.size();
  ASSERT_TRUE(SendAll(fd, req.substr(0, head_len)));
  EXPECT_TRUE(StaysOpenAndQuiet(fd, 200));  // an HTTP/1.1 client would have its 100 by now
  ASSERT_TRUE(SendAll(fd, kChat));
  RawAnswer a = ReadToClose(fd, 3000);
  ::close(fd);
  EXPECT_TRUE(a.closed);
  EXPECT_EQ(a.bytes.rfind("HTTP/1.1 200 OK\r\n", 0), 0u) << a.bytes;
  EXPECT_EQ(a.bytes.find("100 Continue"), std::string::npos);

  int fd11 = ConnectTo(gw.port());
  ASSERT_GE(fd11, 0);
  std::string req11 = Post("/v1/chat/completions", kChat, "Expect: 100-continue\r\n");
  ASSERT_TRUE(SendAll(fd11, req11.substr(0, req11.size() - kChat.size())));
  std::string buf;
  ASSERT_TRUE(ReadUntil(fd11, &buf, [](const std::string& b) { return b.find("\r\n\r\n") != std::string::npos; }, 2000));
  EXPECT_EQ(buf, "HTTP/1.1 100 Continue\r\n\r\n");
  ::close(fd11);
}

// A stream to HTTP/1.0 that the upstream breaks after two events ends with the SSE error
// event, raw, and the close.
TEST(GatewayHttp10Test, StreamBrokenMidwayEndsWithRawErrorEvent) {
  TestUpstream::Options o;
  o.events = 5;
  o.close_after_events = 2;
  TestUpstream up(o);
  Gateway gw(OneModel({up.port()}));
  ASSERT_TRUE(gw.WaitReady());
  RawAnswer a = Exchange(gw.port(), Post10(kStreamChat), 3000);
  EXPECT_TRUE(a.closed);
  Split s = SplitAnswer(a.bytes);
  EXPECT_FALSE(HasHeaderName(s.head, "Transfer-Encoding")) << s.head;
  EXPECT_EQ(s.body.find("\r\n"), std::string::npos) << s.body;
  EXPECT_EQ(s.body.rfind("data: {\"choices\":[{\"delta\":{\"content\":\"t0\"}}],\"pad\":\"\"}\n\n"
                         "data: {\"choices\":[{\"delta\":{\"content\":\"t1\"}}],\"pad\":\"\"}\n\n"
                         "event: error\ndata: {\"error\":{",
                         0),
            0u)
      << s.body;
  EXPECT_NE(s.body.find("\"code\":\"upstream_error\"}}\n\n"), std::string::npos) << s.body;
  EXPECT_EQ(s.body.substr(s.body.size() - 4), "}}\n\n") << s.body;
}

// HTTP/1.1 with `Connection: close`: `Connection: close` in the answer and the connection
// closes after it — a Content-Length answer, and a chunked stream (terminated properly).
TEST(GatewayHttp10Test, Http11ConnectionCloseClosesAfterTheAnswer) {
  TestUpstream::Options o;
  o.events = 3;
  TestUpstream up(o);
  Gateway gw(OneModel({up.port()}));
  ASSERT_TRUE(gw.WaitReady());
  RawAnswer a = Exchange(gw.port(), Post("/v1/chat/completions", kChat, "Connection: close\r\n"));
  EXPECT_TRUE(a.closed);
  Split s = SplitAnswer(a.bytes);
  EXPECT_TRUE(HasHeaderLine(s.head, "Connection: close")) << s.head;
  EXPECT_TRUE(HasHeaderLine(s.head, "Content-Length: " + std::to_string(s.body.size()))) << s.head;

  RawAnswer st = Exchange(gw.port(), Post("/v1/chat/completions", kStreamChat, "Connection: close\r\n"));
  EXPECT_TRUE(st.closed);
  Split ss = SplitAnswer(st.bytes);
  EXPECT_TRUE(HasHeaderLine(ss.head, "Connection: close")) << ss.head;
  EXPECT_TRUE(HasHeaderLine(ss.head, "Transfer-Encoding: chunked")) << ss.head;
  EXPECT_EQ(ss.body.substr(ss.body.size() - 5), "0\r\n\r\n");
  std::string copy = st.bytes;
  Response r;
  ASSERT_TRUE(ParseResponse(&copy, &r));
  EXPECT_TRUE(copy.empty()) << "bytes after the last chunk: " << copy;
  ExpectRawSse(r.body, 3);

  // Without Connection: close the same request keeps the connection.
  int fd = ConnectTo(gw.port());
  ASSERT_GE(fd, 0);
  ASSERT_TRUE(SendAll(fd, Post("/v1/chat/completions", kChat)));
  std::string buf;
  Response k = ReadResponse(fd, &buf, 3000);
  EXPECT_EQ(k.status, 200);
  EXPECT_EQ(k.Header("connection"), "keep-alive");
  EXPECT_TRUE(StaysOpenAndQuiet(fd, 100));
  ::close(fd);
}

}  // namespace
}  // namespace llmgw::testing
