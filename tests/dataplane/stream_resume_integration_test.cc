// Stream resume end to end: the real llmgw in front of two llmgw-mocks on loopback, one
// of them failing streams mid-way (reset, close before [DONE], an error event, a stall).
// The client's stream must be the unbroken one — the same text byte for byte (the mock's
// text is a function of its context, so a continuation goes on with the same words), one
// id, one role, usage that adds up — and where continuing is impossible the stream ends
// with the SSE error event and the reason is counted. Also: tokens are counted for
// streams that did not ask for usage, and the usage chunk they did not ask for is
// stripped.
#include <gtest/gtest.h>
#include <rapidjson/document.h>

#include <unistd.h>

#include <set>
#include <thread>

#include "common/resume_outcome.h"
#include "tests/dataplane/harness.h"
#include "tests/dataplane/mock_server.h"

namespace llmgw::testing {
namespace {

// What a client made of a streamed answer.
struct StreamSeen {
  std::string text;            // the content deltas (chat) or texts (completions), decoded
  std::set<std::string> ids;
  int roles = 0;
  int chunks = 0;
  bool usage = false;
  int64_t prompt_tokens = -1, completion_tokens = -1;
  bool done = false;           // ended with data: [DONE]
  bool error_event = false;
  bool bad_json = false;
  std::string finish;
};

StreamSeen Read(const std::string& body) {
  StreamSeen s;
  for (size_t p = 0; (p = body.find("data: ", p)) != std::string::npos;) {
    size_t e = body.find('\n', p);
    std::string data = body.substr(p + 6, e - p - 6);
    p = e;
    if (data == "[DONE]") {
      s.done = true;
      continue;
    }
    rapidjson::Document d;
    d.Parse(data.c_str());
    if (d.HasParseError() || !d.IsObject()) {
      s.bad_json = true;
      continue;
    }
    if (d.HasMember("error")) {
      s.error_event = true;
      continue;
    }
    ++s.chunks;
    if (d.HasMember("id")) s.ids.insert(d["id"].GetString());
    if (d.HasMember("usage") && d["usage"].IsObject()) {
      s.usage = true;
      s.prompt_tokens = d["usage"]["prompt_tokens"].GetInt64();
      s.completion_tokens = d["usage"]["completion_tokens"].GetInt64();
    }
    for (const auto& ch : d["choices"].GetArray()) {
      if (ch.HasMember("delta")) {
        if (ch["delta"].HasMember("role")) ++s.roles;
        if (ch["delta"].HasMember("content")) s.text += ch["delta"]["content"].GetString();
      }
      if (ch.HasMember("text")) s.text += ch["text"].GetString();
      if (ch.HasMember("finish_reason") && ch["finish_reason"].IsString()) s.finish = ch["finish_reason"].GetString();
    }
  }
  s.error_event = s.error_event || body.find("event: error") != std::string::npos;
  return s;
}

// The raw answer, read until the gateway closes or `timeout_ms` passes.
std::string RawAnswer(uint16_t port, const std::string& path, const std::string& body, int timeout_ms = 5000) {
  int fd = ConnectTo(port);
  SendAll(fd, Post(path, body, "Connection: close\r\n"));
  std::string buf;
  ReadUntil(fd, &buf, [](const std::string&) { return false; }, timeout_ms);
  ::close(fd);
  Response r;
  std::string copy = buf;
  if (ParseResponse(&copy, &r) && r.complete) return r.body;
  return buf;  // cut: the raw bytes (still holds the events)
}

uint64_t ResumeCount(Gateway& gw, ResumeOutcome o) {
  uint64_t n = 0;
  for (uint32_t i = 0; i < shm::kMaxStatsSlots; ++i)
    for (uint32_t m = 0; m < shm::kMaxModels; ++m)
      n += gw.region()->slots[i].models[m].stream_resumes[static_cast<size_t>(o)].load();
  return n;
}
uint64_t CompletionTokens(Gateway& gw) {
  uint64_t n = 0;
  for (uint32_t i = 0; i < shm::kMaxStatsSlots; ++i)
    for (uint32_t m = 0; m < shm::kMaxModels; ++m) n += gw.region()->slots[i].models[m].completion_tokens.load();
  return n;
}
// Stats are written when the request ends, just after its last bytes: wait a moment.
template <typename F>
uint64_t Eventually(F f, uint64_t want) {
  uint64_t v = f();
  for (uint64_t end = MonoMs() + 2000; v < want && MonoMs() < end; v = f())
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  return v;
}

const std::string kChatUsage =
    R"({"model":"m1","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"tell me a story"}]})";
