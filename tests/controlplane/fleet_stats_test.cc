// Fleet stats: a gateway's totals survive the wire exactly, a peer of another stat schema
// is refused, the controller's record keeps counters monotonic across disconnects and
// restarts, and the Controller counts agents' traffic in its view and decisions (an
// agent's 500s open the controller's breaker; an agent's history is not one tick's news).
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <map>

#include "common/shm.h"
#include "common/snapshot_builder.h"
#include "controlplane/controller.h"
#include "controlplane/fleet_stats.h"
#include "controlplane/prober.h"

namespace llmgw::cp {
namespace {

namespace admin = ::llmgw::admin::v1;
constexpr uint16_t kMaxModelsForTest = shm::kMaxModels;  // one past the last model slot

shm::StatsTotals Sample(uint64_t n) {
  shm::StatsTotals t;
  t.models.resize(shm::kMaxModels);
  t.live_threads = 2;
  t.requests_total = 10 * n;
  t.active_requests = n;
  t.connections_total = 3 * n;
  t.errors_by_kind[1] = n;
  t.latency.buckets[4] = n;
  t.latency.sum_us = 1000 * n;
  t.latency.count = n;
  t.models[3].requests_by_code[shm::StatusCodeIndex(200)] = 7 * n;
  t.models[3].requests_by_code[shm::StatusCodeIndex(500)] = n;
  t.models[3].active = n;
  shm::BackendTotals b;
  b.key = 0xabc;
  b.requests = 8 * n;
  b.successes = 7 * n;
  b.errors[static_cast<size_t>(shm::UpstreamErr::kStatus5xx)] = n;
  b.in_flight = n;
  b.ttft.buckets[2] = n;
  b.ttft.sum_us = 500 * n;
  b.ttft.count = n;
  t.backends.push_back(b);
  t.backends.push_back(shm::BackendTotals());  // an unused slot: not sent
  return t;
}

TEST(FleetStatsWire, RoundTripsEveryRowExactly) {
  shm::StatsTotals t = Sample(5);
  admin::GatewayTotals w;
  EncodeTotals(t, &w);
  EXPECT_EQ(w.models_size(), 1);
  EXPECT_EQ(w.backends_size(), 1);
  shm::StatsTotals back;
  std::string why;
  ASSERT_TRUE(DecodeTotals(w, &back, &why)) << why;
  EXPECT_EQ(back.requests_total, 50u);
  EXPECT_EQ(back.active_requests, 5u);
  EXPECT_EQ(back.errors_by_kind[1], 5u);
  EXPECT_EQ(back.latency.buckets[4], 5u);
  EXPECT_EQ(back.latency.sum_us, 5000u);
  EXPECT_EQ(back.live_threads, 2u);
  EXPECT_EQ(back.models[3].RequestsTotal(), 40u);
  ASSERT_EQ(back.backends.size(), 1u);
  EXPECT_EQ(back.backends[0].key, 0xabcu);
  EXPECT_EQ(back.backends[0].ErrorsTotal(), 5u);
  EXPECT_EQ(back.backends[0].ttft.count, 5u);
  // Every entry, not only those checked above: encoding the decoded totals gives the same.
  admin::GatewayTotals again;
  EncodeTotals(back, &again);
  EXPECT_EQ(again.SerializeAsString(), w.SerializeAsString());
}

TEST(FleetStatsWire, RefusesAnotherSchemaOrAShortRow) {
  admin::GatewayTotals w;
  EncodeTotals(Sample(1), &w);
  shm::StatsTotals back;
  std::string why;
  admin::GatewayTotals other = w;
  other.set_schema(w.schema() + 1);
  EXPECT_FALSE(DecodeTotals(other, &back, &why));
  EXPECT_NE(why.find("schema"), std::string::npos) << why;
  admin::GatewayTotals shorter = w;
  shorter.mutable_backends(0)->mutable_values()->RemoveLast();
  EXPECT_FALSE(DecodeTotals(shorter, &back, &why));
  EXPECT_NE(why.find("backend row"), std::string::npos) << why;
  admin::GatewayTotals bad_slot = w;
  bad_slot.mutable_models(0)->set_slot(shm::kMaxModels);
  EXPECT_FALSE(DecodeTotals(bad_slot, &back, &why));
}

shm::StatsTotals Sum(const FleetStats& f, uint64_t key) {
  shm::StatsTotals into;
  into.models.resize(shm::kMaxModels);
  into.backends.resize(1);
  f.AddTo({{key, 0}}, &into);
  return into;
}

TEST(FleetStatsRecord, SumsGatewaysAndKeepsCountersAcrossDisconnectAndRestart) {
  FleetStats f;
  f.Report("a", Sample(2), 100);
  f.Report("b", Sample(3), 100);
  shm::StatsTotals s = Sum(f, 0xabc);
  EXPECT_EQ(s.requests_total, 50u);
  EXPECT_EQ(s.active_requests, 5u);
  EXPECT_EQ(s.live_threads, 4u);
  EXPECT_EQ(s.backends[0].requests, 40u);
  EXPECT_EQ(s.backends[0].in_flight, 5u);
  EXPECT_EQ(s.models[3].active, 5u);
  EXPECT_EQ(f.InFlightByKey().at(0xabc), 5u);
  // A backend the controller does not know (another key) is left out.
  EXPECT_EQ(Sum(f, 0xdef).backends[0].requests, 0u);

  // b's link closes: its gauges stop counting, its counters stay.
  f.Disconnected("b");
  s = Sum(f, 0xabc);
  EXPECT_EQ(s.requests_total, 50u);
  EXPECT_EQ(s.active_requests, 2u);
  EXPECT_EQ(s.backends[0].in_flight, 2u);
  EXPECT_EQ(s.models[3].active, 2u);
  EXPECT_EQ(s.live_threads, 2u);
  // b comes back with counters that went on: no double counting.
  f.Report("b", Sample(4), 200);
  EXPECT_EQ(Sum(f, 0xabc).requests_total, 60u);
  // b's shm started over (counters went backwards): what it counted before stays.
  f.Report("b", Sample(1), 300);
  s = Sum(f, 0xabc);
  EXPECT_EQ(s.requests_total, 20u + 40u + 10u);
  EXPECT_EQ(s.backends[0].requests, 16u + 32u + 8u);
  EXPECT_EQ(s.active_requests, 2u + 1u);  // the old incarnation's gauges are gone
}

// Probes always succeed: the backends' health comes from the fleet's stats only.
class OkProber final : public Prober {
 public:
  HttpResponse Get(const HttpTarget&, const std::string&, uint32_t, size_t, const std::atomic<bool>*) override {
    return HttpResponse{200, "ok", ""};
  }
};

class FleetControllerTest : public ::testing::Test {
 protected:
  void SetUp() override { Start("round_robin"); }
  void Start(const std::string& policy) {
    if (c_) {
      c_->Shutdown();
      shm::Unlink("/llmgw-" + instance_);
    }
    static int n = 0;
    instance_ = "fleetstats-" + std::to_string(getpid()) + "-" + std::to_string(++n);
    std::string y = "instance: " + instance_ +
                    "\nhealth: { interval_ms: 100, timeout_ms: 100, unhealthy_after: 2, healthy_after: 1 }\n"
                    "control: { tick_ms: 20, heartbeat_ms: 100 }\n"
                    "circuit_breaker: { failure_threshold: 3, success_threshold: 1, open_ms: 60000, "
                    "half_open_requests: 1, slow_call_ms: 1000, window_ms: 1000 }\n"
                    "models:\n  - name: m\n    policy: " + policy + "\n    backends:\n"
                    "      - { id: b0, url: \"http://127.0.0.1:9\" }\n"
                    "      - { id: b1, url: \"http://127.0.0.1:10\" }\n";
    ConfigResult r = ParseConfig(y, "test.yaml");
    ASSERT_TRUE(r.ok()) << r.ErrorText();
    ControllerOptions o;
    o.clock_ms = [this] { return now_ms_; };
    o.prober = std::make_shared<OkProber>();
    o.worker_threads = 0;
    c_ = std::make_unique<Controller>(o);
    ASSERT_TRUE(c_->StartWithConfig(std::move(r.config)).ok());
  }
  void TearDown() override {
    if (c_) c_->Shutdown();
    shm::Unlink("/llmgw-" + instance_);
  }
  void Step() {
    now_ms_ += 20;
    c_->Tick();
  }
  // What an agent reports for backend b0 after `requests` attempts of which `errors` 500s.
  static shm::StatsTotals Agent(uint64_t requests, uint64_t errors, uint64_t in_flight) {
    shm::StatsTotals t;
    t.models.resize(shm::kMaxModels);
    t.live_threads = 1;
    t.requests_total = requests;
    t.models[0].requests_by_code[shm::StatusCodeIndex(200)] = requests - errors;
    t.models[0].requests_by_code[shm::StatusCodeIndex(500)] = errors;
    shm::BackendTotals b;
    b.key = BackendKey("b0");
    b.requests = requests;
    b.successes = requests - errors;
    b.errors[static_cast<size_t>(shm::UpstreamErr::kStatus5xx)] = errors;
    b.in_flight = in_flight;
    b.latency.count = requests;
    b.latency.sum_us = requests * 20000;
    t.backends.push_back(b);
    return t;
  }
  BackendView B(const std::string& id) {
    BackendView v;
    EXPECT_TRUE(c_->GetBackend(id, &v));
    return v;
  }
  std::string instance_;
  uint64_t now_ms_ = 1'000'000;
  std::unique_ptr<Controller> c_;
};

TEST_F(FleetControllerTest, AgentsTrafficMovesTheControllersCountersAndIn_flight) {
  Step();
  c_->ReportGateway("gw-a", Agent(30, 0, 2));
  c_->ReportGateway("gw-b", Agent(12, 0, 1));
  Step();
  EXPECT_EQ(c_->GetStatus().requests_total, 42u);
  EXPECT_EQ(c_->GetStatus().dataplane_threads, 2u);
  EXPECT_EQ(B("b0").requests_total, 42u);
  EXPECT_EQ(B("b0").in_flight, 3u);
  EXPECT_EQ(c_->StatsCopy().models[0].RequestsTotal(), 42u);
  c_->ReportGateway("gw-a", Agent(50, 0, 0));
  Step();
  EXPECT_EQ(B("b0").requests_total, 62u);
  EXPECT_EQ(B("b0").in_flight, 1u);
  EXPECT_GT(B("b0").ewma_latency_ms, 0.0);  // the new attempts' latency was observed
  // Per gateway, for the gateway= label.
  auto gws = c_->GatewayStats();
  ASSERT_EQ(gws.size(), 3u);
  EXPECT_TRUE(gws[0].local);
  EXPECT_EQ(gws[1].name, "gw-a");
  EXPECT_EQ(gws[1].requests_answered, 50u);
  c_->GatewayGone("gw-b");
  Step();
  EXPECT_EQ(B("b0").requests_total, 62u);  // counters stay
  EXPECT_EQ(B("b0").in_flight, 0u);        // gauges go
  EXPECT_FALSE(c_->GatewayStats()[2].connected);
}

// Issue 16 in a fleet: the TTFT and latency figures of llmctl status, the dashboard and
// llmctl backends are the whole fleet's recent window (agents' streams included), and a
// gateway that joins with a slow history does not show it as recent.
TEST_F(FleetControllerTest, AgentsStreamsMoveTheRecentTtftAndLatencyFigures) {
  Step();
  auto agent = [](uint64_t n, uint64_t ttft_us, uint64_t lat_us, shm::StatsTotals* t) {
    for (auto* h : {&t->ttft, &t->backends[0].ttft}) {
      h->buckets[shm::HistBucketFor(ttft_us)] += n;
      h->count += n;
      h->sum_us += n * ttft_us;
    }
    for (auto* h : {&t->latency, &t->backends[0].latency}) {
      h->buckets[shm::HistBucketFor(lat_us)] += n;
      h->count += n;
      h->sum_us += n * lat_us;
    }
  };
  // gw-a joins with an hour of 3 s TTFTs: history, not the last 30 s.
  shm::StatsTotals a = Agent(1000, 0, 0);
  a.backends[0].latency = {};
  agent(1000, 3000000, 9000000, &a);
  c_->ReportGateway("gw-a", a);
  for (int i = 0; i < 60; ++i) Step();  // 1.2 s: two samples of the window
  EXPECT_EQ(c_->GetStatus().ttft_p99_ms, 0) << "a joining gateway's history showed as recent";
  EXPECT_EQ(B("b0").ttft_p99_ms, 0);
  // Then its streams see a 48 ms TTFT: the controller's figures say so.
  agent(200, 48000, 400000, &a);
  a.requests_total += 200;
  a.backends[0].requests += 200;
  a.backends[0].successes += 200;
  c_->ReportGateway("gw-a", a);
  for (int i = 0; i < 60; ++i) Step();
  StatusView st = c_->GetStatus();
  EXPECT_GT(st.ttft_p99_ms, 30);
  EXPECT_LT(st.ttft_p99_ms, 100);
  EXPECT_GT(st.latency_p99_ms, 250);
  EXPECT_LT(st.latency_p99_ms, 1000);
  EXPECT_GT(B("b0").ttft_p99_ms, 30);
  EXPECT_LT(B("b0").ttft_p99_ms, 100);
}

TEST_F(FleetControllerTest, AgentsServerErrorsOpenTheControllersBreaker) {
  Step();
  // The agent joins with a history of failures: a baseline, not this tick's news.
  c_->ReportGateway("gw-a", Agent(100, 100, 0));
  Step();
  Step();
  EXPECT_EQ(c_->Circuits().at("b0").state, CircuitState::kClosed);
  // Then its backend answers 500s: the controller's breaker opens and the snapshot says so.
  c_->ReportGateway("gw-a", Agent(110, 110, 0));
  Step();
  EXPECT_EQ(c_->Circuits().at("b0").state, CircuitState::kOpen);
  EXPECT_NE(B("b0").state, shm::BackendState::kHealthy);
  EXPECT_EQ(c_->Circuits().at("b1").state, CircuitState::kClosed);
  EXPECT_GT(B("b0").error_rate, 0.0);
}

// Fleet-wide prefix homes: prefixes the agents' gateways routed are placed by the
// controller and go out in its snapshot (which every agent publishes unchanged), so a
// prompt prefix has one home whichever gateway the client reached.
TEST_F(FleetControllerTest, AgentsPrefixesArePlacedAndPublishedAsHomes) {
  Start("prefix_affinity");
  Step();
  std::vector<PrefixPick> a = {{0, 0x1111, 5}, {0, 0x2222, 3}};
  std::vector<PrefixPick> b = {{0, 0x2222, 4}, {0, 0x3333, 2}, {kMaxModelsForTest, 0x4444, 9}};
  c_->ReportPrefixes(a);
  c_->ReportPrefixes(b);  // the bad model slot is ignored
  auto obj = shm::ShmObject::Open("/llmgw-" + instance_);
  ASSERT_TRUE(obj.ok());
  auto snap = std::make_unique<shm::Snapshot>();
  bool placed = false;
  for (int i = 0; i < 20 && !placed; ++i) {
    Step();
    shm::SnapshotReader reader(obj.value()->region());
    placed = reader.Refresh(snap.get()) && snap->num_prefix_homes == 3;
  }
  ASSERT_TRUE(placed) << snap->num_prefix_homes;
  std::map<uint64_t, uint16_t> homes;
  for (uint32_t i = 0; i < snap->num_prefix_homes; ++i) {
    homes[snap->prefix_homes[i].tag] = snap->prefix_homes[i].backend_slot;
    EXPECT_EQ(snap->prefix_homes[i].model_slot, 0u);
    EXPECT_LT(snap->prefix_homes[i].backend_slot, 2u);
  }
  EXPECT_EQ(homes.count(0x1111) + homes.count(0x2222) + homes.count(0x3333), 3u);
  obj.value()->Close();
}

}  // namespace
}  // namespace llmgw::cp
