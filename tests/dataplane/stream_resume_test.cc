// Unit tests of stream resume's parts, on strings (no sockets): BufferPool reuse, SSE
// event splitting, the chunk reader, StreamResumeState, the continuation request,
// EnsureIncludeUsage and the chunk rewriting.
#include "dataplane/stream_resume.h"

#include <gtest/gtest.h>
#include <rapidjson/document.h>

#include <algorithm>
#include <string>
#include <vector>

#include "dataplane/buffer_pool.h"
#include "dataplane/sse_chunk.h"

namespace llmgw::dataplane {
namespace {

// A vLLM-shaped chat chunk.
std::string ChatChunk(std::string_view id, std::string_view content, bool role = false, bool finish = false,
                      std::string_view model = "m1", int index = 0) {
  std::string s = "{\"id\":\"" + std::string(id) + "\",\"object\":\"chat.completion.chunk\",\"created\":1700000000,"
                  "\"model\":\"" + std::string(model) + "\",\"choices\":[{\"index\":" + std::to_string(index) +
                  ",\"delta\":{";
  if (role) s += "\"role\":\"assistant\",";
  s += "\"content\":\"" + std::string(content) + "\"},\"logprobs\":null,\"finish_reason\":";
  s += finish ? "\"stop\"" : "null";
  s += "}]}";
  return s;
}
std::string UsageChunk(std::string_view id, int p, int c, std::string_view model = "m1") {
  return "{\"id\":\"" + std::string(id) + "\",\"object\":\"chat.completion.chunk\",\"created\":1700000099,\"model\":\"" +
         std::string(model) + "\",\"choices\":[],\"usage\":{\"prompt_tokens\":" + std::to_string(p) +
         ",\"total_tokens\":" + std::to_string(p + c) + ",\"completion_tokens\":" + std::to_string(c) + "}}";
}
std::string Event(const std::string& json) { return "data: " + json + "\n\n"; }

rapidjson::Document Parse(std::string_view s) {
  rapidjson::Document d;
  d.Parse(s.data(), s.size());
  EXPECT_FALSE(d.HasParseError()) << s;
  return d;
}

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

// --- StreamResumeState ---

struct Fed {
  BufferPool pool;
  StreamResumeState st;
  explicit Fed(size_t max_bytes = 1 << 20) { st.Begin(&pool, max_bytes); }
  ~Fed() { st.Release(); }
  void Chunk(const std::string& j) {
    ChunkInfo c;
    ASSERT_TRUE(ParseChunk(j, &c));
    st.OnChunk(j, c);
  }
};

TEST(StreamResumeStateTest, KeepsTextTokensAndTheFirstIds) {
  Fed f;
  f.Chunk(ChatChunk("chatcmpl-A", "", true));
  f.Chunk(ChatChunk("chatcmpl-A", " one"));
  f.Chunk(ChatChunk("chatcmpl-A", " two\\n"));
  EXPECT_EQ(f.st.text(0), " one two\\n");
  EXPECT_EQ(f.st.first_id(), "\"chatcmpl-A\"");
  EXPECT_EQ(f.st.first_created(), "1700000000");
  EXPECT_EQ(f.st.first_model(), "\"m1\"");
  EXPECT_TRUE(f.st.role_sent());
  EXPECT_EQ(f.st.Check(), ResumeOutcome::kOk);
  EXPECT_EQ(f.st.TotalCompletion(), 2u);  // two chunks carried text
  f.st.AttemptFailed();
  EXPECT_EQ(f.st.tokens_before(), 2u);
  EXPECT_TRUE(f.st.continuation());
  // The continuation's chunks do not replace the first attempt's ids.
  f.Chunk(ChatChunk("chatcmpl-B", " three", false, false, "m2"));
  EXPECT_EQ(f.st.first_id(), "\"chatcmpl-A\"");
  EXPECT_EQ(f.st.first_model(), "\"m1\"");
  EXPECT_EQ(f.st.text(0), " one two\\n three");
  f.Chunk(UsageChunk("chatcmpl-B", 30, 5));
  EXPECT_EQ(f.st.SummedCompletion(5), 7u);
  EXPECT_EQ(f.st.SummedPrompt(30), 30u);
  EXPECT_EQ(f.st.TotalCompletion(), 7u);
}

TEST(StreamResumeStateTest, RefusalsTooLargeManyChoicesToolCall) {
  {
    Fed f(8);
    f.Chunk(ChatChunk("a", "12345"));
    EXPECT_EQ(f.st.Check(), ResumeOutcome::kOk);
    f.Chunk(ChatChunk("a", "6789"));
    EXPECT_EQ(f.st.Check(), ResumeOutcome::kTooLarge);
  }
  {
    Fed f;
    f.Chunk(ChatChunk("a", "x", false, false, "m", 1));
    EXPECT_EQ(f.st.Check(), ResumeOutcome::kMultipleChoices);
    EXPECT_EQ(f.st.text(1), "x");  // kept per choice index
  }
  {
    Fed f;
    f.st.SetRequestedChoices(2);
    EXPECT_EQ(f.st.Check(), ResumeOutcome::kMultipleChoices);
  }
  {
    Fed f;
    f.Chunk("{\"id\":\"x\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0}]}}]}");
    EXPECT_EQ(f.st.Check(), ResumeOutcome::kToolCall);
  }
  {
    Fed f;
    f.Chunk(ChatChunk("a", "x"));
    f.st.OnUnrecognised();
    EXPECT_EQ(f.st.Check(), ResumeOutcome::kUnrecognised);
  }
}

TEST(StreamResumeStateTest, NoAllocationOnceThePoolIsWarm) {
  BufferPool pool;
  StreamResumeState st;
  std::string j = ChatChunk("a", " word");
  ChunkInfo c;
  ASSERT_TRUE(ParseChunk(j, &c));
  for (int round = 0; round < 50; ++round) {
    st.Begin(&pool, 1 << 20);
    for (int i = 0; i < 100; ++i) st.OnChunk(j, c);
    st.Release();
  }
  EXPECT_EQ(pool.created(), 1u);  // one buffer, reused by every stream
}

// --- BuildContinuation ---

TEST(BuildContinuationTest, ChatGetsTheAssistantMessageAndTheFlags) {
  Fed f;
  f.Chunk(ChatChunk("a", "", true));
  f.Chunk(ChatChunk("a", " Hello"));
  f.Chunk(ChatChunk("a", " \\\"world\\\""));
  f.st.AttemptFailed();
  std::string body = R"({"model":"alias","messages":[{"role":"user","content":"hi"}],"stream":true,"max_tokens":10,"max_completion_tokens":12,"temperature":0})";
  std::string out;
  ASSERT_EQ(BuildContinuation(body, true, "real-model", f.st, &out), ResumeOutcome::kOk);
  auto d = Parse(out);
  EXPECT_STREQ(d["model"].GetString(), "real-model");
  ASSERT_EQ(d["messages"].Size(), 2u);
  EXPECT_STREQ(d["messages"][1]["role"].GetString(), "assistant");
  EXPECT_STREQ(d["messages"][1]["content"].GetString(), " Hello \"world\"");
  EXPECT_TRUE(d["continue_final_message"].GetBool());
  EXPECT_FALSE(d["add_generation_prompt"].GetBool());
  EXPECT_EQ(d["max_tokens"].GetInt(), 8);
  EXPECT_EQ(d["max_completion_tokens"].GetInt(), 10);
  EXPECT_TRUE(d["stream_options"]["include_usage"].GetBool());
  EXPECT_TRUE(d["stream"].GetBool());
  EXPECT_EQ(d["temperature"].GetInt(), 0);
}

TEST(BuildContinuationTest, ExistingFlagsAndStreamOptionsAreOverwrittenNotDuplicated) {
  Fed f;
  f.Chunk(ChatChunk("a", " x"));
  f.st.AttemptFailed();
  std::string body = R"({"model":"m","messages":[{"role":"user","content":"hi"}],"add_generation_prompt":true,"continue_final_message":false,"stream_options":{"include_usage":false,"continuous_usage_stats":false}})";
  std::string out;
  ASSERT_EQ(BuildContinuation(body, true, "", f.st, &out), ResumeOutcome::kOk);
  auto d = Parse(out);
  EXPECT_TRUE(d["continue_final_message"].GetBool());
  EXPECT_FALSE(d["add_generation_prompt"].GetBool());
  EXPECT_TRUE(d["stream_options"]["include_usage"].GetBool());
  EXPECT_FALSE(d["stream_options"]["continuous_usage_stats"].GetBool());
  EXPECT_STREQ(d["model"].GetString(), "m");
  int members = 0;
  for (auto it = d.MemberBegin(); it != d.MemberEnd(); ++it) ++members;
  EXPECT_EQ(members, 5);
}

TEST(BuildContinuationTest, CompletionsAppendToThePrompt) {
  Fed f;
  f.Chunk("{\"id\":\"c\",\"created\":1,\"model\":\"m\",\"choices\":[{\"index\":0,\"text\":\" more\\ttext\"}]}");
  f.st.AttemptFailed();
  std::string out;
  ASSERT_EQ(BuildContinuation(R"({"model":"m","prompt":"Once upon","max_tokens":5})", false, "", f.st, &out),
            ResumeOutcome::kOk);
  auto d = Parse(out);
  EXPECT_STREQ(d["prompt"].GetString(), "Once upon more\ttext");
  EXPECT_EQ(d["max_tokens"].GetInt(), 4);
  EXPECT_FALSE(d.HasMember("continue_final_message"));
  EXPECT_TRUE(d["stream_options"]["include_usage"].GetBool());
  ASSERT_EQ(BuildContinuation(R"({"model":"m","prompt":["Once \"upon"],"stream_options":null})", false, "", f.st,
                              &out),
            ResumeOutcome::kOk);
  d = Parse(out);
  EXPECT_STREQ(d["prompt"][0].GetString(), "Once \"upon more\ttext");
  EXPECT_TRUE(d["stream_options"]["include_usage"].GetBool());
}