// Through an alias (the model name is rewritten upstream), no include_usage.
const std::string kChatPlain =
    R"({"model":"alias1","stream":true,"messages":[{"role":"user","content":"tell me a story"}]})";
const std::string kChatPlainDirect =
    R"({"model":"m1","stream":true,"messages":[{"role":"user","content":"tell me a story"}]})";
const std::string kCompletion =
    R"({"model":"m1","stream":true,"stream_options":{"include_usage":true},"prompt":"Once upon a time","max_tokens":12})";

struct Fault {
  const char* name;
  const char* json;     // for POST /mock/faults
  const char* counter;  // its /mock/stats counter
};
const Fault kFaults[] = {
    {"reset", R"({"reset_mid_stream_after":5})", "reset_mid_stream_total"},
    {"close", R"({"close_mid_stream_after":5})", "closed_mid_stream_total"},
    {"error_event", R"({"error_event_mid_stream_after":5})", "error_events_mid_stream_total"},
    {"stall", R"({"stall_mid_stream_after":5})", "stalled_mid_stream_total"},
};

const std::string kGatewayYaml = "  retries: { max: 2, backoff_ms: 1 }\n  timeouts: { idle_ms: 300 }\n";
const std::string kRoundRobin = "    policy: round_robin\n";

// Sends `body` through the gateway until a stream hit the faulty mock (round robin takes
// turns), checking every answer against the unbroken stream `want`.
void ExpectResumedLikeUnbroken(Gateway& gw, MockServer& faulty, const Fault& f, const std::string& path,
                               const std::string& body, const StreamSeen& want, bool wants_usage) {
  long before = faulty.Stat(f.counter);
  bool hit = false;
  for (int i = 0; i < 4 && !hit; ++i) {
    Response r = Request(gw.port(), Post(path, body), 8000);
    ASSERT_TRUE(r.complete) << f.name;
    EXPECT_EQ(r.status, 200);
    StreamSeen got = Read(r.body);
    hit = faulty.Stat(f.counter) > before;
    EXPECT_EQ(got.text, want.text) << f.name << " " << path << (hit ? " (resumed)" : "") << "\n" << r.body;
    EXPECT_EQ(got.ids.size(), 1u) << f.name << "\n" << r.body;
    EXPECT_EQ(got.roles, path == "/v1/chat/completions" ? 1 : 0) << f.name << "\n" << r.body;
    EXPECT_TRUE(got.done) << f.name;
    EXPECT_FALSE(got.error_event) << f.name << "\n" << r.body;
    EXPECT_FALSE(got.bad_json) << f.name << "\n" << r.body;
    EXPECT_EQ(got.finish, want.finish) << f.name;
    EXPECT_EQ(got.usage, wants_usage) << f.name << "\n" << r.body;
    if (wants_usage) {
      EXPECT_EQ(got.completion_tokens, want.completion_tokens) << f.name << "\n" << r.body;
      // The continuation read the text so far again as prompt: counted, so at least the original.
      EXPECT_GE(got.prompt_tokens, want.prompt_tokens) << f.name;
    }
  }
  EXPECT_TRUE(hit) << f.name << ": no stream reached the faulty mock";
}

TEST(StreamResumeTest, EveryMidStreamFailureIsContinuedWithTheSameText) {
  MockServer a({"--token-interval-ms", "1", "--output-tokens", "16"});
  MockServer b({"--token-interval-ms", "1", "--output-tokens", "16"});
  ASSERT_NE(a.port(), 0);
  ASSERT_NE(b.port(), 0);
  // The unbroken streams, straight from a healthy mock.
  StreamSeen chat = Read(Request(b.port(), Post("/v1/chat/completions", kChatUsage)).body);
  StreamSeen completion = Read(Request(b.port(), Post("/v1/completions", kCompletion)).body);
  ASSERT_EQ(chat.completion_tokens, 16);
  ASSERT_EQ(completion.completion_tokens, 12);
  ASSERT_EQ(Read(Request(b.port(), Post("/v1/chat/completions", kChatPlainDirect)).body).text, chat.text);
  Gateway gw(OneModel({a.port(), b.port()}, kRoundRobin), kGatewayYaml);
  ASSERT_TRUE(gw.WaitReady());
  for (const Fault& f : kFaults) {
    ASSERT_TRUE(a.SetFaults(R"({"reset":true})"));
    ASSERT_TRUE(a.SetFaults(f.json));
    ExpectResumedLikeUnbroken(gw, a, f, "/v1/chat/completions", kChatUsage, chat, true);
    ExpectResumedLikeUnbroken(gw, a, f, "/v1/chat/completions", kChatPlain, chat, false);
    ExpectResumedLikeUnbroken(gw, a, f, "/v1/completions", kCompletion, completion, true);
  }
  EXPECT_GE(Eventually([&] { return ResumeCount(gw, ResumeOutcome::kOk); }, 12), 12u);
  EXPECT_EQ(ResumeCount(gw, ResumeOutcome::kFailed), 0u);
}

