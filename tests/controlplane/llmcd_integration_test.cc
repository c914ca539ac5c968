// End to end with the real llmcd binary: it starts from a config file, probes and
// scrapes in-process loopback backends, serves the admin API and Prometheus, notices a
// killed backend within two probe intervals, reloads on file change (rejecting a bad
// file and keeping the old config) and on SIGHUP, and exits cleanly on SIGTERM.
#include <gtest/gtest.h>
#include <signal.h>
#include <arpa/inet.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <thread>

#include <grpcpp/grpcpp.h>

#include "common/shm.h"
#include "controlplane/http_client.h"
#include "e2e_process.h"
#include "llmgw/admin/v1/admin.grpc.pb.h"
#include "test_http_server.h"
#include "tests/tls/test_pki.h"

namespace llmgw::cp {
namespace {

namespace pb = ::llmgw::admin::v1;
using testing::FreePort;
using testing::TestHttpServer;
using testing::TestResponse;
using Clock = std::chrono::steady_clock;
using e2e::Ctx;
using e2e::ReadFile;
using e2e::StateOf;
using e2e::WaitFor;
using e2e::WriteFileAtomically;

const char kVllmMetrics[] =
    "vllm:num_requests_running{engine=\"0\"} 5.0\nvllm:num_requests_waiting{engine=\"0\"} 3.0\n"
    "vllm:kv_cache_usage_perc{engine=\"0\"} 0.62\n";

// The real llmcd on config, its stderr (the JSON log) appended to log.
class Llmcd : public e2e::Proc {
 public:
  Llmcd(const std::string& config, const std::string& log) : Proc({LLMCD_BIN, "--config", config}, log, false) {}
};

HttpResponse Get(uint16_t port, const std::string& path) {
  HttpTarget t;
  auto* sa = reinterpret_cast<sockaddr_in*>(&t.addr);
  sa->sin_family = AF_INET;
  sa->sin_port = htons(port);
  sa->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  t.addr_len = sizeof(sockaddr_in);
  t.host_header = "127.0.0.1";
  return HttpGet(t, path, 2000);
}

class LlmcdIntegrationTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/llmcd-it-XXXXXX";
    dir_ = mkdtemp(tmpl);
    config_ = dir_ + "/llmcd.yaml";
    log_ = dir_ + "/llmcd.log";
    instance_ = "cpit-" + std::to_string(getpid());
    grpc_port_ = FreePort();
    metrics_port_ = FreePort();
  }
  void TearDown() override {
    // A failed test SIGKILLs llmcd, which then cannot remove its shm object.
    shm::Unlink("/llmgw-" + instance_);
    std::remove(config_.c_str());
    std::remove((config_ + ".tmp").c_str());
    std::remove(log_.c_str());
    rmdir(dir_.c_str());
  }
  std::string Config(const std::vector<std::string>& urls, const std::string& grpc_host = "127.0.0.1") {
    std::string y = "instance: " + instance_ + "\nadmin:\n  grpc_listen: " + grpc_host + ":" +
                    std::to_string(grpc_port_) + "\n  metrics_listen: 127.0.0.1:" + std::to_string(metrics_port_) +
                    "\nhealth: { interval_ms: 200, timeout_ms: 150, unhealthy_after: 2, healthy_after: 1, "
                    "scrape_interval_ms: 200 }\ncontrol: { tick_ms: 20, heartbeat_ms: 200 }\n"
                    "models:\n  - name: m\n    backends:\n";
    for (const auto& u : urls) y += "      - { url: " + u + " }\n";
    return y;
  }
  std::unique_ptr<pb::Admin::Stub> Stub() { return e2e::AdminStub(grpc_port_); }
  pb::GetStatusResponse Status(pb::Admin::Stub* stub) {
    pb::GetStatusResponse r;
    grpc::Status st = stub->GetStatus(Ctx().get(), {}, &r);
    if (!st.ok()) last_rpc_error_ = st.error_message();
    return r;
  }

  std::string dir_, config_, log_, instance_, last_rpc_error_;
  uint16_t grpc_port_ = 0, metrics_port_ = 0;
};