TEST(BuildContinuationTest, Refusals) {
  Fed f;
  f.Chunk(ChatChunk("a", " x"));
  f.Chunk(ChatChunk("a", " y"));
  f.st.AttemptFailed();
  std::string out;
  EXPECT_EQ(BuildContinuation(R"({"model":"m","prompt":[1,2,3]})", false, "", f.st, &out), ResumeOutcome::kRequestShape);
  EXPECT_EQ(BuildContinuation(R"({"model":"m","prompt":["a","b"]})", false, "", f.st, &out),
            ResumeOutcome::kRequestShape);
  EXPECT_EQ(BuildContinuation(R"({"model":"m","prompt":"a","echo":true})", false, "", f.st, &out),
            ResumeOutcome::kRequestShape);
  EXPECT_EQ(BuildContinuation(R"({"model":"m","prompt":"a","max_tokens":2})", false, "", f.st, &out),
            ResumeOutcome::kNothingLeft);
  EXPECT_EQ(BuildContinuation(R"({"model":"m","messages":[{"role":"user","content":"q"}],"n":2})", true, "", f.st,
                              &out),
            ResumeOutcome::kMultipleChoices);
  EXPECT_EQ(BuildContinuation(
                R"({"model":"m","messages":[{"role":"assistant","content":"pre"}],"continue_final_message":true})", true,
                "", f.st, &out),
            ResumeOutcome::kRequestShape);
  EXPECT_EQ(BuildContinuation("{\"model\":", true, "", f.st, &out), ResumeOutcome::kRequestShape);
}

