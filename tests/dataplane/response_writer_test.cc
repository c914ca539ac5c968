// Unit tests of ResponseWriter (framing toward HTTP/1.0 and 1.1 clients, the SSE error
// event) and SseRelay (SSE detection, inter-token gaps, the usage scan), on strings.
#include "dataplane/response_writer.h"

#include <gtest/gtest.h>

#include <string>

#include "dataplane/sse_relay.h"

namespace llmgw::dataplane {
namespace {

HeadExtras Extras() {
  HeadExtras x;
  x.request_id = "rid";
  return x;
}

TEST(ResponseWriterTest, KnownLengthKeepsTheConnection) {
  ResponseWriter w;
  w.Begin(/*http10=*/false, /*close_after=*/false);
  std::string out;
  w.WriteHead(&out, 200, "application/json", 2, {}, Extras());
  w.AppendBody(&out, "{}", 2);
  w.EndBody(&out);
  EXPECT_EQ(out,
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nX-Request-ID: rid\r\nContent-Length: 2\r\n"
            "Connection: keep-alive\r\n\r\n{}");
  EXPECT_TRUE(w.committed());
  EXPECT_FALSE(w.close_after_send());
}

TEST(ResponseWriterTest, UnknownLengthIsChunkedFor11) {
  ResponseWriter w;
  w.Begin(false, false);
  std::string out;
  w.WriteHead(&out, 200, {}, -1, "Content-Type: text/event-stream\r\n", Extras());
  EXPECT_NE(out.find("Transfer-Encoding: chunked\r\n"), std::string::npos);
  EXPECT_NE(out.find("Content-Type: text/event-stream\r\n"), std::string::npos);
  out.clear();
  w.AppendBody(&out, "data: a\n\n", 9);
  w.AppendBody(&out, std::string(300, 'x').data(), 300);
  w.EndBody(&out);
  EXPECT_EQ(out, "9\r\ndata: a\n\n\r\n12c\r\n" + std::string(300, 'x') + "\r\n0\r\n\r\n");
  EXPECT_TRUE(w.CanEndWithEvent());
}

TEST(ResponseWriterTest, UnknownLengthIsCloseDelimitedFor10) {
  ResponseWriter w;
  w.Begin(/*http10=*/true, /*close_after=*/false);
  std::string out;
  w.WriteHead(&out, 200, {}, -1, {}, Extras());
  EXPECT_EQ(out.find("chunked"), std::string::npos);
  EXPECT_NE(out.find("Connection: close\r\n\r\n"), std::string::npos);
  EXPECT_TRUE(w.close_delimited());
  EXPECT_TRUE(w.close_after_send());
  out.clear();
  w.AppendBody(&out, "abc", 3);
  w.EndBody(&out);
  EXPECT_EQ(out, "abc");  // raw: the close ends it
}

TEST(ResponseWriterTest, ExtrasAndDrain) {
  ResponseWriter w;
  w.Begin(false, false);
  std::string out;
  HeadExtras x = Extras();
  x.no_cache = true;
  x.retry_after_s = 3;
  x.draining = true;
  w.WriteHead(&out, 429, "application/json", 0, {}, x);
  EXPECT_EQ(out.rfind("HTTP/1.1 429 Too Many Requests\r\n", 0), 0u);
  EXPECT_NE(out.find("\r\nCache-Control: no-cache"), std::string::npos);
  EXPECT_NE(out.find("\r\nRetry-After: 3"), std::string::npos);
  EXPECT_NE(out.find("Connection: close\r\n\r\n"), std::string::npos);
  EXPECT_TRUE(w.close_after_send());  // draining: the connection closes after this answer
}

TEST(ResponseWriterTest, StreamErrorEventIsOneChunkThenTheEnd) {
  ResponseWriter w;
  w.Begin(false, false);
  std::string out;
  w.WriteHead(&out, 200, {}, -1, {}, Extras());
  out.clear();
  w.AppendStreamError(&out, ReplyFor(ErrorKind::kTimeout, ErrorSide::kUpstream, 0), "upstream \"idle\" timeout");
  std::string ev =
      "event: error\ndata: {\"error\":{\"message\":\"upstream \\\"idle\\\" timeout\",\"type\":\"upstream_error\","
      "\"param\":null,\"code\":\"upstream_timeout\"}}\n\n";
  char hex[20];
  std::snprintf(hex, sizeof(hex), "%zx\r\n", ev.size());
  EXPECT_EQ(out, hex + ev + "\r\n0\r\n\r\n");
  // The terminating chunk ends the answer cleanly: the connection can carry the next
  // request, as the head said (it closed here before: a reusing client got nothing).
  EXPECT_FALSE(w.close_after_send());
}

TEST(ResponseWriterTest, KnownLengthCannotCarryAnEvent) {
  ResponseWriter w;
  w.Begin(false, false);
  std::string out;
  w.WriteHead(&out, 200, {}, 10, {}, Extras());
  EXPECT_FALSE(w.CanEndWithEvent());
}

TEST(ResponseWriterTest, ErrorJson) {
  std::string b;
  AppendErrorJson(&b, "bad \"x\"", "invalid_request_error", "model", "invalid_model");
  EXPECT_EQ(b, R"({"error":{"message":"bad \"x\"","type":"invalid_request_error","param":"model","code":"invalid_model"}})");
}