// Where continuing is impossible the stream ends as before: the SSE error event, no
// [DONE]; the reason is counted (and logged).
void ExpectErrorEnd(Gateway& gw, MockServer& faulty, const char* counter, const std::string& body,
                    ResumeOutcome why) {
  long before = faulty.Stat(counter);
  bool hit = false;
  for (int i = 0; i < 4 && !hit; ++i) {
    std::string raw = RawAnswer(gw.port(), "/v1/chat/completions", body);
    hit = faulty.Stat(counter) > before;
    if (!hit) continue;
    StreamSeen got = Read(raw);
    EXPECT_TRUE(got.error_event) << ResumeOutcomeName(why) << "\n" << raw;
    EXPECT_FALSE(got.done) << raw;
    EXPECT_FALSE(got.bad_json) << raw;
    EXPECT_EQ(got.ids.size(), 1u);
  }
  ASSERT_TRUE(hit);
  EXPECT_GE(Eventually([&] { return ResumeCount(gw, why); }, 1), 1u) << ResumeOutcomeName(why);
}

TEST(StreamResumeTest, ImpossibleContinuationsEndWithTheSseError) {
  MockServer a({"--token-interval-ms", "1", "--output-tokens", "16"});
  MockServer b({"--token-interval-ms", "1", "--output-tokens", "16"});
  ASSERT_TRUE(a.SetFaults(R"({"reset_mid_stream_after":5})"));
  {
    // Over resume_max_bytes.
    Gateway gw(OneModel({a.port(), b.port()}, kRoundRobin), kGatewayYaml + "  resume_max_bytes: 8\n");
    ASSERT_TRUE(gw.WaitReady());
    ExpectErrorEnd(gw, a, "reset_mid_stream_total", kChatUsage, ResumeOutcome::kTooLarge);
  }
  {
    // n > 1.
    Gateway gw(OneModel({a.port(), b.port()}, kRoundRobin), kGatewayYaml);
    ASSERT_TRUE(gw.WaitReady());
    ExpectErrorEnd(gw, a, "reset_mid_stream_total",
                   R"({"model":"m1","stream":true,"n":2,"messages":[{"role":"user","content":"x"}]})",
                   ResumeOutcome::kMultipleChoices);
  }
  {
    // Switched off.
    Gateway gw(OneModel({a.port(), b.port()}, kRoundRobin), kGatewayYaml + "  resume_streams: false\n");
    ASSERT_TRUE(gw.WaitReady());
    ExpectErrorEnd(gw, a, "reset_mid_stream_total", kChatUsage, ResumeOutcome::kDisabled);
  }
  {
    // No other backend.
    Gateway gw(OneModel({a.port()}), kGatewayYaml);
    ASSERT_TRUE(gw.WaitReady());
    ExpectErrorEnd(gw, a, "reset_mid_stream_total", kChatUsage, ResumeOutcome::kNoBackend);
  }
}

