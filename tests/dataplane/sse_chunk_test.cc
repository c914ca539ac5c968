// Unit tests of the pieces stream resume reads SSE with, on strings (no sockets):
// BufferPool reuse, SSE event splitting, the chunk reader (against the full JSON parser on
// every shape) and the chunk-shape memo. StreamResumeState and the rewriting are in
// stream_resume_test.cc.
#include <gtest/gtest.h>
#include <rapidjson/document.h>

#include <algorithm>
#include <string>
#include <vector>

#include "dataplane/buffer_pool.h"
#include "dataplane/sse_chunk.h"
#include "dataplane/stream_resume.h"
#include "tests/dataplane/stream_test_util.h"

namespace llmgw::dataplane {
namespace {

using namespace stream_test;  // ChatChunk, UsageChunk, Event, Parse

// --- BufferPool ---

TEST(BufferPoolTest, GivenBackBuffersAreReusedWithTheirCapacity) {
  BufferPool pool(1024);
  std::string* a = pool.Take();
  a->assign(500, 'x');
  pool.Give(a);
  EXPECT_EQ(pool.created(), 1u);
  std::string* b = pool.Take();
  EXPECT_EQ(b, a);
  EXPECT_TRUE(b->empty());
  EXPECT_GE(b->capacity(), 500u);
  EXPECT_EQ(pool.created(), 1u);
  pool.Give(b);
}

TEST(BufferPoolTest, AnOversizedBufferIsShrunkOnReturn) {
  BufferPool pool(1024);
  std::string* a = pool.Take();
  a->assign(100000, 'x');
  pool.Give(a);
  std::string* b = pool.Take();
  EXPECT_LT(b->capacity(), 100000u);
  pool.Give(b);
}

// --- SseEventSplitter / SplitEvent ---

std::vector<std::string> SplitAll(SseEventSplitter* s, const std::vector<std::string>& pieces) {
  std::vector<std::string> got;
  for (const auto& p : pieces) {
    size_t used;
    EXPECT_TRUE(s->Feed(p, [&](std::string_view ev) { got.emplace_back(ev); }, &used));
    EXPECT_EQ(used, p.size());
  }
  return got;
}

TEST(SseEventSplitterTest, EventsCutAnywhereComeOutWhole) {
  BufferPool pool;
  SseEventSplitter s;
  s.Begin(&pool, 4096);
  auto got = SplitAll(&s, {"data: {\"a\":1}\n\nda", "ta: {\"b\"", ":2}\n", "\ndata: [DONE]\n\n"});
  ASSERT_EQ(got.size(), 3u);
  EXPECT_EQ(got[0], "data: {\"a\":1}\n\n");
  EXPECT_EQ(got[1], "data: {\"b\":2}\n\n");
  EXPECT_EQ(got[2], "data: [DONE]\n\n");
  EXPECT_FALSE(s.has_partial());
  s.Release();
}

TEST(SseEventSplitterTest, CrLfAndCommentsAndNamedEvents) {
  BufferPool pool;
  SseEventSplitter s;
  s.Begin(&pool, 4096);
  auto got = SplitAll(&s, {": ping\r\n\r\nevent: error\r\ndata: {\"error\":{}}\r", "\n\r\n"});
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0], ": ping\r\n\r\n");
  EXPECT_EQ(got[1], "event: error\r\ndata: {\"error\":{}}\r\n\r\n");
  SseEventView v;
  SplitEvent(got[1], &v);
  EXPECT_EQ(v.name, "error");
  EXPECT_EQ(v.data, "{\"error\":{}}");
  EXPECT_EQ(v.data_lines, 1);
  EXPECT_EQ(got[1].substr(v.data_offset, v.data.size()), v.data);
  SplitEvent(got[0], &v);
  EXPECT_EQ(v.data_lines, 0);
  s.Release();
}

