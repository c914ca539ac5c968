// The fleet in one process, where its threads meet (run under TSan in CI): a Controller
// with its admin server (Fleet service) and a FleetAgent on another instance. The agent
// publishes the controller's snapshots into its own shm, a drain reaches it, in-flight
// counted in the agent's stats slots shows in the controller's fleet_in_flight, the
// controller lists the agent, and both sides stop promptly.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <thread>

#include "common/shm.h"
#include "common/snapshot_codec.h"
#include "fleet_fixture.h"
#include "test_http_server.h"
#include "test_support.h"

// TSan (CI runs this binary under it): gRPC and abseil are not instrumented, so TSan
// cannot see their synchronisation and reports the interceptors they call (memmove,
// epoll_wait, ...) as races. Those reports are suppressed by calling library only; every
// access in llmcd's own (instrumented) code is still checked.
extern "C" const char* __tsan_default_suppressions() {
  return "called_from_lib:libgrpc.so\n"
         "called_from_lib:libgrpc++.so\n"
         "called_from_lib:libgpr.so\n"
         "called_from_lib:libabsl_graphcycles_internal.so\n"
         "called_from_lib:libabsl_synchronization.so\n"
         "called_from_lib:libabsl_strings.so\n"
         "called_from_lib:libabsl_str_format_internal.so\n"
         "called_from_lib:libabsl_cord.so\n"
         "called_from_lib:libabsl_cord_internal.so\n"
         "called_from_lib:libabsl_status.so\n"
         "called_from_lib:libabsl_time.so\n"
         "called_from_lib:libabsl_base.so\n"
         "called_from_lib:libabsl_raw_hash_set.so\n"
         "called_from_lib:libabsl_hash.so\n"
         "called_from_lib:libabsl_statusor.so\n"
         "called_from_lib:libupb.so\n"
         "called_from_lib:libcares.so\n"
         "called_from_lib:libaddress_sorting.so\n";
}

