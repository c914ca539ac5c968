// End to end with every real process on loopback: llmgw-mock backends, llmcd and llmgw
// sharing one config file and one shm object. Client load runs through llmgw while the
// control plane reacts: a killed mock (no client errors, UNHEALTHY within two health
// intervals), drain/undrain (counted at the mock's /mock/stats), an llmcd restart (zero
// failed requests), ResetCircuit after injected errors, and hot reloads that add and
// remove backends while serving. Tests assert outcomes; the only timing bound is the
// issue's "within two health intervals", with slack for a loaded CI machine.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <memory>

#include "common/shm.h"
#include "e2e_process.h"
#include "tests/tls/test_pki.h"

namespace llmgw::e2e {
namespace {

constexpr int kHealthIntervalMs = 300;

class E2eTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/llmgw-e2e-XXXXXX";
    dir_ = mkdtemp(tmpl);
    config_ = dir_ + "/llmgw.yaml";
    static int counter = 0;
    instance_ = "e2e-" + std::to_string(getpid()) + "-" + std::to_string(counter++);
    grpc_port_ = FreePort();
    metrics_port_ = FreePort();
  }
  void TearDown() override {
    gw_.reset();
    cd_.reset();
    mocks_.clear();
    shm::Unlink("/llmgw-" + instance_);
    for (const char* f : {"/llmgw.yaml", "/llmgw.yaml.tmp", "/llmcd.log", "/llmgw.log", "/mock.log"})
      std::remove((dir_ + f).c_str());
    rmdir(dir_.c_str());
  }

  // Mocks answer at once (no simulated decode time) so load runs fast on two cores.
  Proc* StartMock() {
    mocks_.push_back(std::make_unique<Proc>(
        std::vector<std::string>{LLMGW_MOCK_BIN, "--listen", "127.0.0.1:0", "--model", "m", "--token-interval-ms",
                                 "0", "--output-tokens", "4"},
        dir_ + "/mock.log", true));
    return mocks_.back().get();
  }
  std::string Config(const std::vector<Proc*>& backends, const std::string& extra = "") {
    std::string y = "instance: " + instance_ +
                    "\ngateway:\n  listen: 127.0.0.1:0\n  threads: 1\n  retries: { max: 2, backoff_ms: 10 }\n"
                    "admin:\n  grpc_listen: 127.0.0.1:" + std::to_string(grpc_port_) +
                    "\n  metrics_listen: 127.0.0.1:" + std::to_string(metrics_port_) +
                    "\nhealth: { interval_ms: " + std::to_string(kHealthIntervalMs) +
                    ", timeout_ms: 1000, unhealthy_after: 2, healthy_after: 1, scrape_interval_ms: 300 }\n"
                    "control: { tick_ms: 20, heartbeat_ms: 200 }\n" + extra +
                    "models:\n  - name: m\n    policy: round_robin\n    backends:\n";
    for (Proc* b : backends) y += "      - { id: " + Id(b) + ", url: \"" + b->url() + "\" }\n";
    return y;
  }
  std::string Id(Proc* mock) const {
    for (size_t i = 0; i < mocks_.size(); ++i)
      if (mocks_[i].get() == mock) return "b" + std::to_string(i);
    return "?";
  }
  void StartLlmcd() {
    cd_ = std::make_unique<Proc>(std::vector<std::string>{LLMCD_BIN, "--config", config_}, dir_ + "/llmcd.log", false);
  }
  // Starts llmcd and llmgw on the written config; true once llmcd lists `backends`
  // backends and llmgw answers /ready.
  bool StartAll(size_t backends) {
    StartLlmcd();
    stub_ = AdminStub(grpc_port_);
    if (!WaitFor([&] { return Status().backends_total() == backends; }, 5000)) return false;
    gw_ = std::make_unique<Proc>(std::vector<std::string>{LLMGW_BIN, "--config", config_}, dir_ + "/llmgw.log", true);
    if (gw_->port() <= 0) return false;
    return WaitFor([&] { return HttpCall(gw_->port(), "GET", "/ready", "", 1000).status == 200; }, 5000);
  }
  pb::GetStatusResponse Status() {
    pb::GetStatusResponse r;
    stub_->GetStatus(Ctx().get(), {}, &r);
    return r;
  }
  // Waits until llmcd published a snapshot newer than the one current at the call, so
  // llmgw (which checks the generation on every request) acts on what was just changed.
  bool WaitPublished() {
    uint64_t gen = Status().snapshot_generation();
    return WaitFor([&] { return Status().snapshot_generation() > gen; }, 3000);
  }
  // `n` sequential completions through the gateway; returns how many were a complete 200.
  int Sequential(int n) {
    int ok = 0;
    for (int i = 0; i < n; ++i) {
      HttpResult r = HttpCall(gw_->port(), "POST", "/v1/chat/completions", kChatBody, 10000);
      if (r.status == 200) ++ok;
      else last_failure_ = std::to_string(r.status) + " " + r.error + " " + r.body;
    }
    return ok;
  }
  // 0 closed, 1 open, 2 half-open, -1 unknown: from llmcd's Prometheus exposition.
  int BreakerState(Proc* mock) {
    HttpResult m = HttpCall(metrics_port_, "GET", "/metrics", "", 2000);
    std::string key = "llm_circuit_breaker_state{id=\"" + Id(mock) + "\"} ";
    size_t p = m.body.find(key);
    return p == std::string::npos ? -1 : std::atoi(m.body.c_str() + p + key.size());
  }
  std::string Logs() {
    return "--- llmcd.log\n" + ReadFile(dir_ + "/llmcd.log") + "--- llmgw.log\n" + ReadFile(dir_ + "/llmgw.log") +
           "--- last failure: " + last_failure_;
  }