TEST(SseEventSplitterTest, HalfAnEventIsForgottenOnReset) {
  BufferPool pool;
  SseEventSplitter s;
  s.Begin(&pool, 4096);
  auto got = SplitAll(&s, {"data: {\"a\":1}\n\ndata: {\"cut"});
  EXPECT_EQ(got.size(), 1u);
  EXPECT_TRUE(s.has_partial());
  s.Reset();  // the attempt failed: the half event never reaches the client
  got = SplitAll(&s, {"data: {\"b\":2}\n\n"});
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0], "data: {\"b\":2}\n\n");
  s.Release();
}

TEST(SseEventSplitterTest, AnEventOverTheBoundStopsSplitting) {
  BufferPool pool;
  SseEventSplitter s;
  s.Begin(&pool, 16);
  size_t used = 0;
  int events = 0;
  std::string piece = "data: 1\n\ndata: 0123456789abcdefghij";
  EXPECT_FALSE(s.Feed(piece, [&](std::string_view) { ++events; }, &used));
  EXPECT_EQ(events, 1);
  EXPECT_EQ(used, 9u);  // the rest goes on unsplit, from here
  EXPECT_TRUE(s.overflow());
  s.Release();
}

TEST(SplitEventTest, DoneAndDataWithoutSpace) {
  SseEventView v;
  SplitEvent("data: [DONE]\n\n", &v);
  EXPECT_TRUE(v.IsDone());
  SplitEvent("data:{\"x\":1}\n\n", &v);
  EXPECT_EQ(v.data, "{\"x\":1}");
  EXPECT_EQ(v.data_offset, 5u);
  SplitEvent("data: a\ndata: b\n\n", &v);
  EXPECT_EQ(v.data_lines, 2);
}

// --- ParseChunk ---

TEST(ParseChunkTest, ChatChunkRangesAndText) {
  std::string j = ChatChunk("chatcmpl-1", " hello \\\"x\\\"", true);
  ChunkInfo c;
  ASSERT_TRUE(ParseChunk(j, &c));
  EXPECT_EQ(c.id.In(j), "\"chatcmpl-1\"");
  EXPECT_EQ(c.created.In(j), "1700000000");
  EXPECT_EQ(c.model.In(j), "\"m1\"");
  ASSERT_EQ(c.num_choices, 1);
  EXPECT_EQ(c.choices[0].text.In(j), " hello \\\"x\\\"");
  EXPECT_TRUE(c.choices[0].has_text);
  EXPECT_EQ(c.choices[0].role.In(j), "\"role\":\"assistant\",");
  EXPECT_FALSE(c.choices[0].finished);
  EXPECT_FALSE(c.choices[0].tool_calls);
  EXPECT_FALSE(c.error);
  EXPECT_FALSE(c.UsageOnly());
}

TEST(ParseChunkTest, CompletionTextFinishAndIndex) {
  std::string j = "{\"id\":\"cmpl-1\",\"created\":5,\"model\":\"m\",\"choices\":[{\"index\":2,\"text\":\" w\","
                  "\"finish_reason\":\"length\"}]}";
  ChunkInfo c;
  ASSERT_TRUE(ParseChunk(j, &c));
  EXPECT_EQ(c.choices[0].index, 2);
  EXPECT_EQ(c.choices[0].text.In(j), " w");
  EXPECT_TRUE(c.choices[0].finished);
}

