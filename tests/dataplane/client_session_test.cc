// Unit tests of ClientSession: bytes fed in-process (no sockets), a recording Handler in
// place of the worker. Pipelining order, the limits (431 / 413), the smuggling defence,
// Expect: 100-continue, header forwarding and the keep-alive facts of a request.
#include "dataplane/client_session.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace llmgw::dataplane {
namespace {

class Recorder final : public ClientSession::Handler {
 public:
  Recorder() {
    state.req_headers.Reserve(4096);
    state.resp_headers.Reserve(4096);
  }
  RequestState* AcquireRequest(ClientSession*) override {
    ++acquired;
    return &state;
  }
  void OnRequestStarted(ClientSession*) override { ++started; }
  void OnHeadComplete(ClientSession*, bool sent_continue) override {
    ++heads;
    continues += sent_continue;
  }
  void OnRequest(ClientSession* s) override {
    EXPECT_TRUE(s->busy());
    urls.push_back(std::string(state.url.View()));
    bodies.push_back(state.body);
    if (answer_at_once) s->EndAnswer();  // the caller resumes
  }
  void OnBadRequest(ClientSession* s, const Error& e) override {
    EXPECT_TRUE(s->discarding());
    errors.push_back(e);
  }

  RequestState state;
  int acquired = 0, started = 0, heads = 0, continues = 0;
  bool answer_at_once = false;
  std::vector<std::string> urls, bodies;
  std::vector<Error> errors;
};

class ClientSessionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    limits_.max_header_bytes = 1024;
    limits_.max_body_bytes = 64;
    limits_.hash_header = "x-session";
    s_.Start(&rec_, &limits_, &owner_);
  }
  bool Feed(std::string_view b) { return s_.Feed(b.data(), b.size()); }

  ClientSession::Limits limits_;
  Recorder rec_;
  ClientSession s_;
  int owner_ = 0;
};

constexpr std::string_view kPost =
    "POST /v1/chat/completions HTTP/1.1\r\nHost: gw\r\nContent-Length: 2\r\n\r\n{}";

TEST_F(ClientSessionTest, OneRequestInPiecesIsDispatchedOnce) {
  std::string req(kPost);
  for (char ch : req) Feed(std::string_view(&ch, 1));
  ASSERT_EQ(rec_.urls.size(), 1u);
  EXPECT_EQ(rec_.urls[0], "/v1/chat/completions");
  EXPECT_EQ(rec_.bodies[0], "{}");
  EXPECT_EQ(s_.owner(), &owner_);
  EXPECT_TRUE(s_.busy());
  EXPECT_FALSE(s_.in_message());
  EXPECT_GT(rec_.started, 0);  // the header deadline was asked for while it trickled in
  EXPECT_EQ(rec_.heads, 1);
  EXPECT_EQ(s_.method(), HTTP_POST);
  EXPECT_FALSE(s_.http10());
  EXPECT_TRUE(s_.keep_alive());
}

TEST_F(ClientSessionTest, PipelinedRequestsWaitForTheAnswerInOrder) {
  std::string three = "GET /a HTTP/1.1\r\n\r\nGET /b HTTP/1.1\r\n\r\nGET /c HTTP/1.1\r\nConnection: close\r\n\r\n";
  Feed(three);
  ASSERT_EQ(rec_.urls, std::vector<std::string>{"/a"});  // busy: the rest is held
  EXPECT_GT(s_.held_bytes(), 0u);
  s_.Resume();
  EXPECT_EQ(rec_.urls.size(), 1u);  // still busy: nothing parsed
  s_.EndAnswer();
  s_.Resume();
  ASSERT_EQ(rec_.urls, (std::vector<std::string>{"/a", "/b"}));
  EXPECT_TRUE(s_.keep_alive());
  s_.EndAnswer();
  s_.Resume();
  ASSERT_EQ(rec_.urls, (std::vector<std::string>{"/a", "/b", "/c"}));
  EXPECT_FALSE(s_.keep_alive());  // the third said Connection: close
  EXPECT_EQ(s_.held_bytes(), 0u);
}

TEST_F(ClientSessionTest, AnsweredAtOnceParsesTheNextFromTheSameBuffer) {
  rec_.answer_at_once = true;
  Feed("GET /a HTTP/1.1\r\n\r\nGET /b HTTP/1.1\r\n\r\n");
  s_.Resume();
  EXPECT_EQ(rec_.urls, (std::vector<std::string>{"/a", "/b"}));
}

TEST_F(ClientSessionTest, AskToPauseWhenTooMuchIsHeldWhileBusy) {
  Feed("GET /a HTTP/1.1\r\n\r\n");
  ASSERT_TRUE(s_.busy());
  std::string more(kMaxPendingInput, 'x');
  EXPECT_FALSE(Feed(more));  // exactly the limit: go on reading
  EXPECT_TRUE(Feed("y"));    // over it: pause
}

TEST_F(ClientSessionTest, HeadersOverTheLimitAre431AndTheRestIsDiscarded) {
  std::string big = "GET / HTTP/1.1\r\nX-Big: " + std::string(2000, 'a') + "\r\n\r\n";
  Feed(big);
  ASSERT_EQ(rec_.errors.size(), 1u);
  EXPECT_EQ(rec_.errors[0].kind(), ErrorKind::kHeaderTooLarge);
  Feed("GET /next HTTP/1.1\r\n\r\n");
  EXPECT_TRUE(rec_.urls.empty());
  EXPECT_EQ(rec_.errors.size(), 1u);
}