TEST_F(LlmcdIntegrationTest, ServesProbesReloadsAndExitsCleanly) {
  TestHttpServer a([](const std::string& p) {
    return p == "/metrics" ? TestResponse{200, kVllmMetrics} : TestResponse{200, "ok"};
  });
  auto b = std::make_unique<TestHttpServer>([](const std::string&) { return TestResponse{200, "ok"}; });
  std::string b_url = b->url();
  WriteFileAtomically(config_, Config({a.url(), b_url}));
  Llmcd proc(config_, log_);
  auto stub = Stub();
  ASSERT_TRUE(WaitFor([&] { return Status(stub.get()).backends_total() == 2; }, 5000))
      << last_rpc_error_ << "\n" << ReadFile(log_);
  ASSERT_TRUE(WaitFor([&] {
    pb::ListBackendsResponse r;
    return stub->ListBackends(Ctx().get(), {}, &r).ok() && r.backends_size() == 2 && !r.backends(0).metrics_stale();
  }, 3000));

  // Prometheus exposition and /load-stats.
  HttpResponse m = Get(metrics_port_, "/metrics");
  ASSERT_TRUE(m.ok()) << m.error;
  EXPECT_NE(m.body.find("llm_worker_running_requests{id=\"" + a.url() + "\"} 5"), std::string::npos) << m.body;
  EXPECT_NE(m.body.find("llm_gateway_healthy_workers 2"), std::string::npos);
  EXPECT_NE(m.body.find("llm_circuit_breaker_state{id=\"" + b_url + "\"} 0"), std::string::npos);
  HttpResponse ls = Get(metrics_port_, "/load-stats");
  ASSERT_TRUE(ls.ok()) << ls.error;
  EXPECT_EQ(ls.status, 200);
  EXPECT_NE(ls.body.find("\"servers\":[{\"url\":\"" + a.url() + "\""), std::string::npos) << ls.body;
  EXPECT_NE(ls.body.find("\"summary\":{\"total_servers\":2,\"healthy_servers\":2"), std::string::npos) << ls.body;

  // A killed backend is UNHEALTHY within two probe intervals (200 ms each).
  b->Stop();
  auto killed = Clock::now();
  ASSERT_TRUE(WaitFor([&] { return StateOf(stub.get(), b_url) == pb::UNHEALTHY; }, 2000));
  auto took = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - killed).count();
  EXPECT_LE(took, 2 * 200 + 100);
  EXPECT_EQ(StateOf(stub.get(), a.url()), pb::HEALTHY);

  // A bad file is rejected (counted) and the old config keeps serving.
  WriteFileAtomically(config_, "instance: " + instance_ + "\nmodels:\n  - name: m\n    policy: nope\n");
  ASSERT_TRUE(WaitFor([&] { return Status(stub.get()).config_reload_failures() == 1; }, 3000)) << ReadFile(log_);
  EXPECT_EQ(Status(stub.get()).backends_total(), 2u);
  EXPECT_NE(ReadFile(log_).find("unknown policy 'nope'"), std::string::npos);

  // A good file is applied.
  WriteFileAtomically(config_, Config({a.url()}));
  ASSERT_TRUE(WaitFor([&] { return Status(stub.get()).backends_total() == 1; }, 3000)) << ReadFile(log_);
  uint64_t reloads = Status(stub.get()).config_reloads();
  EXPECT_GE(reloads, 1u);

  // SIGHUP reloads too.
  kill(proc.pid(), SIGHUP);
  ASSERT_TRUE(WaitFor([&] { return Status(stub.get()).config_reloads() == reloads + 1; }, 3000));

  // SIGTERM: clean exit and the shm object is gone (no llmgw attached).
  kill(proc.pid(), SIGTERM);
  EXPECT_EQ(proc.WaitExit(5000), 0) << ReadFile(log_);
  struct stat st;
  EXPECT_NE(stat(("/dev/shm/llmgw-" + instance_).c_str(), &st), 0);
}

// A real llmgw-mock child: prints "listening 127.0.0.1:<port>" first, then serves.
class Mock : public e2e::Proc {
 public:
  explicit Mock(const std::string& engine)
      : Proc({LLMGW_MOCK_BIN, "--listen", "127.0.0.1:0", "--model", "m", "--engine", engine}, "/dev/null", true) {}
};

