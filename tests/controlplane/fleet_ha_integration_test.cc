// The HA fleet with real processes on loopback: a real etcd (its own data dir in a temp
// dir, random free ports, killed at the end), two controllers campaigning through it, an
// agent that finds the leader in etcd, and an llmgw on the agent's instance under load.
// SIGKILL the leader mid-load: no request fails, the standby takes the lead and the agent's
// shm gets a new snapshot from it within 2 x lease_ms, and an operator's drain made on the
// old leader holds on the new one.
#include <gtest/gtest.h>
#include <google/protobuf/util/json_util.h>
#include <sys/mman.h>

#include <filesystem>
#include <memory>

#include "common/shm.h"
#include "e2e_process.h"
#include "etcd_fixture.h"

namespace llmgw::e2e {
namespace {

constexpr int kLeaseMs = 2000;

class FleetHaTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (std::string why = EtcdMissing(); !why.empty()) GTEST_SKIP() << why;
    char tmpl[] = "/tmp/llmgw-fleetha-XXXXXX";
    dir_ = mkdtemp(tmpl);
    EtcdProcess etcd = StartEtcdProcess(dir_);
    etcd_ = std::move(etcd.proc);
    etcd_port_ = etcd.port;
    ASSERT_TRUE(WaitFor([&] { return HttpCall(etcd_port_, "POST", "/v3/kv/range", R"({"key":"eA=="})", 500).status == 200; },
                        10000))
        << ReadFile(dir_ + "/etcd.log");
    for (int i = 0; i < 2; ++i)
      mocks_.push_back(std::make_unique<Proc>(
          std::vector<std::string>{LLMGW_MOCK_BIN, "--listen", "127.0.0.1:0", "--model", "m", "--token-interval-ms",
                                   "0", "--output-tokens", "4"},
          dir_ + "/mock.log", true));
    prefix_ = "/t" + std::to_string(getpid()) + "/";
    for (int i = 0; i < 2; ++i) {
      ctl_instance_[i] = "fleethac" + std::to_string(i) + "-" + std::to_string(getpid());
      ctl_grpc_[i] = FreePort();
      WriteFileAtomically(dir_ + "/c" + std::to_string(i) + ".yaml",
                          Config(ctl_instance_[i], ctl_grpc_[i], "controller", "ctl" + std::to_string(i)));
    }
    agent_instance_ = "fleethaa-" + std::to_string(getpid());
    WriteFileAtomically(dir_ + "/agent.yaml", Config(agent_instance_, FreePort(), "agent", "gw-a"));
  }
  void TearDown() override {
    load_.reset();
    gw_.reset();
    agent_.reset();
    ctl_[0].reset();
    ctl_[1].reset();
    mocks_.clear();
    etcd_.reset();
    for (const auto& i : {ctl_instance_[0], ctl_instance_[1], agent_instance_})
      if (!i.empty()) {
        shm::Unlink("/llmgw-" + i);
        std::remove(("/dev/shm/llmgw-" + i + ".writer").c_str());  // left by a SIGKILLed llmcd
      }
    if (!dir_.empty()) std::filesystem::remove_all(dir_);
  }
  std::string Config(const std::string& instance, int grpc_port, const std::string& role, const std::string& id) {
    std::string y = "instance: " + instance +
                    "\ngateway:\n  listen: 127.0.0.1:0\n  threads: 1\n  retries: { max: 2, backoff_ms: 10 }\n"
                    "admin:\n  grpc_listen: 127.0.0.1:" + std::to_string(grpc_port) +
                    "\n  metrics_listen: 127.0.0.1:" + std::to_string(FreePort()) +
                    "\nhealth: { interval_ms: 300, timeout_ms: 1000, unhealthy_after: 2, healthy_after: 1 }\n"
                    "control: { tick_ms: 20, heartbeat_ms: 200 }\n"
                    "fleet:\n  role: " + role + "\n  agent_id: " + id +
                    "\n  etcd: { endpoints: [\"http://127.0.0.1:" + std::to_string(etcd_port_) + "\"], prefix: " +
                    prefix_ + ", lease_ms: " + std::to_string(kLeaseMs) + " }\n"
                    "models:\n  - name: m\n    policy: round_robin\n    backends:\n";
    for (size_t i = 0; i < mocks_.size(); ++i)
      y += "      - { id: b" + std::to_string(i) + ", url: \"" + mocks_[i]->url() + "\" }\n";
    return y;
  }
  void StartController(int i) {
    ctl_[i] = std::make_unique<Proc>(
        std::vector<std::string>{LLMCD_BIN, "--config", dir_ + "/c" + std::to_string(i) + ".yaml"},
        dir_ + "/c" + std::to_string(i) + ".log", false);
  }
  pb::ListGatewaysResponse Fleet(int i) {
    pb::ListGatewaysResponse r;
    CliResult c = RunLlmctl({"--addr", "127.0.0.1:" + std::to_string(ctl_grpc_[i]), "fleet", "-o", "json"}, 5000);
    if (c.code == 0) google::protobuf::util::JsonStringToMessage(c.out, &r);
    return r;
  }
  // The generation of the snapshot in the agent's shm (read-only mapping).
  uint64_t AgentGeneration() {
    int fd = shm_open(("/llmgw-" + agent_instance_).c_str(), O_RDONLY, 0);
    if (fd < 0) return 0;
    void* p = mmap(nullptr, sizeof(shm::ShmHeader), PROT_READ, MAP_SHARED, fd, 0);
    close(fd);
    if (p == MAP_FAILED) return 0;
    uint64_t g = static_cast<const shm::ShmHeader*>(p)->generation.load();
    munmap(p, sizeof(shm::ShmHeader));
    return g;
  }
  std::string Logs() {
    std::string s;
    for (const char* f : {"c0.log", "c1.log", "agent.log", "llmgw.log"})
      s += std::string("--- ") + f + "\n" + ReadFile(dir_ + "/" + f);
    return s;
  }