TEST(ParseChunkTest, ToolCallsUsageAndErrors) {
  ChunkInfo c;
  std::string t = "{\"id\":\"x\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":"
                  "{\"arguments\":\"{\\\"a\"}}]},\"finish_reason\":null}]}";
  ASSERT_TRUE(ParseChunk(t, &c));
  EXPECT_TRUE(c.choices[0].tool_calls);
  EXPECT_FALSE(c.choices[0].has_text);
  std::string nulltools = "{\"choices\":[{\"index\":0,\"delta\":{\"content\":\"a\",\"tool_calls\":null}}]}";
  ASSERT_TRUE(ParseChunk(nulltools, &c));
  EXPECT_FALSE(c.choices[0].tool_calls);

  std::string u = UsageChunk("x", 10, 7);
  ASSERT_TRUE(ParseChunk(u, &c));
  EXPECT_TRUE(c.UsageOnly());
  EXPECT_EQ(c.prompt_tokens, 10u);
  EXPECT_EQ(c.completion_tokens, 7u);
  EXPECT_EQ(c.usage.In(u), "{\"prompt_tokens\":10,\"total_tokens\":17,\"completion_tokens\":7}");

  ASSERT_TRUE(ParseChunk("{\"error\":{\"message\":\"boom\",\"code\":500}}", &c));
  EXPECT_TRUE(c.error);
  ASSERT_TRUE(ParseChunk("{\"id\":\"x\",\"error\":null,\"choices\":[]}", &c));
  EXPECT_FALSE(c.error);
  EXPECT_FALSE(c.UsageOnly());

  EXPECT_FALSE(ParseChunk("not json", &c));
  // Trailing bytes after the object (stream_resume_fuzz): not a chunk, never rewritten.
  EXPECT_FALSE(ParseChunk("{\"id\":\"b\",\"choion\":null}]}", &c));
  EXPECT_TRUE(ParseChunk("{\"id\":\"b\"} \r", &c));
  EXPECT_FALSE(ParseChunk("[1,2]", &c));
  EXPECT_FALSE(c.json_object);
}

TEST(ParseChunkTest, RoleAsTheOnlyOrLastMemberTakesTheCommaBefore) {
  std::string j = "{\"choices\":[{\"index\":0,\"delta\":{\"content\":\"\" , \"role\":\"assistant\"}}]}";
  ChunkInfo c;
  ASSERT_TRUE(ParseChunk(j, &c));
  std::string cut = j.substr(0, c.choices[0].role.begin) + j.substr(c.choices[0].role.end);
  Parse(cut);
  EXPECT_EQ(cut.find("role"), std::string::npos);
  j = "{\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\"}}]}";
  ASSERT_TRUE(ParseChunk(j, &c));
  cut = j.substr(0, c.choices[0].role.begin) + j.substr(c.choices[0].role.end);
  EXPECT_EQ(cut, "{\"choices\":[{\"index\":0,\"delta\":{}}]}");
}

// ParseChunk reads ordinary chunks with its own reader and leaves the rest to RapidJSON
// (ParseChunkFull): both must say the same of every input, down to each byte range.
std::string Describe(const ChunkInfo& c) {
  auto r = [](ByteRange b) { return std::to_string(b.begin) + "-" + std::to_string(b.end); };
  std::string s = "obj" + std::to_string(c.json_object) + " err" + std::to_string(c.error) + "/" +
                  std::to_string(c.error_code) + " id" + r(c.id) + " cr" + r(c.created) + " mo" + r(c.model) +
                  " hc" + std::to_string(c.has_choices) + " n" + std::to_string(c.num_choices) + " hu" +
                  std::to_string(c.has_usage) + " u" + r(c.usage) + " p" + std::to_string(c.prompt_tokens) + " c" +
                  std::to_string(c.completion_tokens);
  for (int i = 0; i < std::min(c.num_choices, ChunkInfo::kMaxChoices); ++i) {
    const ChunkChoice& ch = c.choices[i];
    s += " [" + std::to_string(ch.index) + " t" + r(ch.text) + std::to_string(ch.has_text) + " r" + r(ch.role) +
         " tc" + std::to_string(ch.tool_calls) + " f" + std::to_string(ch.finished) + "]";
  }
  return s;
}

