// Unit tests of llmgw-bench's SSE event classification: what counts as a token (for TTFT
// and inter-token figures) and what marks a stream as failed.
#include <gtest/gtest.h>

#include "bench/loadgen/loadgen.h"

namespace llmgw::bench {
namespace {

TEST(LoadgenSseTest, TokensAreDataEventsWithChoices) {
  EXPECT_EQ(ClassifySseEvent(R"(data: {"choices":[{"delta":{"content":"x"}}]})"), SseEvent::kToken);
  EXPECT_EQ(ClassifySseEvent("id: 7\ndata: {\"choices\":[{\"text\":\"x\"}]}"), SseEvent::kToken);
  EXPECT_EQ(ClassifySseEvent("data:{\"choices\":[{\"text\":\"x\"}]}\r"), SseEvent::kToken);
}

TEST(LoadgenSseTest, TerminatorUsageAndCommentsAreNotTokens) {
  EXPECT_EQ(ClassifySseEvent("data: [DONE]"), SseEvent::kOther);
  EXPECT_EQ(ClassifySseEvent(R"(data: {"choices":[],"usage":{"completion_tokens":5}})"), SseEvent::kOther);
  EXPECT_EQ(ClassifySseEvent(": keep-alive"), SseEvent::kOther);
  EXPECT_EQ(ClassifySseEvent(""), SseEvent::kOther);
}

// Issue 17: these ended streams that llmgw-bench counted as successes.
TEST(LoadgenSseTest, ErrorEventsMarkTheStreamFailed) {
  EXPECT_EQ(ClassifySseEvent("event: error\ndata: {\"error\":{\"message\":\"upstream closed\"}}"),
            SseEvent::kError);
  EXPECT_EQ(ClassifySseEvent("event:error\r\ndata: {}\r"), SseEvent::kError);
  EXPECT_EQ(ClassifySseEvent(R"(data: {"error":{"message":"out of KV cache","code":500}})"), SseEvent::kError);
  EXPECT_EQ(ClassifySseEvent("event: message\ndata: {\"choices\":[{\"text\":\"error\"}]}"), SseEvent::kToken);
}

}  // namespace
}  // namespace llmgw::bench
