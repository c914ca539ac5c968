// Unit tests of stream resume's parts, on strings (no sockets): StreamResumeState, the
// continuation request, EnsureIncludeUsage and the chunk rewriting. BufferPool, SSE event
// splitting and the chunk reader are in sse_chunk_test.cc.
#include "dataplane/stream_resume.h"

#include <gtest/gtest.h>
#include <rapidjson/document.h>

#include <algorithm>
#include <string>
#include <vector>

#include "dataplane/buffer_pool.h"
#include "dataplane/sse_chunk.h"
#include "tests/dataplane/stream_test_util.h"

namespace llmgw::dataplane {
namespace {

using namespace stream_test;  // ChatChunk, UsageChunk, Event, Parse

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
