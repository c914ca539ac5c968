// Integration tests: start the real llmgw-mock on port 0 and check the HTTP API, the
// batching behaviour seen from outside, each fault switch, and /metrics.
#include <gtest/gtest.h>

#include <thread>

#include "tests/bench/mock_process.h"
#include "tests/bench/prom_text_check.h"

namespace llmgw::testing {
namespace {

const char* kChatStream =
    R"({"model":"m","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"hello"}]})";
const char* kChat = R"({"model":"m","messages":[{"role":"user","content":"hello"}]})";

std::string Post(const std::string& path, const std::string& body) {
  return "POST " + path + " HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: " +
         std::to_string(body.size()) + "\r\n\r\n" + body;
}

int StatNum(const std::string& stats, const std::string& key) {
  size_t p = stats.find("\"" + key + "\":");
  return p == std::string::npos ? -1 : std::atoi(stats.c_str() + p + key.size() + 3);
}

int Stat(int port, const std::string& key) {
  Client c(port);
  return StatNum(BodyOf(c.Request("GET", "/mock/stats")), key);
}

bool SetFaults(int port, const std::string& json) {
  Client c(port);
  return StatusOf(c.Request("POST", "/mock/faults", json)) == 200;
}

TEST(MockIntegrationTest, PrintsListeningLine) {
  MockProcess m({"--listen", "127.0.0.1:0", "--model", "m"});
  ASSERT_GT(m.port(), 0) << m.first_line();
}

TEST(MockIntegrationTest, StreamsOneEventPerTokenWithUsage) {
  MockProcess m({"--listen", "127.0.0.1:0", "--model", "m", "--output-tokens", "7", "--token-interval-ms", "5"});
  Client c(m.port());
  ASSERT_TRUE(c.Send(Post("/v1/chat/completions", kChatStream)));
  std::string out;
  ASSERT_TRUE(c.ReadUntil("0\r\n\r\n", 5000, &out));
  EXPECT_NE(out.find("text/event-stream"), std::string::npos);
  EXPECT_EQ(CountOf(out, "\"content\":"), 7u);
  EXPECT_EQ(CountOf(out, "\"finish_reason\":\"stop\""), 1u);
  EXPECT_NE(out.find("\"choices\":[],\"usage\":{\"prompt_tokens\""), std::string::npos);
  EXPECT_NE(out.find("\"completion_tokens\":7"), std::string::npos);
  EXPECT_NE(out.find("data: [DONE]\n\n"), std::string::npos);
  // keep-alive: the same connection serves a second, non-streaming request
  std::string r = c.Request("POST", "/v1/completions", R"({"prompt":"hi","max_tokens":3})");
  EXPECT_EQ(StatusOf(r), 200);
  EXPECT_NE(r.find("\"completion_tokens\":3"), std::string::npos);
  EXPECT_NE(r.find("\"finish_reason\":\"length\""), std::string::npos);
}

TEST(MockIntegrationTest, TokensArriveSpacedByTheStepTime) {
  MockProcess m({"--listen", "127.0.0.1:0", "--model", "m", "--output-tokens", "5", "--token-interval-ms", "40"});
  Client c(m.port());
  int64_t t0 = NowMs();
  ASSERT_TRUE(c.Send(Post("/v1/chat/completions", kChatStream)));
  std::string out;
  ASSERT_TRUE(c.ReadUntil("[DONE]", 5000, &out));
  EXPECT_GE(NowMs() - t0, 5 * 40 - 5);
}

TEST(MockIntegrationTest, PipelinedAndChunkedRequests) {
  MockProcess m({"--listen", "127.0.0.1:0", "--model", "m", "--token-interval-ms", "0", "--output-tokens", "2"});
  Client c(m.port());
  std::string body = R"({"prompt":"abc"})";
  char hex[16];
  std::snprintf(hex, sizeof hex, "%zx", body.size());
  std::string chunked = "POST /v1/completions HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n" +
                        std::string(hex) + "\r\n" + body + "\r\n0\r\n\r\n";
  ASSERT_TRUE(c.Send(Post("/v1/completions", body) + chunked + Post("/v1/chat/completions", kChat)));
  std::string out;
  c.ReadFor(500, &out);
  EXPECT_EQ(CountOf(out, "HTTP/1.1 200 OK"), 3u);
  EXPECT_EQ(CountOf(out, "\"completion_tokens\":2"), 3u);
}