TEST_F(LlmcdIntegrationTest, KilledMockIsUnhealthyWithinTwoIntervals) {
  Mock vllm("vllm"), sglang("sglang");
  ASSERT_GT(vllm.port(), 0);
  ASSERT_GT(sglang.port(), 0);
  WriteFileAtomically(config_, Config({vllm.url(), sglang.url()}));
  Llmcd proc(config_, log_);
  auto stub = Stub();
  // Both healthy, scraped, engines detected from their /metrics.
  ASSERT_TRUE(WaitFor([&] {
    pb::ListBackendsResponse r;
    if (!stub->ListBackends(Ctx().get(), {}, &r).ok() || r.backends_size() != 2) return false;
    for (const auto& b : r.backends())
      if (b.state() != pb::HEALTHY || b.metrics_stale()) return false;
    return r.backends(0).engine() == "vllm" && r.backends(1).engine() == "sglang";
  }, 5000)) << ReadFile(log_);

  sglang.Kill();
  auto killed = Clock::now();
  ASSERT_TRUE(WaitFor([&] { return StateOf(stub.get(), sglang.url()) == pb::UNHEALTHY; }, 2000));
  auto took = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - killed).count();
  EXPECT_LE(took, 2 * 200 + 100) << "interval 200 ms, unhealthy_after 2";
  EXPECT_EQ(StateOf(stub.get(), vllm.url()), pb::HEALTHY);
  kill(proc.pid(), SIGTERM);
  EXPECT_EQ(proc.WaitExit(5000), 0);
}

// Issue 13, control plane end to end: the real llmcd probes llmgw-mock's TLS provider
// flavours over https with a throwaway CA and each backend's own key (read from key
// files); a wrong key and an untrusted certificate show as unhealthy with the reason; a
// key file rotated on disk heals the backend on SIGHUP; no key ever reaches the log.
TEST_F(LlmcdIntegrationTest, HostedTlsBackendsAreProbedWithTheirKeysAndRotatedKeysApplyOnReload) {
  llmgw::test::TestPki pki;
  ASSERT_TRUE(pki.ok()) << pki.error();
  e2e::Proc azure({LLMGW_MOCK_BIN, "--listen", "127.0.0.1:0", "--model", "m", "--tls", pki.server_cert(),
                   pki.server_key(), "--provider", "azure", "--api-key", "az-good-key", "--deployment", "gpt-4o"},
                  "/dev/null", true);
  e2e::Proc anthropic({LLMGW_MOCK_BIN, "--listen", "127.0.0.1:0", "--model", "m", "--tls", pki.server_cert(),
                       pki.server_key(), "--provider", "anthropic", "--api-key", "ak-good-key"},
                      "/dev/null", true);
  ASSERT_GT(azure.port(), 0);
  ASSERT_GT(anthropic.port(), 0);
  WriteFileAtomically(dir_ + "/az.key", "az-good-key\n");
  WriteFileAtomically(dir_ + "/ak.key", "ak-stale-key\n");
  std::string az = "https://127.0.0.1:" + std::to_string(azure.port());
  std::string an = "https://127.0.0.1:" + std::to_string(anthropic.port());
  std::string y = Config({});
  y += "      - { id: az, url: \"" + az + "\", provider: azure, api_key_file: az.key, deployment: gpt-4o,\n"
       "          api_version: \"2024-10-21\", tls: { ca_file: \"" + pki.ca_cert() + "\" } }\n"
       "      - { id: an, url: \"" + an + "\", provider: anthropic, api_key_file: ak.key,\n"
       "          tls: { ca_file: \"" + pki.ca_cert() + "\" } }\n"
       "      - { id: untrusted, url: \"" + az + "\" }\n";
  WriteFileAtomically(config_, y);
  Llmcd proc(config_, log_);
  auto stub = Stub();
  auto backend = [&](const std::string& id) {
    pb::ListBackendsResponse r;
    if (stub->ListBackends(Ctx().get(), {}, &r).ok())
      for (const auto& b : r.backends())
        if (b.id() == id) return b;
    return pb::Backend();
  };
  // The errors are read from the same listing that showed the states: a second call could
  // fail under load (its deadline) and return an empty Backend (flaky when run at -j2).
  pb::Backend seen_an, seen_untrusted;
  ASSERT_TRUE(WaitFor([&] {
    seen_an = backend("an");
    seen_untrusted = backend("untrusted");
    return backend("az").state() == pb::HEALTHY && seen_an.state() == pb::UNHEALTHY &&
           seen_untrusted.state() == pb::UNHEALTHY && !seen_an.last_error().empty() &&
           !seen_untrusted.last_error().empty();
  }, 5000)) << ReadFile(log_);
  EXPECT_NE(seen_an.last_error().find("HTTP 401"), std::string::npos) << seen_an.last_error();
  EXPECT_NE(seen_untrusted.last_error().find("certificate"), std::string::npos) << seen_untrusted.last_error();

  WriteFileAtomically(dir_ + "/ak.key", "ak-good-key\n");
  kill(proc.pid(), SIGHUP);
  ASSERT_TRUE(WaitFor([&] { return backend("an").state() == pb::HEALTHY; }, 5000)) << ReadFile(log_);
  std::string log = ReadFile(log_);
  EXPECT_NE(log.find("api_key sha256:"), std::string::npos) << log;  // the reload summary
  for (const char* secret : {"az-good-key", "ak-good-key", "ak-stale-key"})
    EXPECT_EQ(log.find(secret), std::string::npos) << secret << " in the log";
  kill(proc.pid(), SIGTERM);
  EXPECT_EQ(proc.WaitExit(5000), 0);
  std::remove((dir_ + "/az.key").c_str());
  std::remove((dir_ + "/ak.key").c_str());
}

