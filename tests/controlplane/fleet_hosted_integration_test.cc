// Hosted backends in a fleet, with real processes on loopback: a controller llmcd and an
// agent llmcd (`--agent-of`) with its llmgw, in front of llmgw-mock speaking OpenAI over
// TLS (a throwaway CA) that accepts one API key. Each host has its own key file at the
// same relative path (next to its config file, as a Secret mounted on every pod gives):
// the controller's Fleet stream carries where the key is, never the key; the agent's
// llmgw reaches the provider with the agent host's key; a key file rotated on the agent's
// host is picked up without a restart; a key the agent cannot use takes the backend out
// of its routing (no keyless request reaches the provider), said once in its log.
#include <curl/curl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <cstdio>
#include <string>

#include "common/shm.h"
#include "e2e_process.h"
#include "tests/tls/test_pki.h"
#include "tests/tls/tls_mock_stat.h"

namespace llmgw::e2e {
namespace {

const std::string kKey1 = "sk-fleet-hosted-one-0123456789";
const std::string kKey2 = "sk-fleet-hosted-two-9876543210";

size_t Count(const std::string& text, const std::string& what) {
  size_t n = 0;
  for (size_t at = 0; (at = text.find(what, at)) != std::string::npos; at += what.size()) ++n;
  return n;
}

class FleetHostedTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(pki_.ok()) << pki_.error();
    char tmpl[] = "/tmp/llmgw-fleethosted-XXXXXX";
    dir_ = mkdtemp(tmpl);
    mkdir((dir_ + "/ctl").c_str(), 0700);
    mkdir((dir_ + "/agent").c_str(), 0700);
    std::string pid = std::to_string(getpid());
    ctl_instance_ = "fhc-" + pid;
    agent_instance_ = "fha-" + pid;
    mock_port_ = FreePort();
    ctl_grpc_ = FreePort();
  }
  void TearDown() override {
    gw_.reset();
    agent_.reset();
    ctl_.reset();
    mock_.reset();
    for (const auto& i : {ctl_instance_, agent_instance_}) {
      shm::Unlink("/llmgw-" + i);
      std::remove(("/dev/shm/llmgw-" + i + ".writer").c_str());
    }
    for (const char* f : {"ctl/llmcd.yaml", "ctl/provider.key", "agent/llmcd.yaml", "agent/provider.key", "ctl.log",
                          "agent.log", "gw.log", "mock.log"})
      std::remove((dir_ + "/" + f).c_str());
    rmdir((dir_ + "/ctl").c_str());
    rmdir((dir_ + "/agent").c_str());
    rmdir(dir_.c_str());
  }
  void StartMock(const std::string& key) {
    mock_.reset();
    mock_ = std::make_unique<Proc>(
        std::vector<std::string>{LLMGW_MOCK_BIN, "--listen", "127.0.0.1:" + std::to_string(mock_port_), "--model", "m",
                                 "--provider", "openai", "--api-key", key, "--tls", pki_.server_cert(),
                                 pki_.server_key(), "--token-interval-ms", "0", "--output-tokens", "1"},
        dir_ + "/mock.log", true);
    ASSERT_EQ(mock_->port(), mock_port_) << ReadFile(dir_ + "/mock.log");
  }
  // The controller's config names the hosted backend. It probes once at start, then not
  // for the test's length: its own host's key is not rotated with the agent's here, and
  // its probes must neither take the backend out of the fleet's table nor count among
  // the requests the provider refused.
  std::string ControllerYaml() {
    return "instance: " + ctl_instance_ +
           "\nadmin:\n  grpc_listen: 127.0.0.1:" + std::to_string(ctl_grpc_) +
           "\n  metrics_listen: 127.0.0.1:" + std::to_string(FreePort()) +
           "\nhealth: { interval_ms: 600000 }\n"
           "control: { tick_ms: 20, heartbeat_ms: 200 }\n"
           "models:\n  - name: m\n    backends:\n"
           "      - { id: hosted, url: \"https://127.0.0.1:" + std::to_string(mock_port_) +
           "\", provider: openai, api_key_file: provider.key, tls: { ca_file: \"" + pki_.ca_cert() + "\" } }\n";
  }
  // The agent's own file: its instance, listener and admin; its models are the controller's.
  std::string AgentYaml() {
    return "instance: " + agent_instance_ +
           "\ngateway:\n  listen: 127.0.0.1:0\n  threads: 1\n"
           "admin:\n  grpc_listen: 127.0.0.1:" + std::to_string(FreePort()) +
           "\n  metrics_listen: 127.0.0.1:" + std::to_string(FreePort()) +
           "\ncontrol: { tick_ms: 20, heartbeat_ms: 200 }\n"
           "models:\n  - name: unused\n    backends:\n      - { url: \"http://127.0.0.1:1\" }\n";
  }
  void StartFleet() {
    WriteFileAtomically(dir_ + "/ctl/provider.key", kKey1 + "\n");
    WriteFileAtomically(dir_ + "/agent/provider.key", kKey1 + "\n");
    WriteFileAtomically(dir_ + "/ctl/llmcd.yaml", ControllerYaml());
    WriteFileAtomically(dir_ + "/agent/llmcd.yaml", AgentYaml());
    StartMock(kKey1);
    if (HasFatalFailure()) return;
    ctl_ = std::make_unique<Proc>(std::vector<std::string>{LLMCD_BIN, "--config", dir_ + "/ctl/llmcd.yaml"},
                                  dir_ + "/ctl.log", false);
    agent_ = std::make_unique<Proc>(std::vector<std::string>{LLMCD_BIN, "--config", dir_ + "/agent/llmcd.yaml",
                                                             "--agent-of", "127.0.0.1:" + std::to_string(ctl_grpc_)},
                                    dir_ + "/agent.log", false);
    gw_ = std::make_unique<Proc>(std::vector<std::string>{LLMGW_BIN, "--config", dir_ + "/agent/llmcd.yaml"},
                                 dir_ + "/gw.log", true);
    ASSERT_GT(gw_->port(), 0) << Logs();
    ASSERT_TRUE(WaitFor([&] { return HttpCall(gw_->port(), "GET", "/ready", "", 1000).status == 200; }, 10000))
        << Logs();
  }
  int Chat() { return HttpCall(gw_->port(), "POST", "/v1/chat/completions", kChatBody, 5000).status; }
  std::string Logs() {
    std::string s;
    for (const char* f : {"ctl.log", "agent.log", "gw.log", "mock.log"})
      s += std::string("--- ") + f + "\n" + ReadFile(dir_ + "/" + f);
    return s;
  }

