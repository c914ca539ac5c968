// The OpenAI <-> Anthropic translation (common/providers/anthropic_translate.h): requests
// with system prompts, parts, tools and tool results; answers with text and tool calls;
// errors; and the SSE stream, split at every byte, into OpenAI chunks with usage.
#include "common/providers/anthropic_translate.h"

#include <gtest/gtest.h>
#include <rapidjson/document.h>

#include <string>
#include <vector>

namespace llmgw::providers {
namespace {

char g_scratch[1 << 16];

struct Translated {
  Status st;
  std::string out;
  bool stream = false;
};

Translated Request(const std::string& body, std::string_view upstream_model = "") {
  static char buf[1 << 16];
  OutBuf out(buf, sizeof buf);
  Translated t;
  t.st = AnthropicRequestFromOpenAi(body, upstream_model, g_scratch, sizeof g_scratch, &out, &t.stream);
  t.out = std::string(out.view());
  return t;
}

rapidjson::Document Parse(const std::string& s) {
  rapidjson::Document d;
  d.Parse(s.c_str());
  EXPECT_FALSE(d.HasParseError()) << s;
  return d;
}

TEST(AnthropicTranslateTest, ChatRequestBecomesAMessagesRequest) {
  Translated t = Request(R"({"model":"claude","messages":[
      {"role":"system","content":"be brief"},
      {"role":"developer","content":[{"type":"text","text":"and kind"}]},
      {"role":"user","content":"what is \"2+2\"?"},
      {"role":"assistant","content":null,"tool_calls":[{"id":"call_1","type":"function",
        "function":{"name":"calc","arguments":"{\"expr\":\"2+2\",\"n\":[1,2.5,-3]}"}}]},
      {"role":"tool","tool_call_id":"call_1","content":"4"},
      {"role":"user","content":[{"type":"text","text":"and this?"},
        {"type":"image_url","image_url":{"url":"data:image/png;base64,AAAA"}}]}],
    "max_completion_tokens":50,"stop":"END","temperature":1.5,"top_p":0.9,"stream":true,"user":"u-1",
    "tools":[{"type":"function","function":{"name":"calc","description":"math",
      "parameters":{"type":"object","properties":{"expr":{"type":"string"}}}}}],
    "tool_choice":"required"})",
                         "claude-sonnet-4");
  ASSERT_TRUE(t.st.ok()) << t.st.error().message();
  EXPECT_TRUE(t.stream);
  auto d = Parse(t.out);
  EXPECT_STREQ(d["model"].GetString(), "claude-sonnet-4");
  EXPECT_EQ(d["max_tokens"].GetInt(), 50);
  EXPECT_STREQ(d["system"].GetString(), "be brief\n\nand kind");
  ASSERT_EQ(d["messages"].Size(), 4u);
  EXPECT_STREQ(d["messages"][0]["role"].GetString(), "user");
  EXPECT_STREQ(d["messages"][0]["content"].GetString(), "what is \"2+2\"?");
  const auto& tu = d["messages"][1]["content"][0];
  EXPECT_STREQ(tu["type"].GetString(), "tool_use");
  EXPECT_STREQ(tu["id"].GetString(), "call_1");
  EXPECT_STREQ(tu["input"]["expr"].GetString(), "2+2");
  EXPECT_DOUBLE_EQ(tu["input"]["n"][1].GetDouble(), 2.5);
  EXPECT_EQ(tu["input"]["n"][2].GetInt(), -3);
  const auto& tr = d["messages"][2];
  EXPECT_STREQ(tr["role"].GetString(), "user");
  EXPECT_STREQ(tr["content"][0]["type"].GetString(), "tool_result");
  EXPECT_STREQ(tr["content"][0]["tool_use_id"].GetString(), "call_1");
  EXPECT_STREQ(tr["content"][0]["content"].GetString(), "4");
  const auto& img = d["messages"][3]["content"][1];
  EXPECT_STREQ(img["source"]["type"].GetString(), "base64");
  EXPECT_STREQ(img["source"]["media_type"].GetString(), "image/png");
  EXPECT_STREQ(img["source"]["data"].GetString(), "AAAA");
  EXPECT_STREQ(d["stop_sequences"][0].GetString(), "END");
  EXPECT_DOUBLE_EQ(d["temperature"].GetDouble(), 1.0);  // capped to Anthropic's range
  EXPECT_DOUBLE_EQ(d["top_p"].GetDouble(), 0.9);
  EXPECT_TRUE(d["stream"].GetBool());
  EXPECT_STREQ(d["metadata"]["user_id"].GetString(), "u-1");
  EXPECT_STREQ(d["tools"][0]["name"].GetString(), "calc");
  EXPECT_STREQ(d["tools"][0]["input_schema"]["properties"]["expr"]["type"].GetString(), "string");
  EXPECT_STREQ(d["tool_choice"]["type"].GetString(), "any");
  EXPECT_FALSE(d.HasMember("stop"));
}

