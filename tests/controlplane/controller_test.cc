// Controller behaviour: active health (with the /v1/models fallback), scraping and
// staleness, passive health and circuit breaking from data-plane stats slots, operator
// actions reaching the snapshot, config reload (good, bad, while serving) and a hung
// backend never stalling the publish loop.
//
// Most tests run on a fake Prober (answers from a function, no sockets) with an injected
// clock and an inline worker pool: each Step() advances time and ticks once, so "unhealthy
// after two intervals" is checked to the tick instead of by sleeping. One test keeps the
// real HttpProber against a loopback server, to cover the path end to end.
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <fstream>
#include <functional>
#include <map>
#include <mutex>
#include <thread>

#include "common/shm.h"
#include "controlplane/controller.h"
#include "controlplane/prober.h"
#include "test_http_server.h"
#include "test_support.h"

namespace llmgw::cp {
namespace {

using testing::TestHttpServer;
using testing::TestResponse;
using Clock = std::chrono::steady_clock;

const char kVllmMetrics[] =
    "# TYPE vllm:num_requests_running gauge\n"
    "vllm:num_requests_running{engine=\"0\",model_name=\"m\"} 5.0\n"
    "vllm:num_requests_waiting{engine=\"0\",model_name=\"m\"} 3.0\n"
    "vllm:kv_cache_usage_perc{engine=\"0\",model_name=\"m\"} 0.62\n";

std::string UniqueInstance() {
  static int n = 0;
  return "cptest-" + std::to_string(getpid()) + "-" + std::to_string(++n);
}

std::string Yaml(const std::string& instance, const std::vector<std::string>& urls, const std::string& extra = "",
                 int timeout_ms = 100) {
  std::string y = "instance: " + instance +
                  "\nhealth: { interval_ms: 100, timeout_ms: " + std::to_string(timeout_ms) +
                  ", unhealthy_after: 2, healthy_after: 1, "
                  "scrape_interval_ms: 100, metrics_stale_ms: 400 }\n"
                  "control: { tick_ms: 20, heartbeat_ms: 100 }\n"
                  "circuit_breaker: { failure_threshold: 3, success_threshold: 1, open_ms: 200, "
                  "half_open_requests: 1, slow_call_ms: 1000, window_ms: 1000 }\n" +
                  extra + "models:\n  - name: m\n    policy: adaptive\n    backends:\n";
  for (const auto& u : urls) y += "      - { url: " + u + ", max_concurrent: 8 }\n";
  return y;
}

// Ticks until pred holds or the timeout passes; returns whether it held.
template <typename P>
bool TickUntil(Controller& c, P pred, int timeout_ms = 2000) {
  auto end = Clock::now() + std::chrono::milliseconds(timeout_ms);
  while (Clock::now() < end) {
    c.Tick();
    if (pred()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return false;
}

shm::BackendState StateOf(Controller& c, const std::string& id) {
  BackendView b;
  EXPECT_TRUE(c.GetBackend(id, &b));
  return b.state;
}

// Answers probes and scrapes from a function of (host:port, path); counts calls per path.
// Optionally holds every call until Release() (a hung backend).
class FakeProber final : public Prober {
 public:
  using Answer = std::function<HttpResponse(const std::string& host, const std::string& path)>;
  void Set(Answer a) {
    std::lock_guard<std::mutex> l(mu_);
    answer_ = std::move(a);
  }
  void Hold() {
    std::lock_guard<std::mutex> l(mu_);
    hold_ = true;
  }
  void Release() {
    {
      std::lock_guard<std::mutex> l(mu_);
      hold_ = false;
    }
    cv_.notify_all();
  }
  HttpTarget last_target(const std::string& path) const {
    std::lock_guard<std::mutex> l(mu_);
    auto it = last_target_.find(path);
    return it == last_target_.end() ? HttpTarget{} : it->second;
  }
  int calls(const std::string& path) const {
    std::lock_guard<std::mutex> l(mu_);
    auto it = calls_.find(path);
    return it == calls_.end() ? 0 : it->second;
  }
  HttpResponse Get(const HttpTarget& t, const std::string& path, uint32_t, size_t,
                   const std::atomic<bool>* cancel) override {
    std::unique_lock<std::mutex> l(mu_);
    ++calls_[path];
    last_target_[path] = t;
    while (hold_ && !(cancel && cancel->load())) cv_.wait_for(l, std::chrono::milliseconds(10));
    if (hold_) return HttpResponse{0, "", "cancelled"};
    Answer a = answer_;
    l.unlock();
    return a ? a(t.host_header, path) : HttpResponse{200, "ok", ""};
  }

 private:
  mutable std::mutex mu_;
  std::condition_variable cv_;
  Answer answer_;
  bool hold_ = false;
  std::map<std::string, int> calls_;
  std::map<std::string, HttpTarget> last_target_;
};

HttpResponse Ok(std::string body = "ok") { return HttpResponse{200, std::move(body), ""}; }
HttpResponse Status(int code) { return HttpResponse{code, "", ""}; }
HttpResponse Refused() { return HttpResponse{0, "", "connect: Connection refused"}; }

// Backends that are never contacted (the fake prober answers for them).
const char kUrlA[] = "http://127.0.0.1:9";
const char kUrlB[] = "http://127.0.0.1:10";

class ControllerTest : public ::testing::Test {
 protected:
  // fake: fake prober, injected clock and inline probe jobs; otherwise the real prober,
  // steady clock and worker threads.
  void Start(const std::string& yaml, bool fake = true, std::function<void(Config&)> tweak = nullptr) {
    instance_ = yaml.substr(10, yaml.find('\n') - 10);
    ConfigResult r = ParseConfig(yaml, "test.yaml");
    ASSERT_TRUE(r.ok()) << r.ErrorText();
    if (tweak) tweak(r.config);
    ControllerOptions o;
    if (fake) {
      o.clock_ms = [this] { return now_ms_.load(); };
      o.prober = prober_;
      o.worker_threads = 0;
    }
    c_ = std::make_unique<Controller>(o);
    ASSERT_TRUE(c_->StartWithConfig(std::move(r.config)).ok());
    auto obj = shm::ShmObject::Open("/llmgw-" + instance_);
    ASSERT_TRUE(obj.ok());
    shm_ = std::move(obj.value());
  }
  void TearDown() override {
    if (c_) c_->Shutdown();
    if (shm_) shm_->Close();
  }
  // Advances the fake clock by ms and ticks once.
  void Step(uint64_t ms = 20) {
    now_ms_ += ms;
    c_->Tick();
  }
  // Steps until pred holds, at most max_ms of fake time; returns the fake ms it took, or -1.
  template <typename P>
  int64_t StepUntil(P pred, uint64_t max_ms = 2000, uint64_t step = 20) {
    for (uint64_t t = step; t <= max_ms; t += step) {
      Step(step);
      if (pred()) return static_cast<int64_t>(t);
    }
    return -1;
  }
  shm::BackendEntry Published(int slot) {
    shm::SnapshotReader reader(shm_->region());
    auto snap = std::make_unique<shm::Snapshot>();
    EXPECT_TRUE(reader.Refresh(snap.get()));
    return snap->backends[slot];
  }
  std::shared_ptr<FakeProber> prober_ = std::make_shared<FakeProber>();
  std::atomic<uint64_t> now_ms_{1'000'000};
  std::unique_ptr<Controller> c_;
  std::string instance_;
  std::unique_ptr<shm::ShmObject> shm_;
};

// Re-resolved backend addresses (name_refresher.h, control.resolve_interval_ms): a
// changed address is published at the next tick, an unchanged one publishes nothing, and
// changes found for an older config (a reload came between) or a reused slot are dropped.
TEST_F(ControllerTest, ReResolvedAddressIsPublishedOnlyWhenItChanged) {
  // No probe or scrape changes anything during the test: only the addresses do.
  Start(Yaml(UniqueInstance(), {kUrlA, kUrlB}), true, [](Config& c) {
    c.health.interval_ms = 1000000;
    c.health.scrape_metrics = false;
  });
  EXPECT_EQ(c_->resolve_interval_ms(), 30000u);
  uint64_t version = 0;
  std::vector<BackendHost> hosts = c_->BackendHosts(&version);
  ASSERT_EQ(hosts.size(), 2u);
  EXPECT_EQ(hosts[0].id, kUrlA);
  EXPECT_EQ(hosts[0].host, "127.0.0.1");
  EXPECT_EQ(hosts[0].port, 9);
  ResolvedAddr moved;
  moved.family = AF_INET;
  moved.addr[0] = 127, moved.addr[3] = 2;  // 127.0.0.2
  Step();
  uint64_t g0 = c_->published_generation();
  // The same address: nothing to publish.
  EXPECT_EQ(c_->ApplyResolvedAddresses(version, {{hosts[0].slot, hosts[0].key, hosts[0].addr}}), 0u);
  Step();
  EXPECT_EQ(c_->published_generation(), g0);
  // Another address: published at the next tick, the other backend untouched.
  EXPECT_EQ(c_->ApplyResolvedAddresses(version, {{hosts[0].slot, hosts[0].key, moved}}), 1u);
  Step();
  EXPECT_EQ(c_->published_generation(), g0 + 1);
  EXPECT_EQ(std::memcmp(Published(hosts[0].slot).addr, moved.addr, 16), 0);
  EXPECT_EQ(std::memcmp(Published(hosts[1].slot).addr, hosts[1].addr.addr, 16), 0);
  uint64_t v2 = 0;
  EXPECT_EQ(std::memcmp(c_->BackendHosts(&v2)[0].addr.addr, moved.addr, 16), 0) << "the next refresh compares with it";
  // A change for another backend in that slot, or one found before a reload: dropped.
  EXPECT_EQ(c_->ApplyResolvedAddresses(version, {{hosts[1].slot, hosts[0].key, moved}}), 0u);
  ASSERT_TRUE(c_->ReloadFromText(Yaml(instance_, {kUrlA, kUrlB}, "", 1000), "test.yaml").ok);
  ResolvedAddr other = moved;
  other.addr[3] = 3;
  EXPECT_EQ(c_->ApplyResolvedAddresses(version, {{hosts[0].slot, hosts[0].key, other}}), 0u);
}

// Issue 13: a hosted backend is checked on its model list (no tokens spent) with its own
// key and TLS settings, and never scraped (hosted APIs have no /metrics).
TEST_F(ControllerTest, HostedProviderIsProbedOnItsModelListWithItsKeyAndNeverScraped) {
  std::string inst = UniqueInstance();
  std::string y = "instance: " + inst +
                  "\nhealth: { interval_ms: 100, timeout_ms: 100, healthy_after: 1, scrape_interval_ms: 100 }\n"
                  "control: { tick_ms: 20, heartbeat_ms: 100 }\n"
                  "models:\n  - name: m\n    backends:\n"
                  "      - { id: az, url: 'https://127.0.0.1:9', provider: azure, api_key_env: AZ_KEY,\n"
                  "          deployment: gpt-4o, api_version: '2024-10-21',\n"
                  "          tls: { ca_file: /etc/ca.pem, server_name: res.openai.azure.com } }\n"
                  "      - { id: self, url: 'http://127.0.0.1:10' }\n";
  std::atomic<int> hosted_scrapes{0};
  prober_->Set([&](const std::string& host, const std::string& path) {
    if (path == "/metrics" && host == "127.0.0.1:9") ++hosted_scrapes;
    return path == "/metrics" ? Ok(kVllmMetrics) : Ok();
  });
  Start(y, true, [](Config& c) { c.models[0].backends[0].api_key = "az-secret"; });
  const std::string probe = "/openai/models?api-version=2024-10-21";
  ASSERT_GT(StepUntil([&] { return prober_->calls(probe) > 0 && prober_->calls("/metrics") > 0; }), 0);
  StepUntil([] { return false; }, 500);
  EXPECT_GE(prober_->calls(probe), 3);
  EXPECT_GE(prober_->calls("/metrics"), 3);  // the self-hosted one is scraped ...
  EXPECT_EQ(hosted_scrapes.load(), 0);        // ... the hosted one never
  EXPECT_GE(prober_->calls("/health"), 3);
  // The hosted backend's probe carries its key and TLS settings.
  prober_->Set([](const std::string&, const std::string&) { return Ok(); });
  std::string seen_headers;
  bool tls = false;
  for (int i = 0; i < 50 && seen_headers.empty(); ++i) {
    Step();
    HttpTarget t = prober_->last_target(probe);
    if (t.tls) {
      tls = true;
      EXPECT_EQ(t.tls_options.ca_file, "/etc/ca.pem");
      EXPECT_EQ(t.tls_options.server_name, "res.openai.azure.com");
      EXPECT_TRUE(t.tls_options.verify);
      for (const auto& h : t.headers) seen_headers += h + "\n";
    }
  }
  EXPECT_TRUE(tls);
  EXPECT_EQ(seen_headers, "api-key: az-secret\n");
  EXPECT_EQ(StateOf(*c_, "az"), shm::BackendState::kHealthy);
}

// Issue 13: a key file rotated on disk reaches the probes on the next reload; the reload
// summary shows only fingerprints, and an unreadable key file rejects the reload.
TEST_F(ControllerTest, RotatedKeyFileIsPickedUpByReloadAndNeverShown) {
  char dir[] = "/tmp/llmgw-rotate-XXXXXX";
  ASSERT_NE(mkdtemp(dir), nullptr);
  std::string d = dir, inst = UniqueInstance();
  { std::ofstream(d + "/oa.key") << "sk-first\n"; }
  { std::ofstream(d + "/llmgw.yaml") << "instance: " + inst +
        "\nhealth: { interval_ms: 100, timeout_ms: 100, healthy_after: 1 }\n"
        "models:\n  - name: m\n    backends:\n"
        "      - { id: oa, url: 'https://127.0.0.1:9', provider: openai, api_key_file: oa.key }\n"; }
  ConfigResult r = LoadConfigFile(d + "/llmgw.yaml", true);
  ASSERT_TRUE(r.ok()) << r.ErrorText();
  ControllerOptions o;
  o.clock_ms = [this] { return now_ms_.load(); };
  o.prober = prober_;
  o.worker_threads = 0;
  c_ = std::make_unique<Controller>(o);
  ASSERT_TRUE(c_->StartWithConfig(std::move(r.config)).ok());
  auto header = [&] {
    HttpTarget t = prober_->last_target("/v1/models");
    return t.headers.empty() ? std::string() : t.headers[0];
  };
  ASSERT_GT(StepUntil([&] { return header() == "Authorization: Bearer sk-first"; }), 0) << header();

  { std::ofstream(d + "/oa.key.new") << "sk-second\n"; }
  ASSERT_EQ(rename((d + "/oa.key.new").c_str(), (d + "/oa.key").c_str()), 0);
  ReloadOutcome out = c_->ReloadFromFile();
  ASSERT_TRUE(out.ok);
  EXPECT_EQ(out.summary, "backend oa api_key " + KeyFingerprint("sk-first") + " -> " + KeyFingerprint("sk-second") + "\n");
  EXPECT_EQ(out.summary.find("sk-"), std::string::npos);
  ASSERT_GT(StepUntil([&] { return header() == "Authorization: Bearer sk-second"; }), 0) << header();

  unlink((d + "/oa.key").c_str());
  out = c_->ReloadFromFile();
  EXPECT_FALSE(out.ok);
  ASSERT_EQ(out.errors.size(), 1u);
  EXPECT_NE(out.errors[0].find("models[0].backends[0].api_key_file: cannot read"), std::string::npos) << out.errors[0];
  StepUntil([] { return false; }, 300);
  EXPECT_EQ(header(), "Authorization: Bearer sk-second");  // the running config keeps serving
  unlink((d + "/llmgw.yaml").c_str());
  rmdir(dir);
  instance_ = inst;
  auto obj = shm::ShmObject::Open("/llmgw-" + instance_);
  ASSERT_TRUE(obj.ok());
  shm_ = std::move(obj.value());
}

TEST_F(ControllerTest, HealthyBackendIsScrapedAndEngineDetected) {
  // The real HttpProber against a loopback server: the end-to-end path.
  TestHttpServer srv([](const std::string& p) {
    return p == "/metrics" ? TestResponse{200, kVllmMetrics} : TestResponse{200, "ok"};
  });
  Start(Yaml(UniqueInstance(), {srv.url()}), /*fake=*/false);
  ASSERT_TRUE(TickUntil(*c_, [&] {
    BackendView b;
    // Probes are jittered, so the first scrape may land before the first probe.
    return c_->GetBackend(srv.url(), &b) && !b.metrics_stale && srv.requests("/health") > 0;
  }));
  BackendView b;
  ASSERT_TRUE(c_->GetBackend(srv.url(), &b));
  EXPECT_EQ(b.state, shm::BackendState::kHealthy);
  EXPECT_EQ(b.engine, "vllm");
  EXPECT_DOUBLE_EQ(b.running, 5);
  EXPECT_DOUBLE_EQ(b.waiting, 3);
  EXPECT_NEAR(b.kv_cache_usage, 0.62, 1e-6);
  c_->Tick();
  auto e = Published(0);
  EXPECT_EQ(e.metrics_fresh, 1);
  EXPECT_FLOAT_EQ(e.running, 5);
  EXPECT_NEAR(e.kv_usage, 0.62, 1e-6);
  EXPECT_NEAR(e.adaptive_weight, 1.0, 1e-6);  // the bandit's share; the only eligible arm gets all
  EXPECT_GT(srv.requests("/health"), 0);
}

TEST_F(ControllerTest, KilledBackendUnhealthyAfterTwoFailedProbesAndRecovers) {
  std::atomic<bool> up{true};
  prober_->Set([&](const std::string&, const std::string&) { return up ? Ok() : Refused(); });
  Start(Yaml(UniqueInstance(), {kUrlA}));
  ASSERT_GT(StepUntil([&] { return prober_->calls("/health") > 0; }), 0);
  Step();
  ASSERT_EQ(StateOf(*c_, kUrlA), shm::BackendState::kHealthy);
  up = false;
  int probes_before = prober_->calls("/health");
  // interval 100 ms (less up to 10% jitter), unhealthy_after 2: the second failed probe
  // turns it unhealthy, folded in on the tick after it ran.
  int64_t took = StepUntil([&] { return StateOf(*c_, kUrlA) == shm::BackendState::kUnhealthy; });
  ASSERT_GT(took, 0);
  EXPECT_EQ(prober_->calls("/health") - probes_before, 2) << "not after one failure, at the second";
  EXPECT_LE(took, 2 * 100 + 20);
  EXPECT_EQ(Published(0).state, static_cast<uint8_t>(shm::BackendState::kUnhealthy));
  BackendView b;
  c_->GetBackend(kUrlA, &b);
  EXPECT_NE(b.last_error.find("connect"), std::string::npos) << b.last_error;
  // Back: healthy again after healthy_after (1) good probe.
  up = true;
  EXPECT_GT(StepUntil([&] { return StateOf(*c_, kUrlA) == shm::BackendState::kHealthy; }, 200), 0);
}

TEST_F(ControllerTest, HealthPathFallsBackToModelsOn404) {
  prober_->Set([](const std::string&, const std::string& p) {
    return p == "/v1/models" ? Ok("{\"data\":[]}") : Status(404);
  });
  Start(Yaml(UniqueInstance(), {kUrlA}, ""));
  ASSERT_GT(StepUntil([&] { return prober_->calls("/v1/models") >= 3; }), 0);
  Step();
  EXPECT_EQ(StateOf(*c_, kUrlA), shm::BackendState::kHealthy);
  // Once the fallback is learnt, /health is not asked again on every probe.
  EXPECT_EQ(prober_->calls("/health"), 1);
}

TEST_F(ControllerTest, HungBackendNeverBlocksTheTick) {
  // Probes and scrapes that never return until released, on the real worker threads: a
  // tick that waited for one would never come back.
  prober_->Hold();
  ConfigResult r = ParseConfig(Yaml(UniqueInstance(), {kUrlA}, "", 1000), "test.yaml");
  ASSERT_TRUE(r.ok());
  ControllerOptions o;
  o.clock_ms = [this] { return now_ms_.load(); };
  o.prober = prober_;
  o.worker_threads = 2;
  c_ = std::make_unique<Controller>(o);
  ASSERT_TRUE(c_->StartWithConfig(std::move(r.config)).ok());
  auto worst = Clock::duration::zero();
  for (int i = 0; i < 100; ++i) {  // 2 s of fake time
    auto t0 = Clock::now();
    Step();
    worst = std::max(worst, Clock::now() - t0);
  }
  EXPECT_LT(std::chrono::duration_cast<std::chrono::milliseconds>(worst).count(), 500);
  // One probe and one scrape are out (the pool threads pick them up in their own time);
  // while they are, no other is stacked behind them however much time passes.
  auto out = [&] { return prober_->calls("/health") == 1 && prober_->calls("/metrics") == 1; };
  ASSERT_TRUE(llmgw::test::WaitFor(out, 3000)) << prober_->calls("/health") << " " << prober_->calls("/metrics");
  for (int i = 0; i < 100; ++i) Step();
  EXPECT_TRUE(out()) << prober_->calls("/health") << " " << prober_->calls("/metrics");
  EXPECT_EQ(StateOf(*c_, kUrlA), shm::BackendState::kHealthy);  // no verdict without an answer
  // Released, the answers come back and probing goes on.
  prober_->Release();
  bool probed_again = false;
  for (auto end = Clock::now() + std::chrono::seconds(3); Clock::now() < end && !probed_again;) {
    Step();
    probed_again = prober_->calls("/health") >= 2;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  EXPECT_TRUE(probed_again);
}

TEST_F(ControllerTest, StaleMetricsAreNotPublished) {
  std::atomic<bool> serve_metrics{true};
  prober_->Set([&](const std::string&, const std::string& p) {
    if (p == "/metrics") return serve_metrics ? Ok(kVllmMetrics) : Status(500);
    return Ok();
  });
  Start(Yaml(UniqueInstance(), {kUrlA}));
  ASSERT_GT(StepUntil([&] { return Published(0).metrics_fresh == 1; }), 0);
  serve_metrics = false;
  // metrics_stale_ms 400: fresh until 400 ms after the last good scrape, stale after.
  int64_t took = StepUntil([&] { return Published(0).metrics_fresh == 0; });
  ASSERT_GT(took, 0);
  EXPECT_GE(took, 400 - 100) << "a scrape interval may have passed since the last good scrape";
  EXPECT_LE(took, 400 + 100 + 20);
  auto e = Published(0);
  EXPECT_EQ(e.running, 0);  // policies fall back to the gateway's own load
  EXPECT_EQ(e.state, static_cast<uint8_t>(shm::BackendState::kHealthy));
}

TEST_F(ControllerTest, DrainUndrainAndResetCircuitReachTheSnapshot) {
  Start(Yaml(UniqueInstance(), {kUrlA}));
  BackendView b;
  ASSERT_TRUE(c_->Drain(kUrlA, &b));
  EXPECT_EQ(b.state, shm::BackendState::kDraining);
  Step();
  EXPECT_EQ(Published(0).state, static_cast<uint8_t>(shm::BackendState::kDraining));
  ASSERT_TRUE(c_->Undrain(kUrlA, &b));
  Step();
  EXPECT_EQ(Published(0).state, static_cast<uint8_t>(shm::BackendState::kHealthy));
  EXPECT_FALSE(c_->Drain("http://nope", &b));
  EXPECT_FALSE(c_->ResetCircuit("http://nope", &b));
}

TEST_F(ControllerTest, DataPlaneErrorsOpenTheCircuitAndResetClosesIt) {
  // Real time: the data plane's heartbeat is wall-clock time in shm.
  TestHttpServer srv([](const std::string&) { return TestResponse{200, "ok"}; });
  Start(Yaml(UniqueInstance(), {srv.url()}), /*fake=*/false);
  Error err;
  shm::StatsSlot* slot = shm::ClaimStatsSlot(shm_->region(), 0, &err);
  ASSERT_NE(slot, nullptr);
  shm::Set(slot->heartbeat_unix_ms, shm::NowUnixMs());
  c_->Tick();  // baseline
  shm::Bump(slot->backends[0].requests, 5);
  shm::Bump(slot->backends[0].errors[static_cast<size_t>(shm::UpstreamErr::kConnect)], 5);
  shm::Set(slot->heartbeat_unix_ms, shm::NowUnixMs());
  c_->Tick();
  auto e = Published(0);
  EXPECT_TRUE(e.state == static_cast<uint8_t>(shm::BackendState::kCircuitOpen) ||
              e.state == static_cast<uint8_t>(shm::BackendState::kUnhealthy))
      << int(e.state);
  EXPECT_GT(e.error_rate, 0.0f);
  EXPECT_EQ(c_->Circuits().at(srv.url()).state, CircuitState::kOpen);
  EXPECT_EQ(c_->Counters().circuit_transitions["closed->open"], 1u);
  EXPECT_TRUE(c_->GetStatus().dataplane_alive);
  BackendView b;
  ASSERT_TRUE(c_->ResetCircuit(srv.url(), &b));
  c_->Tick();
  EXPECT_EQ(Published(0).state, static_cast<uint8_t>(shm::BackendState::kHealthy));
  // Heartbeat stops: the data plane is noticed dead.
  ASSERT_TRUE(TickUntil(*c_, [&] { return !c_->GetStatus().dataplane_alive; }, 2000));
  shm::ReleaseStatsSlot(slot);
}

TEST_F(ControllerTest, OpenCircuitGoesHalfOpenThenClosesOnSuccess) {
  Start(Yaml(UniqueInstance(), {kUrlA}));
  Error err;
  shm::StatsSlot* slot = shm::ClaimStatsSlot(shm_->region(), 0, &err);
  ASSERT_NE(slot, nullptr);
  Step();
  shm::Bump(slot->backends[0].requests, 3);
  shm::Bump(slot->backends[0].errors[static_cast<size_t>(shm::UpstreamErr::kStatus5xx)], 3);
  Step();
  ASSERT_EQ(c_->Circuits().at(kUrlA).state, CircuitState::kOpen);
  // open_ms 200: half-open 200 ms (of the injected clock) after it opened, not before.
  int64_t took = StepUntil([&] { return Published(0).state == static_cast<uint8_t>(shm::BackendState::kHalfOpen); });
  ASSERT_GT(took, 0);
  EXPECT_GE(took, 200);
  EXPECT_LE(took, 200 + 20);
  EXPECT_EQ(Published(0).half_open_budget, 1u);
  shm::Bump(slot->backends[0].requests, 1);
  shm::Bump(slot->backends[0].successes, 1);
  EXPECT_GT(StepUntil([&] { return c_->Circuits().at(kUrlA).state == CircuitState::kClosed; }, 100), 0);
  shm::ReleaseStatsSlot(slot);
}

// Issue 16: llmctl's TTFT99 jumped between ~60 ms and ~960 ms under steady streaming load:
// a since-start histogram (an early slow burst stayed in it for good) alternated with the
// backend's scraped histogram. Now: the gateway's own observations, last 30 s, only.
TEST_F(ControllerTest, TtftP99IsObservedOverARecentWindowAndNeverTheScrapedOne) {
  std::atomic<int> scrapes{0};
  prober_->Set([&](const std::string&, const std::string& path) {
    if (path != "/metrics") return Ok();
    // The backend's own TTFT histogram: every first token after 0.96 s, more each scrape.
    int n = 100 * ++scrapes;
    std::string body = kVllmMetrics;
    body += "vllm:time_to_first_token_seconds_bucket{le=\"0.5\"} 0\n"
            "vllm:time_to_first_token_seconds_bucket{le=\"1.0\"} " + std::to_string(n) + "\n"
            "vllm:time_to_first_token_seconds_bucket{le=\"+Inf\"} " + std::to_string(n) + "\n"
            "vllm:time_to_first_token_seconds_sum " + std::to_string(0.96 * n) + "\n"
            "vllm:time_to_first_token_seconds_count " + std::to_string(n) + "\n";
    return Ok(body);
  });
  Start(Yaml(UniqueInstance(), {kUrlA}));
  Error err;
  shm::StatsSlot* slot = shm::ClaimStatsSlot(shm_->region(), 0, &err);
  ASSERT_NE(slot, nullptr);
  shm::Set(slot->backends[0].key, Published(0).key);
  Step();
  for (int i = 0; i < 100; ++i) shm::Observe(slot->backends[0].ttft, 900000);  // an early slow burst
  Step(1000);
  EXPECT_GT(c_->Backends()[0].ttft_p99_ms, 500);
  // Then 60 s of steady 48 ms first tokens, 10 every 100 ms.
  int checked = 0;
  for (int t = 0; t < 600; ++t) {
    for (int i = 0; i < 10; ++i) shm::Observe(slot->backends[0].ttft, 48000);
    Step(100);
    if (t < 320) continue;  // the burst leaves the 30 s window
    BackendView b = c_->Backends()[0];
    ASSERT_GE(b.ttft_p99_ms, 40) << "at step " << t;
    ASSERT_LE(b.ttft_p99_ms, 50) << "at step " << t << ": the scraped or since-start figure leaked in";
    ++checked;
  }
  EXPECT_EQ(checked, 280);
  EXPECT_GT(scrapes.load(), 10);
  BackendView b = c_->Backends()[0];
  EXPECT_GT(b.scraped_ttft_p99_ms, 500) << "the backend's own figure, kept apart";
  EXPECT_LE(b.scraped_ttft_p99_ms, 1000);
  // No stream for 30 s: no figure rather than a stale one.
  for (int t = 0; t < 310; ++t) Step(100);
  EXPECT_EQ(c_->Backends()[0].ttft_p99_ms, 0);
  shm::ReleaseStatsSlot(slot);
}

// Issue 16: a reload that only changed max_concurrent was summarised as "no changes".
TEST_F(ControllerTest, ReloadSummaryListsEveryChangedKey) {
  std::string inst = UniqueInstance();
  std::string y = Yaml(inst, {std::string(kUrlA)});
  Start(y);
  std::string more = y;
  more.replace(more.find("max_concurrent: 8"), 17, "max_concurrent: 32");
  auto o = c_->ReloadFromText(more, "test.yaml");
  ASSERT_TRUE(o.ok) << (o.errors.empty() ? "" : o.errors[0]);
  EXPECT_EQ(o.summary, "backend " + std::string(kUrlA) + " max_concurrent 8 -> 32\n");
  o = c_->ReloadFromText(Yaml(inst, {std::string(kUrlA)}, "gateway: { retries: { max: 5 } }\n"), "test.yaml");
  ASSERT_TRUE(o.ok);
  EXPECT_NE(o.summary.find("backend " + std::string(kUrlA) + " max_concurrent 32 -> 8\n"), std::string::npos) << o.summary;
  EXPECT_NE(o.summary.find("gateway.retries.max 2 -> 5\n"), std::string::npos) << o.summary;
  o = c_->ReloadFromText(Yaml(inst, {std::string(kUrlA)}, "gateway: { retries: { max: 5 } }\n"), "test.yaml");
  ASSERT_TRUE(o.ok);
  EXPECT_EQ(o.summary, "no changes\n");
}

TEST_F(ControllerTest, ReloadGoodKeepsStateAddsAndRemovesBackends) {
  std::string inst = UniqueInstance();
  Start(Yaml(inst, {kUrlA}));
  ASSERT_TRUE(c_->Drain(kUrlA, nullptr));
  auto o = c_->ReloadFromText(Yaml(inst, {kUrlA, kUrlB}), "test.yaml");
  ASSERT_TRUE(o.ok) << (o.errors.empty() ? "" : o.errors[0]);
  EXPECT_EQ(o.version, 2u);
  EXPECT_NE(o.summary.find(std::string("added backend ") + kUrlB), std::string::npos) << o.summary;
  EXPECT_EQ(c_->Backends().size(), 2u);
  EXPECT_EQ(StateOf(*c_, kUrlA), shm::BackendState::kDraining);  // operator state survives reloads
  Step();
  EXPECT_EQ(Published(0).state, static_cast<uint8_t>(shm::BackendState::kDraining));
  o = c_->ReloadFromText(Yaml(inst, {kUrlB}), "test.yaml");
  ASSERT_TRUE(o.ok);
  EXPECT_NE(o.summary.find(std::string("removed backend ") + kUrlA), std::string::npos);
  EXPECT_EQ(c_->Backends().size(), 1u);
  EXPECT_EQ(c_->GetStatus().config_reloads, 2u);
}

TEST_F(ControllerTest, ReloadBadIsRejectedWithReasonAndOldKeepsServing) {
  std::string inst = UniqueInstance();
  Start(Yaml(inst, {kUrlA}));
  auto gen_before = c_->GetStatus().snapshot_generation;
  auto o = c_->ReloadFromText("instance: " + inst + "\nmodels:\n  - name: m\n    policy: nonsense\n", "bad.yaml");
  EXPECT_FALSE(o.ok);
  ASSERT_FALSE(o.errors.empty());
  std::string all;
  for (const auto& e : o.errors) all += e + "\n";
  EXPECT_NE(all.find("bad.yaml:4: models[0].policy: unknown policy 'nonsense'"), std::string::npos) << all;
  EXPECT_EQ(c_->config_version(), 1u);
  EXPECT_EQ(c_->GetStatus().config_reload_failures, 1u);
  EXPECT_EQ(c_->Backends().size(), 1u);
  // Changing the instance is refused too: it names the shm object the gateways read.
  o = c_->ReloadFromText(Yaml("other-instance", {kUrlA}), "x.yaml");
  EXPECT_FALSE(o.ok);
  EXPECT_NE(o.errors[0].find("instance"), std::string::npos);
  Step();
  EXPECT_GE(c_->GetStatus().snapshot_generation, gen_before);
  EXPECT_EQ(Published(0).state, static_cast<uint8_t>(shm::BackendState::kHealthy));
  // ValidateConfig reports without applying.
  auto v = Controller::Validate("models: 5\n", "");
  EXPECT_FALSE(v.ok);
  EXPECT_NE(v.errors[0].find("<request>"), std::string::npos) << v.errors[0];
  EXPECT_TRUE(Controller::Validate(Yaml(inst, {kUrlA}), "ok.yaml").ok);
}

TEST_F(ControllerTest, ReloadWhileServingKeepsSnapshotsConsistent) {
  // Real time and the real publish loop (Run) against reloads from this thread; the
  // backends are the fake prober's.
  prober_->Set([](const std::string&, const std::string& p) { return p == "/metrics" ? Ok(kVllmMetrics) : Ok(); });
  std::string inst = UniqueInstance();
  ConfigResult r = ParseConfig(Yaml(inst, {kUrlA}), "test.yaml");
  ASSERT_TRUE(r.ok());
  instance_ = inst;
  ControllerOptions opts;
  opts.prober = prober_;
  c_ = std::make_unique<Controller>(opts);
  ASSERT_TRUE(c_->StartWithConfig(std::move(r.config)).ok());
  auto obj = shm::ShmObject::Open("/llmgw-" + instance_);
  ASSERT_TRUE(obj.ok());
  shm_ = std::move(obj.value());
  std::atomic<bool> stop{false};
  std::thread loop([&] { c_->Run(stop); });
  shm::SnapshotReader reader(shm_->region());
  auto snap = std::make_unique<shm::Snapshot>();
  int reads = 0;
  for (int i = 0; i < 20; ++i) {
    auto o = c_->ReloadFromText(Yaml(inst, i % 2 ? std::vector<std::string>{kUrlA}
                                                 : std::vector<std::string>{kUrlA, kUrlB}),
                                "test.yaml");
    ASSERT_TRUE(o.ok);
    for (int j = 0; j < 5; ++j) {
      if (reader.Refresh(snap.get())) {
        ++reads;
        EXPECT_EQ(snap->checksum, shm::SnapshotChecksum(*snap));
        // a stays in slot 0 across every reload
        EXPECT_STREQ(snap->backends[0].id, kUrlA);
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  }
  stop = true;
  loop.join();
  EXPECT_GT(reads, 0);
  EXPECT_EQ(c_->GetStatus().config_reloads, 20u);
}

}  // namespace
}  // namespace llmgw::cp
