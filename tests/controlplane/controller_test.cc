// Controller behaviour: active health (with the /v1/models fallback), scraping and
// staleness, passive health and circuit breaking from data-plane stats slots, operator
// actions reaching the snapshot and a hung backend never stalling the publish loop.
// Config reload is in controller_reload_test.cc; the fixture in controller_test_fixture.h.
//
// Most tests run on a fake Prober (answers from a function, no sockets) with an injected
// clock and an inline worker pool: each Step() advances time and ticks once, so "unhealthy
// after two intervals" is checked to the tick instead of by sleeping. One test keeps the
// real HttpProber against a loopback server, to cover the path end to end.
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <cstring>
#include <fstream>
#include <functional>
#include <map>
#include <mutex>
#include <thread>

#include "common/shm.h"
#include "controller_test_fixture.h"
#include "controlplane/controller.h"
#include "controlplane/prober.h"
#include "test_http_server.h"
#include "test_support.h"

namespace llmgw::cp {
namespace {

using namespace controller_test;  // Yaml, FakeProber, ControllerTest, ...
using testing::TestHttpServer;
using testing::TestResponse;
using Clock = std::chrono::steady_clock;

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

}  // namespace
}  // namespace llmgw::cp
