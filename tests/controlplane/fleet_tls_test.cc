// Secure fleet links in one process: a controller serving Fleet over TLS, an agent with
// fleet.tls_ca_file that attaches, a plaintext agent that gets nothing, a CA file without
// a certificate refused at start. Not in the TSan set (label threads): OpenSSL and the TLS
// paths of gRPC/abseil are uninstrumented and TSan reports their internals.
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <thread>
#include <vector>

#include "common/shm.h"
#include "controlplane/admin_service.h"
#include "controlplane/controller.h"
#include "controlplane/fleet.h"
#include "test_http_server.h"
#include "test_support.h"

namespace llmgw::cp {
namespace {

using testing::TestHttpServer;
using testing::TestResponse;
using llmgw::test::WaitFor;

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

int PublishedState(const shm::ShmRegion* r) {
  auto snap = std::make_unique<shm::Snapshot>();
  shm::SnapshotReader reader(r);
  if (!reader.Refresh(snap.get()) || snap->num_backends == 0) return -1;
  return snap->backends[0].state;
}

}  // namespace
}  // namespace llmgw::cp

namespace llmgw::cp {
namespace {

// Secure links: a controller serving its admin API over TLS (admin.tls_cert_file) has an
// agent with fleet.tls_ca_file attached (the certificate verified), while an agent that
// dials it in plaintext gets nothing. The self-signed pair is made by the openssl CLI.
TEST(FleetTlsTest, AgentAttachesOverTlsWithTheControllersCa) {
  TestHttpServer backend([](const std::string&) { return TestResponse{200, "ok"}; });
  char tmpl[] = "/tmp/llmgw-fleettls-XXXXXX";
  std::string dir = mkdtemp(tmpl);
  std::string cert = dir + "/cert.pem", key = dir + "/key.pem";
  std::string cmd = "timeout 20 openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=localhost "
                    "-addext subjectAltName=DNS:localhost,IP:127.0.0.1 -keyout " + key + " -out " + cert +
                    " >/dev/null 2>&1";
  ASSERT_EQ(std::system(cmd.c_str()), 0) << "openssl failed";
  std::string ctl_instance = "fleettls-" + std::to_string(getpid()) + "-c";
  std::string tls_instance = "fleettls-" + std::to_string(getpid()) + "-t";
  std::string plain_instance = "fleettls-" + std::to_string(getpid()) + "-p";
  struct Cleanup {
    std::vector<std::string> instances, files;
    std::string dir;
    ~Cleanup() {
      for (const auto& i : instances) shm::Unlink("/llmgw-" + i);
      for (const auto& f : files) std::remove(f.c_str());
      rmdir(dir.c_str());
    }
  } cleanup{{ctl_instance, tls_instance, plain_instance}, {cert, key}, dir};

  Controller controller;
  Config ctl_cfg = ParseOrDie(Yaml(ctl_instance, backend.url()));
  ctl_cfg.admin.tls_cert_file = cert;
  ctl_cfg.admin.tls_key_file = key;
  ASSERT_TRUE(controller.StartWithConfig(ctl_cfg).ok());
  AdminServer admin(&controller);
  admin.AddService([&controller](auto token, auto stopping) {
    return MakeFleetService(&controller, std::make_shared<FleetRegistry>(&controller), token, stopping);
  });
  ASSERT_TRUE(admin.Start(ctl_cfg.admin).ok());
  std::atomic<bool> stop{false};
  std::thread loop([&] { controller.Run(stop); });
  std::string addr = "127.0.0.1:" + std::to_string(admin.port());

  Config tls_cfg = ParseOrDie(Yaml(tls_instance, "http://127.0.0.1:1"));
  tls_cfg.fleet.tls_ca_file = cert;
  FleetAgent tls_agent(tls_cfg, addr);
  ASSERT_TRUE(tls_agent.Start().ok());
  FleetAgent plain_agent(ParseOrDie(Yaml(plain_instance, "http://127.0.0.1:1")), addr);
  ASSERT_TRUE(plain_agent.Start().ok());
  std::thread t1([&] { tls_agent.Run(stop); });
  std::thread t2([&] { plain_agent.Run(stop); });
  struct Joiner {
    std::atomic<bool>& stop;
    std::vector<std::thread*> threads;
    ~Joiner() {
      stop = true;
      for (auto* t : threads)
        if (t->joinable()) t->join();
    }
  } joiner{stop, {&t1, &t2, &loop}};

  EXPECT_TRUE(WaitFor([&] { return tls_agent.snapshots_applied() > 0; }, 5000));
  EXPECT_EQ(PublishedState(tls_agent.region()), static_cast<int>(shm::BackendState::kHealthy));
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  EXPECT_EQ(plain_agent.snapshots_applied(), 0u) << "a plaintext agent got snapshots from a TLS controller";

  // A CA file that holds no certificate is refused at start.
  std::string bad = dir + "/bad.pem";
  cleanup.files.push_back(bad);
  std::FILE* f = std::fopen(bad.c_str(), "w");
  ASSERT_NE(f, nullptr);
  std::fputs("not a certificate\n", f);
  std::fclose(f);
  Config bad_cfg = ParseOrDie(Yaml(plain_instance + "b", "http://127.0.0.1:1"));
  cleanup.instances.push_back(plain_instance + "b");
  bad_cfg.fleet.tls_ca_file = bad;
  FleetAgent bad_agent(bad_cfg, addr);
  Status st = bad_agent.Start();
  ASSERT_FALSE(st.ok());
  EXPECT_NE(std::string(st.error().message()).find("fleet.tls_ca_file"), std::string::npos) << st.error().message();

  stop = true;
  t1.join();
  t2.join();
  loop.join();
  tls_agent.Shutdown();
  plain_agent.Shutdown();
  admin.Stop();
  controller.Shutdown();
}

}  // namespace
}  // namespace llmgw::cp
