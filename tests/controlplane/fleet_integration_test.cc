// The fleet with real processes: a controller llmcd (instance C) probing two llmgw-mock
// backends, an agent `llmcd --agent-of` with its own instance (A), and an llmgw attached
// to A. The agent's llmgw routes on the controller's snapshots (a drain at the controller
// reaches it), its in-flight requests show in the controller's fleet_in_flight, `llmctl
// fleet` lists it, it keeps serving while the controller restarts and reconnects after.
#include <google/protobuf/util/json_util.h>
#include <gtest/gtest.h>
#include <sys/mman.h>

#include <map>
#include <memory>

#include "common/shm.h"
#include "controlplane/fleet.h"
#include "e2e_process.h"

namespace llmgw::e2e {
namespace {

class FleetTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/llmgw-fleet-XXXXXX";
    dir_ = mkdtemp(tmpl);
    ctl_instance_ = "fleetc-" + std::to_string(getpid());
    agent_instance_ = "fleeta-" + std::to_string(getpid());
    ctl_grpc_ = FreePort();
    for (int i = 0; i < 2; ++i)
      mocks_.push_back(std::make_unique<Proc>(
          std::vector<std::string>{LLMGW_MOCK_BIN, "--listen", "127.0.0.1:0", "--model", "m",
                                   "--token-interval-ms", "0", "--output-tokens", "4"},
          dir_ + "/mock.log", true));
    WriteFileAtomically(dir_ + "/controller.yaml", Config(ctl_instance_, ctl_grpc_));
    WriteFileAtomically(dir_ + "/agent.yaml", Config(agent_instance_, FreePort()));
    stub_ = AdminStub(ctl_grpc_);
  }
  void TearDown() override {
    gw_.reset();
    agent_.reset();
    ctl_.reset();
    mocks_.clear();
    shm::Unlink("/llmgw-" + ctl_instance_);
    shm::Unlink("/llmgw-" + agent_instance_);
    // A SIGKILLed llmcd leaves its writer-lock file behind.
    std::remove(("/dev/shm/llmgw-" + ctl_instance_ + ".writer").c_str());
    std::remove(("/dev/shm/llmgw-" + agent_instance_ + ".writer").c_str());
    for (const char* f : {"/controller.yaml", "/agent.yaml", "/controller.log", "/agent.log", "/llmgw.log",
                          "/mock.log", "/right.token", "/wrong.token"})
      std::remove((dir_ + f).c_str());
    rmdir(dir_.c_str());
  }
  std::string Config(const std::string& instance, int grpc_port) {
    std::string y = "instance: " + instance +
                    "\ngateway:\n  listen: 127.0.0.1:0\n  threads: 1\n  retries: { max: 2, backoff_ms: 10 }\n"
                    "admin:\n  grpc_listen: 127.0.0.1:" + std::to_string(grpc_port) +
                    "\n  metrics_listen: 127.0.0.1:" + std::to_string(metrics_port_[instance] = FreePort()) +
                    "\nhealth: { interval_ms: 300, timeout_ms: 1000, unhealthy_after: 2, healthy_after: 1 }\n"
                    "control: { tick_ms: 20, heartbeat_ms: 200 }\n"
                    "models:\n  - name: m\n    policy: round_robin\n    backends:\n";
    for (size_t i = 0; i < mocks_.size(); ++i)
      y += "      - { id: b" + std::to_string(i) + ", url: \"" + mocks_[i]->url() + "\" }\n";
    return y;
  }
  void StartController() {
    ctl_ = std::make_unique<Proc>(std::vector<std::string>{LLMCD_BIN, "--config", dir_ + "/controller.yaml"},
                                  dir_ + "/controller.log", false);
  }
  // The controller with both backends, then the agent and its llmgw, ready only once a
  // snapshot arrived (the agent's instance has no other writer). Check HasFatalFailure().
  void StartFleet() {
    StartController();
    ASSERT_TRUE(WaitFor([&] {
      pb::GetStatusResponse s;
      return stub_->GetStatus(Ctx().get(), {}, &s).ok() && s.backends_total() == 2;
    }, 5000)) << Logs();
    agent_ = std::make_unique<Proc>(std::vector<std::string>{LLMCD_BIN, "--config", dir_ + "/agent.yaml", "--agent-of",
                                                             "127.0.0.1:" + std::to_string(ctl_grpc_)},
                                    dir_ + "/agent.log", false);
    gw_ = std::make_unique<Proc>(std::vector<std::string>{LLMGW_BIN, "--config", dir_ + "/agent.yaml"},
                                 dir_ + "/llmgw.log", true);
    ASSERT_GT(gw_->port(), 0) << Logs();
    ASSERT_TRUE(WaitFor([&] { return HttpCall(gw_->port(), "GET", "/ready", "", 1000).status == 200; }, 5000))
        << Logs();
  }
  pb::ListGatewaysResponse Gateways() {
    pb::ListGatewaysResponse r;
    CliResult c = RunLlmctl({"--addr", "127.0.0.1:" + std::to_string(ctl_grpc_), "fleet", "-o", "json"}, 10000);
    if (c.code == 0) google::protobuf::util::JsonStringToMessage(c.out, &r);
    return r;
  }
  uint64_t ControllerInFlight(const std::string& id) {
    pb::ListBackendsResponse r;
    if (!stub_->ListBackends(Ctx().get(), {}, &r).ok()) return 0;
    for (const auto& b : r.backends())
      if (b.id() == id) return b.in_flight();
    return 0;
  }
  int Sequential(int n) {
    int ok = 0;
    for (int i = 0; i < n; ++i)
      if (HttpCall(gw_->port(), "POST", "/v1/chat/completions", kChatBody, 10000).status == 200) ++ok;
    return ok;
  }
  // State of backend `id` in the snapshot currently published in the agent's shm, read
  // through a read-only mapping (the test does not attach as a process).
  int AgentSnapshotState(const std::string& id) {
    int fd = shm_open(("/llmgw-" + agent_instance_).c_str(), O_RDONLY, 0);
    if (fd < 0) return -1;
    void* p = mmap(nullptr, sizeof(shm::ShmRegion), PROT_READ, MAP_SHARED, fd, 0);
    close(fd);
    if (p == MAP_FAILED) return -1;
    auto snap = std::make_unique<shm::Snapshot>();
    shm::SnapshotReader reader(static_cast<const shm::ShmRegion*>(p));
    int state = -1;
    if (reader.Refresh(snap.get()))
      for (uint32_t i = 0; i < snap->num_backends; ++i)
        if (id == snap->backends[i].id) state = snap->backends[i].state;
    munmap(p, sizeof(shm::ShmRegion));
    return state;
  }
  std::string Logs() {
    return "--- controller\n" + ReadFile(dir_ + "/controller.log") + "--- agent\n" + ReadFile(dir_ + "/agent.log") +
           "--- llmgw\n" + ReadFile(dir_ + "/llmgw.log");
  }