TEST(ParseChunkTest, AgreesWithTheFullParserOnEveryShape) {
  std::vector<std::string> cases = {
      ChatChunk("chatcmpl-1", "hello", true),
      ChatChunk("chatcmpl-1", " w\\n\\\"q\\\" \\u00e9 \\ud83d\\ude00 \\/", false, true, "m2", 1),
      UsageChunk("x", 10, 7),
      "{\"id\":\"cmpl-1\",\"created\":5,\"model\":\"m\",\"choices\":[{\"index\":2,\"text\":\" w\","
      "\"finish_reason\":\"length\"}]}",
      "{\"id\":\"x\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":"
      "{\"arguments\":\"{\\\"a\"}}]},\"finish_reason\":null}]}",
      "{\"id\":\"x\",\"choices\":[{\"index\":0,\"delta\":{\"function_call\":{\"name\":\"f\"}}}]}",
      "{\"choices\":[{\"index\":0,\"delta\":{\"content\":\"\" , \"role\":\"assistant\"}}]}",
      "{\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\"}}]}",
      "{\"error\":{\"message\":\"boom\",\"code\":500}}",
      "{\"error\":{\"message\":\"boom\",\"code\":\"429\"}}",
      "{\"error\":{\"message\":\"boom\",\"code\":\"4\\u0032\"}}",
      "{\"object\":\"error\",\"message\":\"x\",\"code\":503}",
      "{\"object\":\"\\u0065rror\",\"message\":\"x\",\"code\":503}",
      "{\"id\":\"x\",\"error\":null,\"choices\":[]}",
      "{\"id\":\"x\",\"error\":false}",
      "{\"id\":\"x\",\"error\":[1]}",
      "{\"id\":\"x\",\"created\":-3,\"usage\":null,\"choices\":[{\"index\":-1,\"logprobs\":{\"content\":[{\"logprob\":"
      "-0.0123,\"bytes\":[72,105]}]},\"delta\":{\"content\":\"a\"}}]}",
      "{\"created\":1.5e3}",
      "{\"created\":123456789012345678901234}",
      "{\"created\":18446744073709551615,\"usage\":{\"prompt_tokens\":9223372036854775808}}",
      "{\"created\":01}",
      "{\"created\":-}",
      "{\"created\":1.}",
      "{\"k\\u0065y\":1,\"id\":\"a\"}",
      "{\"id\":\"a\\ud800\"}",
      "{\"id\":\"a\\udc00\"}",
      "{\"id\":\"a\\x\"}",
      "{\"id\":\"a\tb\"}",
      std::string("{\"id\":\"a\0b\"}", 12),
      "{\"id\":\"a\"} \r\n",
      "{\"id\":\"a\"} x",
      "{\"id\":\"a\",}",
      "{\"id\":\"a\" \"b\":1}",
      "{\"a\":[1,2,]}",
      "{\"a\":tru}",
      "{\"a\":nul}",
      "{\"a\":[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]}",
      "  {\"id\" : \"a\" , \"choices\" : [ { \"index\" : 0 , \"delta\" : { \"role\" : \"assistant\" } } ] }  ",
      "[1,2]",
      "\"s\"",
      "",
      "{",
      "{\"id\":\"a\"",
      "{\"id\":\"a",
      "{\"choices\":[{},{},{},{},{},{},{},{},{},{\"index\":9,\"text\":\"z\"}]}",
  };
  // The shapes backends send on every token are read by the fast reader itself.
  const std::vector<std::string> everyday = {
      ChatChunk("chatcmpl-1", "hello", true),
      ChatChunk("chatcmpl-1", " w\\n\\\"q\\\" \\u00e9 \\/", false, true, "m2"),
      UsageChunk("x", 10, 7),
      "{\"id\":\"cmpl-1\",\"created\":5,\"model\":\"m\",\"choices\":[{\"index\":0,\"text\":\" w\","
      "\"finish_reason\":\"length\"}]}",
      "{\"id\":\"x\",\"usage\":null,\"choices\":[{\"index\":0,\"logprobs\":{\"content\":[{\"logprob\":-0.0123}]},"
      "\"delta\":{\"content\":\"a\"}}]}",
      " { \"id\" : \"a\" , \"choices\" : [ { \"index\" : 0 , \"delta\" : { \"role\" : \"assistant\" } } ] } \r",
  };
  for (const std::string& j : everyday) {
    ChunkInfo fast, full;
    EXPECT_TRUE(ParseChunkFast(j, &fast)) << j;
    ASSERT_TRUE(ParseChunkFull(j, &full)) << j;
    EXPECT_TRUE(fast == full) << j << "\n" << Describe(fast) << "\n" << Describe(full);
  }
  cases.insert(cases.end(), everyday.begin(), everyday.end());
  for (const std::string& j : cases) {
    ChunkInfo fast, full;
    bool a = ParseChunk(j, &fast);
    bool b = ParseChunkFull(j, &full);
    EXPECT_EQ(a, b) << j;
    EXPECT_TRUE(fast == full) << j << "\n" << Describe(fast) << "\n" << Describe(full);
    // Every prefix, too (a reader cut short must never claim a chunk).
    for (size_t n = 0; n < j.size(); ++n) {
      std::string_view p(j.data(), n);
      EXPECT_EQ(ParseChunk(p, &fast), ParseChunkFull(p, &full)) << p;
      EXPECT_TRUE(fast == full) << p << "\n" << Describe(fast) << "\n" << Describe(full);
    }
  }
}

