// Secure fleet links in one process: a controller serving Fleet over TLS, an agent with
// fleet.tls_ca_file that attaches, a plaintext agent that gets nothing, a CA file without
// a certificate refused at start. Not in the TSan set (label threads): OpenSSL and the TLS
// paths of gRPC/abseil are uninstrumented and TSan reports their internals.
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <thread>

#include "common/shm.h"
#include "fleet_fixture.h"
#include "test_http_server.h"
#include "test_support.h"

namespace llmgw::cp {
namespace {

using testing::TestHttpServer;
using testing::TestResponse;
using llmgw::test::WaitFor;
using namespace fleet_test;

// Secure links: a controller serving its admin API over TLS (admin.tls_cert_file) has an
// agent with fleet.tls_ca_file attached (the certificate verified), while an agent that
// dials it in plaintext gets nothing. The self-signed pair is made by the openssl CLI.
TEST(FleetTlsTest, AgentAttachesOverTlsWithTheControllersCa) {
  TestHttpServer backend([](const std::string&) { return TestResponse{200, "ok"}; });
  char tmpl[] = "/tmp/llmgw-fleettls-XXXXXX";
  std::string dir = mkdtemp(tmpl);
  struct RemoveDir {
    std::string dir;
    ~RemoveDir() { std::filesystem::remove_all(dir); }
  } remove_dir{dir};
  std::string cert = dir + "/cert.pem", key = dir + "/key.pem";
  std::string cmd = "timeout 20 openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=localhost "
                    "-addext subjectAltName=DNS:localhost,IP:127.0.0.1 -keyout " + key + " -out " + cert +
                    " >/dev/null 2>&1";
  ASSERT_EQ(std::system(cmd.c_str()), 0) << "openssl failed";
  std::string instance = "fleettls-" + std::to_string(getpid());

  InProcessController ctl;
  Config ctl_cfg = ParseOrDie(Yaml(instance + "-c", backend.url()));
  ctl_cfg.admin.tls_cert_file = cert;
  ctl_cfg.admin.tls_key_file = key;
  ASSERT_TRUE(ctl.Start(ctl_cfg).ok());

  Config tls_cfg = ParseOrDie(Yaml(instance + "-t", "http://127.0.0.1:1"));
  tls_cfg.fleet.tls_ca_file = cert;
  InProcessAgent tls_agent(tls_cfg, ctl.addr());
  ASSERT_TRUE(tls_agent.Start().ok());
  InProcessAgent plain_agent(ParseOrDie(Yaml(instance + "-p", "http://127.0.0.1:1")), ctl.addr());
  ASSERT_TRUE(plain_agent.Start().ok());

  EXPECT_TRUE(WaitFor([&] { return tls_agent.agent.snapshots_applied() > 0; }, 5000));
  EXPECT_EQ(PublishedState(tls_agent.agent.region()), static_cast<int>(shm::BackendState::kHealthy));
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  EXPECT_EQ(plain_agent.agent.snapshots_applied(), 0u) << "a plaintext agent got snapshots from a TLS controller";

  // A CA file that holds no certificate is refused at start.
  std::string bad = dir + "/bad.pem";
  std::FILE* f = std::fopen(bad.c_str(), "w");
  ASSERT_NE(f, nullptr);
  std::fputs("not a certificate\n", f);
  std::fclose(f);
  Config bad_cfg = ParseOrDie(Yaml(instance + "-b", "http://127.0.0.1:1"));
  bad_cfg.fleet.tls_ca_file = bad;
  InProcessAgent bad_agent(bad_cfg, ctl.addr());
  Status st = bad_agent.Start();
  ASSERT_FALSE(st.ok());
  EXPECT_NE(std::string(st.error().message()).find("fleet.tls_ca_file"), std::string::npos) << st.error().message();
}

}  // namespace
}  // namespace llmgw::cp
