// Process hygiene of the real binaries on loopback, the points an operator trips over
// first (issue 15): SIGHUP and SIGUSR1 never kill llmgw; a llmgw of another instance
// cannot join a listen port, one of the same instance can (binary upgrade); a second llmcd
// of an instance refuses to become a second snapshot writer; the admin gRPC and metrics
// ports are exclusive; llmcd answers GET /healthz and grpc.health.v1.Health; --version
// on every binary; READY=1 reaches systemd's notify socket.
#include <gtest/gtest.h>
#include <sys/un.h>

#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/support/byte_buffer.h>

#include "common/shm.h"
#include "e2e_process.h"
#include "tests/controlplane/grpc_health_client.h"

namespace llmgw::e2e {
namespace {

class ProcessSafetyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/llmgw-ops-XXXXXX";
    dir_ = mkdtemp(tmpl);
    suffix_ = std::to_string(getpid());
  }
  void TearDown() override {
    for (const auto& i : instances_) {
      shm::Unlink("/llmgw-" + i);
      shm::Unlink("/llmgw-" + i + ".writer");
    }
    std::string cmd = "rm -rf '" + dir_ + "'";
    (void)std::system(cmd.c_str());
  }
  // Writes a config for `instance` (one model on an unused backend port) and returns its path.
  std::string Config(const std::string& name, const std::string& instance, int gw_port, int grpc_port,
                     int metrics_port) {
    instances_.push_back(instance);
    std::string path = dir_ + "/" + name + ".yaml";
    WriteFileAtomically(path, "instance: " + instance + "\ngateway: { listen: 127.0.0.1:" + std::to_string(gw_port) +
                                  ", threads: 2 }\nadmin: { grpc_listen: 127.0.0.1:" + std::to_string(grpc_port) +
                                  ", metrics_listen: 127.0.0.1:" + std::to_string(metrics_port) +
                                  " }\nmodels:\n  - name: m\n    backends: [ { url: \"http://127.0.0.1:" +
                                  std::to_string(FreePort()) + "\" } ]\n");
    return path;
  }
  std::string Log(const std::string& name) const { return dir_ + "/" + name + ".log"; }
  static bool Alive(Proc& p) { return p.pid() > 0 && p.WaitExit(0) == -1; }
  static bool Healthz(int metrics_port) { return HttpCall(metrics_port, "GET", "/healthz", "", 1000).status == 200; }

  std::string dir_, suffix_;
  std::vector<std::string> instances_;
};

TEST_F(ProcessSafetyTest, EveryBinaryPrintsItsVersion) {
  for (const char* bin : {LLMGW_BIN, LLMCD_BIN, LLMCTL_BIN}) {
    std::string out;
    FILE* f = popen((std::string(bin) + " --version 2>&1").c_str(), "r");
    ASSERT_NE(f, nullptr);
    char buf[256];
    while (fgets(buf, sizeof(buf), f)) out += buf;
    int st = pclose(f);
    std::string name = std::string(bin).substr(std::string(bin).rfind('/') + 1);
    EXPECT_EQ(WEXITSTATUS(st), 0) << bin << ": " << out;
    EXPECT_EQ(out, name + " " + LLMGW_VERSION + "\n") << bin;
  }
}

TEST_F(ProcessSafetyTest, SighupAndSigusr1DoNotKillLlmgw) {
  std::string cfg = Config("gw", "opsh-" + suffix_, 0, FreePort(), FreePort());
  Proc gw({LLMGW_BIN, "--config", cfg}, Log("gw"), true);
  ASSERT_GT(gw.port(), 0) << ReadFile(Log("gw"));
  for (int sig : {SIGHUP, SIGUSR1, SIGHUP}) {
    ASSERT_EQ(kill(gw.pid(), sig), 0);
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    ASSERT_TRUE(Alive(gw)) << "signal " << sig << " killed llmgw\n" << ReadFile(Log("gw"));
    EXPECT_EQ(HttpCall(gw.port(), "GET", "/health").status, 200) << "after signal " << sig;
  }
  std::string log = ReadFile(Log("gw"));
  EXPECT_NE(log.find("SIGHUP ignored"), std::string::npos) << log;
  EXPECT_NE(log.find("SIGUSR1"), std::string::npos) << log;
  // SIGTERM still drains and exits cleanly.
  EXPECT_EQ(gw.Stop(SIGTERM, 10000), 0) << ReadFile(Log("gw"));
}