TEST(MockIntegrationTest, MalformedInputGets400) {
  MockProcess m({"--listen", "127.0.0.1:0", "--model", "m", "--token-interval-ms", "0"});
  {
    Client c(m.port());
    ASSERT_TRUE(c.Send("GARBAGE\r\n\r\n"));
    std::string out;
    c.ReadFor(500, &out);
    EXPECT_EQ(StatusOf(out), 400);
    EXPECT_NE(out.find("\"error\":{\"message\":"), std::string::npos);
  }
  for (const char* bad : {"{not json", "[1,2]", R"({"messages":[]})", R"({"messages":"x"})",
                          R"({"messages":[{"role":"user","content":"x"}],"max_tokens":-1})",
                          R"({"messages":[{"role":"user","content":"x"}],"stream":"yes"})"}) {
    Client c(m.port());
    std::string r = c.Request("POST", "/v1/chat/completions", bad);
    EXPECT_EQ(StatusOf(r), 400) << bad;
    EXPECT_NE(r.find("\"type\":\"invalid_request_error\""), std::string::npos) << bad;
  }
  Client c(m.port());
  EXPECT_EQ(StatusOf(c.Request("POST", "/v1/chat/completions", R"({"model":"other","messages":[{"role":"user","content":"x"}]})")), 404);
  EXPECT_EQ(StatusOf(c.Request("GET", "/v1/chat/completions")), 405);
  EXPECT_EQ(StatusOf(c.Request("GET", "/nope")), 404);
  EXPECT_EQ(StatusOf(c.Request("GET", "/health")), 200);
  EXPECT_NE(c.Request("GET", "/v1/models").find("\"id\":\"m\""), std::string::npos);
  std::string e = c.Request("POST", "/v1/embeddings", R"({"input":["a","b"]})");
  EXPECT_EQ(StatusOf(e), 200);
  EXPECT_EQ(CountOf(e, "\"object\":\"embedding\""), 2u);
}

TEST(MockIntegrationTest, QueueingMakesTtftGrowWithLoad) {
  MockProcess m({"--listen", "127.0.0.1:0", "--model", "m", "--max-num-seqs", "2", "--output-tokens", "10",
                 "--token-interval-ms", "10"});
  std::vector<std::unique_ptr<Client>> cs;
  std::vector<int64_t> ttft(6, -1);
  int64_t t0 = NowMs();
  for (int i = 0; i < 6; ++i) {
    cs.push_back(std::make_unique<Client>(m.port()));
    ASSERT_TRUE(cs.back()->Send(Post("/v1/chat/completions", kChatStream)));
  }
  int64_t arrive_deadline = NowMs() + 2000;
  // All six arrive; after the first step boundary two run and four wait.
  std::string stats;
  for (;;) {
    Client admin(m.port());
    stats = BodyOf(admin.Request("GET", "/mock/stats"));
    if ((StatNum(stats, "running") == 2 && StatNum(stats, "waiting") == 4) || NowMs() > arrive_deadline) break;
    usleep(2000);
  }
  EXPECT_EQ(StatNum(stats, "running"), 2) << stats;
  EXPECT_EQ(StatNum(stats, "waiting"), 4) << stats;
  std::vector<std::string> bufs(6);
  while (NowMs() - t0 < 5000) {
    bool all = true;
    for (int i = 0; i < 6; ++i) {
      if (ttft[i] >= 0) continue;
      all = false;
      cs[i]->ReadFor(2, &bufs[i]);
      if (bufs[i].find("data: ") != std::string::npos) ttft[i] = NowMs() - t0;
    }
    if (all) break;
  }
  std::sort(ttft.begin(), ttft.end());
  ASSERT_GE(ttft[0], 0);
  EXPECT_GT(ttft[5], ttft[0] + 150);  // the last pair waited for two whole batches of 10 tokens
}