TEST(AnthropicTranslateTest, DefaultsAndRefusals) {
  Translated t = Request(R"({"model":"m","messages":[{"role":"user","content":"hi"}]})");
  ASSERT_TRUE(t.st.ok());
  EXPECT_FALSE(t.stream);
  auto d = Parse(t.out);
  EXPECT_STREQ(d["model"].GetString(), "m");
  EXPECT_EQ(d["max_tokens"].GetInt(), kDefaultMaxTokens);
  EXPECT_FALSE(d.HasMember("system"));
  for (const char* bad : {
           R"({"model":"m","messages":[]})",
           R"({"model":"m","messages":[{"role":"system","content":"only system"}]})",
           R"({"model":"m","n":2,"messages":[{"role":"user","content":"hi"}]})",
           R"({"model":"m","max_tokens":0,"messages":[{"role":"user","content":"hi"}]})",
           R"({"model":"m","messages":[{"role":"assistant","content":null,"tool_calls":[{"id":"a","function":{"name":"f","arguments":"not json"}}]}]})",
           R"({"model":"m","messages":[{"role":"user","content":"hi"}],"tool_choice":"sometimes"})",
           R"({"model":"m","messages":[{"role":"wizard","content":"hi"}]})",
           R"({"messages":[{"role":"user","content":"hi"}]})",
           R"([1,2])",
           R"({"model":)"}) {
    Translated r = Request(bad);
    EXPECT_FALSE(r.st.ok()) << bad;
    EXPECT_EQ(r.st.error().kind(), ErrorKind::kBadRequest) << bad;
  }
}

TEST(AnthropicTranslateTest, AnswerWithTextAndToolCallsBecomesAChatCompletion) {
  static char buf[1 << 14];
  OutBuf out(buf, sizeof buf);
  Status st = OpenAiResponseFromAnthropic(
      R"({"id":"msg_1","type":"message","role":"assistant","model":"claude-sonnet-4",
          "content":[{"type":"text","text":"Let me "},{"type":"text","text":"check."},
                     {"type":"tool_use","id":"toolu_1","name":"calc","input":{"expr":"2+2"}}],
          "stop_reason":"tool_use","stop_sequence":null,
          "usage":{"input_tokens":10,"cache_read_input_tokens":5,"output_tokens":7}})",
      1700000000, g_scratch, sizeof g_scratch, &out);
  ASSERT_TRUE(st.ok()) << st.error().message();
  auto d = Parse(std::string(out.view()));
  EXPECT_STREQ(d["id"].GetString(), "chatcmpl-msg_1");
  EXPECT_STREQ(d["object"].GetString(), "chat.completion");
  EXPECT_EQ(d["created"].GetInt64(), 1700000000);
  EXPECT_STREQ(d["model"].GetString(), "claude-sonnet-4");
  const auto& msg = d["choices"][0]["message"];
  EXPECT_STREQ(msg["content"].GetString(), "Let me check.");
  EXPECT_STREQ(msg["tool_calls"][0]["function"]["name"].GetString(), "calc");
  auto args = Parse(msg["tool_calls"][0]["function"]["arguments"].GetString());
  EXPECT_STREQ(args["expr"].GetString(), "2+2");
  EXPECT_STREQ(d["choices"][0]["finish_reason"].GetString(), "tool_calls");
  EXPECT_EQ(d["usage"]["prompt_tokens"].GetInt(), 15);
  EXPECT_EQ(d["usage"]["completion_tokens"].GetInt(), 7);
  EXPECT_EQ(d["usage"]["total_tokens"].GetInt(), 22);

  OutBuf bad(buf, sizeof buf);
  EXPECT_FALSE(OpenAiResponseFromAnthropic("{\"type\":\"message\"}", 1, g_scratch, sizeof g_scratch, &bad).ok());
}