// logrotate moves access.log to access.log.1 and sends SIGUSR1: the next line lands in a
// new access.log (without the worker's reopen it landed in access.log.1).
TEST_F(ProcessSafetyTest, Sigusr1ReopensTheAccessLog) {
  std::string inst = "opsl-" + suffix_;
  instances_.push_back(inst);
  std::string log_path = dir_ + "/access.log";
  std::string cfg = dir_ + "/alog.yaml";
  WriteFileAtomically(cfg, "instance: " + inst +
                               "\ngateway:\n  listen: 127.0.0.1:0\n  threads: 1\n  access_log: { enabled: true, path: " +
                               log_path + " }\nmodels:\n  - name: m\n    backends: [ { url: \"http://127.0.0.1:" +
                               std::to_string(FreePort()) + "\" } ]\n");
  Proc gw({LLMGW_BIN, "--config", cfg}, Log("alog"), true);
  ASSERT_GT(gw.port(), 0) << ReadFile(Log("alog"));
  EXPECT_EQ(HttpCall(gw.port(), "GET", "/no-such-path").status, 404);
  ASSERT_TRUE(WaitFor([&] { return ReadFile(log_path).find("/no-such-path") != std::string::npos; }, 3000))
      << "the access log never got the first request";
  ASSERT_EQ(rename(log_path.c_str(), (log_path + ".1").c_str()), 0);  // logrotate's move
  ASSERT_EQ(kill(gw.pid(), SIGUSR1), 0);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));  // a few worker ticks
  EXPECT_EQ(HttpCall(gw.port(), "GET", "/after-rotation").status, 404);
  EXPECT_TRUE(WaitFor([&] { return ReadFile(log_path).find("/after-rotation") != std::string::npos; }, 3000))
      << "access.log: " << ReadFile(log_path) << "\naccess.log.1: " << ReadFile(log_path + ".1");
  EXPECT_EQ(ReadFile(log_path + ".1").find("/after-rotation"), std::string::npos);
}

TEST_F(ProcessSafetyTest, AnotherInstanceCannotJoinTheListenPortTheSameInstanceCan) {
  int port = FreePort();
  std::string a = Config("a", "opsa-" + suffix_, port, FreePort(), FreePort());
  std::string b = Config("b", "opsb-" + suffix_, port, FreePort(), FreePort());
  Proc gw_a({LLMGW_BIN, "--config", a}, Log("a"), true);
  ASSERT_EQ(gw_a.port(), port) << ReadFile(Log("a"));

  Proc gw_b({LLMGW_BIN, "--config", b}, Log("b"), false);
  EXPECT_EQ(gw_b.WaitExit(10000), 1) << "llmgw of another instance joined port " << port << "\n"
                                     << ReadFile(Log("b"));
  std::string log = ReadFile(Log("b"));
  EXPECT_NE(log.find("served by llmgw instance 'opsa-" + suffix_ + "'"), std::string::npos) << log;
  EXPECT_EQ(log.find("\"msg\":\"llmgw started\""), std::string::npos) << log;

  // The upgrade path: a second llmgw of the SAME instance shares the port, and once the
  // first has drained away it serves alone.
  Proc gw_a2({LLMGW_BIN, "--config", a}, Log("a2"), true);
  ASSERT_EQ(gw_a2.port(), port) << ReadFile(Log("a2"));
  EXPECT_EQ(gw_a.Stop(SIGTERM, 10000), 0);
  EXPECT_EQ(HttpCall(port, "GET", "/health").status, 200);
  EXPECT_TRUE(Alive(gw_a2));
}

TEST_F(ProcessSafetyTest, SecondLlmcdOfAnInstanceRefusesToWriteSnapshots) {
  std::string inst = "opsw-" + suffix_;
  int m1 = FreePort();
  std::string c1 = Config("cd1", inst, 0, FreePort(), m1);
  std::string c2 = Config("cd2", inst, 0, FreePort(), FreePort());  // same instance, own ports
  Proc cd1({LLMCD_BIN, "--config", c1}, Log("cd1"), false);
  ASSERT_TRUE(WaitFor([&] { return Healthz(m1); }, 10000)) << ReadFile(Log("cd1"));
  Proc cd2({LLMCD_BIN, "--config", c2}, Log("cd2"), false);
  EXPECT_EQ(cd2.WaitExit(10000), 1) << "a second llmcd of instance " << inst << " kept running\n"
                                    << ReadFile(Log("cd2"));
  std::string log = ReadFile(Log("cd2"));
  EXPECT_NE(log.find("another llmcd (pid " + std::to_string(cd1.pid()) + ") already publishes"), std::string::npos)
      << log;
  EXPECT_TRUE(Alive(cd1));
  // The lock dies with its holder, even on SIGKILL: a restarted llmcd takes over at once.
  cd1.Kill();
  Proc cd3({LLMCD_BIN, "--config", c1}, Log("cd3"), false);
  EXPECT_TRUE(WaitFor([&] { return Healthz(m1); }, 10000)) << ReadFile(Log("cd3"));
}

