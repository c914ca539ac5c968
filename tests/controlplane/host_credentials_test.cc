// A fleet agent's backend keys (controlplane/host_credentials.h): the controller's
// snapshot travels without its keys but names where they come from; the agent fills in
// its own host's key, re-reads it when told, and a backend whose key this host cannot read
// is published UNHEALTHY (no keyless requests) with one clear log line, the rest of the
// snapshot served as it came.
#include "controlplane/host_credentials.h"

#include <gtest/gtest.h>
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include <cstring>
#include <memory>
#include <string>

#include "common/log.h"
#include "common/snapshot_codec.h"
#include "test_support.h"

namespace llmgw::cp {
namespace {

using llmgw::test::ReadFile;
using llmgw::test::WriteFileAtomically;

class HostCredentialsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/llmgw-hostcred-XXXXXX";
    dir_ = mkdtemp(tmpl);
  }
  void TearDown() override {
    SetLogFd(2);
    for (const char* f : {"agent.yaml", "provider.key", "other.key", "log"}) std::remove((dir_ + "/" + f).c_str());
    rmdir(dir_.c_str());
    unsetenv("LLMGW_HOSTCRED_TEST_KEY");
  }
  // What a controller publishes: b0 keyed from a file (relative, as configured), b1 from
  // a variable, b2 a plain backend; the controller's own keys are in it.
  std::unique_ptr<shm::Snapshot> ControllerSnapshot() {
    auto s = std::make_unique<shm::Snapshot>();
    std::memset(static_cast<void*>(s.get()), 0, sizeof(shm::Snapshot));
    s->num_models = 1;
    std::strcpy(s->models[0].name, "m");
    s->models[0].present = 1;
    s->num_backends = 3;
    const char* ids[] = {"b0", "b1", "b2"};
    for (int i = 0; i < 3; ++i) {
      std::strcpy(s->backends[i].id, ids[i]);
      s->backends[i].state = static_cast<uint8_t>(shm::BackendState::kHealthy);
    }
    std::strcpy(s->upstreams[0].api_key, "sk-controller-file");
    std::strcpy(s->upstreams[0].api_key_file, "provider.key");
    std::strcpy(s->upstreams[1].api_key, "sk-controller-env");
    std::strcpy(s->upstreams[1].api_key_env, "LLMGW_HOSTCRED_TEST_KEY");
    return s;
  }
  // The controller's snapshot as an agent receives it: through the fleet wire form.
  std::unique_ptr<shm::Snapshot> Received() {
    std::string wire = shm::EncodeSnapshot(*ControllerSnapshot());
    auto d = std::make_unique<shm::Snapshot>();
    std::string why;
    EXPECT_TRUE(shm::DecodeSnapshot(wire, d.get(), &why)) << why;
    return d;
  }
  std::string Key(const shm::Snapshot& s, int i) { return s.upstreams[i].api_key; }
  int State(const shm::Snapshot& s, int i) { return s.backends[i].state; }
  static constexpr int kHealthy = static_cast<int>(shm::BackendState::kHealthy);
  static constexpr int kUnhealthy = static_cast<int>(shm::BackendState::kUnhealthy);

  std::string dir_;
};

TEST_F(HostCredentialsTest, TheWireCarriesWhereTheKeyIsButNeverTheKey) {
  std::string wire = shm::EncodeSnapshot(*ControllerSnapshot());
  EXPECT_EQ(wire.find("sk-controller"), std::string::npos);
  EXPECT_NE(wire.find("provider.key"), std::string::npos);
  EXPECT_NE(wire.find("LLMGW_HOSTCRED_TEST_KEY"), std::string::npos);
}

TEST_F(HostCredentialsTest, FillsThisHostsKeysFromItsFileAndVariable) {
  WriteFileAtomically(dir_ + "/provider.key", "sk-agent-file\n");
  setenv("LLMGW_HOSTCRED_TEST_KEY", "sk-agent-env", 1);
  HostCredentials creds(dir_ + "/agent.yaml");  // relative paths are under this host's config folder
  auto s = Received();
  EXPECT_EQ(creds.Fill(s.get()), 0u);
  EXPECT_EQ(Key(*s, 0), "sk-agent-file");  // newline dropped, as on the controller
  EXPECT_EQ(Key(*s, 1), "sk-agent-env");
  EXPECT_EQ(Key(*s, 2), "");
  for (int i = 0; i < 3; ++i) EXPECT_EQ(State(*s, i), kHealthy) << i;
  EXPECT_TRUE(creds.problems().empty());
  ASSERT_EQ(creds.files().size(), 1u);
  EXPECT_EQ(creds.files()[0], dir_ + "/provider.key");
}

