// Unit tests of the one table from a failure to the client's status and OpenAI error.
#include "dataplane/error_reply.h"

#include <gtest/gtest.h>

namespace llmgw::dataplane {
namespace {

ErrorReply Of(ErrorKind k, ErrorSide s, uint16_t upstream_status = 0) {
  Error e(k, s, false, "x");
  e.set_upstream_status(upstream_status);
  return ReplyFor(e);
}

TEST(ErrorReplyTest, UpstreamFailures) {
  EXPECT_EQ(Of(ErrorKind::kTimeout, ErrorSide::kUpstream).status, 504);
  EXPECT_EQ(Of(ErrorKind::kTimeout, ErrorSide::kUpstream).code, "upstream_timeout");
  EXPECT_EQ(Of(ErrorKind::kTimeout, ErrorSide::kUpstream).type, "upstream_error");
  EXPECT_EQ(Of(ErrorKind::kUpstreamStatus, ErrorSide::kUpstream, 503).status, 502);
  EXPECT_EQ(Of(ErrorKind::kUpstreamStatus, ErrorSide::kUpstream, 500).code, "upstream_error");
  // The model server's 429 reaches the client as a 429.
  EXPECT_EQ(Of(ErrorKind::kUpstreamStatus, ErrorSide::kUpstream, 429).status, 429);
  for (ErrorKind k : {ErrorKind::kConnectFailed, ErrorKind::kConnectionReset, ErrorKind::kUpstreamProtocol}) {
    ErrorReply r = Of(k, ErrorSide::kUpstream);
    EXPECT_EQ(r.status, 502);
    EXPECT_EQ(r.code, "upstream_error");
  }
}

TEST(ErrorReplyTest, ClientSideFailures) {
  // A timeout is the client's (408) or the upstream's (504) by its side.
  ErrorReply slow = Of(ErrorKind::kTimeout, ErrorSide::kDownstream);
  EXPECT_EQ(slow.status, 408);
  EXPECT_EQ(slow.code, "timeout");
  EXPECT_EQ(slow.type, "invalid_request_error");
  EXPECT_EQ(Of(ErrorKind::kHeaderTooLarge, ErrorSide::kDownstream).status, 431);
  EXPECT_EQ(Of(ErrorKind::kHeaderTooLarge, ErrorSide::kDownstream).code, "header_too_large");
  EXPECT_EQ(Of(ErrorKind::kPayloadTooLarge, ErrorSide::kDownstream).status, 413);
  EXPECT_EQ(Of(ErrorKind::kPayloadTooLarge, ErrorSide::kDownstream).code, "payload_too_large");
  EXPECT_EQ(Of(ErrorKind::kBadRequest, ErrorSide::kDownstream).status, 400);
  EXPECT_EQ(Of(ErrorKind::kNotFound, ErrorSide::kDownstream).status, 404);
  EXPECT_EQ(Of(ErrorKind::kMethodNotAllowed, ErrorSide::kDownstream).status, 405);
}

TEST(ErrorReplyTest, GatewayDecisions) {
  ErrorReply nb = Of(ErrorKind::kNoBackend, ErrorSide::kInternal);
  EXPECT_EQ(nb.status, 503);
  EXPECT_EQ(nb.type, "service_unavailable");
  EXPECT_EQ(nb.code, "no_backend");
  ErrorReply ov = Of(ErrorKind::kOverloaded, ErrorSide::kInternal);
  EXPECT_EQ(ov.status, 429);
  EXPECT_EQ(ov.type, "rate_limit_error");
  EXPECT_EQ(ov.code, "overloaded");
  EXPECT_EQ(Of(ErrorKind::kInternal, ErrorSide::kInternal).status, 500);
}

TEST(ErrorReplyTest, ErrorCarriesItsFacts) {
  Error e(ErrorKind::kUpstreamStatus, ErrorSide::kUpstream, true, "upstream answered %d", 503);
  e.set_upstream_status(503);
  EXPECT_EQ(e.side(), ErrorSide::kUpstream);
  EXPECT_TRUE(e.retryable());
  EXPECT_EQ(e.upstream_status(), 503);
  EXPECT_STREQ(e.message(), "upstream answered 503");
}

}  // namespace
}  // namespace llmgw::dataplane