TEST_F(ProcessSafetyTest, AdminAndMetricsPortsAreExclusive) {
  int grpc = FreePort(), metrics = FreePort();
  std::string c1 = Config("x1", "opsx-" + suffix_, 0, grpc, metrics);
  std::string c2 = Config("x2", "opsy-" + suffix_, 0, grpc, FreePort());   // same admin port
  std::string c3 = Config("x3", "opsz-" + suffix_, 0, FreePort(), metrics);  // same metrics port
  Proc cd1({LLMCD_BIN, "--config", c1}, Log("x1"), false);
  ASSERT_TRUE(WaitFor([&] { return Healthz(metrics); }, 10000)) << ReadFile(Log("x1"));
  Proc cd2({LLMCD_BIN, "--config", c2}, Log("x2"), false);
  EXPECT_EQ(cd2.WaitExit(10000), 1) << "a second llmcd bound admin port " << grpc << "\n" << ReadFile(Log("x2"));
  EXPECT_NE(ReadFile(Log("x2")).find("admin.grpc_listen: cannot listen"), std::string::npos) << ReadFile(Log("x2"));
  Proc cd3({LLMCD_BIN, "--config", c3}, Log("x3"), false);
  EXPECT_EQ(cd3.WaitExit(10000), 1) << "a second llmcd bound metrics port " << metrics << "\n" << ReadFile(Log("x3"));
  EXPECT_NE(ReadFile(Log("x3")).find("admin.metrics_listen: cannot listen"), std::string::npos)
      << ReadFile(Log("x3"));
  // Every admin call still reaches the first llmcd.
  auto stub = AdminStub(grpc);
  for (int i = 0; i < 10; ++i) {
    pb::GetStatusResponse r;
    auto ctx = Ctx();
    ASSERT_TRUE(stub->GetStatus(ctx.get(), pb::GetStatusRequest(), &r).ok());
    EXPECT_EQ(r.instance(), "opsx-" + suffix_);
  }
}

TEST_F(ProcessSafetyTest, LlmcdAnswersHealthzAndGrpcHealth) {
  int grpc = FreePort(), metrics = FreePort();
  std::string c = Config("h", "opsk-" + suffix_, 0, grpc, metrics);
  Proc cd({LLMCD_BIN, "--config", c}, Log("h"), false);
  ASSERT_TRUE(WaitFor([&] { return Healthz(metrics); }, 10000)) << ReadFile(Log("h"));
  HttpResult r = HttpCall(metrics, "GET", "/healthz");
  EXPECT_EQ(r.status, 200);
  EXPECT_NE(r.body.find("\"ok\""), std::string::npos) << r.body;
  EXPECT_EQ(llmgw::testing::GrpcHealthStatus(grpc), 1);  // SERVING
  // The publish loop stopped (SIGSTOP freezes the whole process, probes included, so
  // stop it and look at what a prober sees afterwards: nothing answers at all).
  EXPECT_EQ(cd.Stop(SIGTERM, 10000), 0);
  EXPECT_NE(HttpCall(metrics, "GET", "/healthz", "", 1000).status, 200);
}