  test::TestPki pki_;
  std::string dir_, ctl_instance_, agent_instance_;
  int mock_port_ = 0, ctl_grpc_ = 0;
  std::unique_ptr<Proc> mock_, ctl_, agent_, gw_;
};

TEST_F(FleetHostedTest, AgentsUseTheirOwnHostsKeyAndFollowItsRotation) {
  StartFleet();
  if (HasFatalFailure()) return;

  // What the controller sends an agent: read on the Fleet stream as an agent would.
  {
    auto channel = grpc::CreateChannel("127.0.0.1:" + std::to_string(ctl_grpc_), grpc::InsecureChannelCredentials());
    auto stub = pb::Fleet::NewStub(channel);
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
    auto stream = stub->Sync(&ctx);
    pb::FleetSnapshot f;
    std::string wire;
    while (wire.empty() && stream->Read(&f)) wire = f.shm_snapshot();
    ctx.TryCancel();
    ASSERT_FALSE(wire.empty()) << Logs();
    EXPECT_EQ(wire.find(kKey1), std::string::npos) << "a provider key on the fleet link";
    EXPECT_NE(wire.find("provider.key"), std::string::npos) << "where the key is travels";
    EXPECT_EQ(f.config_yaml().find(kKey1), std::string::npos);
  }

  // The agent's llmgw reaches the provider with the agent host's key (the mock answers
  // 200 only to it).
  ASSERT_TRUE(WaitFor([&] { return Chat() == 200; }, 10000)) << Logs();
  for (int i = 0; i < 5; ++i) EXPECT_EQ(Chat(), 200) << Logs();
  EXPECT_EQ(test::TlsMockStat(mock_port_, pki_.ca_cert(), "provider_auth_failures_total"), 0);

  // The provider now takes another key; until this host's file has it, requests fail.
  StartMock(kKey2);
  if (HasFatalFailure()) return;
  ASSERT_TRUE(WaitFor([&] { return Chat() != 200; }, 5000)) << Logs();
  EXPECT_GT(test::TlsMockStat(mock_port_, pki_.ca_cert(), "provider_auth_failures_total"), 0);
  // Rotated on the agent's host only (write and rename): used without a restart, the
  // controller neither reloaded nor told.
  WriteFileAtomically(dir_ + "/agent/provider.key", kKey2 + "\n");
  EXPECT_TRUE(WaitFor([&] { return Chat() == 200; }, 5000)) << Logs();
  for (int i = 0; i < 5; ++i) EXPECT_EQ(Chat(), 200) << Logs();

  // A key this host cannot use (an empty file): the backend leaves this host's routing,
  // no keyless request reaches the provider, and the agent says so once.
  long refused = test::TlsMockStat(mock_port_, pki_.ca_cert(), "provider_auth_failures_total");
  WriteFileAtomically(dir_ + "/agent/provider.key", "");
  EXPECT_TRUE(WaitFor([&] { return Chat() == 503; }, 5000)) << Logs();
  for (int i = 0; i < 5; ++i) EXPECT_EQ(Chat(), 503);
  std::this_thread::sleep_for(std::chrono::milliseconds(1000));  // five more controller snapshots
  EXPECT_EQ(test::TlsMockStat(mock_port_, pki_.ca_cert(), "provider_auth_failures_total"), refused);
  std::string agent_log = ReadFile(dir_ + "/agent.log");
  EXPECT_EQ(Count(agent_log, "backend key not readable on this host"), 1u) << agent_log;
  EXPECT_NE(agent_log.find("the key is empty"), std::string::npos) << agent_log;

  // Fixed again: served again.
  WriteFileAtomically(dir_ + "/agent/provider.key", kKey2);
  EXPECT_TRUE(WaitFor([&] { return Chat() == 200; }, 5000)) << Logs();
  std::string logs = Logs();
  EXPECT_EQ(logs.find(kKey1), std::string::npos) << "a key in a log";
  EXPECT_EQ(logs.find(kKey2), std::string::npos) << "a key in a log";
}

}  // namespace
}  // namespace llmgw::e2e