  std::string dir_, config_, instance_, last_failure_;
  int grpc_port_ = 0, metrics_port_ = 0;
  std::vector<std::unique_ptr<Proc>> mocks_;
  std::unique_ptr<Proc> cd_, gw_;
  std::unique_ptr<pb::Admin::Stub> stub_;
};

// Issue 13 through llmcd: the snapshot llmcd publishes carries each backend's key and TLS
// settings (the BackendUpstream table), so llmgw reaches an https backend of a hosted
// provider with its key. (llmcd's Publish copied the backend entries but not that table:
// llmgw saw no TLS context and no key, and answered 502 "tls: no TLS context".)
TEST_F(E2eTest, HttpsHostedBackendGetsItsTlsSettingsAndKeyFromLlmcd) {
  llmgw::test::TestPki pki;
  ASSERT_TRUE(pki.ok()) << pki.error();
  mocks_.push_back(std::make_unique<Proc>(
      std::vector<std::string>{LLMGW_MOCK_BIN, "--listen", "127.0.0.1:0", "--model", "m", "--token-interval-ms", "0",
                               "--output-tokens", "4", "--provider", "openai", "--api-key", "sk-e2e", "--tls",
                               pki.server_cert(), pki.server_key()},
      dir_ + "/mock.log", true));
  ASSERT_GT(mocks_.back()->port(), 0);
  WriteFileAtomically(dir_ + "/openai.key", "sk-e2e\n");
  std::string y = Config({}) + "      - { id: b0, url: \"https://127.0.0.1:" + std::to_string(mocks_.back()->port()) +
                  "\", provider: openai, api_key_file: openai.key, tls: { ca_file: \"" + pki.ca_cert() + "\" } }\n";
  WriteFileAtomically(config_, y);
  ASSERT_TRUE(StartAll(1)) << Logs();
  EXPECT_EQ(Sequential(5), 5) << Logs();
  std::remove((dir_ + "/openai.key").c_str());
}

// A provider key rotated under load: the key file is rewritten and llmcd reloaded
// (SIGHUP); llmgw sends the new key from the next snapshot on. The mock accepts only
// "sk-1": rotating to "sk-2" makes the provider refuse llmgw's requests (the client sees
// its 401), rotating back makes them succeed again, both while a load runs.
TEST_F(E2eTest, RotatedProviderKeyFileIsUsedAfterAReloadUnderLoad) {
  mocks_.push_back(std::make_unique<Proc>(
      std::vector<std::string>{LLMGW_MOCK_BIN, "--listen", "127.0.0.1:0", "--model", "m", "--token-interval-ms", "0",
                               "--output-tokens", "4", "--provider", "openai", "--api-key", "sk-1"},
      dir_ + "/mock.log", true));
  ASSERT_GT(mocks_.back()->port(), 0);
  const std::string key = dir_ + "/openai.key";
  WriteFileAtomically(key, "sk-1\n");
  WriteFileAtomically(config_, Config({}) + "      - { id: b0, url: \"" + mocks_.back()->url() +
                                   "\", provider: openai, api_key_file: openai.key }\n");
  ASSERT_TRUE(StartAll(1)) << Logs();
  Load load(gw_->port(), 2);
  ASSERT_TRUE(load.WaitMore(20, 10000)) << load.failures() << Logs();
  auto status = [&] { return HttpCall(gw_->port(), "POST", "/v1/chat/completions", kChatBody, 5000).status; };
  EXPECT_EQ(status(), 200);
  WriteFileAtomically(key, "sk-2\n");
  ::kill(cd_->pid(), SIGHUP);
  EXPECT_TRUE(WaitFor([&] { return status() == 401; }, 5000)) << "llmgw still sends the old key\n" << Logs();
  WriteFileAtomically(key, "sk-1\n");
  ::kill(cd_->pid(), SIGHUP);
  EXPECT_TRUE(WaitFor([&] { return status() == 200; }, 5000)) << "llmgw does not send the restored key\n" << Logs();
  load.Stop();
  EXPECT_GE(Status().config_reloads(), 2u);
  std::remove(key.c_str());
}