// The data plane's scratch is a buffer of any size (answer * 2 + 4096): the parser's pools
// must still start aligned (UBSan, as CI runs these tests, reported a misaligned
// RapidJSON chunk header when they were split at 3/4 of an odd size).
TEST(AnthropicTranslateTest, ScratchOfAnyAlignmentAndSize) {
  alignas(16) static char scratch[20000];
  static char buf[4096];
  for (size_t offset : {0, 1, 3, 7}) {
    for (size_t len : {size_t{8191}, size_t{12345}, size_t{16001}}) {
      OutBuf out(buf, sizeof buf);
      Status st = OpenAiResponseFromAnthropic(
          R"({"id":"m","type":"message","role":"assistant","model":"c","content":[{"type":"text","text":"hi"}],)"
          R"("stop_reason":"end_turn","usage":{"input_tokens":1,"output_tokens":1}})",
          1, scratch + offset, len, &out);
      ASSERT_TRUE(st.ok()) << offset << " " << len << ": " << st.error().message();
      EXPECT_NE(out.view().find("\"content\":\"hi\""), std::string_view::npos) << out.view();
      OutBuf err(buf, sizeof buf);
      EXPECT_EQ(OpenAiErrorFromAnthropic(529, R"({"type":"error","error":{"type":"overloaded_error","message":"busy"}})",
                                         scratch + offset, len, &err),
                503);
    }
  }
}

TEST(AnthropicTranslateTest, ErrorsComeBackInOpenAisShape) {
  char buf[1024];
  OutBuf out(buf, sizeof buf);
  int status = OpenAiErrorFromAnthropic(
      529, R"({"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}})", g_scratch,
      sizeof g_scratch, &out);
  EXPECT_EQ(status, 503);
  auto d = Parse(std::string(out.view()));
  EXPECT_STREQ(d["error"]["message"].GetString(), "Overloaded");
  EXPECT_STREQ(d["error"]["type"].GetString(), "server_error");
  EXPECT_STREQ(d["error"]["code"].GetString(), "overloaded_error");
  OutBuf out2(buf, sizeof buf);
  EXPECT_EQ(OpenAiErrorFromAnthropic(429, R"({"type":"error","error":{"type":"rate_limit_error","message":"slow"}})",
                                     g_scratch, sizeof g_scratch, &out2),
            429);
  EXPECT_STREQ(Parse(std::string(out2.view()))["error"]["type"].GetString(), "rate_limit_error");
  OutBuf out3(buf, sizeof buf);
  EXPECT_EQ(OpenAiErrorFromAnthropic(500, "<html>", g_scratch, sizeof g_scratch, &out3), 500);
  EXPECT_TRUE(Parse(std::string(out3.view()))["error"]["message"].IsString());
}

const char kStream[] =
    "event: message_start\n"
    "data: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_9\",\"type\":\"message\",\"role\":\"assistant\","
    "\"model\":\"claude-x\",\"content\":[],\"usage\":{\"input_tokens\":12,\"output_tokens\":1}}}\n\n"
    "event: content_block_start\n"
    "data: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n"
    "event: ping\ndata: {\"type\":\"ping\"}\n\n"
    "event: content_block_delta\n"
    "data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hel\"}}\n\n"
    "event: content_block_delta\r\n"
    "data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"lo \\\"x\\\"\"}}\r\n\r\n"
    "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n"
    "event: content_block_start\n"
    "data: {\"type\":\"content_block_start\",\"index\":1,\"content_block\":{\"type\":\"tool_use\",\"id\":\"toolu_2\","
    "\"name\":\"calc\",\"input\":{}}}\n\n"
    "event: content_block_delta\n"
    "data: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"{\\\"a\\\":\"}}\n\n"
    "event: content_block_delta\n"
    "data: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"1}\"}}\n\n"
    "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":1}\n\n"
    "event: message_delta\n"
    "data: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"tool_use\",\"stop_sequence\":null},"
    "\"usage\":{\"output_tokens\":9}}\n\n"
    "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n";