TEST(MockIntegrationTest, FaultErrorRateAndStatus) {
  MockProcess m({"--listen", "127.0.0.1:0", "--model", "m", "--token-interval-ms", "0", "--error-rate", "1",
                 "--error-status", "503"});
  Client c(m.port());
  EXPECT_EQ(StatusOf(c.Request("POST", "/v1/chat/completions", kChat)), 503);
  ASSERT_TRUE(SetFaults(m.port(), R"({"error_status":429})"));
  std::string r = c.Request("POST", "/v1/chat/completions", kChat);
  EXPECT_EQ(StatusOf(r), 429);
  EXPECT_NE(r.find("retry-after"), std::string::npos);
  ASSERT_TRUE(SetFaults(m.port(), R"({"error_rate":0})"));
  EXPECT_EQ(StatusOf(c.Request("POST", "/v1/chat/completions", kChat)), 200);
  EXPECT_EQ(Stat(m.port(), "errors_injected_total"), 2);
  Client a(m.port());
  EXPECT_EQ(StatusOf(a.Request("POST", "/mock/faults", R"({"error_rate":2})")), 400);
  EXPECT_EQ(StatusOf(a.Request("POST", "/mock/faults", R"({"what":1})")), 400);
  EXPECT_NE(a.Request("GET", "/mock/faults").find("\"error_rate\":0"), std::string::npos);
}

TEST(MockIntegrationTest, FaultHangFirstByteAndClientCancel) {
  MockProcess m({"--listen", "127.0.0.1:0", "--model", "m", "--token-interval-ms", "0", "--hang-first-byte"});
  {
    Client c(m.port());
    ASSERT_TRUE(c.Send(Post("/v1/chat/completions", kChat)));
    std::string out;
    EXPECT_TRUE(c.ReadFor(300, &out));
    EXPECT_TRUE(out.empty());
  }
  int64_t deadline = NowMs() + 2000;
  while (Stat(m.port(), "cancelled_total") != 1 && NowMs() < deadline) usleep(10000);
  EXPECT_EQ(Stat(m.port(), "cancelled_total"), 1);
}

TEST(MockIntegrationTest, FaultSlowFirstByte) {
  MockProcess m({"--listen", "127.0.0.1:0", "--model", "m", "--token-interval-ms", "0"});
  ASSERT_TRUE(SetFaults(m.port(), R"({"slow_first_byte_ms":200})"));
  Client c(m.port());
  int64_t t0 = NowMs();
  std::string r = c.Request("POST", "/v1/chat/completions", kChat);
  EXPECT_EQ(StatusOf(r), 200);
  EXPECT_GE(NowMs() - t0, 195);
  // The connection stays usable: a second delayed request on it is answered too.
  t0 = NowMs();
  EXPECT_EQ(StatusOf(c.Request("POST", "/v1/chat/completions", kChat)), 200);
  EXPECT_GE(NowMs() - t0, 195);
}

TEST(MockIntegrationTest, FaultCloseMidStream) {
  MockProcess m({"--listen", "127.0.0.1:0", "--model", "m", "--output-tokens", "20", "--token-interval-ms", "2",
                 "--close-mid-stream-after", "3"});
  Client c(m.port());
  ASSERT_TRUE(c.Send(Post("/v1/chat/completions", kChatStream)));
  std::string out;
  EXPECT_FALSE(c.ReadFor(2000, &out));  // EOF before the deadline
  EXPECT_EQ(CountOf(out, "\"content\":"), 3u);
  EXPECT_EQ(out.find("[DONE]"), std::string::npos);
  EXPECT_EQ(Stat(m.port(), "closed_mid_stream_total"), 1);
}

// The generated words of a raw streamed answer (chat "content" or completions "text").
std::string StreamText(const std::string& raw) {
  std::string text;
  for (std::string_view key : {"\"content\":\"", "\"text\":\""})
    for (size_t p = raw.find(key); p != std::string::npos; p = raw.find(key, p + 1)) {
      size_t b = p + key.size(), e = raw.find('"', b);
      text.append(raw, b, e - b);
    }
  return text;
}

std::string StreamOf(int port, const std::string& path, const std::string& body) {
  Client c(port);
  EXPECT_TRUE(c.Send(Post(path, body)));
  std::string out;
  EXPECT_TRUE(c.ReadUntil("0\r\n\r\n", 5000, &out));
  return out;
}