namespace llmgw::cp {
namespace {

using testing::TestHttpServer;
using testing::TestResponse;
using Clock = std::chrono::steady_clock;
using llmgw::test::WaitFor;
using namespace fleet_test;

// The published snapshot of region r (nullptr when nothing is).
std::unique_ptr<shm::Snapshot> Published(const shm::ShmRegion* r) {
  auto snap = std::make_unique<shm::Snapshot>();
  shm::SnapshotReader reader(r);
  if (!reader.Refresh(snap.get())) return nullptr;
  return snap;
}

// Hosted backends in a fleet: the controller's own llmgw gets the controller's key, the
// link carries only where the key is, and the agent publishes its own host's key, reads a
// rewritten one when told (RefreshKeys, which llmcd calls on a key file change or SIGHUP,
// from another thread than the stream's), and publishes the backend UNHEALTHY while it
// has none, the controller's state coming back with the key.
TEST(FleetTest, AgentPublishesItsOwnHostsBackendKeys) {
  TestHttpServer backend([](const std::string&) { return TestResponse{200, "{\"data\":[]}"}; });
  char tmpl[] = "/tmp/llmgw-fleetkey-XXXXXX";
  std::string dir = mkdtemp(tmpl);
  std::string key_file = dir + "/provider.key";
  llmgw::test::WriteFileAtomically(key_file, "sk-agent-1\n");
  std::string ctl_instance = "fleetkey-" + std::to_string(getpid()) + "-c";
  std::string agent_instance = "fleetkey-" + std::to_string(getpid()) + "-a";
  std::string yaml = Yaml(ctl_instance, backend.url());
  yaml.replace(yaml.find(" }\n", yaml.find("id: b0")), 3, ", provider: openai, api_key_file: provider.key }\n");
  Config ccfg = ParseOrDie(yaml);
  ASSERT_EQ(ccfg.models.size(), 1u);
  ccfg.models[0].backends[0].api_key = "sk-controller";  // what the controller's host read
  InProcessController ctl;
  ASSERT_TRUE(ctl.Start(ccfg).ok());
  Config acfg = ParseOrDie(Yaml(agent_instance, "http://127.0.0.1:1"));
  acfg.source_file = dir + "/agent.yaml";  // relative key paths are under this host's config folder
  InProcessAgent a(acfg, ctl.addr());
  ASSERT_TRUE(a.Start().ok());
  FleetAgent& agent = a.agent;
  auto agent_key = [&] {
    auto s = Published(agent.region());
    return s ? std::string(s->upstreams[0].api_key) : std::string("<none>");
  };
  const int healthy = static_cast<int>(shm::BackendState::kHealthy);
  const int unhealthy = static_cast<int>(shm::BackendState::kUnhealthy);

  ASSERT_TRUE(WaitFor([&] { return agent.snapshots_applied() > 0; }, 5000));
  EXPECT_EQ(agent_key(), "sk-agent-1");
  EXPECT_EQ(PublishedState(agent.region()), healthy);
  auto own = Published(ctl.controller.shm_region());
  ASSERT_NE(own, nullptr);
  EXPECT_STREQ(own->upstreams[0].api_key, "sk-controller");
  EXPECT_STREQ(own->upstreams[0].api_key_file, "provider.key");
  uint64_t gen = 0;
  std::string wire = ctl.controller.PublishedSnapshotBytes(&gen);
  EXPECT_EQ(wire.find("sk-controller"), std::string::npos) << "keys never travel";
  EXPECT_NE(wire.find("provider.key"), std::string::npos);
  EXPECT_EQ(agent.key_files(), std::vector<std::string>{key_file});

  // Rotated on the agent's host: read again when told, without a new config.
  llmgw::test::WriteFileAtomically(key_file, "sk-agent-2");
  agent.RefreshKeys();
  EXPECT_EQ(agent_key(), "sk-agent-2");
  std::this_thread::sleep_for(std::chrono::milliseconds(300));  // later snapshots keep it
  EXPECT_EQ(agent_key(), "sk-agent-2");

  // Gone on this host: no keyless requests (UNHEALTHY here), whatever the controller says.
  std::remove(key_file.c_str());
  agent.RefreshKeys();
  EXPECT_EQ(agent_key(), "");
  EXPECT_EQ(PublishedState(agent.region()), unhealthy);
  EXPECT_EQ(agent.key_problems().count("b0"), 1u);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  EXPECT_EQ(PublishedState(agent.region()), unhealthy);
  EXPECT_EQ(PublishedState(ctl.controller.shm_region()), healthy);

  llmgw::test::WriteFileAtomically(key_file, "sk-agent-3");
  agent.RefreshKeys();
  EXPECT_EQ(agent_key(), "sk-agent-3");
  EXPECT_EQ(PublishedState(agent.region()), healthy);
  EXPECT_TRUE(agent.key_problems().empty());
  a.Stop();
  ctl.Stop();
  std::remove(key_file.c_str());
  rmdir(dir.c_str());
}

TEST(FleetTest, AgentFollowsTheControllerAndReportsInFlight) {
  TestHttpServer backend([](const std::string&) { return TestResponse{200, "ok"}; });
  std::string ctl_instance = "fleetut-" + std::to_string(getpid()) + "-c";
  std::string agent_instance = "fleetut-" + std::to_string(getpid()) + "-a";
  InProcessController ctl;
  ASSERT_TRUE(ctl.Start(ParseOrDie(Yaml(ctl_instance, backend.url()))).ok());
  Controller& controller = ctl.controller;
  InProcessAgent a(ParseOrDie(Yaml(agent_instance, "http://127.0.0.1:1")), ctl.addr());
  ASSERT_TRUE(a.Start().ok());
  FleetAgent& agent = a.agent;

  // The agent's shm carries the controller's table (its own config names another URL).
  ASSERT_TRUE(WaitFor([&] { return agent.snapshots_applied() > 0; }, 5000));
  EXPECT_EQ(PublishedState(agent.region()), static_cast<int>(shm::BackendState::kHealthy));
  BackendView b;
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
    return controller.Backends()[0].in_flight == 4;
  }, 3000));
  shm::Set(slot->backends[0].in_flight, 0);
  EXPECT_TRUE(WaitFor([&] {
    shm::Set(slot->heartbeat_unix_ms, shm::NowUnixMs());
    return controller.Backends()[0].in_flight == 0;
  }, 3000));

  // The controller lists the agent.
  auto stub = admin::v1::Fleet::NewStub(grpc::CreateChannel(ctl.addr(), grpc::InsecureChannelCredentials()));
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
  a.Stop();
  ctl.Stop();
  EXPECT_LT(std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0).count(), 1500);
}

// Removes an agent instance's shm object when the test ends, however it ends.
struct ShmUnlinker {
  std::string instance;
  ~ShmUnlinker() { shm::Unlink("/llmgw-" + instance); }
};

