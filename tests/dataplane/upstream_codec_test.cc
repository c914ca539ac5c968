// Unit tests of UpstreamCodec: the request's bytes (gathered from its pieces, the model
// rewritten in place, partial sends) and responses fed as bytes — 1xx skipped, 101 and
// garbage refused, headers filtered, framing reported, 5xx refused on the handler's word,
// keep-alive, a body delimited by the close.
#include "dataplane/upstream_codec.h"

#include <gtest/gtest.h>

#include <string>

namespace llmgw::dataplane {
namespace {

std::string Gather(UpstreamCodec& c) {
  std::string out;
  for (int i = 0; i < c.iov_count(); ++i) out.append(static_cast<const char*>(c.iov()[i].iov_base), c.iov()[i].iov_len);
  return out;
}

TEST(UpstreamCodecRequestTest, HeadHeadersAndBody) {
  UpstreamCodec c;
  UpstreamCodec::Request r;
  r.base_path = "/base";
  r.api_path = "/v1/chat/completions";
  r.host_header = "10.0.0.1:8000";
  r.request_id = "rid";
  r.header_lines = "Authorization: Bearer k\r\n";
  r.body = R"({"model":"m"})";
  c.WriteRequest(r);
  EXPECT_EQ(Gather(c),
            "POST /base/v1/chat/completions HTTP/1.1\r\nHost: 10.0.0.1:8000\r\nContent-Length: 13\r\n"
            "X-Request-ID: rid\r\nContent-Type: application/json\r\nConnection: keep-alive\r\n"
            "Authorization: Bearer k\r\n\r\n{\"model\":\"m\"}");
  r.has_content_type = true;  // the client's own Content-Type is among its header lines
  r.header_lines = {};
  r.body = {};
  c.WriteRequest(r);
  EXPECT_EQ(Gather(c),
            "POST /base/v1/chat/completions HTTP/1.1\r\nHost: 10.0.0.1:8000\r\nContent-Length: 0\r\n"
            "X-Request-ID: rid\r\nConnection: keep-alive\r\n\r\n");
}

TEST(UpstreamCodecRequestTest, ModelRewrittenInPlaceWithTheRightLength) {
  UpstreamCodec c;
  std::string body = R"({"model":"alias","x":1})";
  UpstreamCodec::Request r;
  r.base_path = "";
  r.api_path = "/v1/completions";
  r.host_header = "h";
  r.request_id = "id";
  r.body = body;
  r.rewrite_model = true;
  r.new_model = "the-real-model";
  r.model_begin = body.find("\"alias\"");
  r.model_end = r.model_begin + 7;
  c.WriteRequest(r);
  std::string all = Gather(c);
  std::string want_body = R"({"model":"the-real-model","x":1})";
  EXPECT_NE(all.find("Content-Length: " + std::to_string(want_body.size()) + "\r\n"), std::string::npos);
  EXPECT_EQ(all.substr(all.size() - want_body.size()), want_body);
}

TEST(UpstreamCodecRequestTest, AdvanceResumesMidPiece) {
  UpstreamCodec c;
  UpstreamCodec::Request r;
  r.api_path = "/v1/embeddings";
  r.host_header = "h";
  r.body = "0123456789";
  c.WriteRequest(r);
  std::string all = Gather(c);
  size_t sent = 0;
  std::string got;
  for (size_t step : {5u, 40u, 30u, 1u}) {
    std::string now = Gather(c);
    size_t n = std::min(step, now.size());
    got += now.substr(0, n);
    sent += n;
    bool more = c.Advance(n);
    EXPECT_EQ(more, sent < all.size());
    if (!more) break;
  }
  if (sent < all.size()) {
    got += Gather(c);
    EXPECT_FALSE(c.Advance(all.size() - sent));
  }
  EXPECT_EQ(got, all);
  EXPECT_EQ(c.iov_count(), 0);
}

class Recorder final : public UpstreamCodec::Handler {
 public:
  bool OnResponseHead(UpstreamCodec*, int s, int64_t len) override {
    ++heads;
    status = s;
    content_length = len;
    return !(refuse_5xx && s >= 500);
  }
  void OnResponseBody(UpstreamCodec*, const char* at, size_t n) override { body.append(at, n); }
  void OnResponseComplete(UpstreamCodec*) override { ++completes; }
  bool refuse_5xx = true;
  int heads = 0, completes = 0, status = 0;
  int64_t content_length = -2;
  std::string body;
};

class UpstreamCodecResponseTest : public ::testing::Test {
 protected:
  void SetUp() override {
    headers_.Reserve(1024);
    c_.BeginResponse(&rec_, &headers_, &relay_);
  }
  UpstreamCodec::Parsed Feed(std::string_view b) { return c_.Parse(b.data(), b.size()); }
  int owner_ = 0;
  UpstreamCodec c_{&owner_};
  Recorder rec_;
  HeaderCollector headers_;
  SseRelay relay_;
};

TEST_F(UpstreamCodecResponseTest, FramedAnswerWithFilteredHeaders) {
  EXPECT_FALSE(c_.saw_bytes());
  EXPECT_EQ(Feed("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-Request-ID: theirs\r\nKeep-Alive: 5\r\n"
                 "Content-Type: application/json\r\nX-Backend: b1\r\n\r\nhel"),
            UpstreamCodec::Parsed::kMore);
  EXPECT_TRUE(c_.saw_bytes());
  EXPECT_EQ(rec_.heads, 1);
  EXPECT_EQ(rec_.status, 200);
  EXPECT_EQ(rec_.content_length, 5);
  EXPECT_EQ(std::string(headers_.lines()), "Content-Type: application/json\r\nX-Backend: b1\r\n");
  EXPECT_EQ(Feed("lo"), UpstreamCodec::Parsed::kComplete);
  EXPECT_EQ(rec_.body, "hello");
  EXPECT_EQ(rec_.completes, 1);
  EXPECT_TRUE(c_.keep_alive());
  EXPECT_EQ(c_.owner(), &owner_);
}

TEST_F(UpstreamCodecResponseTest, InterimAnswersAreSkipped) {
  EXPECT_EQ(Feed("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"),
            UpstreamCodec::Parsed::kMore);
  EXPECT_EQ(rec_.heads, 0);
  EXPECT_EQ(Feed("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Type: text/event-stream\r\n\r\n"
                 "6\r\ndata: \r\n0\r\n\r\n"),
            UpstreamCodec::Parsed::kComplete);
  EXPECT_EQ(rec_.heads, 1);
  EXPECT_EQ(rec_.content_length, -1);  // chunked: llmgw frames it again
  EXPECT_EQ(std::string(headers_.lines()), "Content-Type: text/event-stream\r\n");  // no Link from the 103
  EXPECT_TRUE(relay_.is_sse());
  EXPECT_TRUE(relay_.needs_no_cache());
  EXPECT_EQ(rec_.body, "data: ");
}

TEST_F(UpstreamCodecResponseTest, SwitchingProtocolsIsAProtocolError) {
  EXPECT_EQ(Feed("HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\n\r\n"), UpstreamCodec::Parsed::kError);
  EXPECT_EQ(c_.error().kind(), ErrorKind::kUpstreamProtocol);
  EXPECT_FALSE(c_.error().retryable());
}

TEST_F(UpstreamCodecResponseTest, GarbageIsAProtocolError) {
  EXPECT_EQ(Feed("SMTP ready\r\n"), UpstreamCodec::Parsed::kError);
  EXPECT_EQ(c_.error().kind(), ErrorKind::kUpstreamProtocol);
  EXPECT_EQ(rec_.heads, 0);
}

// Found by upstream_codec_fuzz: a Content-Length that fits in 64 bits but not in int64
// reached the handler as a negative length.
TEST_F(UpstreamCodecResponseTest, ContentLengthBeyondInt64IsAProtocolError) {
  EXPECT_EQ(Feed("HTTP/1.1 200 OK\r\nContent-Length: 13744992419566904205\r\n\r\nab"), UpstreamCodec::Parsed::kError);
  EXPECT_EQ(c_.error().kind(), ErrorKind::kUpstreamProtocol);
  EXPECT_EQ(rec_.heads, 0);
}

TEST_F(UpstreamCodecResponseTest, HeadersOverTheCapAreAProtocolError) {
  std::string big = "HTTP/1.1 200 OK\r\nX-Big: " + std::string(4000, 'a') + "\r\n\r\n";
  EXPECT_EQ(Feed(big), UpstreamCodec::Parsed::kError);
  EXPECT_EQ(c_.error().kind(), ErrorKind::kUpstreamProtocol);
  EXPECT_NE(std::string(c_.error().message()).find("too large"), std::string::npos);
}

TEST_F(UpstreamCodecResponseTest, RefusedStatusIsARetryableUpstreamStatus) {
  EXPECT_EQ(Feed("HTTP/1.1 503 Busy\r\nContent-Length: 0\r\n\r\n"), UpstreamCodec::Parsed::kError);
  EXPECT_EQ(c_.error().kind(), ErrorKind::kUpstreamStatus);
  EXPECT_TRUE(c_.error().retryable());
  EXPECT_EQ(c_.error().upstream_status(), 503);
  EXPECT_EQ(rec_.completes, 0);
  // The next exchange on the same object starts clean.
  c_.BeginResponse(&rec_, &headers_, &relay_);
  EXPECT_EQ(c_.error().kind(), ErrorKind::kNone);
  EXPECT_FALSE(c_.saw_bytes());
  rec_.refuse_5xx = false;
  EXPECT_EQ(Feed("HTTP/1.1 500 Oops\r\nContent-Length: 0\r\n\r\n"), UpstreamCodec::Parsed::kComplete);
  EXPECT_EQ(rec_.status, 500);
}

TEST_F(UpstreamCodecResponseTest, CloseDelimitedBodyEndsAtFinish) {
  EXPECT_EQ(Feed("HTTP/1.1 200 OK\r\nConnection: close\r\n\r\npart"), UpstreamCodec::Parsed::kMore);
  EXPECT_EQ(rec_.completes, 0);
  EXPECT_TRUE(c_.Finish());
  EXPECT_EQ(rec_.completes, 1);
  EXPECT_EQ(rec_.body, "part");
  EXPECT_FALSE(c_.keep_alive());
}

TEST_F(UpstreamCodecResponseTest, CloseBeforeAnyByteOrMidLengthIsNotAnEnd) {
  EXPECT_FALSE(c_.Finish());  // nothing arrived
  Feed("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc");
  EXPECT_FALSE(c_.Finish());  // 7 bytes short
  EXPECT_EQ(rec_.completes, 0);
}

// Found by upstream_codec_fuzz: a close right after a complete 1xx is at a message
// boundary for llhttp, but no answer came.
TEST_F(UpstreamCodecResponseTest, CloseAfterOnlyAnInterimAnswerIsNotAnEnd) {
  EXPECT_EQ(Feed("HTTP/1.1 100 Continue\r\n\r\n"), UpstreamCodec::Parsed::kMore);
  EXPECT_FALSE(c_.Finish());
  EXPECT_EQ(rec_.heads, 0);
  EXPECT_EQ(rec_.completes, 0);
}

TEST_F(UpstreamCodecResponseTest, Http10AnswerIsNotKeptAlive) {
  EXPECT_EQ(Feed("HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok"), UpstreamCodec::Parsed::kComplete);
  EXPECT_FALSE(c_.keep_alive());
}

TEST_F(UpstreamCodecResponseTest, ResetForgetsTheLastExchange) {
  Feed("garbage");
  ASSERT_NE(c_.error().kind(), ErrorKind::kNone);
  c_.Reset();
  EXPECT_EQ(c_.error().kind(), ErrorKind::kNone);
  EXPECT_FALSE(c_.saw_bytes());
  EXPECT_EQ(c_.iov_count(), 0);
}

}  // namespace
}  // namespace llmgw::dataplane