// Like greedy decoding: the same context gives the same words, and a continuation
// (continue_final_message with the text so far) goes on exactly where the text stopped.
TEST(MockIntegrationTest, ChatContinuationGoesOnWithTheSameWords) {
  MockProcess m({"--listen", "127.0.0.1:0", "--model", "m", "--output-tokens", "12", "--token-interval-ms", "0"});
  std::string whole = StreamOf(m.port(), "/v1/chat/completions", kChatStream);
  std::string text = StreamText(whole);
  EXPECT_EQ(StreamText(StreamOf(m.port(), "/v1/chat/completions", kChatStream)), text);  // deterministic
  size_t cut = 0;
  for (int words = 0; words < 5; ++words) cut = text.find(' ', cut + 1);  // after 5 words
  std::string head = text.substr(0, cut);
  std::string cont = StreamOf(
      m.port(), "/v1/chat/completions",
      R"({"model":"m","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"hello"},)"
      R"({"role":"assistant","content":")" + head + R"("}],"continue_final_message":true,"add_generation_prompt":false})");
  EXPECT_EQ(head + StreamText(cont), text);
  EXPECT_NE(cont.find("\"completion_tokens\":7"), std::string::npos);  // 12 - the 5 already there
  EXPECT_NE(cont.find("\"finish_reason\":\"stop\""), std::string::npos);
  // A different prompt gives different words.
  EXPECT_NE(StreamText(StreamOf(m.port(), "/v1/chat/completions",
                                R"({"model":"m","stream":true,"messages":[{"role":"user","content":"bye"}]})")),
            text);
  // vLLM refuses continue_final_message with add_generation_prompt (its default: true).
  Client c(m.port());
  EXPECT_EQ(StatusOf(c.Request("POST", "/v1/chat/completions",
                               R"({"model":"m","messages":[{"role":"assistant","content":"x"}],"continue_final_message":true})")),
            400);
  EXPECT_EQ(StatusOf(c.Request("POST", "/v1/chat/completions",
                               R"({"model":"m","messages":[{"role":"user","content":"x"}],"continue_final_message":true,"add_generation_prompt":false})")),
            400);
}

TEST(MockIntegrationTest, CompletionContinuationIsThePromptPlusTheText) {
  MockProcess m({"--listen", "127.0.0.1:0", "--model", "m", "--token-interval-ms", "0"});
  std::string text =
      StreamText(StreamOf(m.port(), "/v1/completions", R"({"model":"m","stream":true,"prompt":"Once","max_tokens":9})"));
  size_t cut = 0;
  for (int words = 0; words < 4; ++words) cut = text.find(' ', cut + 1);
  std::string head = text.substr(0, cut);
  std::string cont = StreamOf(m.port(), "/v1/completions",
                              R"({"model":"m","stream":true,"prompt":"Once)" + head + R"(","max_tokens":5})");
  EXPECT_EQ(head + StreamText(cont), text);
  EXPECT_NE(cont.find("\"finish_reason\":\"length\""), std::string::npos);
}

TEST(MockIntegrationTest, FaultResetMidStream) {
  MockProcess m({"--listen", "127.0.0.1:0", "--model", "m", "--output-tokens", "20", "--token-interval-ms", "2",
                 "--reset-after-chunks", "4"});
  Client c(m.port());
  ASSERT_TRUE(c.Send(Post("/v1/chat/completions", kChatStream)));
  std::string out;
  ssize_t n;
  int64_t deadline = NowMs() + 2000;
  do {  // until the connection ends; a reset, not an orderly close
    char buf[4096];
    pollfd p{c.fd(), POLLIN, 0};
    if (poll(&p, 1, 100) <= 0) {
      n = 1;
      continue;
    }
    n = recv(c.fd(), buf, sizeof buf, 0);
    if (n > 0) out.append(buf, static_cast<size_t>(n));
  } while (n > 0 && NowMs() < deadline);
  EXPECT_EQ(n, -1);
  EXPECT_EQ(errno, ECONNRESET);
  EXPECT_EQ(CountOf(out, "\"content\":"), 4u);
  EXPECT_EQ(out.find("[DONE]"), std::string::npos);
  EXPECT_EQ(Stat(m.port(), "reset_mid_stream_total"), 1);
}