// A controller of another llmgw version: its Fleet service streams snapshots whose shm ABI
// version is not ours. The agent refuses every one with a message naming both versions
// and publishes nothing from it (the local data plane keeps its last good snapshot).
class OtherVersionFleet final : public admin::v1::Fleet::Service {
 public:
  grpc::Status Sync(grpc::ServerContext* ctx,
                    grpc::ServerReaderWriter<admin::v1::FleetSnapshot, admin::v1::AgentStats>* stream) override {
    auto s = std::make_unique<shm::Snapshot>();
    std::memset(static_cast<void*>(s.get()), 0, sizeof(shm::Snapshot));
    s->generation = 5;
    s->num_backends = 1;
    s->num_models = 1;
    std::string wire = shm::EncodeSnapshot(*s);
    uint32_t other = shm::kShmAbiVersion + 1;
    std::memcpy(wire.data() + 4, &other, 4);  // the version field (common/snapshot_codec.h)
    admin::v1::FleetSnapshot f;
    f.set_shm_snapshot(wire);
    f.set_generation(5);
    while (!ctx->IsCancelled() && stream->Write(f)) std::this_thread::sleep_for(std::chrono::milliseconds(20));
    return grpc::Status::OK;
  }
};

TEST(FleetTest, AgentRefusesAControllerOfAnotherShmAbiVersion) {
  std::string agent_instance = "fleetut-" + std::to_string(getpid()) + "-v";
  ShmUnlinker unlinker{agent_instance};
  OtherVersionFleet service;
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
  builder.RegisterService(&service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  ASSERT_TRUE(server && port > 0);

  FleetAgent agent(ParseOrDie(Yaml(agent_instance, "http://127.0.0.1:1")), "127.0.0.1:" + std::to_string(port));
  ASSERT_TRUE(agent.Start().ok());
  std::atomic<bool> stop{false};
  std::thread loop([&] { agent.Run(stop); });
  bool refused = WaitFor([&] { return !agent.last_rejection().empty(); }, 5000);
  std::string why = agent.last_rejection();
  uint64_t applied = agent.snapshots_applied();
  stop = true;
  loop.join();
  agent.Shutdown();
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::milliseconds(300));
  ASSERT_TRUE(refused);
  EXPECT_NE(why.find("shm ABI version " + std::to_string(shm::kShmAbiVersion + 1)), std::string::npos) << why;
  EXPECT_NE(why.find("different llmgw versions"), std::string::npos) << why;
  EXPECT_EQ(applied, 0u);
}

// A controller host that takes the TCP connection and never speaks HTTP/2 (an llmcd
// hung at start-up or starved of CPU, a proxy that lost its upstream): the agent's call
// never starts and opening its stream blocks in gRPC. A stop must end the agent at once,
// as llmcd's SIGTERM exit is held to (fleet_integration_test, 1.5 s, once 1.7 s under
// load); before, only the connect timeout (20 s) ended the wait.
TEST(FleetTest, AgentStopsPromptlyWhileItsCallCannotStart) {
  std::string agent_instance = "fleetut-" + std::to_string(getpid()) + "-d";
  ShmUnlinker unlinker{agent_instance};
  // Listening, never accepting: the kernel completes the handshake, nobody answers.
  int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(lfd, 0);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(sa);
  ASSERT_EQ(bind(lfd, reinterpret_cast<sockaddr*>(&sa), sizeof(sa)), 0);
  ASSERT_EQ(listen(lfd, 16), 0);
  ASSERT_EQ(getsockname(lfd, reinterpret_cast<sockaddr*>(&sa), &len), 0);
  struct Closer {
    int fd;
    ~Closer() { close(fd); }
  } closer{lfd};

  // A long heartbeat: the silence watch (3 heartbeats) does not end the wait meanwhile.
  std::string y = Yaml(agent_instance, "http://127.0.0.1:1");
  y.replace(y.find("heartbeat_ms: 100"), 17, "heartbeat_ms: 20000");
  FleetAgent agent(ParseOrDie(y), "127.0.0.1:" + std::to_string(ntohs(sa.sin_port)));
  ASSERT_TRUE(agent.Start().ok());
  std::atomic<bool> stop{false}, stopped{false};
  std::thread loop([&] {
    agent.Run(stop);
    stopped = true;
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(1000));
  auto t0 = Clock::now();
  stop = true;
  bool prompt = WaitFor([&] { return stopped.load(); }, 1000);
  long ms = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0).count();
  loop.join();
  agent.Shutdown();
  EXPECT_TRUE(prompt) << "the agent took " << ms << " ms to stop";
}

}  // namespace
}  // namespace llmgw::cp