  std::string dir_, ctl_instance_, agent_instance_;
  int ctl_grpc_ = 0;
  std::map<std::string, int> metrics_port_;  // by instance
  std::vector<std::unique_ptr<Proc>> mocks_;
  std::unique_ptr<Proc> ctl_, agent_, gw_;
  std::unique_ptr<pb::Admin::Stub> stub_;
};

TEST_F(FleetTest, AgentServesTheControllersSnapshotsAndReportsItsLoad) {
  StartFleet();
  if (HasFatalFailure()) return;
  ASSERT_EQ(Sequential(10), 10) << Logs();

  // The controller lists the agent with its data plane's numbers.
  pb::ListGatewaysResponse g;
  ASSERT_TRUE(WaitFor([&] {
    g = Gateways();
    return g.gateways_size() == 1 && g.gateways(0).requests_total() >= 10;
  }, 5000)) << g.DebugString() << Logs();
  EXPECT_TRUE(g.is_controller());
  const std::string& agent_id = g.gateways(0).agent_id();
  EXPECT_EQ(agent_id.substr(agent_id.size() - agent_instance_.size()), agent_instance_);
  EXPECT_EQ(g.gateways(0).dataplane_threads(), 1u);
  CliResult table = RunLlmctl({"--addr", "127.0.0.1:" + std::to_string(ctl_grpc_), "fleet"}, 10000);
  EXPECT_EQ(table.code, 0);
  EXPECT_NE(table.out.find(agent_instance_), std::string::npos) << table.out;

  // A drain at the controller reaches the agent's llmgw.
  pb::BackendRequest req;
  req.set_id("b1");
  pb::BackendResponse resp;
  ASSERT_EQ(AgentSnapshotState("b1"), static_cast<int>(shm::BackendState::kHealthy));
  ASSERT_TRUE(stub_->DrainBackend(Ctx().get(), req, &resp).ok());
  // controller tick → Sync → the agent's shm; llmgw checks the generation on every request.
  ASSERT_TRUE(WaitFor([&] { return AgentSnapshotState("b1") == static_cast<int>(shm::BackendState::kDraining); },
                      3000)) << Logs();
  long b1 = MockStat(mocks_[1]->port(), "requests_total");
  EXPECT_EQ(Sequential(20), 20) << Logs();
  EXPECT_EQ(MockStat(mocks_[1]->port(), "requests_total"), b1) << "the agent's llmgw ignored the drain";

  // In-flight requests on the agent's host count in the controller's fleet_in_flight
  // (the controller has no llmgw of its own, so every in-flight request is the agent's).
  ASSERT_EQ(HttpCall(mocks_[0]->port(), "POST", "/mock/faults", R"({"slow_first_byte_ms":2500})").status, 200);
  std::vector<std::thread> slow;
  std::atomic<int> slow_ok{0};
  for (int i = 0; i < 3; ++i)
    slow.emplace_back([&] {
      if (HttpCall(gw_->port(), "POST", "/v1/chat/completions", kChatBody, 10000).status == 200) ++slow_ok;
    });
  EXPECT_TRUE(WaitFor([&] { return ControllerInFlight("b0") == 3; }, 2000)) << ControllerInFlight("b0");
  for (auto& t : slow) t.join();
  EXPECT_EQ(slow_ok.load(), 3);
  ASSERT_EQ(HttpCall(mocks_[0]->port(), "POST", "/mock/faults", R"({"slow_first_byte_ms":0})").status, 200);
  EXPECT_TRUE(WaitFor([&] { return ControllerInFlight("b0") == 0; }, 2000));

  // Controller restart: the agent's llmgw serves on, the agent reconnects.
  ASSERT_EQ(ctl_->Stop(SIGTERM, 5000), 0) << Logs();
  EXPECT_EQ(Sequential(10), 10) << Logs();
  StartController();
  ASSERT_TRUE(WaitFor([&] { return Gateways().gateways_size() == 1; }, 8000)) << Logs();

  // The agent exits promptly on SIGTERM and the controller forgets it.
  auto t0 = Clock::now();
  EXPECT_EQ(agent_->Stop(SIGTERM, 5000), 0) << Logs();
  EXPECT_LT(std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0).count(), 1500);
  EXPECT_TRUE(WaitFor([&] { return Gateways().gateways_size() == 0; }, 3000));
}

