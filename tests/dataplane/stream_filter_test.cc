// Unit tests of StreamFilter on whole streams cut into pieces every way: the usage chunk
// stripped or kept, a continuation spliced into one stream (one id, one role, the text
// unchanged, usage summed), error events held back, the oversized-event fallback.
#include "dataplane/stream_filter.h"

#include <gtest/gtest.h>
#include <rapidjson/document.h>

#include <string>
#include <vector>

namespace llmgw::dataplane {
namespace {

std::string Ev(const std::string& json) { return "data: " + json + "\n\n"; }

std::string Chunk(const std::string& id, const std::string& content, bool role, const char* finish = nullptr) {
  std::string s = "{\"id\":\"" + id + "\",\"object\":\"chat.completion.chunk\",\"created\":" +
                  (id == "first" ? "111" : "222") + ",\"model\":\"" + (id == "first" ? "m-a" : "m-b") +
                  "\",\"choices\":[{\"index\":0,\"delta\":{";
  if (role) s += "\"role\":\"assistant\",";
  s += "\"content\":\"" + content + "\"},\"logprobs\":null,\"finish_reason\":";
  if (finish) {  // appends: "\"" + std::string trips GCC 12's -O3 -Wrestrict false positive
    s += '"';
    s += finish;
    s += '"';
  } else {
    s += "null";
  }
  return s + "}]}";
}
std::string Usage(const std::string& id, int p, int c) {
  return "{\"id\":\"" + id + "\",\"object\":\"chat.completion.chunk\",\"created\":333,\"model\":\"m\",\"choices\":[],"
         "\"usage\":{\"prompt_tokens\":" + std::to_string(p) + ",\"total_tokens\":" + std::to_string(p + c) +
         ",\"completion_tokens\":" + std::to_string(c) + "}}";
}

// A whole stream of `words` content chunks after a role chunk, then usage and [DONE].
std::string Stream(const std::string& id, const std::vector<std::string>& words, int prompt, bool usage = true) {
  std::string s = Ev(Chunk(id, "", true));
  for (size_t i = 0; i < words.size(); ++i) s += Ev(Chunk(id, words[i], false, i + 1 == words.size() ? "stop" : nullptr));
  if (usage) s += Ev(Usage(id, prompt, static_cast<int>(words.size())));
  return s + "data: [DONE]\n\n";
}

struct Filtered {
  BufferPool pool;
  StreamFilter f;
  std::string scratch;
  std::string out;
  int emits = 0;
  explicit Filtered(StreamFilter::Options o) { f.Begin(&pool, o); }
  ~Filtered() { f.Release(); }
  StreamFilter::Result Feed(std::string_view piece) {
    return f.OnPiece(piece, &scratch, [&](std::string_view b) {
      out.append(b);
      ++emits;
    });
  }
  StreamFilter::Result FeedIn(std::string_view s, size_t step) {
    StreamFilter::Result r = StreamFilter::Result::kOk;
    for (size_t i = 0; i < s.size(); i += step) {
      r = Feed(s.substr(i, step));
      if (r != StreamFilter::Result::kOk) break;
    }
    return r;
  }
};

StreamFilter::Options Opts(bool wants_usage, bool resume = true) {
  StreamFilter::Options o;
  o.client_wants_usage = wants_usage;
  o.resume = resume;
  return o;
}

// The events' JSON payloads (not [DONE]) of a client-side stream.
std::vector<rapidjson::Document> Events(const std::string& s) {
  std::vector<rapidjson::Document> v;
  for (size_t p = 0; (p = s.find("data: ", p)) != std::string::npos;) {
    size_t e = s.find("\n\n", p);
    std::string data = s.substr(p + 6, e - p - 6);
    p = e;
    if (data == "[DONE]") continue;
    v.emplace_back();
    v.back().Parse(data.c_str());
    EXPECT_FALSE(v.back().HasParseError()) << data;
  }
  return v;
}

TEST(StreamFilterTest, UsageChunkStrippedForAClientThatDidNotAskKeptOtherwise) {
  std::string s = Stream("first", {" a", " b", " c"}, 10);
  std::string usage_event = Ev(Usage("first", 10, 3));
  std::string without = s;
  without.erase(without.find(usage_event), usage_event.size());
  for (size_t step : {size_t{1}, size_t{2}, size_t{7}, size_t{64}, s.size()}) {
    Filtered strip(Opts(false));
    EXPECT_EQ(strip.FeedIn(s, step), StreamFilter::Result::kDone) << step;
    EXPECT_EQ(strip.out, without) << step;
    EXPECT_EQ(strip.f.completion_tokens(), 3u);  // the relay still counts them
    EXPECT_EQ(strip.f.prompt_tokens(), 10u);
    Filtered keep(Opts(true));
    EXPECT_EQ(keep.FeedIn(s, step), StreamFilter::Result::kDone);
    EXPECT_EQ(keep.out, s) << step;
  }
}

TEST(StreamFilterTest, UnchangedEventsOfOneReadGoOutAsOneSlice) {
  Filtered r(Opts(true));
  r.Feed(Stream("first", {" a", " b", " c", " d"}, 1));
  EXPECT_EQ(r.emits, 1);
}

TEST(StreamFilterTest, AContinuationBecomesOneStreamWithTheSameTextIdAndSummedUsage) {
  std::vector<std::string> words = {" w1", " w2", " w3", " w4", " w5", " w6"};
  std::string unbroken = Stream("first", words, 10);
  for (bool wants_usage : {true, false}) {
    for (size_t step : {size_t{1}, size_t{5}, size_t{4096}}) {
      Filtered r(Opts(wants_usage));
      // The first attempt dies in the middle of its 4th content event.
      std::string first = Ev(Chunk("first", "", true));
      for (int i = 0; i < 3; ++i) first += Ev(Chunk("first", words[static_cast<size_t>(i)], false));
      first += Ev(Chunk("first", words[3], false)).substr(0, 20);
      EXPECT_EQ(r.FeedIn(first, step), StreamFilter::Result::kOk);
      r.f.AttemptFailed();
      ASSERT_EQ(r.f.CanResume(), ResumeOutcome::kOk);
      EXPECT_EQ(r.f.state().text(0), " w1 w2 w3");
      std::string body;
      ASSERT_EQ(BuildContinuation(R"({"model":"m","messages":[{"role":"user","content":"q"}],"stream":true})", true, "",
                                  r.f.state(), &body),
                ResumeOutcome::kOk);
      EXPECT_NE(body.find(R"({"role":"assistant","content":" w1 w2 w3"})"), std::string::npos) << body;
      // The continuation: its own id, a role chunk again, the rest of the words, usage.
      std::string cont = Stream("second", {" w4", " w5", " w6"}, 14);
      EXPECT_EQ(r.FeedIn(cont, step), StreamFilter::Result::kDone);

      auto evs = Events(r.out);
      std::string text;
      int roles = 0;
      const rapidjson::Value* usage = nullptr;
      for (auto& d : evs) {
        EXPECT_STREQ(d["id"].GetString(), "first");
        EXPECT_EQ(d["created"].GetInt(), 111);
        EXPECT_STREQ(d["model"].GetString(), "m-a");
        if (d.HasMember("usage")) usage = &d["usage"];
        if (d["choices"].Empty()) continue;
        const auto& delta = d["choices"][0]["delta"];
        if (delta.HasMember("role")) ++roles;
        text += delta["content"].GetString();
      }
      EXPECT_EQ(text, " w1 w2 w3 w4 w5 w6");
      EXPECT_EQ(roles, 1);
      EXPECT_NE(r.out.find("\"finish_reason\":\"stop\""), std::string::npos);
      EXPECT_EQ(r.out.substr(r.out.size() - 14), "data: [DONE]\n\n");
      if (wants_usage) {
        ASSERT_NE(usage, nullptr);
        EXPECT_EQ((*usage)["completion_tokens"].GetInt(), 6);  // 3 relayed + 3 reported
        EXPECT_EQ((*usage)["prompt_tokens"].GetInt(), 14);
        EXPECT_EQ((*usage)["total_tokens"].GetInt(), 20);
      } else {
        EXPECT_EQ(usage, nullptr);
      }
      EXPECT_EQ(r.f.completion_tokens(), 6u);
    }
  }
}

TEST(StreamFilterTest, ErrorEventsAreHeldBack) {
  {
    Filtered r(Opts(true));
    std::string s = Ev(Chunk("first", " a", true)) +
                    Ev(R"({"error":{"object":"error","message":"boom","type":"InternalServerError","code":500}})") +
                    "data: [DONE]\n\n";
    EXPECT_EQ(r.Feed(s), StreamFilter::Result::kErrorEvent);
    EXPECT_EQ(r.out, Ev(Chunk("first", " a", true)));
    EXPECT_EQ(r.f.error_code(), 500);
    // Nothing more of this attempt goes out, in later pieces either (stream_resume_fuzz).
    EXPECT_EQ(r.Feed(Ev(Chunk("first", " b", false))), StreamFilter::Result::kErrorEvent);
    EXPECT_EQ(r.out, Ev(Chunk("first", " a", true)));
    r.f.AttemptFailed();  // a continuation's events go out again
    EXPECT_EQ(r.Feed(Ev(Chunk("second", " b", false))), StreamFilter::Result::kOk);
    EXPECT_NE(r.out.find(" b"), std::string::npos);
  }
  {
    Filtered r(Opts(true));
    EXPECT_EQ(r.Feed("event: error\ndata: {\"message\":\"x\"}\n\n"), StreamFilter::Result::kErrorEvent);
    EXPECT_TRUE(r.out.empty());
  }
  {
    Filtered r(Opts(true));
    EXPECT_EQ(r.Feed(Ev(R"({"object":"error","message":"bad","code":"400"})")), StreamFilter::Result::kErrorEvent);
    EXPECT_EQ(r.f.error_code(), 400);
  }
}

TEST(StreamFilterTest, RefusalsReachCanResume) {
  {
    Filtered r(Opts(true, /*resume=*/false));
    r.Feed(Ev(Chunk("first", " a", true)));
    EXPECT_EQ(r.f.CanResume(), ResumeOutcome::kDisabled);
  }
  {
    StreamFilter::Options o = Opts(true);
    o.resume_max_bytes = 4;
    Filtered r(o);
    r.Feed(Ev(Chunk("first", " abcdef", true)));
    EXPECT_EQ(r.f.CanResume(), ResumeOutcome::kTooLarge);
  }
  {
    StreamFilter::Options o = Opts(true);
    o.requested_choices = 3;
    Filtered r(o);
    EXPECT_EQ(r.f.CanResume(), ResumeOutcome::kMultipleChoices);
  }
}

TEST(StreamFilterTest, AnOversizedEventGoesThroughUnsplit) {
  Filtered r(Opts(false));
  std::string big = Ev(Chunk("first", std::string(2 * StreamFilter::kMaxEventBytes, 'x'), true));
  std::string s = Ev(Chunk("first", " a", true)) + big + "data: [DONE]\n\n";
  r.FeedIn(s, 65536);
  EXPECT_EQ(r.out, s);
  EXPECT_TRUE(r.f.passthrough());
  EXPECT_EQ(r.f.CanResume(), ResumeOutcome::kTooLarge);
}

TEST(StreamFilterTest, AppendEndFinishesAStreamWhoseTextWasComplete) {
  Filtered r(Opts(true));
  r.Feed(Ev(Chunk("first", " a", true)) + Ev(Chunk("first", " b", false, "stop")));
  EXPECT_TRUE(r.f.state().finished());
  std::string end;
  r.f.AppendEnd(&end);
  auto evs = Events(end);
  ASSERT_EQ(evs.size(), 1u);
  EXPECT_STREQ(evs[0]["id"].GetString(), "first");
  EXPECT_EQ(evs[0]["usage"]["completion_tokens"].GetInt(), 2);
  EXPECT_EQ(end.substr(end.size() - 14), "data: [DONE]\n\n");
}

}  // namespace
}  // namespace llmgw::dataplane