// SIGTERM is prompt even with a probe stuck on a backend that accepts but never answers
// (probe timeout 10 s) and with the Prometheus listener up (civetweb polls its listening
// sockets for 2 s between looks at its stop flag): exit 0 well within 1.5 s.
TEST_F(LlmcdIntegrationTest, SigtermExitsPromptlyWithAHungBackend) {
  int hung = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(bind(hung, reinterpret_cast<sockaddr*>(&sa), sizeof(sa)), 0);
  ASSERT_EQ(listen(hung, 16), 0);  // connects complete in the backlog; nothing is ever read
  socklen_t len = sizeof(sa);
  getsockname(hung, reinterpret_cast<sockaddr*>(&sa), &len);
  std::string hung_url = "http://127.0.0.1:" + std::to_string(ntohs(sa.sin_port));
  std::string y = Config({hung_url});
  y.replace(y.find("timeout_ms: 150"), 15, "timeout_ms: 10000");
  WriteFileAtomically(config_, y);
  Llmcd proc(config_, log_);
  auto stub = Stub();
  ASSERT_TRUE(WaitFor([&] { return Status(stub.get()).backends_total() == 1; }, 5000)) << ReadFile(log_);
  ASSERT_TRUE(Get(metrics_port_, "/metrics").ok());
  std::this_thread::sleep_for(std::chrono::milliseconds(300));  // a probe is now stuck in flight
  auto t0 = Clock::now();
  kill(proc.pid(), SIGTERM);
  int rc = proc.WaitExit(5000);
  auto took = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0).count();
  close(hung);
  EXPECT_EQ(rc, 0) << ReadFile(log_);
  EXPECT_LT(took, 1500) << ReadFile(log_);
}

TEST_F(LlmcdIntegrationTest, BadConfigFileFailsWithFileLineKey) {
  WriteFileAtomically(config_, "instance: x\ngateway:\n  threads: lots\n");
  Llmcd proc(config_, log_);
  EXPECT_EQ(proc.WaitExit(5000), 1);
  EXPECT_NE(ReadFile(log_).find(config_ + ":3: gateway.threads"), std::string::npos) << ReadFile(log_);
}

TEST_F(LlmcdIntegrationTest, RefusesNonLoopbackAdminWithoutToken) {
  TestHttpServer a([](const std::string&) { return TestResponse{200, "ok"}; });
  WriteFileAtomically(config_, Config({a.url()}, "0.0.0.0"));
  Llmcd proc(config_, log_);
  EXPECT_EQ(proc.WaitExit(5000), 1);
  EXPECT_NE(ReadFile(log_).find("not loopback"), std::string::npos) << ReadFile(log_);
}

}  // namespace
}  // namespace llmgw::cp