// A stream its backend broke and that cannot be continued ends with the SSE error event
// and the terminating chunk: a complete HTTP answer whose head said keep-alive. The
// client's next request on that connection gets its answer (llmgw used to close the
// connection after the error event: a pooling client's next request got nothing). Both
// through StreamFilter (resume on) and on the byte path (resume off, usage asked for).
TEST(StreamResumeTest, TheConnectionCarriesTheNextRequestAfterAStreamEndedByTheError) {
  MockServer a({"--token-interval-ms", "1", "--output-tokens", "16"});
  for (const char* extra : {"", "  resume_streams: false\n"}) {
    SCOPED_TRACE(extra);
    ASSERT_TRUE(a.SetFaults(R"({"reset_mid_stream_after":5})"));
    Gateway gw(OneModel({a.port()}), kGatewayYaml + extra);  // no other backend: no continuation
    ASSERT_TRUE(gw.WaitReady());
    long before = a.Stat("reset_mid_stream_total");
    int fd = ConnectTo(gw.port());
    ASSERT_GE(fd, 0);
    std::string buf;
    ASSERT_TRUE(SendAll(fd, Post("/v1/chat/completions", kChatUsage)));
    Response r = ReadResponse(fd, &buf, 8000);
    ASSERT_TRUE(r.complete) << buf;
    EXPECT_EQ(r.status, 200);
    EXPECT_EQ(r.Header("connection"), "keep-alive");
    StreamSeen got = Read(r.body);
    EXPECT_TRUE(got.error_event) << r.body;
    EXPECT_FALSE(got.done) << r.body;
    EXPECT_EQ(a.Stat("reset_mid_stream_total"), before + 1);
    // The next request on the same connection, the backend healthy again: answered.
    ASSERT_TRUE(a.SetFaults(R"({"reset":true})"));
    ASSERT_TRUE(SendAll(fd, Post("/v1/chat/completions", kChatUsage)));
    Response next = ReadResponse(fd, &buf, 8000);
    ASSERT_TRUE(next.complete) << "no answer on the kept-alive connection: " << buf;
    EXPECT_EQ(next.status, 200);
    StreamSeen whole = Read(next.body);
    EXPECT_TRUE(whole.done) << next.body;
    EXPECT_FALSE(whole.error_event) << next.body;
    ::close(fd);
  }
}

// A continuation finds every other backend busy (max_concurrent 1, another stream on
// it): it waits in the admission queue like a fresh request and continues once that
// stream ends, instead of ending with no_backend. Two streams, one on each mock; the
// one on `a` is reset after 5 chunks, whichever it is.
TEST(StreamResumeTest, AContinuationWaitsForAFullBackendInTheAdmissionQueue) {
  MockServer a({"--token-interval-ms", "2", "--output-tokens", "16"});
  MockServer b({"--token-interval-ms", "25", "--output-tokens", "16"});
  StreamSeen want = Read(Request(b.port(), Post("/v1/chat/completions", kChatUsage)).body);
  ASSERT_TRUE(want.done);
  ASSERT_TRUE(a.SetFaults(R"({"reset_mid_stream_after":5})"));
  std::string yaml = "models:\n  - name: m1\n    policy: round_robin\n    backends:\n";
  for (uint16_t p : {a.port(), b.port()})
    yaml += "      - { url: \"http://127.0.0.1:" + std::to_string(p) + "\", max_concurrent: 1 }\n";
  Gateway gw(yaml, kGatewayYaml + "  admission: { queue_size: 8, queue_timeout_ms: 5000 }\n");
  ASSERT_TRUE(gw.WaitReady());
  std::string got[2];
  std::thread t0([&] { got[0] = RawAnswer(gw.port(), "/v1/chat/completions", kChatUsage, 8000); });
  std::this_thread::sleep_for(std::chrono::milliseconds(20));  // one stream per backend
  std::thread t1([&] { got[1] = RawAnswer(gw.port(), "/v1/chat/completions", kChatUsage, 8000); });
  t0.join();
  t1.join();
  // One reset, or two when the first continuation found b still free.
  EXPECT_GE(a.Stat("reset_mid_stream_total"), 1);
  for (const std::string& raw : got) {
    StreamSeen s = Read(raw);
    EXPECT_TRUE(s.done) << raw;
    EXPECT_FALSE(s.error_event) << raw;
    EXPECT_EQ(s.text, want.text) << raw;
    EXPECT_EQ(s.ids.size(), 1u) << raw;
    EXPECT_EQ(s.roles, 1) << raw;
  }
  EXPECT_GE(Eventually([&] { return ResumeCount(gw, ResumeOutcome::kOk); }, 1), 1u);
  EXPECT_EQ(ResumeCount(gw, ResumeOutcome::kNoBackend), 0u);
  shm::StatsTotals t;
  // `now` a second ahead, as GatewayTest's SumStatsNow (a heartbeat newer than our clock).
  shm::SumStats(*gw.region(), 4, shm::NowUnixMs() + 1000, 10000, &t);
  EXPECT_GE(t.admission_queued, 1u);  // a continuation waited
  EXPECT_EQ(t.admission_rejected, 0u);
}

