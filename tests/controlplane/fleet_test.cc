// The fleet in one process, where its threads meet (run under TSan in CI): a Controller
// with its admin server (Fleet service) and a FleetAgent on another instance. The agent
// publishes the controller's snapshots into its own shm, a drain reaches it, in-flight
// counted in the agent's stats slots shows in the controller's fleet_in_flight, the
// controller lists the agent, and both sides stop promptly.
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <thread>

#include "common/shm.h"
#include "controlplane/admin_service.h"
#include "controlplane/controller.h"
#include "controlplane/fleet.h"
#include "test_http_server.h"

namespace llmgw::cp {
namespace {

using testing::TestHttpServer;
using testing::TestResponse;
using Clock = std::chrono::steady_clock;

template <typename P>
bool WaitFor(P pred, int timeout_ms) {
  auto end = Clock::now() + std::chrono::milliseconds(timeout_ms);
  while (Clock::now() < end) {
    if (pred()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return pred();
}

Config ParseOrDie(const std::string& yaml) {
  ConfigResult cr = ParseConfig(yaml, "test.yaml");
  EXPECT_TRUE(cr.ok()) << cr.ErrorText();
  return cr.config;
}

std::string Yaml(const std::string& instance, const std::string& url) {
  return "instance: " + instance +
         "\nadmin: { grpc_listen: 127.0.0.1:0 }\n"
         "health: { interval_ms: 100, timeout_ms: 100, unhealthy_after: 2, healthy_after: 1, scrape_metrics: false }\n"
         "control: { tick_ms: 20, heartbeat_ms: 100 }\n"
         "models:\n  - name: m\n    backends:\n      - { id: b0, url: \"" + url + "\" }\n";
}

// The state of backend 0 in what is currently published in region r.
int PublishedState(const shm::ShmRegion* r) {
  auto snap = std::make_unique<shm::Snapshot>();
  shm::SnapshotReader reader(r);
  if (!reader.Refresh(snap.get()) || snap->num_backends == 0) return -1;
  return snap->backends[0].state;
}

TEST(FleetTest, AgentFollowsTheControllerAndReportsInFlight) {
  TestHttpServer backend([](const std::string&) { return TestResponse{200, "ok"}; });
  std::string ctl_instance = "fleetut-" + std::to_string(getpid()) + "-c";
  std::string agent_instance = "fleetut-" + std::to_string(getpid()) + "-a";

  Controller controller;
  Config ctl_cfg = ParseOrDie(Yaml(ctl_instance, backend.url()));
  ASSERT_TRUE(controller.StartWithConfig(ctl_cfg).ok());
  AdminServer admin(&controller);
  ASSERT_TRUE(admin.Start(ctl_cfg.admin).ok());
  std::atomic<bool> stop_controller{false}, stop_agent{false};
  std::thread loop([&] { controller.Run(stop_controller); });

  FleetAgent agent(ParseOrDie(Yaml(agent_instance, "http://127.0.0.1:1")), "127.0.0.1:" + std::to_string(admin.port()));
  ASSERT_TRUE(agent.Start().ok());
  std::thread agent_loop([&] { agent.Run(stop_agent); });

  // The agent's shm carries the controller's table (its own config names another URL).
  ASSERT_TRUE(WaitFor([&] { return agent.snapshots_applied() > 0; }, 5000));
  EXPECT_EQ(PublishedState(agent.region()), static_cast<int>(shm::BackendState::kHealthy));
  admin::v1::Backend b;
  ASSERT_TRUE(controller.Drain("b0", &b));
  EXPECT_TRUE(WaitFor([&] {
    return PublishedState(agent.region()) == static_cast<int>(shm::BackendState::kDraining);
  }, 3000));
  ASSERT_TRUE(controller.Undrain("b0", &b));

  // A data-plane thread on the agent's host with 4 requests in flight to b0.
  Error err;
  shm::StatsSlot* slot = shm::ClaimStatsSlot(agent.region(), 0, &err);
  ASSERT_NE(slot, nullptr);
  shm::Set(slot->heartbeat_unix_ms, shm::NowUnixMs());
  shm::Set(slot->backends[0].in_flight, 4);
  EXPECT_TRUE(WaitFor([&] {
    shm::Set(slot->heartbeat_unix_ms, shm::NowUnixMs());
    return controller.Backends()[0].in_flight() == 4;
  }, 3000));
  shm::Set(slot->backends[0].in_flight, 0);
  EXPECT_TRUE(WaitFor([&] {
    shm::Set(slot->heartbeat_unix_ms, shm::NowUnixMs());
    return controller.Backends()[0].in_flight() == 0;
  }, 3000));

  // The controller lists the agent.
  auto stub = admin::v1::Fleet::NewStub(
      grpc::CreateChannel("127.0.0.1:" + std::to_string(admin.port()), grpc::InsecureChannelCredentials()));
  admin::v1::ListGatewaysResponse gw;
  ASSERT_TRUE(WaitFor([&] {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(2));
    return stub->ListGateways(&ctx, {}, &gw).ok() && gw.gateways_size() == 1 && gw.gateways(0).dataplane_threads() == 1;
  }, 3000)) << gw.DebugString();
  EXPECT_TRUE(gw.is_controller());
  EXPECT_EQ(gw.gateways(0).agent_id(), agent.agent_id());
  shm::ReleaseStatsSlot(slot);

  // Both sides stop promptly: the agent first, then the controller's stream handler.
  auto t0 = Clock::now();
  stop_agent = true;
  agent_loop.join();
  agent.Shutdown();
  stop_controller = true;
  loop.join();
  admin.Stop();
  controller.Shutdown();
  EXPECT_LT(std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0).count(), 1500);
  shm::Unlink("/llmgw-" + ctl_instance);
  shm::Unlink("/llmgw-" + agent_instance);
}

}  // namespace
}  // namespace llmgw::cp