TEST(EnsureIncludeUsageTest, AddsOrTurnsOnIncludeUsage) {
  std::string out;
  ASSERT_TRUE(EnsureIncludeUsage(R"({"model":"m","stream":true})", "", &out));
  EXPECT_EQ(out, R"({"model":"m","stream":true,"stream_options":{"include_usage":true}})");
  ASSERT_TRUE(EnsureIncludeUsage(R"({"model":"m","stream_options":{}})", "", &out));
  EXPECT_EQ(out, R"({"model":"m","stream_options":{"include_usage":true}})");
  ASSERT_TRUE(EnsureIncludeUsage(R"({"model":"m","stream_options":{"x":1}})", "", &out));
  EXPECT_EQ(out, R"({"model":"m","stream_options":{"include_usage":true,"x":1}})");
  ASSERT_TRUE(EnsureIncludeUsage(R"({"model":"a","stream_options":{"include_usage": false }})", "bb", &out));
  EXPECT_EQ(out, R"({"model":"bb","stream_options":{"include_usage": true }})");
  EXPECT_FALSE(EnsureIncludeUsage("[1]", "", &out));
  // An empty object takes the member without a comma (stream_resume_fuzz).
  ASSERT_TRUE(EnsureIncludeUsage("{ }", "", &out));
  EXPECT_EQ(out, R"({ "stream_options":{"include_usage":true}})");
}