TEST(StreamResumeTest, ContinuationsFailingTooSpendTheRetryBudget) {
  // Both mocks reset every stream: the first continuation breaks as well, and then no
  // backend is left. The client gets the text sent so far once, and the error event.
  MockServer a({"--token-interval-ms", "1", "--output-tokens", "16"});
  MockServer b({"--token-interval-ms", "1", "--output-tokens", "16"});
  StreamSeen want = Read(Request(a.port(), Post("/v1/chat/completions", kChatUsage)).body);
  ASSERT_TRUE(a.SetFaults(R"({"reset_mid_stream_after":5})"));
  ASSERT_TRUE(b.SetFaults(R"({"reset_mid_stream_after":5})"));
  Gateway gw(OneModel({a.port(), b.port()}, kRoundRobin), kGatewayYaml);
  ASSERT_TRUE(gw.WaitReady());
  std::string raw = RawAnswer(gw.port(), "/v1/chat/completions", kChatUsage);
  StreamSeen got = Read(raw);
  EXPECT_TRUE(got.error_event) << raw;
  EXPECT_FALSE(got.done);
  // 5 words from the first backend, then the continuation's words up to its own cut:
  // the text so far is a prefix of the unbroken text, nothing repeated.
  EXPECT_EQ(want.text.substr(0, got.text.size()), got.text) << raw;
  EXPECT_GT(got.text.size(), 0u);
  EXPECT_EQ(got.ids.size(), 1u);
  EXPECT_EQ(got.roles, 1);
  EXPECT_EQ(a.Stat("reset_mid_stream_total") + b.Stat("reset_mid_stream_total"), 2);
  EXPECT_GE(Eventually([&] { return ResumeCount(gw, ResumeOutcome::kFailed); }, 1), 1u);
}

// Hosted OpenAI-shaped providers (openai, azure, gemini) cannot continue a stream: they
// refuse vLLM's continue_final_message (400 Unrecognized request argument, which the
// openai mock flavour answers too) and have no prefill. A stream broken on a vLLM backend
// is continued on another vLLM backend, never sent to them: with only a hosted one left it
// ends with the error event, and the hosted backend never saw a request it refused.
TEST(StreamResumeTest, HostedOpenAiBackendsAreNeverAskedToContinueAStream) {
  ::setenv("LLMGW_TEST_RESUME_OPENAI_KEY", "sk-h", 1);
  MockServer a({"--token-interval-ms", "1", "--output-tokens", "16"});
  MockServer h({"--token-interval-ms", "1", "--output-tokens", "16", "--provider", "openai", "--api-key", "sk-h"});
  MockServer b({"--token-interval-ms", "1", "--output-tokens", "16"});
  ASSERT_GT(h.port(), 0);
  StreamSeen want = Read(Request(b.port(), Post("/v1/chat/completions", kChatUsage)).body);
  ASSERT_TRUE(a.SetFaults(R"({"reset_mid_stream_after":5})"));
  auto url = [](const MockServer& m) { return "\"http://127.0.0.1:" + std::to_string(m.port()) + "\""; };
  const std::string hosted = "      - { url: " + url(h) + ", provider: openai, api_key_env: LLMGW_TEST_RESUME_OPENAI_KEY }\n";
  for (bool with_b : {false, true}) {
    SCOPED_TRACE(with_b ? "a, hosted, b" : "a, hosted");
    Gateway gw("models:\n  - name: m1\n" + kRoundRobin + "    backends:\n      - { url: " + url(a) + " }\n" + hosted +
                   (with_b ? "      - { url: " + url(b) + " }\n" : ""),
               kGatewayYaml);
    ASSERT_TRUE(gw.WaitReady());
    bool hit = false;
    for (int i = 0; i < 6 && !hit; ++i) {
      long before = a.Stat("reset_mid_stream_total");
      Response r = Request(gw.port(), Post("/v1/chat/completions", kChatUsage), 8000);
      ASSERT_TRUE(r.complete);
      EXPECT_EQ(r.status, 200) << r.body;
      StreamSeen got = Read(r.body);
      hit = a.Stat("reset_mid_stream_total") > before;
      if (hit && !with_b) {
        EXPECT_TRUE(got.error_event) << r.body;
        EXPECT_FALSE(got.done) << r.body;
        EXPECT_NE(r.body.find("openai backends cannot continue a stream"), std::string::npos) << r.body;
        EXPECT_EQ(want.text.substr(0, got.text.size()), got.text) << r.body;
      } else {
        EXPECT_TRUE(got.done) << r.body;  // served whole (by h or b), or continued on b
        EXPECT_FALSE(got.error_event) << r.body;
        if (hit) {
          EXPECT_EQ(got.text, want.text) << r.body;
        }
      }
    }
    EXPECT_TRUE(hit) << "no stream reached the failing backend";
  }
  // Every HTTP request the hosted backend got (this stats read aside) it accepted.
  long http = h.Stat("http_requests_total");
  EXPECT_EQ(http - 1, h.Stat("requests_total")) << "a continuation with vLLM's fields reached the hosted backend";
}

