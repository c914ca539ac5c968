// Client API keys and limits end to end: the real llmgw and llmcd (llmcd publishes the
// key table and runs the quota leaser) in front of scripted upstreams on loopback.
// Unauthenticated / wrong key / good key / model not allowed; the secret never reaches the
// upstream or the access log; rpm and tpm limits answer 429 with Retry-After and the
// x-ratelimit-* headers; max_concurrent; a key added and revoked by editing the keys file,
// without restarting anything.
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>
#include <string>
#include <thread>

#include "common/sha256.h"
#include "harness.h"

namespace llmgw::testing {
namespace {

const std::string kSecretA = "sk-test-team-a-0123456789";
const std::string kSecretB = "sk-test-team-b-9876543210";
const std::string kChat = R"({"model":"m1","messages":[{"role":"user","content":"hi"}]})";
const std::string kChat2 = R"({"model":"m2","messages":[{"role":"user","content":"hi"}]})";

std::string ReadAll(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// llmgw (from Gateway, which does not publish) plus llmcd on the same config file.
class KeysTest : public ::testing::Test {
 protected:
  // models: replaces the two-model list ($UP1 and $UP2 stand for the upstreams' URLs).
  void Start(const std::string& extra, int upstream_delay_ms = 0, std::string models_override = "",
             int stream_events = 3, int stream_interval_ms = 0) {
    TestUpstream::Options o;
    o.head_delay_ms = upstream_delay_ms;
    o.events = stream_events;
    o.interval_ms = stream_interval_ms;
    up1_ = std::make_unique<TestUpstream>(o);
    up2_ = std::make_unique<TestUpstream>(o);
    log_ = "/tmp/llmgw-keys-access-" + std::to_string(::getpid()) + ".log";
    std::string models = "models:\n  - name: m1\n    backends: [{ url: \"http://127.0.0.1:" + std::to_string(up1_->port()) +
                         "\" }]\n  - name: m2\n    backends: [{ url: \"http://127.0.0.1:" +
                         std::to_string(up2_->port()) + "\" }]\n";
    if (!models_override.empty()) {
      for (auto [name, up] : {std::pair{std::string("$UP1"), up1_.get()}, std::pair{std::string("$UP2"), up2_.get()}})
        for (size_t p; (p = models_override.find(name)) != std::string::npos;)
          models_override.replace(p, name.size(), "http://127.0.0.1:" + std::to_string(up->port()));
      models = models_override;
    }
    std::string gw = "  access_log: { enabled: true, path: \"" + log_ + "\" }\n"
                     "admin: { grpc_listen: \"127.0.0.1:0\", metrics_listen: \"127.0.0.1:0\" }\n"
                     "control: { tick_ms: 20, heartbeat_ms: 200 }\n" + extra;
    gw_ = std::make_unique<Gateway>(models, gw, /*publish=*/false);
    cd_pid_ = ::fork();
    if (cd_pid_ == 0) {
      int null = ::open("/dev/null", O_WRONLY);
      ::dup2(null, 1);
      execl(LLMCD_BIN, LLMCD_BIN, "--config", ConfigPath().c_str(), static_cast<char*>(nullptr));
      _exit(127);
    }
    ASSERT_TRUE(gw_->WaitReady(5000)) << "llmgw never got llmcd's snapshot";
  }
  void TearDown() override {
    if (cd_pid_ > 0) Gateway::StopPid(cd_pid_, SIGTERM);
    gw_.reset();
    ::unlink(log_.c_str());
  }
  std::string ConfigPath() { return "/tmp/" + Instance() + ".yaml"; }
  std::string Instance() { return gw_->config().instance; }
  Response Call(const std::string& body, const std::string& headers) {
    return Request(gw_->port(), Post("/v1/chat/completions", body, headers), 5000);
  }
  static std::string Bearer(const std::string& s) { return "Authorization: Bearer " + s + "\r\n"; }
  static std::string Key(const std::string& id, const std::string& secret, const std::string& more = "") {
    return "  - { id: " + id + ", key_sha256: \"" + Sha256Hex(secret) + "\"" + more + " }\n";
  }

  std::unique_ptr<TestUpstream> up1_, up2_;
  std::unique_ptr<Gateway> gw_;
  pid_t cd_pid_ = -1;
  std::string log_;
};

TEST_F(KeysTest, WhoMayAskForWhat) {
  Start("auth: { required: true }\nkeys:\n" + Key("team-a", kSecretA, ", models: [m1]") + Key("team-b", kSecretB));
  Response r = Call(kChat, "");
  EXPECT_EQ(r.status, 401);
  EXPECT_NE(r.body.find("\"code\":\"invalid_api_key\""), std::string::npos) << r.body;
  r = Call(kChat, Bearer("sk-wrong"));
  EXPECT_EQ(r.status, 401);
  EXPECT_EQ(r.body.find("sk-wrong"), std::string::npos) << "a presented key is never echoed";
  r = Call(kChat, Bearer(kSecretA));
  EXPECT_EQ(r.status, 200) << r.body;
  r = Call(kChat2, Bearer(kSecretA));
  EXPECT_EQ(r.status, 403);
  EXPECT_NE(r.body.find("\"code\":\"model_not_allowed\""), std::string::npos) << r.body;
  EXPECT_EQ(Call(kChat2, "x-api-key: " + kSecretB + "\r\n").status, 200);
  EXPECT_EQ(Call(kChat, "api-key: " + kSecretB + "\r\n").status, 200);
  // The secret went neither upstream nor into the access log; the key id is logged.
  for (auto* up : {up1_.get(), up2_.get()}) {
    std::string seen = up->last_request();
    EXPECT_EQ(seen.find(kSecretA), std::string::npos) << seen;
    EXPECT_EQ(seen.find(kSecretB), std::string::npos) << seen;
    EXPECT_EQ(seen.find("uthorization"), std::string::npos) << seen;
  }
  std::string log = ReadAll(log_);
  EXPECT_NE(log.find("\"key\":\"team-a\""), std::string::npos) << log;
  EXPECT_NE(log.find("\"key\":\"team-b\""), std::string::npos) << log;
  EXPECT_EQ(log.find(kSecretA), std::string::npos);
  EXPECT_EQ(log.find(kSecretB), std::string::npos);
}

TEST_F(KeysTest, RpmLimitAnswers429WithItsHeaders) {
  Start("keys:\n" + Key("small", kSecretA, ", limits: { rpm: 6 }"));
  int ok = 0, limited = 0;
  Response last429, first200;
  for (int i = 0; i < 12; ++i) {
    Response r = Call(kChat, Bearer(kSecretA));
    if (r.status == 200) {
      if (!ok++) first200 = r;
    } else if (r.status == 429) {
      ++limited;
      last429 = r;
    } else {
      ADD_FAILURE() << r.status << " " << r.body;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(30));  // llmcd ticks every 20 ms
  }
  EXPECT_GE(ok, 5);
  EXPECT_LE(ok, 6) << "a bucket of 6 refilling at 0.1/s admits at most 6 in a burst";
  EXPECT_EQ(ok + limited, 12);
  EXPECT_EQ(first200.Header("x-ratelimit-limit-requests"), "6");
  EXPECT_FALSE(first200.Header("x-ratelimit-remaining-requests").empty());
  EXPECT_FALSE(first200.Header("x-ratelimit-reset-requests").empty());
  EXPECT_EQ(first200.Header("x-ratelimit-limit-tokens"), "") << "no tpm limit, no tokens trio";
  EXPECT_NE(last429.body.find("\"code\":\"rate_limit_exceeded\""), std::string::npos) << last429.body;
  EXPECT_GE(std::atoi(last429.Header("retry-after").c_str()), 1);
  EXPECT_EQ(last429.Header("x-ratelimit-limit-requests"), "6");
  EXPECT_EQ(last429.Header("x-ratelimit-remaining-requests"), "0");
  // Requests without a key are anonymous here (auth not required) and not limited by it.
  EXPECT_EQ(Call(kChat, "").status, 200);
}

// models[].backends[].rps: a backend at its rate is skipped like a full one — the model's
// other backend takes the rest and nothing fails — and when it is the only one left, the
// client gets 429 rate_limit_exceeded (not a 502/503) with Retry-After.
TEST_F(KeysTest, BackendAtItsRpsIsSkippedByTheRouter) {
  Start("", 0,
        "models:\n  - name: m1\n    policy: round_robin\n    backends:\n"
        "      - { id: slow, url: \"$UP1\", rps: 2 }\n      - { id: free, url: \"$UP2\" }\n"
        "  - name: m2\n    backends: [{ id: only, url: \"$UP1\", rps: 2 }]\n");
  for (int i = 0; i < 20; ++i) {
    Response r = Call(kChat, "");
    EXPECT_EQ(r.status, 200) << r.body;
  }
  // A bucket of 2 refilling at 2/s over the ~run: a few, never half of 20 (round robin).
  EXPECT_LE(up1_->requests(), 2 + 2 * 1 + 2) << "the rate-limited backend was not skipped";
  EXPECT_GE(up2_->requests(), 20 - (2 + 2 * 1 + 2));
  int ok = 0, limited = 0;
  Response r429;
  for (int i = 0; i < 10; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(30));  // llmcd ticks every 20 ms
    Response r = Call(kChat2, "");
    if (r.status == 200) {
      ++ok;
    } else if (r.status == 429) {
      ++limited;
      r429 = r;
    } else {
      ADD_FAILURE() << r.status << " " << r.body;
    }
  }
  EXPECT_GE(ok, 1);
  EXPECT_GE(limited, 1) << "ten in 0.3 s through a backend of 2 per second";
  EXPECT_NE(r429.body.find("\"code\":\"rate_limit_exceeded\""), std::string::npos) << r429.body;
  EXPECT_GE(std::atoi(r429.Header("retry-after").c_str()), 1);
}

TEST_F(KeysTest, TpmLimitCountsTheAnswersTokens) {
  // The upstream's usage says 12 tokens per answer; the key may have 20 a minute.
  Start("keys:\n" + Key("tok", kSecretA, ", limits: { tpm: 20 }"));
  int ok = 0;
  Response limited;
  for (int i = 0; i < 6; ++i) {
    Response r = Call(kChat, Bearer(kSecretA));
    if (r.status == 200) ++ok;
    else if (r.status == 429) limited = r;
    std::this_thread::sleep_for(std::chrono::milliseconds(40));
  }
  EXPECT_GE(ok, 1);
  EXPECT_LE(ok, 2) << "12 tokens an answer: at most two answers before the bucket of 20 is empty";
  EXPECT_EQ(limited.status, 429);
  EXPECT_EQ(limited.Header("x-ratelimit-limit-tokens"), "20");
  EXPECT_EQ(limited.Header("x-ratelimit-remaining-tokens"), "0");
  EXPECT_NE(limited.body.find("tokens"), std::string::npos) << limited.body;
}

// A stream's output tokens count against tpm as they are relayed, not only when it ends:
// while a long stream (no include_usage: llmgw asks the backend for usage and strips it)
// is still running past the key's tpm, another request of the key is refused. The client
// sees no usage chunk it did not ask for.
TEST_F(KeysTest, StreamedTokensCountAgainstTpmAsTheyStream) {
  // 120 events 25 ms apart (3 s); the key may have 40 tokens a minute.
  Start("keys:\n" + Key("stream", kSecretA, ", limits: { tpm: 40 }"), 0, "", 120, 25);
  std::this_thread::sleep_for(std::chrono::milliseconds(100));  // a few ticks: the thread's lease
  const std::string stream = R"({"model":"m1","stream":true,"messages":[{"role":"user","content":"hi"}]})";
  Response a;
  std::thread t([&] { a = Request(gw_->port(), Post("/v1/chat/completions", stream, Bearer(kSecretA)), 15000); });
  // Past the tpm (55 events relayed; a loaded machine may be slower than 25 ms an event).
  for (int i = 0; i < 500 && up1_->events_sent() < 55; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  std::this_thread::sleep_for(std::chrono::milliseconds(50));  // relayed by llmgw
  EXPECT_LT(up1_->events_sent(), 120) << "the stream ended before the check: the test proves nothing";
  Response b = Call(kChat, Bearer(kSecretA));
  t.join();
  EXPECT_EQ(b.status, 429) << "the running stream's tokens were not charged yet: " << b.body;
  EXPECT_NE(b.body.find("tokens"), std::string::npos) << b.body;
  ASSERT_EQ(a.status, 200) << a.body;
  EXPECT_NE(a.body.find("data: [DONE]"), std::string::npos) << a.body;
  EXPECT_EQ(a.body.find("\"usage\""), std::string::npos) << "a usage chunk the client did not ask for: " << a.body;
}

TEST_F(KeysTest, MaxConcurrentRefusesTheSecondInFlight) {
  Start("keys:\n" + Key("one", kSecretA, ", limits: { max_concurrent: 1 }"), /*upstream_delay_ms=*/600);
  std::this_thread::sleep_for(std::chrono::milliseconds(100));  // a few ticks: the thread's share
  Response first;
  std::thread t([&] { first = Call(kChat, Bearer(kSecretA)); });
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  Response second = Call(kChat, Bearer(kSecretA));
  t.join();
  EXPECT_EQ(first.status, 200);
  EXPECT_EQ(second.status, 429);
  EXPECT_NE(second.body.find("max_concurrent"), std::string::npos) << second.body;
  EXPECT_EQ(Call(kChat, Bearer(kSecretA)).status, 200) << "the slot is back once the first is done";
}

TEST_F(KeysTest, KeysFileChangesApplyWithoutRestart) {
  std::string keys = "/tmp/llmgw-keys-file-" + std::to_string(::getpid()) + ".yaml";
  {
    std::ofstream(keys) << "keys:\n" << Key("a", kSecretA);
  }
  Start("auth: { required: true, keys_file: \"" + keys + "\" }\n");
  pid_t gw_pid = gw_->pid();
  EXPECT_EQ(Call(kChat, Bearer(kSecretA)).status, 200);
  EXPECT_EQ(Call(kChat, Bearer(kSecretB)).status, 401);
  auto replace = [&](const std::string& text) {
    std::ofstream(keys + ".tmp") << text;
    std::rename((keys + ".tmp").c_str(), keys.c_str());
  };
  replace("keys:\n" + Key("a", kSecretA) + Key("b", kSecretB));
  bool added = false;
  for (int i = 0; i < 100 && !added; ++i) {
    added = Call(kChat, Bearer(kSecretB)).status == 200;
    if (!added) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_TRUE(added) << "key b never became valid";
  replace("keys:\n" + Key("b", kSecretB));
  bool revoked = false;
  for (int i = 0; i < 100 && !revoked; ++i) {
    revoked = Call(kChat, Bearer(kSecretA)).status == 401;
    if (!revoked) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_TRUE(revoked) << "key a was never revoked";
  EXPECT_EQ(Call(kChat, Bearer(kSecretB)).status, 200);
  EXPECT_EQ(gw_->pid(), gw_pid);
  EXPECT_EQ(::kill(gw_pid, 0), 0) << "llmgw kept running";
  ::unlink(keys.c_str());
}

}  // namespace
}  // namespace llmgw::testing