// --- RewriteChunk ---

TEST(RewriteChunkTest, FirstAttemptPassesAsIsAndDropsUnaskedUsage) {
  Fed f;
  std::string j = ChatChunk("a", " x", true);
  std::string ev = Event(j);
  SseEventView v;
  SplitEvent(ev, &v);
  ChunkInfo c;
  ASSERT_TRUE(ParseChunk(v.data, &c));
  std::string out;
  EXPECT_EQ(RewriteChunk(ev, v, c, f.st, false, &out), ChunkAction::kAsIs);
  std::string u = Event(UsageChunk("a", 3, 4));
  SplitEvent(u, &v);
  ASSERT_TRUE(ParseChunk(v.data, &c));
  EXPECT_EQ(RewriteChunk(u, v, c, f.st, false, &out), ChunkAction::kDropped);
  EXPECT_EQ(RewriteChunk(u, v, c, f.st, true, &out), ChunkAction::kAsIs);
  EXPECT_TRUE(out.empty());
}

TEST(RewriteChunkTest, ContinuationTakesTheFirstIdsLosesTheRoleAndSumsUsage) {
  Fed f;
  f.Chunk(ChatChunk("chatcmpl-first", "", true));
  f.Chunk(ChatChunk("chatcmpl-first", " a"));
  f.Chunk(ChatChunk("chatcmpl-first", " b"));
  f.st.AttemptFailed();
  std::string ev = Event(ChatChunk("chatcmpl-second", "", true, false, "other"));
  SseEventView v;
  SplitEvent(ev, &v);
  ChunkInfo c;
  ASSERT_TRUE(ParseChunk(v.data, &c));
  std::string out;
  ASSERT_EQ(RewriteChunk(ev, v, c, f.st, true, &out), ChunkAction::kRewritten);
  ASSERT_EQ(out.substr(0, 6), "data: ");
  ASSERT_EQ(out.substr(out.size() - 2), "\n\n");
  auto d = Parse(std::string_view(out).substr(6, out.size() - 8));
  EXPECT_STREQ(d["id"].GetString(), "chatcmpl-first");
  EXPECT_EQ(d["created"].GetInt64(), 1700000000);
  EXPECT_STREQ(d["model"].GetString(), "m1");
  EXPECT_FALSE(d["choices"][0]["delta"].HasMember("role"));
  EXPECT_STREQ(d["choices"][0]["delta"]["content"].GetString(), "");

  std::string u = Event(UsageChunk("chatcmpl-second", 40, 6, "other"));
  SplitEvent(u, &v);
  ASSERT_TRUE(ParseChunk(v.data, &c));
  out.clear();
  ASSERT_EQ(RewriteChunk(u, v, c, f.st, true, &out), ChunkAction::kRewritten);
  d = Parse(std::string_view(out).substr(6, out.size() - 8));
  EXPECT_EQ(d["usage"]["completion_tokens"].GetInt(), 8);  // 2 relayed before + 6
  EXPECT_EQ(d["usage"]["prompt_tokens"].GetInt(), 40);     // the broken attempt reported none
  EXPECT_EQ(d["usage"]["total_tokens"].GetInt(), 48);
  EXPECT_STREQ(d["id"].GetString(), "chatcmpl-first");
  out.clear();
  EXPECT_EQ(RewriteChunk(u, v, c, f.st, false, &out), ChunkAction::kDropped);
}

}  // namespace
}  // namespace llmgw::dataplane