TEST_F(ClientSessionTest, BodyOverTheLimitIs413ByLengthAndByChunks) {
  Feed("POST / HTTP/1.1\r\nContent-Length: 65\r\n\r\n");
  ASSERT_EQ(rec_.errors.size(), 1u);
  EXPECT_EQ(rec_.errors[0].kind(), ErrorKind::kPayloadTooLarge);

  ClientSession s2;
  Recorder r2;
  s2.Start(&r2, &limits_, nullptr);
  std::string chunked = "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n40\r\n" + std::string(64, 'a') +
                        "\r\n1\r\nb\r\n0\r\n\r\n";
  s2.Feed(chunked.data(), chunked.size());
  ASSERT_EQ(r2.errors.size(), 1u);
  EXPECT_EQ(r2.errors[0].kind(), ErrorKind::kPayloadTooLarge);
  EXPECT_TRUE(r2.urls.empty());
}

TEST_F(ClientSessionTest, ContentLengthWithTransferEncodingIsRefused) {
  Feed("POST / HTTP/1.1\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n");
  ASSERT_EQ(rec_.errors.size(), 1u);
  EXPECT_EQ(rec_.errors[0].kind(), ErrorKind::kBadRequest);
  EXPECT_TRUE(rec_.urls.empty());
}

TEST_F(ClientSessionTest, MalformedInputIsOneBadRequest) {
  Feed("GARBAGE\r\n\r\n");
  ASSERT_EQ(rec_.errors.size(), 1u);
  EXPECT_EQ(rec_.errors[0].kind(), ErrorKind::kBadRequest);
  EXPECT_NE(std::string(rec_.errors[0].message()).find("malformed HTTP request"), std::string::npos);
  EXPECT_TRUE(s_.http10());  // no version parsed: the error answer follows 1.0 rules
}

TEST_F(ClientSessionTest, ContinueOnlyForHttp11WithABody) {
  Feed("POST / HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n");
  EXPECT_EQ(rec_.continues, 1);
  EXPECT_EQ(rec_.state.out, "HTTP/1.1 100 Continue\r\n\r\n");
  Feed("{}");
  ASSERT_EQ(rec_.urls.size(), 1u);

  for (std::string_view req : {std::string_view("POST / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n{}"),
                               std::string_view("POST / HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 0\r\n\r\n")}) {
    ClientSession s2;
    Recorder r2;
    s2.Start(&r2, &limits_, nullptr);
    s2.Feed(req.data(), req.size());
    EXPECT_EQ(r2.continues, 0) << req;
    EXPECT_TRUE(r2.state.out.empty());
    EXPECT_EQ(r2.urls.size(), 1u);
  }
}

TEST_F(ClientSessionTest, HeadersForwardedAndTheOnesLlmgwSetsDropped) {
  Feed("POST / HTTP/1.1\r\nHost: gw\r\nConnection: keep-alive, X-Hop\r\nX-Hop: 1\r\n"
       "X-Request-ID: abc-123\r\nX-Session: s1\r\nContent-Type: application/json\r\n"
       "Authorization: Bearer k\r\nContent-Length: 2\r\n\r\n{}");
  ASSERT_EQ(rec_.urls.size(), 1u);
  std::string lines(rec_.state.req_headers.lines());
  EXPECT_EQ(lines, "X-Session: s1\r\nContent-Type: application/json\r\nAuthorization: Bearer k\r\n");
  EXPECT_EQ(rec_.state.request_id.View(), "abc-123");
  EXPECT_EQ(rec_.state.hash_value.View(), "s1");
  EXPECT_TRUE(rec_.state.has_content_type);
}

TEST_F(ClientSessionTest, AnInsaneRequestIdIsNotKept) {
  Feed("GET / HTTP/1.1\r\nX-Request-ID: a\"b\r\n\r\n");
  ASSERT_EQ(rec_.urls.size(), 1u);
  EXPECT_EQ(rec_.state.request_id.len, 0u);
}

TEST_F(ClientSessionTest, Http10KeepAliveOnlyWhenAsked) {
  Feed("GET / HTTP/1.0\r\n\r\n");
  EXPECT_TRUE(s_.http10());
  EXPECT_FALSE(s_.keep_alive());
  ClientSession s2;
  Recorder r2;
  s2.Start(&r2, &limits_, nullptr);
  std::string_view ka = "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n";
  s2.Feed(ka.data(), ka.size());
  EXPECT_TRUE(s2.keep_alive());
  EXPECT_EQ(s2.method(), HTTP_GET);
}

TEST_F(ClientSessionTest, StoppedSessionIgnoresInput) {
  s_.Stop();
  Feed("GET / HTTP/1.1\r\n\r\n");
  EXPECT_TRUE(rec_.urls.empty());
  EXPECT_EQ(rec_.acquired, 0);
}

TEST_F(ClientSessionTest, StartResetsEverything) {
  Feed("GARBAGE\r\n\r\n");
  ASSERT_TRUE(s_.discarding());
  s_.Start(&rec_, &limits_, &owner_);
  EXPECT_FALSE(s_.discarding());
  Feed("GET /again HTTP/1.1\r\n\r\n");
  ASSERT_EQ(rec_.urls.size(), 1u);
  EXPECT_EQ(rec_.urls[0], "/again");
}

}  // namespace
}  // namespace llmgw::dataplane
