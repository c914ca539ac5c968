// Controller behaviour against in-process loopback backends: active health (with the
// /v1/models fallback), scraping and staleness, passive health and circuit breaking from
// data-plane stats slots, operator actions reaching the snapshot, config reload (good,
// bad, while serving) and a hung backend never stalling the publish loop.
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <thread>

#include "common/shm.h"
#include "controlplane/controller.h"
#include "test_http_server.h"

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

admin::v1::BackendState StateOf(Controller& c, const std::string& id) {
  admin::v1::Backend b;
  EXPECT_TRUE(c.GetBackend(id, &b));
  return b.state();
}

class ControllerTest : public ::testing::Test {
 protected:
  void Start(const std::string& yaml) {
    instance_ = yaml.substr(10, yaml.find('\n') - 10);
    ConfigResult r = ParseConfig(yaml, "test.yaml");
    ASSERT_TRUE(r.ok()) << r.ErrorText();
    ASSERT_TRUE(c_.StartWithConfig(std::move(r.config)).ok());
    auto obj = shm::ShmObject::Open("/llmgw-" + instance_);
    ASSERT_TRUE(obj.ok());
    shm_ = std::move(obj.value());
  }
  void TearDown() override {
    c_.Shutdown();
    if (shm_) shm_->Close();
  }
  shm::BackendEntry Published(int slot) {
    shm::SnapshotReader reader(shm_->region());
    auto snap = std::make_unique<shm::Snapshot>();
    EXPECT_TRUE(reader.Refresh(snap.get()));
    return snap->backends[slot];
  }
  Controller c_;
  std::string instance_;
  std::unique_ptr<shm::ShmObject> shm_;
};

TEST_F(ControllerTest, HealthyBackendIsScrapedAndEngineDetected) {
  TestHttpServer srv([](const std::string& p) {
    return p == "/metrics" ? TestResponse{200, kVllmMetrics} : TestResponse{200, "ok"};
  });
  Start(Yaml(UniqueInstance(), {srv.url()}));
  ASSERT_TRUE(TickUntil(c_, [&] {
    admin::v1::Backend b;
    // Probes are jittered, so the first scrape may land before the first probe.
    return c_.GetBackend(srv.url(), &b) && !b.metrics_stale() && srv.requests("/health") > 0;
  }));
  admin::v1::Backend b;
  ASSERT_TRUE(c_.GetBackend(srv.url(), &b));
  EXPECT_EQ(b.state(), admin::v1::HEALTHY);
  EXPECT_EQ(b.engine(), "vllm");
  EXPECT_DOUBLE_EQ(b.running(), 5);
  EXPECT_DOUBLE_EQ(b.waiting(), 3);
  EXPECT_NEAR(b.kv_cache_usage(), 0.62, 1e-6);
  c_.Tick();
  auto e = Published(0);
  EXPECT_EQ(e.metrics_fresh, 1);
  EXPECT_FLOAT_EQ(e.running, 5);
  EXPECT_NEAR(e.kv_usage, 0.62, 1e-6);
  EXPECT_NEAR(e.adaptive_weight, 1.0, 1e-6);  // the bandit's share; the only eligible arm gets all
  EXPECT_GT(srv.requests("/health"), 0);
}

TEST_F(ControllerTest, KilledBackendUnhealthyWithinTwoIntervalsAndRecovers) {
  auto srv = std::make_unique<TestHttpServer>([](const std::string&) { return TestResponse{200, "ok"}; });
  uint16_t port = srv->port();
  std::string url = srv->url();
  Start(Yaml(UniqueInstance(), {url}));
  ASSERT_TRUE(TickUntil(c_, [&] { return srv->requests("/health") > 0; }));
  srv->Stop();
  auto killed = Clock::now();
  ASSERT_TRUE(TickUntil(c_, [&] { return StateOf(c_, url) == admin::v1::UNHEALTHY; }));
  auto took = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - killed).count();
  EXPECT_LE(took, 2 * 100 + 100) << "interval 100 ms, unhealthy_after 2, plus tick and scheduling slack";
  EXPECT_EQ(Published(0).state, static_cast<uint8_t>(shm::BackendState::kUnhealthy));
  admin::v1::Backend b;
  c_.GetBackend(url, &b);
  EXPECT_NE(b.last_error().find("connect"), std::string::npos) << b.last_error();
  // Back on the same port: healthy again after healthy_after (1) good probe.
  TestHttpServer again([](const std::string&) { return TestResponse{200, "ok"}; }, port);
  ASSERT_TRUE(TickUntil(c_, [&] { return StateOf(c_, url) == admin::v1::HEALTHY; }));
}