  std::string dir_, prefix_, ctl_instance_[2], agent_instance_;
  int etcd_port_ = 0, ctl_grpc_[2] = {0, 0};
  std::unique_ptr<Proc> etcd_, ctl_[2], agent_, gw_;
  std::vector<std::unique_ptr<Proc>> mocks_;
  std::unique_ptr<Load> load_;
};

TEST_F(FleetHaTest, LeaderKilledUnderLoadStandbyPublishesWithinTwoLeasesNoRequestFails) {
  StartController(0);
  ASSERT_TRUE(WaitFor([&] { return Fleet(0).is_leader(); }, 10000)) << Logs();
  StartController(1);
  pb::ListGatewaysResponse f;
  ASSERT_TRUE(WaitFor([&] {
    f = Fleet(1);
    return f.controllers_size() == 2 && !f.is_leader() && f.leader() == "ctl0";
  }, 10000)) << f.DebugString() << Logs();

  agent_ = std::make_unique<Proc>(std::vector<std::string>{LLMCD_BIN, "--config", dir_ + "/agent.yaml"},
                                  dir_ + "/agent.log", false);
  gw_ = std::make_unique<Proc>(std::vector<std::string>{LLMGW_BIN, "--config", dir_ + "/agent.yaml"},
                               dir_ + "/llmgw.log", true);
  ASSERT_GT(gw_->port(), 0) << Logs();
  ASSERT_TRUE(WaitFor([&] { return HttpCall(gw_->port(), "GET", "/ready", "", 1000).status == 200; }, 10000))
      << Logs();
  // The leader counts the agent; the standby refuses agents.
  ASSERT_TRUE(WaitFor([&] { return Fleet(0).gateways_size() == 1; }, 5000)) << Logs();
  EXPECT_EQ(Fleet(1).gateways_size(), 0);

  // An operator drains b1 on the leader: the standby follows (through etcd).
  auto stub0 = AdminStub(ctl_grpc_[0]);
  auto stub1 = AdminStub(ctl_grpc_[1]);
  pb::BackendRequest req;
  req.set_id("b1");
  pb::BackendResponse resp;
  ASSERT_TRUE(stub0->DrainBackend(Ctx().get(), req, &resp).ok());
  ASSERT_TRUE(WaitFor([&] { return StateOf(stub1.get(), "b1") == pb::DRAINING; }, 3 * kLeaseMs)) << Logs();

  load_ = std::make_unique<Load>(gw_->port(), 4);
  ASSERT_TRUE(load_->WaitMore(50, 10000)) << load_->failures() << Logs();
  ctl_[0]->Kill();  // SIGKILL: no resignation, the lease has to lapse
  auto killed = Clock::now();
  uint64_t gen = AgentGeneration();
  ASSERT_TRUE(WaitFor([&] { return AgentGeneration() > gen; }, 4 * kLeaseMs)) << Logs();
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - killed).count();
  EXPECT_LT(ms, 2 * kLeaseMs) << "the standby's first snapshot reached the agent " << ms << " ms after the kill";
  std::printf("failover: new snapshot in the agent's shm %lld ms after SIGKILL of the leader (lease_ms %d)\n",
              static_cast<long long>(ms), kLeaseMs);
  f = Fleet(1);
  EXPECT_TRUE(f.is_leader()) << f.DebugString();
  EXPECT_EQ(f.leader(), "ctl1");
  ASSERT_TRUE(load_->WaitMore(50, 10000)) << load_->failures() << Logs();
  EXPECT_EQ(StateOf(stub1.get(), "b1"), pb::DRAINING) << "the drain was lost in the failover";
  long b1 = MockStat(mocks_[1]->port(), "requests_total");
  ASSERT_TRUE(load_->WaitMore(20, 10000)) << load_->failures() << Logs();
  EXPECT_EQ(MockStat(mocks_[1]->port(), "requests_total"), b1) << "the agent's llmgw sends to drained b1";
  load_->Stop();
  EXPECT_EQ(load_->failed(), 0u) << load_->failures();
  EXPECT_GT(load_->ok(), 100u);
  // The new leader counts the agent, and only itself is registered now.
  EXPECT_TRUE(WaitFor([&] {
    f = Fleet(1);
    return f.gateways_size() == 1 && f.controllers_size() == 1;
  }, 3 * kLeaseMs)) << f.DebugString();
}

}  // namespace
}  // namespace llmgw::e2e