// A continuation refused by its head (a 4xx or 5xx JSON answer) when no other backend is
// left: the stream ends like any broken one, the SSE error event and the terminating chunk.
// Before, the refused head's content type (JSON) made llmgw take the client's answer for
// a non-stream and close it cut, with neither.
TEST(StreamResumeTest, AContinuationRefusedByItsHeadEndsWithTheSseError) {
  for (int status : {400, 503}) {
    SCOPED_TRACE(status);
    MockServer a({"--token-interval-ms", "1", "--output-tokens", "16"});
    MockServer b({"--token-interval-ms", "1", "--output-tokens", "16"});
    ASSERT_TRUE(a.SetFaults(R"({"reset_mid_stream_after":5})"));
    ASSERT_TRUE(b.SetFaults(R"({"error_rate":1,"error_status":)" + std::to_string(status) + "}"));
    Gateway gw(OneModel({a.port(), b.port()}, kRoundRobin), kGatewayYaml);
    ASSERT_TRUE(gw.WaitReady());
    bool hit = false;
    for (int i = 0; i < 6 && !hit; ++i) {
      long before = a.Stat("reset_mid_stream_total");
      int fd = ConnectTo(gw.port());
      ASSERT_GE(fd, 0);
      std::string buf;
      ASSERT_TRUE(SendAll(fd, Post("/v1/chat/completions", kChatUsage)));
      Response r = ReadResponse(fd, &buf, 8000);
      ::close(fd);
      hit = a.Stat("reset_mid_stream_total") > before;
      if (!hit) continue;  // b answered first: its error, a whole answer
      ASSERT_TRUE(r.complete) << "the stream was cut without its end: " << buf;
      EXPECT_EQ(r.status, 200);
      StreamSeen got = Read(r.body);
      EXPECT_TRUE(got.error_event) << r.body;
      EXPECT_FALSE(got.done) << r.body;
      EXPECT_GT(got.text.size(), 0u) << r.body;
    }
    EXPECT_TRUE(hit) << "no stream reached the failing backend";
  }
}

// The official OpenAI Node SDK, unmodified, reads a resumed stream as a normal one. Fails,
// like GatewayTest.OfficialOpenAiNodeSdkWorksUnmodified, when the SDK is absent: a skip would
// pass in CI while testing nothing (scripts/test.sh runs `npm ci` in tests/dataplane/sdk).
TEST(StreamResumeTest, OfficialOpenAiNodeSdkSeesANormalStream) {
  std::string dir = std::string(LLMGW_SOURCE_DIR) + "/tests/dataplane/sdk";
  ASSERT_EQ(std::system("command -v node >/dev/null 2>&1"), 0) << "node is not installed: run scripts/install-deps.sh";
  ASSERT_EQ(::access((dir + "/node_modules/openai/package.json").c_str(), R_OK), 0)
      << "the openai SDK is not installed: run scripts/test.sh (npm ci in tests/dataplane/sdk)";
  MockServer a({"--token-interval-ms", "1", "--output-tokens", "16"});
  MockServer b({"--token-interval-ms", "1", "--output-tokens", "16"});
  StreamSeen want = Read(Request(b.port(), Post("/v1/chat/completions", kChatUsage)).body);
  ASSERT_TRUE(a.SetFaults(R"({"reset_mid_stream_after":5})"));
  Gateway gw(OneModel({a.port(), b.port()}, kRoundRobin), kGatewayYaml);
  ASSERT_TRUE(gw.WaitReady());
  for (int i = 0; i < 4 && a.Stat("reset_mid_stream_total") < 1; ++i) {
    std::string cmd = "timeout 20 node " + dir + "/sdk_stream.mjs http://127.0.0.1:" + std::to_string(gw.port()) + "/v1";
    FILE* p = ::popen(cmd.c_str(), "r");
    ASSERT_NE(p, nullptr);
    std::string out;
    char buf[4096];
    while (std::fgets(buf, sizeof(buf), p)) out += buf;
    ASSERT_EQ(::pclose(p), 0) << out;
    rapidjson::Document d;
    d.Parse(out.c_str());
    ASSERT_FALSE(d.HasParseError()) << out;
    EXPECT_EQ(std::string(d["text"].GetString()), want.text) << out;
    EXPECT_EQ(d["ids"].Size(), 1u) << out;
    EXPECT_EQ(d["roles"].GetInt(), 1) << out;
    EXPECT_STREQ(d["finish"].GetString(), "stop") << out;
    EXPECT_EQ(d["usage"]["completion_tokens"].GetInt(), 16) << out;
  }
  EXPECT_EQ(a.Stat("reset_mid_stream_total"), 1);  // one stream was resumed
}