TEST(SseRelayTest, GapsOnlyBetweenPiecesOfAStream) {
  SseRelay r;
  r.Begin();
  uint64_t gap = 0;
  EXPECT_FALSE(r.OnPiece("plain", 100, &gap));
  r.NewHead();
  r.SetContentType("text/event-stream; charset=utf-8");
  EXPECT_TRUE(r.is_sse());
  EXPECT_TRUE(r.needs_no_cache());
  EXPECT_TRUE(r.OnPiece("data: a\n\n", 150, &gap));  // continues after the 100 us piece
  EXPECT_EQ(gap, 50u);
  EXPECT_TRUE(r.OnPiece("data: b\n\n", 150, &gap));
  EXPECT_EQ(gap, 0u);
  r.SawCacheControl();
  EXPECT_FALSE(r.needs_no_cache());
}

TEST(SseRelayTest, UsageScan) {
  SseRelay r;
  r.Begin();
  uint64_t gap;
  r.OnPiece(R"({"id":"x","choices":[{"text":"usage"}],"usage": {"prompt_tokens": 12, "completion_tokens":34}})", 1, &gap);
  EXPECT_EQ(r.prompt_tokens(), 12u);
  EXPECT_EQ(r.completion_tokens(), 34u);
  r.Begin();
  r.OnPiece(R"({"choices":[{"text":"no usage here"}]})", 1, &gap);
  EXPECT_EQ(r.prompt_tokens(), 0u);
}

// /v1/responses (passed through): its usage says input_tokens / output_tokens, in the
// whole answer and in the stream's response.completed event (after a response.created
// whose usage is null).
TEST(SseRelayTest, UsageScanReadsTheResponsesApiNames) {
  SseRelay r;
  r.Begin();
  uint64_t gap;
  r.OnPiece(R"({"object":"response","usage":{"input_tokens":9,"input_tokens_details":{"cached_tokens":0},"output_tokens":4,"total_tokens":13}})", 1, &gap);
  EXPECT_EQ(r.prompt_tokens(), 9u);
  EXPECT_EQ(r.completion_tokens(), 4u);
  r.Begin();
  r.SetContentType("text/event-stream");
  r.OnPiece("event: response.created\ndata: {\"response\":{\"usage\":null}}\n\n", 1, &gap);
  EXPECT_EQ(r.completion_tokens(), 0u);
  r.OnPiece("event: response.completed\ndata: {\"response\":{\"usage\":{\"input_tokens\":3,\"output_tokens\":5}}}\n\n", 2, &gap);
  EXPECT_EQ(r.prompt_tokens(), 3u);
  EXPECT_EQ(r.completion_tokens(), 5u);
}

}  // namespace
}  // namespace llmgw::dataplane

namespace llmgw::dataplane {
namespace {

// An error event llmgw adds must start on a line of its own after a blank line, whatever
// the upstream left half-written (issue 17: glued onto `data: ...` SSE parsers miss it).
TEST(SseRelayTest, EventSeparatorAfterAHalfWrittenEvent) {
  SseRelay r;
  r.Begin();
  r.SetContentType("text/event-stream");
  uint64_t gap;
  r.OnPiece("data: {\"a\":1}\n\n", 1, &gap);
  EXPECT_EQ(r.EventSeparator(), "");
  r.OnPiece("data: {\"a\":", 2, &gap);  // cut mid-line
  EXPECT_EQ(r.EventSeparator(), "\n\n");
  r.OnPiece("2}\r\n", 3, &gap);  // one line ended, no blank line yet ('\r' skipped)
  EXPECT_EQ(r.EventSeparator(), "\n");
  ResponseWriter w;
  w.Begin(true, false);  // HTTP/1.0: close-delimited, the event goes raw
  std::string out;
  w.WriteHead(&out, 200, {}, -1, {}, HeadExtras{});
  out.clear();
  w.AppendStreamError(&out, ReplyFor(ErrorKind::kConnectionReset, ErrorSide::kUpstream, 0), "cut", r.EventSeparator());
  EXPECT_EQ(out.rfind("\nevent: error\n", 0), 0u) << out;
  EXPECT_TRUE(w.close_after_send());  // a close-delimited body ends only by the close
}

// A piece ending in a run of '\r' (or one byte at a time) still leaves the separator
// right: the tail is read backwards over the '\r's, across pieces.
TEST(SseRelayTest, EventSeparatorAcrossCarriageReturnsAndTinyPieces) {
  SseRelay r;
  r.Begin();
  r.SetContentType("text/event-stream");
  uint64_t gap;
  r.OnPiece("data: x\n\n", 1, &gap);
  r.OnPiece("data: y\r\r\r\r\r", 2, &gap);  // before: the last 4 bytes were all '\r', 'y' unseen
  EXPECT_EQ(r.EventSeparator(), "\n\n");
  r.OnPiece("\n", 3, &gap);
  EXPECT_EQ(r.EventSeparator(), "\n");
  r.OnPiece("\r", 4, &gap);
  EXPECT_EQ(r.EventSeparator(), "\n");
  r.OnPiece("\n", 5, &gap);
  EXPECT_EQ(r.EventSeparator(), "");
}

}  // namespace
}  // namespace llmgw::dataplane