// One view: the agent's gateway's traffic moves the controller's counters (status,
// backends, /metrics with a gateway label) and its upstream 500s open the controller's
// breaker, which the agent's llmgw then routes around.
TEST_F(FleetTest, AgentsTrafficAndErrorsCountInTheControllersViewAndDecisions) {
  // Two failures open the breaker: passive health may take b1 out after a few failures,
  // before the default threshold of five is reached.
  std::string y = ReadFile(dir_ + "/controller.yaml");
  y.insert(y.find("models:"), "circuit_breaker: { failure_threshold: 2 }\n");
  WriteFileAtomically(dir_ + "/controller.yaml", y);
  StartFleet();
  if (HasFatalFailure()) return;
  ASSERT_EQ(Sequential(12), 12) << Logs();
  // The controller has no llmgw of its own: every request it counts is the agent's.
  pb::GetStatusResponse st;
  EXPECT_TRUE(WaitFor([&] {
    return stub_->GetStatus(Ctx().get(), {}, &st).ok() && st.requests_total() >= 12;
  }, 3000)) << st.DebugString();
  EXPECT_EQ(st.dataplane_threads(), 1u);
  pb::ListBackendsResponse bl;
  uint64_t attempts = 0;
  EXPECT_TRUE(WaitFor([&] {
    attempts = 0;
    if (!stub_->ListBackends(Ctx().get(), {}, &bl).ok()) return false;
    for (const auto& b : bl.backends()) attempts += b.requests_total();
    return attempts >= 12;
  }, 3000)) << bl.DebugString() << Logs();
  int mport = metrics_port_[ctl_instance_];
  std::string m;
  EXPECT_TRUE(WaitFor([&] {
    m = HttpCall(mport, "GET", "/metrics", "", 2000).body;
    return m.find("llm_gateway_requests_total{code=\"200\",model=\"m\"} 12") != std::string::npos;
  }, 3000)) << m;
  EXPECT_NE(m.find("llmcd_fleet_gateway_requests_total{gateway=\""), std::string::npos) << m;
  EXPECT_NE(m.find(agent_instance_ + "\"} 12"), std::string::npos) << m;

  // b1 answers 500 to everything: the agent's llmgw retries on b0 (clients see 200s) and
  // the controller's breaker for b1 opens on the agent's observations alone.
  ASSERT_EQ(HttpCall(mocks_[1]->port(), "POST", "/mock/faults", R"({"error_rate":1.0,"error_status":500})").status,
            200);
  EXPECT_EQ(Sequential(20), 20) << Logs();
  EXPECT_TRUE(WaitFor([&] {
    m = HttpCall(mport, "GET", "/metrics", "", 2000).body;
    return m.find("llm_circuit_breaker_state{id=\"b1\"} 1") != std::string::npos;
  }, 3000)) << m << Logs();
  // The decision reaches the agent's snapshot: b1 is out (circuit open or unhealthy).
  EXPECT_TRUE(WaitFor([&] {
    int s = AgentSnapshotState("b1");
    return s == static_cast<int>(shm::BackendState::kCircuitOpen) || s == static_cast<int>(shm::BackendState::kUnhealthy);
  }, 3000)) << AgentSnapshotState("b1");
  long b1 = MockStat(mocks_[1]->port(), "requests_total");
  EXPECT_EQ(Sequential(10), 10) << Logs();
  EXPECT_EQ(MockStat(mocks_[1]->port(), "requests_total"), b1) << "the agent's llmgw still sends to b1";
}