// Whatever key a snapshot brings is replaced by this host's: an agent never passes on a
// key it did not read itself (a snapshot the controller filled for its own host).
TEST_F(HostCredentialsTest, AKeyInTheIncomingSnapshotIsNeverUsed) {
  WriteFileAtomically(dir_ + "/provider.key", "sk-agent-file");
  HostCredentials creds(dir_ + "/agent.yaml");
  auto s = ControllerSnapshot();  // with the controller's keys in it
  creds.Fill(s.get());
  EXPECT_EQ(Key(*s, 0), "sk-agent-file");
  EXPECT_EQ(Key(*s, 1), "") << "this host has no LLMGW_HOSTCRED_TEST_KEY";
  EXPECT_EQ(State(*s, 1), kUnhealthy);
}

TEST_F(HostCredentialsTest, AMissingKeyMakesOnlyThatBackendUnusableAndIsLoggedOnce) {
  std::string log = dir_ + "/log";
  int fd = open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  ASSERT_GE(fd, 0);
  SetLogFd(fd);
  setenv("LLMGW_HOSTCRED_TEST_KEY", "sk-agent-env", 1);
  HostCredentials creds(dir_ + "/agent.yaml");  // no provider.key on this host
  for (int n = 0; n < 5; ++n) {  // a snapshot every heartbeat
    auto s = Received();
    EXPECT_EQ(creds.Fill(s.get()), 1u);
    EXPECT_EQ(Key(*s, 0), "");
    EXPECT_EQ(State(*s, 0), kUnhealthy) << "never sent keyless requests";
    EXPECT_EQ(Key(*s, 1), "sk-agent-env");
    EXPECT_EQ(State(*s, 1), kHealthy);
    EXPECT_EQ(State(*s, 2), kHealthy);
    if (n == 2) creds.Invalidate();  // a re-read that finds the same problem says nothing new
  }
  ASSERT_EQ(creds.problems().count("b0"), 1u);
  EXPECT_NE(creds.problems().at("b0").find("cannot read " + dir_ + "/provider.key"), std::string::npos)
      << creds.problems().at("b0");
  // The key shows up (a Secret mounted late): read at the next re-read, said once.
  WriteFileAtomically(dir_ + "/provider.key", "sk-agent-file");
  creds.Invalidate();
  for (int n = 0; n < 3; ++n) {
    auto s = Received();
    EXPECT_EQ(creds.Fill(s.get()), 0u);
    EXPECT_EQ(Key(*s, 0), "sk-agent-file");
    EXPECT_EQ(State(*s, 0), kHealthy);
  }
  SetLogFd(2);
  close(fd);
  std::string text = ReadFile(log);
  auto count = [&](const std::string& what) {
    size_t n = 0;
    for (size_t at = 0; (at = text.find(what, at)) != std::string::npos; at += what.size()) ++n;
    return n;
  };
  EXPECT_EQ(count("backend key not readable on this host"), 1u) << text;
  EXPECT_EQ(count("backend key readable again on this host"), 1u) << text;
  EXPECT_NE(text.find("\"backend\":\"b0\""), std::string::npos) << text;
  EXPECT_EQ(text.find("sk-agent"), std::string::npos) << "keys are never logged";
}

TEST_F(HostCredentialsTest, ARotatedFileIsReadWhenTold) {
  WriteFileAtomically(dir_ + "/provider.key", "sk-old");
  HostCredentials creds(dir_ + "/agent.yaml");
  auto s = Received();
  creds.Fill(s.get());
  EXPECT_EQ(Key(*s, 0), "sk-old");
  WriteFileAtomically(dir_ + "/provider.key", "sk-new");
  s = Received();
  creds.Fill(s.get());
  EXPECT_EQ(Key(*s, 0), "sk-old") << "read once, not on every snapshot";
  creds.Invalidate();
  s = Received();
  creds.Fill(s.get());
  EXPECT_EQ(Key(*s, 0), "sk-new");
}

TEST_F(HostCredentialsTest, AMalformedKeyIsRefusedWithoutEchoingIt) {
  WriteFileAtomically(dir_ + "/provider.key", "sk has spaces");
  HostCredentials creds(dir_ + "/agent.yaml");
  auto s = Received();
  EXPECT_EQ(creds.Fill(s.get()), 2u);  // and no LLMGW_HOSTCRED_TEST_KEY
  EXPECT_EQ(State(*s, 0), kUnhealthy);
  EXPECT_EQ(creds.problems().at("b0"), "the key contains whitespace or non-printable characters");
  EXPECT_EQ(creds.problems().at("b1"), "environment variable LLMGW_HOSTCRED_TEST_KEY is not set");
}

}  // namespace
}  // namespace llmgw::cp