TEST(StreamResumeTest, UsageIsCountedForEveryStreamAndStrippedWhenNotAskedFor) {
  MockServer m({"--token-interval-ms", "0", "--output-tokens", "7"});
  Gateway gw(OneModel({m.port()}), kGatewayYaml);
  ASSERT_TRUE(gw.WaitReady());
  Response plain = Request(gw.port(), Post("/v1/chat/completions", kChatPlain));
  ASSERT_TRUE(plain.complete);
  StreamSeen p = Read(plain.body);
  EXPECT_FALSE(p.usage) << plain.body;
  EXPECT_EQ(plain.body.find("\"usage\""), std::string::npos) << plain.body;
  EXPECT_TRUE(p.done);
  EXPECT_EQ(p.chunks, 7);
  // The backend was asked for usage anyway: the gateway counted the tokens.
  EXPECT_EQ(Eventually([&] { return CompletionTokens(gw); }, 7), 7u);
  Response asked = Request(gw.port(), Post("/v1/chat/completions", kChatUsage));
  StreamSeen u = Read(asked.body);
  EXPECT_TRUE(u.usage) << asked.body;
  EXPECT_EQ(u.completion_tokens, 7);
  EXPECT_EQ(Eventually([&] { return CompletionTokens(gw); }, 14), 14u);
}

// An upstream that sent [DONE] but closed before the chunked terminator: the stream is
// complete, so it ends cleanly (before, an error event followed the [DONE]).
TEST(StreamResumeTest, ACloseAfterDoneIsAnOrdinaryEnd) {
  TestUpstream::Options o;
  o.events = 3;
  o.no_terminator = true;
  TestUpstream up(o);
  Gateway gw(OneModel({up.port()}), kGatewayYaml);
  ASSERT_TRUE(gw.WaitReady());
  Response r = Request(gw.port(), Post("/v1/chat/completions", kChatUsage));
  ASSERT_TRUE(r.complete);
  StreamSeen s = Read(r.body);
  EXPECT_TRUE(s.done) << r.body;
  EXPECT_FALSE(s.error_event) << r.body;
  EXPECT_EQ(s.text, "t0t1t2");
  EXPECT_EQ(r.body.find("[DONE]"), r.body.rfind("[DONE]")) << r.body;  // once
}

TEST(StreamResumeTest, ResumeOffStillStripsAndCounts) {
  MockServer m({"--token-interval-ms", "0", "--output-tokens", "5"});
  Gateway gw(OneModel({m.port()}), kGatewayYaml + "  resume_streams: false\n");
  ASSERT_TRUE(gw.WaitReady());
  Response plain = Request(gw.port(), Post("/v1/completions", R"({"model":"m1","stream":true,"prompt":"hi"})"));
  EXPECT_EQ(plain.body.find("\"usage\""), std::string::npos) << plain.body;
  EXPECT_TRUE(Read(plain.body).done);
  EXPECT_EQ(Eventually([&] { return CompletionTokens(gw); }, 5), 5u);
}

}  // namespace
}  // namespace llmgw::testing