// Secure links: the fleet link carries the admin token; an agent with a wrong one is
// refused and both sides log it; with the right one it attaches.
TEST_F(FleetTest, AgentWithAWrongTokenIsRefusedAndLogged) {
  WriteFileAtomically(dir_ + "/right.token", "s3cret-fleet-token\n");
  WriteFileAtomically(dir_ + "/wrong.token", "not-the-token\n");
  auto with_token = [&](const std::string& file, const std::string& token) {
    std::string y = ReadFile(dir_ + "/" + file);
    auto at = y.find("  metrics_listen:");
    y.insert(at, "  token_file: " + dir_ + "/" + token + "\n");
    WriteFileAtomically(dir_ + "/" + file, y);
  };
  with_token("controller.yaml", "right.token");
  with_token("agent.yaml", "wrong.token");
  StartController();
  auto fleet = [&] {
    pb::ListGatewaysResponse r;
    CliResult c = RunLlmctl({"--addr", "127.0.0.1:" + std::to_string(ctl_grpc_), "--token-file", dir_ + "/right.token",
                             "fleet", "-o", "json"}, 10000);
    if (c.code == 0) google::protobuf::util::JsonStringToMessage(c.out, &r);
    return r;
  };
  ASSERT_TRUE(WaitFor([&] { return fleet().is_controller(); }, 5000)) << Logs();
  agent_ = std::make_unique<Proc>(std::vector<std::string>{LLMCD_BIN, "--config", dir_ + "/agent.yaml", "--agent-of",
                                                           "127.0.0.1:" + std::to_string(ctl_grpc_)},
                                  dir_ + "/agent.log", false);
  EXPECT_TRUE(WaitFor([&] {
    return ReadFile(dir_ + "/controller.log").find("fleet agent refused: missing or wrong admin token") !=
               std::string::npos &&
           ReadFile(dir_ + "/agent.log").find("refused this agent's admin token") != std::string::npos;
  }, 5000)) << Logs();
  EXPECT_EQ(fleet().gateways_size(), 0);
  // One line per peer, not one per retry (the agent retries every 200 ms).
  std::this_thread::sleep_for(std::chrono::milliseconds(800));
  std::string log = ReadFile(dir_ + "/controller.log");
  size_t lines = 0;
  for (size_t at = 0; (at = log.find("fleet agent refused", at)) != std::string::npos; ++at) ++lines;
  EXPECT_EQ(lines, 1u) << log;

  ASSERT_EQ(agent_->Stop(SIGTERM, 5000), 0) << Logs();
  WriteFileAtomically(dir_ + "/wrong.token", "s3cret-fleet-token\n");
  agent_ = std::make_unique<Proc>(std::vector<std::string>{LLMCD_BIN, "--config", dir_ + "/agent.yaml", "--agent-of",
                                                           "127.0.0.1:" + std::to_string(ctl_grpc_)},
                                  dir_ + "/agent.log", false);
  EXPECT_TRUE(WaitFor([&] { return fleet().gateways_size() == 1; }, 5000)) << Logs();
}