TEST(MockIntegrationTest, FaultStallMidStream) {
  MockProcess m({"--listen", "127.0.0.1:0", "--model", "m", "--output-tokens", "20", "--token-interval-ms", "2"});
  ASSERT_TRUE(SetFaults(m.port(), R"({"stall_mid_stream_after":3})"));
  Client c(m.port());
  ASSERT_TRUE(c.Send(Post("/v1/chat/completions", kChatStream)));
  std::string out;
  EXPECT_TRUE(c.ReadFor(600, &out));  // still open after 600 ms
  EXPECT_EQ(CountOf(out, "\"content\":"), 3u);
  EXPECT_EQ(out.find("[DONE]"), std::string::npos);
  EXPECT_EQ(Stat(m.port(), "stalled_mid_stream_total"), 1);
  c.Close();  // the client gives up: the request is cancelled
  int64_t deadline = NowMs() + 2000;
  while (Stat(m.port(), "cancelled_total") != 1 && NowMs() < deadline) usleep(10000);
  EXPECT_EQ(Stat(m.port(), "cancelled_total"), 1);
}

TEST(MockIntegrationTest, FaultErrorEventMidStream) {
  MockProcess m({"--listen", "127.0.0.1:0", "--model", "m", "--output-tokens", "20", "--token-interval-ms", "0",
                 "--error-event-after-chunks", "2"});
  Client c(m.port());
  ASSERT_TRUE(c.Send(Post("/v1/chat/completions", kChatStream)));
  std::string out;
  ASSERT_TRUE(c.ReadUntil("0\r\n\r\n", 2000, &out));
  EXPECT_EQ(CountOf(out, "\"content\":"), 2u);
  size_t err = out.find("data: {\"error\":{");
  ASSERT_NE(err, std::string::npos);
  EXPECT_GT(out.find("data: [DONE]"), err);
  EXPECT_EQ(Stat(m.port(), "error_events_mid_stream_total"), 1);
  // The connection is kept: the next request on it is answered.
  EXPECT_EQ(StatusOf(c.Request("POST", "/v1/chat/completions", kChat)), 200);
}

TEST(MockIntegrationTest, ClientDisconnectMidStreamCancels) {
  MockProcess m({"--listen", "127.0.0.1:0", "--model", "m", "--output-tokens", "1000", "--token-interval-ms", "5"});
  {
    Client c(m.port());
    ASSERT_TRUE(c.Send(Post("/v1/chat/completions", kChatStream)));
    std::string out;
    ASSERT_TRUE(c.ReadUntil("\"content\"", 2000, &out));
  }
  int64_t deadline = NowMs() + 2000;
  while (Stat(m.port(), "cancelled_total") != 1 && NowMs() < deadline) usleep(10000);
  EXPECT_EQ(Stat(m.port(), "cancelled_total"), 1);
  EXPECT_EQ(Stat(m.port(), "running"), 0);
}

TEST(MockIntegrationTest, FaultRefuseConnections) {
  MockProcess m({"--listen", "127.0.0.1:0", "--model", "m", "--token-interval-ms", "0"});
  Client admin(m.port());  // an open keep-alive connection still reaches the admin path
  ASSERT_EQ(StatusOf(admin.Request("POST", "/mock/faults", R"({"refuse_connections":true})")), 200);
  {
    Client c(m.port());
    std::string out;
    if (c.ok()) {
      c.Send(Post("/v1/chat/completions", kChat));
      c.ReadFor(500, &out);
    }
    EXPECT_EQ(StatusOf(out), 0);
  }
  ASSERT_EQ(StatusOf(admin.Request("POST", "/mock/faults", R"({"refuse_connections":false})")), 200);
  Client c(m.port());
  EXPECT_EQ(StatusOf(c.Request("POST", "/v1/chat/completions", kChat)), 200);
  EXPECT_EQ(StatNum(BodyOf(admin.Request("GET", "/mock/stats")), "connections_refused"), 1);
}

TEST(MockIntegrationTest, FaultDieAfter) {
  MockProcess m({"--listen", "127.0.0.1:0", "--model", "m", "--token-interval-ms", "0", "--die-after", "2"});
  Client c(m.port());
  EXPECT_EQ(StatusOf(c.Request("POST", "/v1/chat/completions", kChat)), 200);
  EXPECT_EQ(StatusOf(c.Request("GET", "/health")), 200);  // not counted
  EXPECT_EQ(StatusOf(c.Request("POST", "/v1/chat/completions", kChat)), 200);
  EXPECT_EQ(m.WaitExit(2000), 3);
}