TEST_F(E2eTest, KilledMockIsUnhealthyWithinTwoIntervalsAndClientsSeeNoErrors) {
  Proc* a = StartMock();
  Proc* b = StartMock();
  ASSERT_GT(a->port(), 0);
  ASSERT_GT(b->port(), 0);
  WriteFileAtomically(config_, Config({a, b}));
  ASSERT_TRUE(StartAll(2)) << Logs();

  Load load(gw_->port(), 2);
  ASSERT_TRUE(load.WaitMore(50, 10000)) << load.failures() << Logs();
  ASSERT_GT(MockStat(b->port(), "requests_total"), 0);  // b really served before it died

  b->Kill();  // SIGKILL while requests flow: retries must cover whatever was on it
  auto killed = Clock::now();
  ASSERT_TRUE(WaitFor([&] { return StateOf(stub_.get(), "b1") == pb::UNHEALTHY; }, 5000)) << Logs();
  auto took = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - killed).count();
  // Two probe intervals, plus one tick and the test's own polling on a busy machine.
  EXPECT_LE(took, 2 * kHealthIntervalMs + 300);
  EXPECT_EQ(StateOf(stub_.get(), "b0"), pb::HEALTHY);

  ASSERT_TRUE(load.WaitMore(50, 10000)) << load.failures() << Logs();
  load.Stop();
  EXPECT_EQ(load.failed(), 0u) << load.failures() << Logs();
  EXPECT_GE(load.ok(), 100u);
}

TEST_F(E2eTest, DrainedBackendGetsNoNewRequestsAndUndrainBringsItBack) {
  Proc* a = StartMock();
  Proc* b = StartMock();
  WriteFileAtomically(config_, Config({a, b}));
  ASSERT_TRUE(StartAll(2)) << Logs();
  ASSERT_EQ(Sequential(10), 10) << Logs();
  ASSERT_GT(MockStat(b->port(), "requests_total"), 0);

  pb::BackendResponse resp;
  pb::BackendRequest req;
  req.set_id("b1");
  ASSERT_TRUE(stub_->DrainBackend(Ctx().get(), req, &resp).ok());
  EXPECT_EQ(StateOf(stub_.get(), "b1"), pb::DRAINING);
  ASSERT_TRUE(WaitPublished());
  long a0 = MockStat(a->port(), "requests_total"), b0 = MockStat(b->port(), "requests_total");
  EXPECT_EQ(Sequential(40), 40) << Logs();
  EXPECT_EQ(MockStat(b->port(), "requests_total"), b0) << "a drained backend got new requests";
  EXPECT_EQ(MockStat(a->port(), "requests_total"), a0 + 40);

  ASSERT_TRUE(stub_->UndrainBackend(Ctx().get(), req, &resp).ok());
  EXPECT_EQ(StateOf(stub_.get(), "b1"), pb::HEALTHY);
  ASSERT_TRUE(WaitPublished());
  EXPECT_EQ(Sequential(40), 40) << Logs();
  // Round robin over two backends: about half each.
  EXPECT_GE(MockStat(b->port(), "requests_total"), b0 + 10) << "undrain did not bring the backend back";
}