// llmctl fleet drain GATEWAY: the gateway's llmgw stops listening, finishes the request in
// flight and exits 0; an unknown gateway is NOT_FOUND.
TEST_F(FleetTest, FleetDrainStopsTheGatewaysListenerGracefully) {
  StartFleet();
  if (HasFatalFailure()) return;
  pb::ListGatewaysResponse g;
  ASSERT_TRUE(WaitFor([&] {
    g = Gateways();
    return g.gateways_size() == 1;
  }, 5000)) << Logs();
  std::string id = g.gateways(0).agent_id();
  std::string addr = "127.0.0.1:" + std::to_string(ctl_grpc_);
  CliResult unknown = RunLlmctl({"--addr", addr, "fleet", "drain", "no-such-gateway"}, 10000);
  EXPECT_NE(unknown.code, 0);
  EXPECT_NE(unknown.err.find("no gateway 'no-such-gateway' attached"), std::string::npos) << unknown.err;

  // A slow request in flight when the drain comes: it still completes.
  for (const auto& m : mocks_)
    ASSERT_EQ(HttpCall(m->port(), "POST", "/mock/faults", R"({"slow_first_byte_ms":1000})").status, 200);
  std::atomic<int> slow_status{0};
  std::thread slow([&] { slow_status = HttpCall(gw_->port(), "POST", "/v1/chat/completions", kChatBody, 10000).status; });
  ASSERT_TRUE(WaitFor([&] { return ControllerInFlight("b0") + ControllerInFlight("b1") == 1; }, 3000));
  CliResult d = RunLlmctl({"--addr", addr, "fleet", "drain", id}, 10000);
  EXPECT_EQ(d.code, 0) << d.err;
  EXPECT_NE(d.out.find("draining gateway " + id), std::string::npos) << d.out;
  EXPECT_EQ(gw_->WaitExit(8000), 0) << Logs();
  slow.join();
  EXPECT_EQ(slow_status.load(), 200) << Logs();
  EXPECT_EQ(HttpCall(gw_->port(), "GET", "/ready", "", 500).status, 0) << "still listening";
  EXPECT_TRUE(WaitFor([&] {
    g = Gateways();
    return g.gateways_size() == 1 && g.gateways(0).draining() && g.gateways(0).gateways_drained() == 1;
  }, 3000)) << g.DebugString();
  EXPECT_NE(ReadFile(dir_ + "/agent.log").find("the controller drains this gateway"), std::string::npos);
}

}  // namespace
}  // namespace llmgw::e2e