TEST(MockIntegrationTest, MetricsParseForEveryEngine) {
  for (const char* engine : {"vllm", "sglang", "tgi", "llamacpp"}) {
    MockProcess m({"--listen", "127.0.0.1:0", "--model", "m", "--engine", engine, "--token-interval-ms", "1",
                   "--output-tokens", "3"});
    Client c(m.port());
    ASSERT_EQ(StatusOf(c.Request("POST", "/v1/chat/completions", kChat)), 200);
    std::string r = c.Request("GET", "/metrics");
    ASSERT_EQ(StatusOf(r), 200);
    PromParse p;
    std::string err;
    EXPECT_TRUE(ParsePrometheusText(BodyOf(r), &p, &err)) << engine << ": " << err;
    if (std::string(engine) == "vllm") {
      EXPECT_EQ(p.Value("vllm:generation_tokens_total"), 3);
      EXPECT_EQ(p.Value("vllm:time_to_first_token_seconds_count"), 1);
      EXPECT_EQ(p.Value("vllm:inter_token_latency_seconds_count"), 2);
      EXPECT_EQ(p.Value("vllm:num_requests_running"), 0);
    }
  }
}

TEST(MockIntegrationTest, PrefixCacheHitsShowInStatsAndCutTtft) {
  MockProcess m({"--listen", "127.0.0.1:0", "--model", "m", "--token-interval-ms", "1", "--output-tokens", "1",
                 "--prefill-us-per-token", "100"});
  std::string prompt(8000, 'p');  // 2000 tokens = 200 ms of prefill when cold
  for (size_t i = 0; i < prompt.size(); ++i) prompt[i] = static_cast<char>('a' + (i * 13) % 26);
  std::string body = R"({"prompt":")" + prompt + R"("})";
  Client c(m.port());
  int64_t t0 = NowMs();
  ASSERT_EQ(StatusOf(c.Request("POST", "/v1/completions", body)), 200);
  int64_t cold = NowMs() - t0;
  t0 = NowMs();
  ASSERT_EQ(StatusOf(c.Request("POST", "/v1/completions", body)), 200);
  int64_t warm = NowMs() - t0;
  EXPECT_GE(cold, 190);
  EXPECT_LT(warm, cold / 3);
  EXPECT_EQ(Stat(m.port(), "prefix_cache_hit_tokens"), 1999);
}

}  // namespace
}  // namespace llmgw::testing

namespace llmgw::testing {
namespace {

TEST(MockIntegrationTest, StatsCarryTheContractKeys) {
  MockProcess m({"--listen", "127.0.0.1:0", "--model", "m", "--token-interval-ms", "0"});
  Client c(m.port());
  ASSERT_EQ(StatusOf(c.Request("POST", "/v1/chat/completions", kChat)), 200);
  std::string s = BodyOf(c.Request("GET", "/mock/stats"));
  EXPECT_EQ(StatNum(s, "connections_total"), 1) << s;
  EXPECT_EQ(StatNum(s, "connections_open"), 1) << s;
  EXPECT_EQ(StatNum(s, "requests_total"), 1) << s;
  EXPECT_EQ(StatNum(s, "running"), 0) << s;
  EXPECT_EQ(StatNum(s, "waiting"), 0) << s;
  EXPECT_EQ(StatNum(s, "cancelled_total"), 0) << s;
  std::string f = BodyOf(c.Request("GET", "/mock/faults"));
  for (const char* k : {"error_rate", "error_status", "hang_first_byte", "slow_first_byte_ms",
                        "close_mid_stream_after", "reset_mid_stream_after", "stall_mid_stream_after",
                        "error_event_mid_stream_after", "refuse_connections", "die_after"})
    EXPECT_NE(f.find(std::string("\"") + k + "\":"), std::string::npos) << k;
}

TEST(MockIntegrationTest, BadFlagsExitWithStatus2) {
  for (std::vector<std::string> args : {std::vector<std::string>{"--engine", "triton"},
                                        std::vector<std::string>{"--listen", "nowhere"},
                                        std::vector<std::string>{"--error-rate", "7"},
                                        std::vector<std::string>{"--no-such-flag", "1"}}) {
    MockProcess m(args);
    EXPECT_EQ(m.port(), 0);
    EXPECT_EQ(m.WaitExit(2000), 2) << args[0];
  }
}

}  // namespace
}  // namespace llmgw::testing