TEST_F(ControllerTest, HealthPathFallsBackToModelsOn404) {
  TestHttpServer srv([](const std::string& p) {
    return p == "/v1/models" ? TestResponse{200, "{\"data\":[]}"} : TestResponse{404, "nope"};
  });
  Start(Yaml(UniqueInstance(), {srv.url()}, ""));
  ASSERT_TRUE(TickUntil(c_, [&] { return srv.requests("/v1/models") >= 3; }));
  EXPECT_EQ(StateOf(c_, srv.url()), admin::v1::HEALTHY);
  // Once the fallback is learnt, /health is not asked again on every probe.
  EXPECT_EQ(srv.requests("/health"), 1);
}

TEST_F(ControllerTest, HungBackendNeverBlocksTheTick) {
  // Probes time out only after 1 s; a tick that waited for one would take that long.
  TestHttpServer srv([](const std::string&) { return TestResponse{200, "ok", 3000}; });
  Start(Yaml(UniqueInstance(), {srv.url()}, "", 1000));
  auto worst = Clock::duration::zero();
  auto end = Clock::now() + std::chrono::milliseconds(2500);
  while (Clock::now() < end) {
    auto t0 = Clock::now();
    c_.Tick();
    worst = std::max(worst, Clock::now() - t0);
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  EXPECT_LT(std::chrono::duration_cast<std::chrono::milliseconds>(worst).count(), 500);
  EXPECT_EQ(StateOf(c_, srv.url()), admin::v1::UNHEALTHY);  // two probes timed out meanwhile
}

TEST_F(ControllerTest, StaleMetricsAreNotPublished) {
  std::atomic<bool> serve_metrics{true};
  TestHttpServer srv([&](const std::string& p) {
    if (p == "/metrics") return serve_metrics ? TestResponse{200, kVllmMetrics} : TestResponse{500, "boom"};
    return TestResponse{200, "ok"};
  });
  Start(Yaml(UniqueInstance(), {srv.url()}));
  ASSERT_TRUE(TickUntil(c_, [&] { return Published(0).metrics_fresh == 1; }));
  serve_metrics = false;
  ASSERT_TRUE(TickUntil(c_, [&] { return Published(0).metrics_fresh == 0; }, 1500));
  auto e = Published(0);
  EXPECT_EQ(e.running, 0);  // policies fall back to the gateway's own load
  EXPECT_EQ(e.state, static_cast<uint8_t>(shm::BackendState::kHealthy));
}

TEST_F(ControllerTest, DrainUndrainAndResetCircuitReachTheSnapshot) {
  TestHttpServer srv([](const std::string&) { return TestResponse{200, "ok"}; });
  Start(Yaml(UniqueInstance(), {srv.url()}));
  admin::v1::Backend b;
  ASSERT_TRUE(c_.Drain(srv.url(), &b));
  EXPECT_EQ(b.state(), admin::v1::DRAINING);
  c_.Tick();
  EXPECT_EQ(Published(0).state, static_cast<uint8_t>(shm::BackendState::kDraining));
  ASSERT_TRUE(c_.Undrain(srv.url(), &b));
  c_.Tick();
  EXPECT_EQ(Published(0).state, static_cast<uint8_t>(shm::BackendState::kHealthy));
  EXPECT_FALSE(c_.Drain("http://nope", &b));
  EXPECT_FALSE(c_.ResetCircuit("http://nope", &b));
}

TEST_F(ControllerTest, DataPlaneErrorsOpenTheCircuitAndResetClosesIt) {
  TestHttpServer srv([](const std::string&) { return TestResponse{200, "ok"}; });
  Start(Yaml(UniqueInstance(), {srv.url()}));
  Error err;
  shm::StatsSlot* slot = shm::ClaimStatsSlot(shm_->region(), 0, &err);
  ASSERT_NE(slot, nullptr);
  shm::Set(slot->heartbeat_unix_ms, shm::NowUnixMs());
  c_.Tick();  // baseline
  shm::Bump(slot->backends[0].requests, 5);
  shm::Bump(slot->backends[0].errors[static_cast<size_t>(shm::UpstreamErr::kConnect)], 5);
  shm::Set(slot->heartbeat_unix_ms, shm::NowUnixMs());
  c_.Tick();
  auto e = Published(0);
  EXPECT_TRUE(e.state == static_cast<uint8_t>(shm::BackendState::kCircuitOpen) ||
              e.state == static_cast<uint8_t>(shm::BackendState::kUnhealthy))
      << int(e.state);
  EXPECT_GT(e.error_rate, 0.0f);
  EXPECT_EQ(c_.Circuits().at(srv.url()).state, CircuitState::kOpen);
  EXPECT_EQ(c_.Counters().circuit_transitions["closed->open"], 1u);
  EXPECT_TRUE(c_.GetStatus().dataplane_alive());
  admin::v1::Backend b;
  ASSERT_TRUE(c_.ResetCircuit(srv.url(), &b));
  c_.Tick();
  EXPECT_EQ(Published(0).state, static_cast<uint8_t>(shm::BackendState::kHealthy));
  // Heartbeat stops: the data plane is noticed dead.
  ASSERT_TRUE(TickUntil(c_, [&] { return !c_.GetStatus().dataplane_alive(); }, 2000));
  shm::ReleaseStatsSlot(slot);
}

TEST_F(ControllerTest, OpenCircuitGoesHalfOpenThenClosesOnSuccess) {
  TestHttpServer srv([](const std::string&) { return TestResponse{200, "ok"}; });
  Start(Yaml(UniqueInstance(), {srv.url()}));
  Error err;
  shm::StatsSlot* slot = shm::ClaimStatsSlot(shm_->region(), 0, &err);
  ASSERT_NE(slot, nullptr);
  c_.Tick();
  shm::Bump(slot->backends[0].requests, 3);
  shm::Bump(slot->backends[0].errors[static_cast<size_t>(shm::UpstreamErr::kStatus5xx)], 3);
  c_.Tick();
  ASSERT_EQ(c_.Circuits().at(srv.url()).state, CircuitState::kOpen);
  ASSERT_TRUE(TickUntil(c_, [&] { return Published(0).state == static_cast<uint8_t>(shm::BackendState::kHalfOpen); }));
  EXPECT_EQ(Published(0).half_open_budget, 1u);
  shm::Bump(slot->backends[0].requests, 1);
  shm::Bump(slot->backends[0].successes, 1);
  ASSERT_TRUE(TickUntil(c_, [&] { return c_.Circuits().at(srv.url()).state == CircuitState::kClosed; }));
  shm::ReleaseStatsSlot(slot);
}

// Issue 16: a reload that only changed max_concurrent was summarised as "no changes".
TEST_F(ControllerTest, ReloadSummaryListsEveryChangedKey) {
  TestHttpServer a([](const std::string&) { return TestResponse{200, "ok"}; });
  std::string inst = UniqueInstance();
  std::string y = Yaml(inst, {a.url()});
  Start(y);
  std::string more = y;
  more.replace(more.find("max_concurrent: 8"), 17, "max_concurrent: 32");
  auto o = c_.ReloadFromText(more, "test.yaml");
  ASSERT_TRUE(o.ok) << (o.errors.empty() ? "" : o.errors[0]);
  EXPECT_EQ(o.summary, "backend " + a.url() + " max_concurrent 8 -> 32\n");
  o = c_.ReloadFromText(Yaml(inst, {a.url()}, "gateway: { retries: { max: 5 } }\n"), "test.yaml");
  ASSERT_TRUE(o.ok);
  EXPECT_NE(o.summary.find("backend " + a.url() + " max_concurrent 32 -> 8\n"), std::string::npos) << o.summary;
  EXPECT_NE(o.summary.find("gateway.retries.max 2 -> 5\n"), std::string::npos) << o.summary;
  o = c_.ReloadFromText(Yaml(inst, {a.url()}, "gateway: { retries: { max: 5 } }\n"), "test.yaml");
  ASSERT_TRUE(o.ok);
  EXPECT_EQ(o.summary, "no changes\n");
}

TEST_F(ControllerTest, ReloadGoodKeepsStateAddsAndRemovesBackends) {
  TestHttpServer a([](const std::string&) { return TestResponse{200, "ok"}; });
  TestHttpServer b([](const std::string&) { return TestResponse{200, "ok"}; });
  std::string inst = UniqueInstance();
  Start(Yaml(inst, {a.url()}));
  ASSERT_TRUE(c_.Drain(a.url(), nullptr));
  auto o = c_.ReloadFromText(Yaml(inst, {a.url(), b.url()}), "test.yaml");
  ASSERT_TRUE(o.ok) << (o.errors.empty() ? "" : o.errors[0]);
  EXPECT_EQ(o.version, 2u);
  EXPECT_NE(o.summary.find("added backend " + b.url()), std::string::npos) << o.summary;
  EXPECT_EQ(c_.Backends().size(), 2u);
  EXPECT_EQ(StateOf(c_, a.url()), admin::v1::DRAINING);  // operator state survives reloads
  c_.Tick();
  EXPECT_EQ(Published(0).state, static_cast<uint8_t>(shm::BackendState::kDraining));
  o = c_.ReloadFromText(Yaml(inst, {b.url()}), "test.yaml");
  ASSERT_TRUE(o.ok);
  EXPECT_NE(o.summary.find("removed backend " + a.url()), std::string::npos);
  EXPECT_EQ(c_.Backends().size(), 1u);
  EXPECT_EQ(c_.GetStatus().config_reloads(), 2u);
}

TEST_F(ControllerTest, ReloadBadIsRejectedWithReasonAndOldKeepsServing) {
  TestHttpServer a([](const std::string&) { return TestResponse{200, "ok"}; });
  std::string inst = UniqueInstance();
  Start(Yaml(inst, {a.url()}));
  auto gen_before = c_.GetStatus().snapshot_generation();
  auto o = c_.ReloadFromText("instance: " + inst + "\nmodels:\n  - name: m\n    policy: nonsense\n", "bad.yaml");
  EXPECT_FALSE(o.ok);
  ASSERT_FALSE(o.errors.empty());
  std::string all;
  for (const auto& e : o.errors) all += e + "\n";
  EXPECT_NE(all.find("bad.yaml:4: models[0].policy: unknown policy 'nonsense'"), std::string::npos) << all;
  EXPECT_EQ(c_.config_version(), 1u);
  EXPECT_EQ(c_.GetStatus().config_reload_failures(), 1u);
  EXPECT_EQ(c_.Backends().size(), 1u);
  // Changing the instance is refused too: it names the shm object the gateways read.
  o = c_.ReloadFromText(Yaml("other-instance", {a.url()}), "x.yaml");
  EXPECT_FALSE(o.ok);
  EXPECT_NE(o.errors[0].find("instance"), std::string::npos);
  c_.Tick();
  EXPECT_GE(c_.GetStatus().snapshot_generation(), gen_before);
  EXPECT_EQ(Published(0).state, static_cast<uint8_t>(shm::BackendState::kHealthy));
  // ValidateConfig reports without applying.
  auto v = Controller::Validate("models: 5\n", "");
  EXPECT_FALSE(v.ok);
  EXPECT_NE(v.errors[0].find("<request>"), std::string::npos) << v.errors[0];
  EXPECT_TRUE(Controller::Validate(Yaml(inst, {a.url()}), "ok.yaml").ok);
}

TEST_F(ControllerTest, ReloadWhileServingKeepsSnapshotsConsistent) {
  TestHttpServer a([](const std::string& p) {
    return p == "/metrics" ? TestResponse{200, kVllmMetrics} : TestResponse{200, "ok"};
  });
  TestHttpServer b([](const std::string&) { return TestResponse{200, "ok"}; });
  std::string inst = UniqueInstance();
  Start(Yaml(inst, {a.url()}));
  std::atomic<bool> stop{false};
  std::thread loop([&] { c_.Run(stop); });
  shm::SnapshotReader reader(shm_->region());
  auto snap = std::make_unique<shm::Snapshot>();
  int reads = 0;
  for (int i = 0; i < 20; ++i) {
    auto o = c_.ReloadFromText(Yaml(inst, i % 2 ? std::vector<std::string>{a.url()}
                                                : std::vector<std::string>{a.url(), b.url()}),
                               "test.yaml");
    ASSERT_TRUE(o.ok);
    for (int j = 0; j < 5; ++j) {
      if (reader.Refresh(snap.get())) {
        ++reads;
        EXPECT_EQ(snap->checksum, shm::SnapshotChecksum(*snap));
        // a stays in slot 0 across every reload
        EXPECT_STREQ(snap->backends[0].id, a.url().c_str());
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  }
  stop = true;
  loop.join();
  EXPECT_GT(reads, 0);
  EXPECT_EQ(c_.GetStatus().config_reloads(), 20u);
}

}  // namespace
}  // namespace llmgw::cp