// ChunkShapeMemo reads a chunk that differs from the last only in its text without a
// parse; whatever it returns must be what the full parser says, for every sequence.
TEST(ChunkShapeMemoTest, SameAsTheFullParserAlongAStream) {
  std::string cut_id = ChatChunk("chatcmpl-2", "x");
  std::vector<std::string> seq = {
      ChatChunk("chatcmpl-1", "", true),
      ChatChunk("chatcmpl-1", "Once"),
      ChatChunk("chatcmpl-1", " upon"),
      ChatChunk("chatcmpl-1", ""),
      ChatChunk("chatcmpl-1", " a \\\"time\\\" \\u00e9\\n"),
      ChatChunk("chatcmpl-1", " bad \\ud800 surrogate"),   // unsure: RapidJSON decides
      ChatChunk("chatcmpl-1", " bad \\q escape"),           // invalid
      ChatChunk("chatcmpl-1", std::string(" raw \x01 ctl")),  // invalid
      ChatChunk("chatcmpl-1", " quote\" inside"),            // invalid: the string ends early
      ChatChunk("chatcmpl-1", " there"),
      ChatChunk("chatcmpl-1", std::string(400, 'w')),
      ChatChunk("chatcmpl-1", " was", false, true),
      cut_id,
      cut_id.substr(0, cut_id.size() - 1),  // cut short
      ChatChunk("chatcmpl-1", " a"),
      "{\"choices\":[{\"index\":0,\"delta\":{\"content\":\"a\",\"role\":\"assistant\"}}]}",  // role after the text
      "{\"choices\":[{\"index\":0,\"delta\":{\"content\":\"bb\",\"role\":\"assistant\"}}]}",
      "{\"choices\":[{\"index\":0,\"delta\":{\"content\":\"a\"}}],\"usage\":{\"prompt_tokens\":1}}",  // usage after
      "{\"choices\":[{\"index\":0,\"delta\":{\"content\":\"bbb\"}}],\"usage\":{\"prompt_tokens\":1}}",
      "{\"choices\":[{\"index\":0,\"text\":\"a\"},{\"index\":1,\"text\":\"b\"}]}",  // two choices
      "{\"choices\":[{\"index\":0,\"text\":\"c\"},{\"index\":1,\"text\":\"d\"}]}",
      ChatChunk("chatcmpl-1", " end"),
      ChatChunk("chatcmpl-1", " end") + " x",  // trailing bytes: not a chunk
      UsageChunk("chatcmpl-1", 3, 9),
  };
  ChunkShapeMemo memo;
  for (const std::string& j : seq) {
    ChunkInfo a, b;
    bool x = memo.Parse(j, &a), y = ParseChunkFull(j, &b);
    EXPECT_EQ(x, y) << j;
    EXPECT_TRUE(a == b) << j << "\n" << Describe(a) << "\n" << Describe(b);
  }
  // Read without a parse: " upon", "" and the escaped text (after "Once"), and the 400
  // w's (after " there"); never a chunk after an invalid one, a changed id or finish,
  // nor one shaped like those whose role, usage or second choice follows the text.
  EXPECT_EQ(memo.hits(), 4u);
}

}  // namespace
}  // namespace llmgw::dataplane