TEST_F(E2eTest, RestartingLlmcdWhileServingCostsZeroRequests) {
  Proc* a = StartMock();
  Proc* b = StartMock();
  WriteFileAtomically(config_, Config({a, b}));
  ASSERT_TRUE(StartAll(2)) << Logs();
  uint64_t gen_before = Status().snapshot_generation();

  Load load(gw_->port(), 2);
  ASSERT_TRUE(load.WaitMore(30, 10000)) << load.failures() << Logs();
  ASSERT_EQ(cd_->Stop(SIGTERM, 5000), 0) << Logs();
  // llmgw keeps serving on its last snapshot with no control plane at all (fail-static).
  ASSERT_TRUE(load.WaitMore(30, 10000)) << load.failures() << Logs();
  struct stat st;
  EXPECT_EQ(stat(("/dev/shm/llmgw-" + instance_).c_str(), &st), 0) << "shm removed while llmgw is attached";

  StartLlmcd();
  ASSERT_TRUE(WaitFor([&] {
    auto s = Status();
    return s.backends_total() == 2 && s.dataplane_alive() && s.snapshot_generation() > gen_before;
  }, 5000)) << Logs();
  ASSERT_TRUE(load.WaitMore(30, 10000)) << load.failures() << Logs();

  // llmgw follows the new llmcd: a drain through it takes effect.
  pb::BackendResponse resp;
  pb::BackendRequest req;
  req.set_id("b1");
  ASSERT_TRUE(stub_->DrainBackend(Ctx().get(), req, &resp).ok());
  ASSERT_TRUE(WaitPublished());
  std::this_thread::sleep_for(std::chrono::milliseconds(100));  // requests already sent to b1 arrive
  long b0 = MockStat(b->port(), "requests_total");
  ASSERT_TRUE(load.WaitMore(30, 10000)) << load.failures() << Logs();
  EXPECT_EQ(MockStat(b->port(), "requests_total"), b0);

  load.Stop();
  EXPECT_EQ(load.failed(), 0u) << load.failures() << Logs();
}

TEST_F(E2eTest, ResetCircuitClosesTheBreakerAfterInjectedErrors) {
  Proc* a = StartMock();
  Proc* b = StartMock();
  // open_ms long enough that only ResetCircuit can close the breaker during the test.
  WriteFileAtomically(config_, Config({a, b}, "circuit_breaker: { failure_threshold: 3, success_threshold: 1, "
                                              "open_ms: 60000, half_open_requests: 1 }\n"));
  ASSERT_TRUE(StartAll(2)) << Logs();
  ASSERT_EQ(BreakerState(b), 0) << Logs();

  HttpResult f = HttpCall(b->port(), "POST", "/mock/faults", R"({"error_rate":1.0,"error_status":500})");
  ASSERT_EQ(f.status, 200) << f.body;
  // Every request still succeeds (b's 500s are retried on a) while b's failures open its breaker.
  ASSERT_TRUE(WaitFor([&] { return Sequential(5) == 5 && BreakerState(b) == 1; }, 5000))
      << "breaker " << BreakerState(b) << "\n" << Logs();
  EXPECT_NE(StateOf(stub_.get(), "b1"), pb::HEALTHY);

  // The fault is gone but the breaker stays open (open_ms 60 s): b gets nothing.
  f = HttpCall(b->port(), "POST", "/mock/faults", R"({"error_rate":0})");
  ASSERT_EQ(f.status, 200) << f.body;
  ASSERT_TRUE(WaitPublished());
  long b0 = MockStat(b->port(), "requests_total");
  EXPECT_EQ(Sequential(20), 20) << Logs();
  EXPECT_EQ(MockStat(b->port(), "requests_total"), b0);
  EXPECT_EQ(BreakerState(b), 1);

  pb::BackendResponse resp;
  pb::BackendRequest req;
  req.set_id("b1");
  ASSERT_TRUE(stub_->ResetCircuit(Ctx().get(), req, &resp).ok());
  EXPECT_EQ(BreakerState(b), 0);
  EXPECT_EQ(StateOf(stub_.get(), "b1"), pb::HEALTHY);
  ASSERT_TRUE(WaitPublished());
  EXPECT_EQ(Sequential(40), 40) << Logs();
  EXPECT_GE(MockStat(b->port(), "requests_total"), b0 + 10) << "reset did not bring the backend back";
  EXPECT_EQ(BreakerState(b), 0);
}