// The OpenAI events of a translated stream, as parsed JSON texts (and "[DONE]").
std::vector<std::string> Events(const std::string& sse) {
  std::vector<std::string> out;
  size_t pos = 0;
  while ((pos = sse.find("data: ", pos)) != std::string::npos) {
    size_t end = sse.find("\n\n", pos);
    out.push_back(sse.substr(pos + 6, end - pos - 6));
    pos = end;
  }
  return out;
}

std::string TranslateStream(size_t piece) {
  static AnthropicStreamTranslator t;
  t.Reset(1700000001);
  static char buf[1 << 16];
  OutBuf out(buf, sizeof buf);
  std::string_view in(kStream);
  for (size_t i = 0; i < in.size(); i += piece) EXPECT_TRUE(t.Feed(in.substr(i, piece), &out).ok());
  EXPECT_TRUE(t.done());
  EXPECT_EQ(t.input_tokens(), 12u);
  EXPECT_EQ(t.output_tokens(), 9u);
  return std::string(out.view());
}

TEST(AnthropicTranslateTest, StreamBecomesOpenAiChunksWithUsageWhateverThePieces) {
  std::string whole = TranslateStream(sizeof kStream);
  for (size_t piece : {1, 2, 7, 64}) EXPECT_EQ(TranslateStream(piece), whole) << piece;
  auto ev = Events(whole);
  ASSERT_EQ(ev.size(), 8u) << whole;
  auto first = Parse(ev[0]);
  EXPECT_STREQ(first["id"].GetString(), "chatcmpl-msg_9");
  EXPECT_STREQ(first["object"].GetString(), "chat.completion.chunk");
  EXPECT_STREQ(first["model"].GetString(), "claude-x");
  EXPECT_STREQ(first["choices"][0]["delta"]["role"].GetString(), "assistant");
  EXPECT_STREQ(Parse(ev[1])["choices"][0]["delta"]["content"].GetString(), "Hel");
  EXPECT_STREQ(Parse(ev[2])["choices"][0]["delta"]["content"].GetString(), "lo \"x\"");
  auto tool = Parse(ev[3]);
  EXPECT_STREQ(tool["choices"][0]["delta"]["tool_calls"][0]["id"].GetString(), "toolu_2");
  EXPECT_STREQ(tool["choices"][0]["delta"]["tool_calls"][0]["function"]["name"].GetString(), "calc");
  std::string args = std::string(Parse(ev[4])["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"].GetString()) +
                     Parse(ev[5])["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"].GetString();
  EXPECT_EQ(args, "{\"a\":1}");
  auto fin = Parse(ev[6]);
  EXPECT_STREQ(fin["choices"][0]["finish_reason"].GetString(), "tool_calls");
  EXPECT_EQ(fin["usage"]["prompt_tokens"].GetInt(), 12);
  EXPECT_EQ(fin["usage"]["completion_tokens"].GetInt(), 9);
  EXPECT_EQ(fin["usage"]["total_tokens"].GetInt(), 21);
  EXPECT_EQ(ev[7], "[DONE]");
}

TEST(AnthropicTranslateTest, StreamErrorEventEndsWithAnOpenAiErrorAndGarbageIsRefused) {
  AnthropicStreamTranslator t;
  t.Reset(1);
  char buf[4096];
  OutBuf out(buf, sizeof buf);
  ASSERT_TRUE(t.Feed("event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\","
                     "\"message\":\"Overloaded\"}}\n\n",
                     &out)
                  .ok());
  EXPECT_TRUE(t.done());
  auto e = Parse(Events(std::string(out.view()))[0]);
  EXPECT_STREQ(e["error"]["message"].GetString(), "Overloaded");
  EXPECT_STREQ(e["error"]["code"].GetString(), "overloaded_error");
  t.Reset(1);
  OutBuf o2(buf, sizeof buf);
  EXPECT_FALSE(t.Feed("event: x\ndata: {not json\n\n", &o2).ok());
  t.Reset(1);
  OutBuf o3(buf, sizeof buf);
  std::string huge(AnthropicStreamTranslator::kMaxEventBytes + 10, 'x');
  EXPECT_FALSE(t.Feed(huge, &o3).ok());
}

}  // namespace
}  // namespace llmgw::providers
