// The system trust store, for real: an https backend without tls.ca_file is verified
// against the host's CA store by both llmgw's request path (OpenSSL's
// SSL_CTX_set_default_verify_paths: /usr/lib/ssl/cert.pem and /usr/lib/ssl/certs, which on
// Debian are links to /etc/ssl/certs/ca-certificates.crt and /etc/ssl/certs) and llmcd's
// probe (libcurl built with CAfile /etc/ssl/certs/ca-certificates.crt and CApath
// /etc/ssl/certs). The test runs itself again in a private mount namespace (unshare, as
// tests/common/shm_size_test.sh does) where a throwaway store is bind-mounted over
// /etc/ssl/certs: one holding the test CA (the request succeeds, the probe is healthy),
// then one without it (llmgw refuses the backend with the reason, and so does llmcd's
// probe). The host's store is never touched. Needs root: skipped, with the reason, without.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/wait.h>

#include <cstdlib>
#include <fstream>
#include <sstream>

#include "common/shm.h"
#include "e2e_process.h"
#include "tests/tls/test_pki.h"

namespace llmgw::e2e {
namespace {

constexpr char kInnerEnv[] = "LLMGW_TRUST_STORE_NAMESPACE";
constexpr char kTestName[] = "SystemTrustStoreTest.HttpsBackendWithoutCaFileIsVerifiedAgainstTheSystemStore";

std::string Slurp(const std::string& path) {
  std::ifstream f(path);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

// Value of a Prometheus series in llmcd's exposition; -1 when absent.
double Series(int metrics_port, const std::string& series) {
  HttpResult m = HttpCall(metrics_port, "GET", "/metrics", "", 2000);
  size_t p = m.body.find("\n" + series + " ");
  return p == std::string::npos ? -1 : std::strtod(m.body.c_str() + p + series.size() + 2, nullptr);
}

pb::Backend BackendOf(pb::Admin::Stub* stub, const std::string& id) {
  pb::ListBackendsResponse r;
  if (stub->ListBackends(Ctx().get(), {}, &r).ok())
    for (const auto& b : r.backends())
      if (b.id() == id) return b;
  return pb::Backend();
}

// One store on /etc/ssl/certs (bind-mounted, in this process's private mount namespace),
// and llmcd + llmgw started on it: both read the store when they build their TLS state.
class StoreRun {
 public:
  StoreRun(const std::string& dir, const std::string& name, const std::string& bundle, int mock_port,
           const std::string& health)
      : dir_(dir + "/" + name) {
    ::mkdir(dir_.c_str(), 0755);
    std::ofstream(dir_ + "/ca-certificates.crt") << bundle;
    if (::mount(dir_.c_str(), "/etc/ssl/certs", nullptr, MS_BIND, nullptr) != 0) {
      error_ = std::string("bind mount over /etc/ssl/certs: ") + strerror(errno);
      return;
    }
    mounted_ = true;
    if (Slurp("/etc/ssl/certs/ca-certificates.crt") != bundle || Slurp("/usr/lib/ssl/cert.pem") != bundle) {
      error_ = "the store seen through /etc/ssl/certs and /usr/lib/ssl/cert.pem is not the test's";
      return;
    }
    static int counter = 0;
    instance_ = "truststore-" + std::to_string(getpid()) + "-" + std::to_string(counter++);
    grpc_port_ = FreePort();
    metrics_port_ = FreePort();
    config_ = dir_ + "/llmgw.yaml";
    WriteFileAtomically(config_, "instance: " + instance_ +
                                     "\ngateway:\n  listen: 127.0.0.1:0\n  threads: 1\n  retries: { max: 0 }\n"
                                     "admin:\n  grpc_listen: 127.0.0.1:" + std::to_string(grpc_port_) +
                                     "\n  metrics_listen: 127.0.0.1:" + std::to_string(metrics_port_) + "\n" + health +
                                     "control: { tick_ms: 20, heartbeat_ms: 200 }\n"
                                     "models:\n  - name: m\n    backends:\n"
                                     "      - { id: tls, url: \"https://127.0.0.1:" + std::to_string(mock_port) + "\" }\n");
    cd_ = std::make_unique<Proc>(std::vector<std::string>{LLMCD_BIN, "--config", config_}, dir_ + "/llmcd.log", false);
    stub_ = AdminStub(grpc_port_);
    if (!WaitFor([&] { return BackendOf(stub_.get(), "tls").id() == "tls"; }, 5000)) {
      error_ = "llmcd never listed the backend";
      return;
    }
    gw_ = std::make_unique<Proc>(std::vector<std::string>{LLMGW_BIN, "--config", config_}, dir_ + "/llmgw.log", true);
    if (gw_->port() <= 0 ||
        !WaitFor([&] { return HttpCall(gw_->port(), "GET", "/ready", "", 1000).status == 200; }, 5000))
      error_ = "llmgw never became ready";
  }
  ~StoreRun() {
    gw_.reset();
    cd_.reset();
    shm::Unlink("/llmgw-" + instance_);
    if (mounted_) ::umount2("/etc/ssl/certs", MNT_DETACH);
  }
  const std::string& error() const { return error_; }
  HttpResult Chat() {
    return HttpCall(gw_->port(), "POST", "/v1/chat/completions",
                    R"({"model":"m","messages":[{"role":"user","content":"hi"}]})", 5000);
  }
  pb::Backend Backend() { return BackendOf(stub_.get(), "tls"); }
  double Metric(const std::string& s) { return Series(metrics_port_, s); }
  std::string Logs() { return "--- llmcd\n" + ReadFile(dir_ + "/llmcd.log") + "--- llmgw\n" + ReadFile(dir_ + "/llmgw.log"); }

 private:
  std::string dir_, config_, instance_, error_;
  bool mounted_ = false;
  int grpc_port_ = 0, metrics_port_ = 0;
  std::unique_ptr<Proc> cd_, gw_;
  std::unique_ptr<pb::Admin::Stub> stub_;
};

// The body, run inside the private mount namespace.
void RunInNamespace() {
  // Only the store on disk is under test: OpenSSL's environment overrides are not.
  ::unsetenv("SSL_CERT_FILE");
  ::unsetenv("SSL_CERT_DIR");
  llmgw::test::TestPki pki;
  ASSERT_TRUE(pki.ok()) << pki.error();
  Proc mock({LLMGW_MOCK_BIN, "--listen", "127.0.0.1:0", "--model", "m", "--token-interval-ms", "0", "--output-tokens",
             "3", "--tls", pki.server_cert(), pki.server_key()},
            pki.dir() + "/mock.log", true);
  ASSERT_GT(mock.port(), 0);
  const std::string ca = Slurp(pki.ca_cert());
  const std::string health = "health: { interval_ms: 200, timeout_ms: 2000, unhealthy_after: 1000, healthy_after: 1 }\n";
  {
    SCOPED_TRACE("a system store holding the backend's CA");
    StoreRun run(pki.dir(), "store-with", Slurp(pki.rogue_cert()) + ca, mock.port(), health);
    ASSERT_EQ(run.error(), "") << run.Logs();
    HttpResult r = run.Chat();
    EXPECT_EQ(r.status, 200) << r.body << r.error << run.Logs();
    EXPECT_NE(r.body.find("\"object\":\"chat.completion\""), std::string::npos) << r.body;
    // Probes ran over TLS and none failed: the backend is healthy with no error.
    ASSERT_TRUE(WaitFor([&] { return run.Metric("llmcd_probes_total") >= 2; }, 5000)) << run.Logs();
    EXPECT_EQ(run.Metric("llmcd_probe_failures_total"), 0) << run.Logs();
    pb::Backend b = run.Backend();
    EXPECT_EQ(b.state(), pb::HEALTHY) << b.ShortDebugString();
    EXPECT_EQ(b.last_error(), "") << b.ShortDebugString();
  }
  {
    // A valid store that lacks the CA (only an unrelated certificate). unhealthy_after is
    // high so that llmgw still routes to the backend and shows its own refusal.
    SCOPED_TRACE("a system store without the backend's CA");
    StoreRun run(pki.dir(), "store-without", Slurp(pki.rogue_cert()), mock.port(), health);
    ASSERT_EQ(run.error(), "") << run.Logs();
    HttpResult r = run.Chat();
    EXPECT_EQ(r.status, 502) << r.body << r.error;
    EXPECT_NE(r.body.find("upstream tls: certificate verify failed: unable to get local issuer certificate"),
              std::string::npos)
        << r.body;
    pb::Backend b;
    ASSERT_TRUE(WaitFor([&] { return !(b = run.Backend()).last_error().empty(); }, 5000)) << run.Logs();
    EXPECT_NE(b.last_error().find("tls: the backend's certificate was refused"), std::string::npos) << b.last_error();
    EXPECT_NE(b.last_error().find("unable to get local issuer certificate"), std::string::npos) << b.last_error();
    EXPECT_GE(run.Metric("llmcd_probe_failures_total"), 1);
  }
}

TEST(SystemTrustStoreTest, HttpsBackendWithoutCaFileIsVerifiedAgainstTheSystemStore) {
  if (std::getenv(kInnerEnv)) return RunInNamespace();
  if (::geteuid() != 0) GTEST_SKIP() << "needs root (a private mount namespace over /etc/ssl/certs)";
  // Everything the child needs is prepared before fork; it only makes its namespace
  // (mounts private, so nothing it mounts reaches the host) and runs this test again.
  char self[4096];
  ssize_t n = ::readlink("/proc/self/exe", self, sizeof self - 1);
  ASSERT_GT(n, 0);
  self[n] = 0;
  std::string filter = std::string("--gtest_filter=") + kTestName;
  std::vector<char*> argv = {self, filter.data(), nullptr};
  std::string env_flag = std::string(kInnerEnv) + "=1";
  std::vector<std::string> env_strings = {env_flag};
  for (char** e = environ; *e; ++e)
    if (std::strncmp(*e, kInnerEnv, std::strlen(kInnerEnv)) != 0) env_strings.push_back(*e);
  std::vector<char*> envp;
  for (auto& s : env_strings) envp.push_back(s.data());
  envp.push_back(nullptr);
  int out[2];
  ASSERT_EQ(::pipe2(out, O_CLOEXEC), 0);
  pid_t pid = ::fork();
  if (pid == 0) {
    ::dup2(out[1], 1);
    ::dup2(out[1], 2);
    if (::unshare(CLONE_NEWNS) != 0) _exit(77);
    if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) _exit(78);
    ::execve(self, argv.data(), envp.data());
    _exit(127);
  }
  ::close(out[1]);
  std::string output;
  char buf[4096];
  ssize_t k;
  while ((k = ::read(out[0], buf, sizeof buf)) > 0) output.append(buf, static_cast<size_t>(k));
  ::close(out[0]);
  int st = 0;
  ::waitpid(pid, &st, 0);
  int rc = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
  if (rc == 77 || rc == 78) GTEST_SKIP() << "cannot make a private mount namespace here (unshare/mount failed)";
  EXPECT_EQ(rc, 0) << output;
  // The run in the namespace really ran this test (a filter matching nothing exits 0 too).
  EXPECT_NE(output.find(std::string("[       OK ] ") + kTestName), std::string::npos) << output;
}

}  // namespace
}  // namespace llmgw::e2e