TEST_F(E2eTest, HotReloadAddingAndRemovingBackendsWhileServingDropsNothing) {
  Proc* a = StartMock();
  Proc* b = StartMock();
  Proc* c = StartMock();
  WriteFileAtomically(config_, Config({a, b}));
  ASSERT_TRUE(StartAll(2)) << Logs();

  Load load(gw_->port(), 2);
  ASSERT_TRUE(load.WaitMore(30, 10000)) << load.failures() << Logs();
  EXPECT_EQ(MockStat(c->port(), "requests_total"), 0);

  // Add c: the file changes under llmcd (inotify), the next snapshot carries it.
  WriteFileAtomically(config_, Config({a, b, c}));
  ASSERT_TRUE(WaitFor([&] { return Status().backends_total() == 3; }, 5000)) << Logs();
  ASSERT_TRUE(WaitFor([&] { return MockStat(c->port(), "requests_total") > 0; }, 5000)) << Logs();
  long a0 = MockStat(a->port(), "requests_total");
  ASSERT_TRUE(load.WaitMore(30, 10000)) << load.failures() << Logs();
  EXPECT_GT(MockStat(a->port(), "requests_total"), a0);

  // Remove b while serving: requests in flight on it finish, new ones go elsewhere.
  WriteFileAtomically(config_, Config({a, c}));
  ASSERT_TRUE(WaitFor([&] { return Status().backends_total() == 2; }, 5000)) << Logs();
  ASSERT_TRUE(WaitPublished());
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  long b_after = MockStat(b->port(), "requests_total");
  ASSERT_TRUE(load.WaitMore(30, 10000)) << load.failures() << Logs();
  EXPECT_EQ(MockStat(b->port(), "requests_total"), b_after);

  load.Stop();
  EXPECT_EQ(load.failed(), 0u) << load.failures() << Logs();
  EXPECT_EQ(Status().config_reloads(), 2u);
}

// Gateway-wide prefix homes: two llmgw threads (connections spread over both by
// SO_REUSEPORT) and three mocks. Once llmcd has seen the prompts it publishes one home
// per prefix, and from then on every request of a prompt reaches one mock, whichever
// thread accepted it.
TEST_F(E2eTest, PrefixHomesAreSharedByEveryGatewayThread) {
  std::vector<Proc*> m = {StartMock(), StartMock(), StartMock()};
  std::string cfg = Config(m);
  size_t at = cfg.find("threads: 1");
  ASSERT_NE(at, std::string::npos);
  cfg.replace(at, 10, "threads: 2");
  at = cfg.find("policy: round_robin");
  cfg.replace(at, 19, "policy: prefix_affinity");
  WriteFileAtomically(config_, cfg);
  ASSERT_TRUE(StartAll(3)) << Logs();
  const int kPrompts = 6;
  // The system prompt is longer than routing.prefix_bytes (256), so the prefix the router
  // hashes is the system prompt alone.
  auto body = [](int p, int i) {
    std::string sys = "You are assistant number " + std::to_string(p) + ".";
    while (sys.size() < 300) sys += " Answer briefly and politely in English.";
    return R"({"model":"m","messages":[{"role":"system","content":")" + sys +
           R"("},{"role":"user","content":"question )" + std::to_string(i) + R"("}],"max_tokens":4})";
  };
  // Warm-up: every prompt a few times, on fresh connections (both threads see them).
  for (int i = 0; i < 4; ++i)
    for (int p = 0; p < kPrompts; ++p)
      ASSERT_EQ(HttpCall(gw_->port(), "POST", "/v1/chat/completions", body(p, i), 10000).status, 200) << Logs();
  // llmcd publishes the homes (the snapshot carries them; read it as llmgw does).
  auto attached = shm::ShmObject::Open("/llmgw-" + instance_);
  ASSERT_TRUE(attached.ok());
  std::unique_ptr<shm::ShmObject> obj = std::move(attached.value());
  shm::SnapshotReader reader(obj->region());
  auto snap = std::make_unique<shm::Snapshot>();
  ASSERT_TRUE(WaitFor([&] { return reader.Refresh(snap.get()) && snap->num_prefix_homes == kPrompts; }, 5000))
      << "homes published: " << snap->num_prefix_homes << Logs();
  ASSERT_TRUE(WaitPublished());
  // Now each prompt's requests all land on one mock.
  for (int p = 0; p < kPrompts; ++p) {
    std::vector<long> before;
    for (Proc* x : m) before.push_back(MockStat(x->port(), "requests_total"));
    for (int i = 0; i < 8; ++i)
      ASSERT_EQ(HttpCall(gw_->port(), "POST", "/v1/chat/completions", body(p, 100 + i), 10000).status, 200) << Logs();
    int served_by = 0;
    for (size_t k = 0; k < m.size(); ++k) {
      long d = MockStat(m[k]->port(), "requests_total") - before[k];
      if (d > 0) ++served_by;
      EXPECT_TRUE(d == 0 || d == 8) << "prompt " << p << " split: mock " << k << " got " << d << " of 8";
    }
    EXPECT_EQ(served_by, 1) << "prompt " << p;
  }
  obj->Close();
}

}  // namespace
}  // namespace llmgw::e2e