TEST_F(ProcessSafetyTest, EnvironmentOverridesListenAndInstance) {
  int file_port = FreePort(), env_port = FreePort();
  std::string c = Config("env", "opse-" + suffix_, file_port, FreePort(), FreePort());
  instances_.push_back("opsenv-" + suffix_);
  setenv("LLMGW_LISTEN", ("127.0.0.1:" + std::to_string(env_port)).c_str(), 1);
  setenv("LLMGW_INSTANCE", ("opsenv-" + suffix_).c_str(), 1);
  Proc gw({LLMGW_BIN, "--config", c}, Log("env"), true);
  unsetenv("LLMGW_LISTEN");
  unsetenv("LLMGW_INSTANCE");
  ASSERT_EQ(gw.port(), env_port) << ReadFile(Log("env"));
  EXPECT_EQ(HttpCall(env_port, "GET", "/health").status, 200);
  EXPECT_EQ(access(("/dev/shm/llmgw-opsenv-" + suffix_).c_str(), F_OK), 0) << "instance not taken from LLMGW_INSTANCE";
  EXPECT_NE(ReadFile(Log("env")).find("LLMGW_LISTEN=127.0.0.1:" + std::to_string(env_port)), std::string::npos);
  // A bad value stops the start with a message naming the variable.
  setenv("LLMGW_THREADS", "many", 1);
  Proc bad({LLMGW_BIN, "--config", c}, Log("envbad"), false);
  unsetenv("LLMGW_THREADS");
  EXPECT_EQ(bad.WaitExit(10000), 1);
  EXPECT_NE(ReadFile(Log("envbad")).find("$LLMGW_THREADS"), std::string::npos) << ReadFile(Log("envbad"));
}

// A datagram socket standing in for systemd's $NOTIFY_SOCKET.
class NotifySocket {
 public:
  explicit NotifySocket(const std::string& path) : path_(path) {
    fd_ = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_un sa{};
    sa.sun_family = AF_UNIX;
    std::snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path.c_str());
    bind(fd_, reinterpret_cast<sockaddr*>(&sa), sizeof(sa));
  }
  ~NotifySocket() { close(fd_); }
  // Everything received within timeout_ms, until `want` shows up.
  std::string ReadUntil(const std::string& want, int timeout_ms) {
    std::string all;
    auto end = Clock::now() + std::chrono::milliseconds(timeout_ms);
    while (Clock::now() < end && all.find(want) == std::string::npos) {
      pollfd p{fd_, POLLIN, 0};
      if (poll(&p, 1, 50) <= 0) continue;
      char buf[4096];
      ssize_t n = recv(fd_, buf, sizeof(buf), 0);
      if (n > 0) all.append(buf, static_cast<size_t>(n)).push_back('\n');
    }
    return all;
  }

 private:
  std::string path_;
  int fd_ = -1;
};

TEST_F(ProcessSafetyTest, BothDaemonsTellSystemdWhenReadyAndWhenStopping) {
  int metrics = FreePort();
  std::string c = Config("n", "opsn-" + suffix_, 0, FreePort(), metrics);
  NotifySocket cd_sock(dir_ + "/cd.notify"), gw_sock(dir_ + "/gw.notify");
  setenv("NOTIFY_SOCKET", (dir_ + "/cd.notify").c_str(), 1);
  Proc cd({LLMCD_BIN, "--config", c}, Log("ncd"), false);
  setenv("NOTIFY_SOCKET", (dir_ + "/gw.notify").c_str(), 1);
  Proc gw({LLMGW_BIN, "--config", c}, Log("ngw"), true);
  unsetenv("NOTIFY_SOCKET");
  std::string cd_msgs = cd_sock.ReadUntil("READY=1", 10000);
  EXPECT_NE(cd_msgs.find("READY=1"), std::string::npos) << cd_msgs << ReadFile(Log("ncd"));
  // llmcd is ready only once it publishes: /healthz already answers 200.
  EXPECT_TRUE(Healthz(metrics));
  ASSERT_GT(gw.port(), 0) << ReadFile(Log("ngw"));
  std::string gw_msgs = gw_sock.ReadUntil("READY=1", 10000);
  EXPECT_NE(gw_msgs.find("READY=1"), std::string::npos) << gw_msgs << ReadFile(Log("ngw"));
  EXPECT_EQ(HttpCall(gw.port(), "GET", "/health").status, 200);
  kill(gw.pid(), SIGTERM);
  std::string gw_stop = gw_sock.ReadUntil("STOPPING=1", 10000);
  EXPECT_NE(gw_stop.find("STOPPING=1"), std::string::npos) << gw_stop;
  EXPECT_EQ(gw.WaitExit(10000), 0);
  kill(cd.pid(), SIGTERM);
  std::string cd_stop = cd_sock.ReadUntil("STOPPING=1", 10000);
  EXPECT_NE(cd_stop.find("STOPPING=1"), std::string::npos) << cd_stop;
  EXPECT_EQ(cd.WaitExit(10000), 0);
}

}  // namespace
}  // namespace llmgw::e2e
