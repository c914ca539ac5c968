// The fleet config stored in etcd, with real processes on loopback: a real etcd (own data
// dir, random free ports), two controllers on their local bootstrap files. One
// `llmctl config push` reaches both; a change reaches both; a broken push is refused and
// nothing is stored; with etcd gone both keep serving the last good config. Then etcd over
// https with a client certificate and auth enabled (a throwaway CA made here with openssl,
// users made with etcdctl): the controller leads and applies a pushed config through it,
// and a controller with a wrong password is refused by etcd and never leads.
#include <gtest/gtest.h>
#include <google/protobuf/util/json_util.h>

#include <filesystem>
#include <memory>
#include <set>

#include "common/shm.h"
#include "e2e_process.h"
#include "etcd_fixture.h"

namespace llmgw::e2e {
namespace {

constexpr int kLeaseMs = 2000;

class FleetConfigTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (std::string why = EtcdMissing(); !why.empty()) GTEST_SKIP() << why;
    char tmpl[] = "/tmp/llmgw-fleetcfg-XXXXXX";
    dir_ = mkdtemp(tmpl);
    prefix_ = "/c" + std::to_string(getpid()) + "/";
    for (int i = 0; i < 2; ++i)
      mocks_.push_back(std::make_unique<Proc>(
          std::vector<std::string>{LLMGW_MOCK_BIN, "--listen", "127.0.0.1:0", "--model", "m"}, dir_ + "/mock.log", true));
  }
  void TearDown() override {
    ctl_[0].reset();
    ctl_[1].reset();
    mocks_.clear();
    etcd_.reset();
    for (const auto& i : instance_)
      if (!i.empty()) {
        shm::Unlink("/llmgw-" + i);
        std::remove(("/dev/shm/llmgw-" + i + ".writer").c_str());
      }
    if (!dir_.empty()) std::filesystem::remove_all(dir_);
  }
  // etcd on a free port; tls: https with a server certificate from the test's CA, client
  // certificates required.
  void StartEtcd(bool tls) {
    EtcdProcess etcd = StartEtcdProcess(dir_, tls);
    etcd_ = std::move(etcd.proc);
    etcd_port_ = etcd.port;
    endpoint_ = etcd.endpoint;
    ASSERT_TRUE(WaitFor([&] { return Etcdctl({"endpoint", "health"}) == 0; }, 10000)) << ReadFile(dir_ + "/etcd.log");
  }
  // etcdctl's exit status; its output appended to etcdctl.log, or written to `out`.
  int Etcdctl(const std::vector<std::string>& args, const std::string& out = "") {
    std::string cmd = "ETCDCTL_API=3 etcdctl --dial-timeout=1s --command-timeout=2s --endpoints=" + endpoint_;
    if (endpoint_.rfind("https", 0) == 0)
      cmd += " --cacert=" + dir_ + "/ca.crt --cert=" + dir_ + "/client.crt --key=" + dir_ + "/client.key";
    for (const auto& a : args) cmd += " '" + a + "'";
    std::string log = dir_ + "/etcdctl.log";
    return std::system((cmd + (out.empty() ? " >>" + log : " >" + out) + " 2>>" + log).c_str());
  }
  void MakeCerts() {
    std::string d = dir_;
    std::string script =
        "set -e; cd " + d + "; "
        "openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 1 -subj /CN=llmgw-test-ca; "
        "openssl req -newkey rsa:2048 -nodes -keyout server.key -out server.csr -subj /CN=127.0.0.1; "
        "printf 'subjectAltName=IP:127.0.0.1\\nextendedKeyUsage=serverAuth,clientAuth\\n' > server.ext; "
        "openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out server.crt -days 1 -extfile server.ext; "
        // No CN: with client-cert-auth and auth on, etcd's JSON gateway refuses a client
        // certificate with a Common Name; llmcd is known by its user and password.
        "openssl req -newkey rsa:2048 -nodes -keyout client.key -out client.csr -subj /O=llmgw; "
        "printf 'extendedKeyUsage=clientAuth\\n' > client.ext; "
        "openssl x509 -req -in client.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out client.crt -days 1 -extfile client.ext";
    ASSERT_EQ(std::system(("(" + script + ") >" + d + "/openssl.log 2>&1").c_str()), 0) << ReadFile(d + "/openssl.log");
  }
  std::string LocalConfig(int i, const std::string& etcd_extra) {
    instance_[i] = "fleetcfg" + std::to_string(i) + "-" + std::to_string(getpid());
    grpc_[i] = FreePort();
    return "instance: " + instance_[i] +
           "\ngateway: { listen: 127.0.0.1:0, threads: 1 }\n"
           "admin:\n  grpc_listen: 127.0.0.1:" + std::to_string(grpc_[i]) +
           "\n  metrics_listen: 127.0.0.1:" + std::to_string(FreePort()) +
           "\ncontrol: { tick_ms: 20, heartbeat_ms: 200 }\n"
           "fleet:\n  role: controller\n  agent_id: ctl" + std::to_string(i) +
           "\n  etcd: { endpoints: [\"" + endpoint_ + "\"], prefix: " + prefix_ + ", lease_ms: " +
           std::to_string(kLeaseMs) + etcd_extra + " }\n"
           // The bootstrap models: served until a fleet config is stored.
           "models:\n  - name: boot\n    backends: [ { id: boot0, url: \"" + mocks_[0]->url() + "\" } ]\n";
  }
  void StartController(int i, const std::string& etcd_extra = "") {
    WriteFileAtomically(dir_ + "/c" + std::to_string(i) + ".yaml", LocalConfig(i, etcd_extra));
    ctl_[i] = std::make_unique<Proc>(
        std::vector<std::string>{LLMCD_BIN, "--config", dir_ + "/c" + std::to_string(i) + ".yaml"},
        dir_ + "/c" + std::to_string(i) + ".log", false);
  }
  std::set<std::string> BackendIds(int i) {
    std::set<std::string> ids;
    pb::ListBackendsResponse r;
    if (AdminStub(grpc_[i])->ListBackends(Ctx().get(), {}, &r).ok())
      for (const auto& b : r.backends()) ids.insert(b.id());
    return ids;
  }
  int64_t Revision(int i) {
    pb::GetConfigResponse r;
    if (!AdminStub(grpc_[i])->GetConfig(Ctx().get(), {}, &r).ok()) return -1;
    return r.fleet_config_revision();
  }
  bool IsLeader(int i) {
    CliResult c = RunLlmctl({"--addr", "127.0.0.1:" + std::to_string(grpc_[i]), "fleet", "-o", "json"}, 5000);
    pb::ListGatewaysResponse r;
    return c.code == 0 && google::protobuf::util::JsonStringToMessage(c.out, &r).ok() && r.is_leader();
  }
  CliResult Push(int i, const std::string& yaml) {
    WriteFileAtomically(dir_ + "/push.yaml", yaml);
    return RunLlmctl({"--addr", "127.0.0.1:" + std::to_string(grpc_[i]), "config", "push", dir_ + "/push.yaml"});
  }
  std::string FleetYaml(int backends) {
    std::string y = "health: { interval_ms: 300 }\nmodels:\n  - name: m\n    policy: round_robin\n    backends:\n";
    for (int b = 0; b < backends; ++b)
      y += "      - { id: b" + std::to_string(b) + ", url: \"" + mocks_[b]->url() + "\" }\n";
    return y;
  }
  std::string Logs() {
    std::string s;
    for (const char* f : {"c0.log", "c1.log", "etcd.log", "etcdctl.log"})
      s += std::string("--- ") + f + "\n" + ReadFile(dir_ + "/" + f);
    return s;
  }

  std::string dir_, prefix_, endpoint_, instance_[2];
  int etcd_port_ = 0, grpc_[2] = {0, 0};
  std::unique_ptr<Proc> etcd_, ctl_[2];
  std::vector<std::unique_ptr<Proc>> mocks_;
};

TEST_F(FleetConfigTest, OnePushReachesBothControllersChangesFollowBrokenPushRefusedEtcdGoneKeepsLastGood) {
  StartEtcd(false);
  StartController(0);
  StartController(1);
  const std::set<std::string> boot{"boot0"};
  ASSERT_TRUE(WaitFor([&] { return BackendIds(0) == boot && BackendIds(1) == boot; }, 10000)) << Logs();
  EXPECT_EQ(Revision(0), 0);

  // Pushed once, to one controller: both serve it.
  CliResult c = Push(1, FleetYaml(1));
  ASSERT_EQ(c.code, 0) << c.out << c.err << Logs();
  EXPECT_NE(c.out.find("stored in etcd: revision"), std::string::npos) << c.out;
  const std::set<std::string> one{"b0"}, two{"b0", "b1"};
  ASSERT_TRUE(WaitFor([&] { return BackendIds(0) == one && BackendIds(1) == one; }, 3 * kLeaseMs))
      << *BackendIds(0).begin() << Logs();
  int64_t rev1 = Revision(0);
  EXPECT_GT(rev1, 0);
  EXPECT_EQ(Revision(1), rev1);

  // A change reaches both.
  c = Push(0, FleetYaml(2));
  ASSERT_EQ(c.code, 0) << c.out << c.err;
  EXPECT_NE(c.out.find("added backend b1"), std::string::npos) << c.out;
  ASSERT_TRUE(WaitFor([&] { return BackendIds(0) == two && BackendIds(1) == two; }, 3 * kLeaseMs)) << Logs();
  int64_t rev2 = Revision(1);
  EXPECT_GT(rev2, rev1);
  ASSERT_TRUE(WaitFor([&] { return Revision(0) == rev2; }, 3 * kLeaseMs));

  // Broken pushes are refused with the error, and nothing is stored.
  c = Push(0, "models:\n  - name: m\n    backends: [ { url: \"ftp://nope\" } ]\n");
  EXPECT_EQ(c.code, 2) << c.out << c.err;
  EXPECT_NE(c.err.find("push.yaml:3"), std::string::npos) << c.err;
  EXPECT_NE(c.err.find("nothing stored"), std::string::npos) << c.err;
  c = Push(1, FleetYaml(1) + "gateway: { listen: 127.0.0.1:1 }\n");  // a local key
  EXPECT_EQ(c.code, 2) << c.out << c.err;
  EXPECT_NE(c.err.find("gateway.listen: is local to each host"), std::string::npos) << c.err;
  ASSERT_EQ(Etcdctl({"get", prefix_ + "config", "--write-out=json"}, dir_ + "/stored.json"), 0) << Logs();
  std::string stored = ReadFile(dir_ + "/stored.json");
  EXPECT_NE(stored.find("\"mod_revision\":" + std::to_string(rev2)), std::string::npos)
      << "a refused config reached etcd: " << stored;
  std::this_thread::sleep_for(std::chrono::milliseconds(kLeaseMs));
  EXPECT_EQ(Revision(0), rev2);
  EXPECT_EQ(Revision(1), rev2);
  EXPECT_EQ(BackendIds(0), two);

  // A reload of the local file keeps the stored fleet-wide keys (only local keys come from it).
  CliResult r = RunLlmctl({"--addr", "127.0.0.1:" + std::to_string(grpc_[0]), "config", "reload"});
  EXPECT_EQ(r.code, 0) << r.out << r.err;
  EXPECT_EQ(BackendIds(0), two);

  // etcd gone: both keep serving the last good config, and say why they cannot push.
  etcd_->Kill();
  std::this_thread::sleep_for(std::chrono::milliseconds(kLeaseMs));
  EXPECT_EQ(BackendIds(0), two);
  EXPECT_EQ(BackendIds(1), two);
  EXPECT_EQ(Revision(1), rev2);
  c = Push(0, FleetYaml(1));
  EXPECT_EQ(c.code, 2) << c.out << c.err;
  EXPECT_NE(c.err.find("cannot store the config in etcd"), std::string::npos) << c.err;
  EXPECT_NE(ReadFile(dir_ + "/c1.log").find("fleet config: cannot read it from etcd; keeping the running config"),
            std::string::npos)
      << Logs();
}

TEST_F(FleetConfigTest, EtcdOverHttpsWithClientCertificateAndAuth) {
  MakeCerts();
  if (HasFailure()) return;
  StartEtcd(true);
  if (HasFailure()) return;
  // A user with read-write on the fleet's prefix only; root exists for `auth enable`.
  ASSERT_EQ(Etcdctl({"user", "add", "root", "--new-user-password=rootpw"}), 0) << Logs();
  ASSERT_EQ(Etcdctl({"role", "add", "llmgw"}), 0) << Logs();
  ASSERT_EQ(Etcdctl({"role", "grant-permission", "llmgw", "--prefix=true", "readwrite", prefix_}), 0) << Logs();
  ASSERT_EQ(Etcdctl({"user", "add", "llmcd", "--new-user-password=s3cret \"pw"}), 0) << Logs();
  ASSERT_EQ(Etcdctl({"user", "grant-role", "llmcd", "llmgw"}), 0) << Logs();
  ASSERT_EQ(Etcdctl({"auth", "enable"}), 0) << Logs();
  WriteFileAtomically(dir_ + "/pw", "s3cret \"pw\n");
  WriteFileAtomically(dir_ + "/badpw", "wrong\n");
  std::string tls = ", ca_file: " + dir_ + "/ca.crt, client_cert_file: " + dir_ + "/client.crt, client_key_file: " +
                    dir_ + "/client.key, username: llmcd";
  StartController(0, tls + ", password_file: " + dir_ + "/pw");
  ASSERT_TRUE(WaitFor([&] { return IsLeader(0); }, 10000)) << Logs();
  CliResult c = Push(0, FleetYaml(2));
  ASSERT_EQ(c.code, 0) << c.out << c.err << Logs();
  const std::set<std::string> two{"b0", "b1"};
  ASSERT_TRUE(WaitFor([&] { return BackendIds(0) == two; }, 3 * kLeaseMs)) << Logs();
  EXPECT_GT(Revision(0), 0);

  // The wrong password: etcd refuses it, the controller says so and never leads (nor
  // takes the stored config).
  StartController(1, tls + ", password_file: " + dir_ + "/badpw");
  ASSERT_TRUE(WaitFor([&] { return ReadFile(dir_ + "/c1.log").find("etcd refused user 'llmcd'") != std::string::npos; },
                      10000))
      << Logs();
  EXPECT_EQ(ReadFile(dir_ + "/c1.log").find("wrong"), std::string::npos) << "the password was logged";
  EXPECT_FALSE(IsLeader(1));
  EXPECT_EQ(BackendIds(1), std::set<std::string>{"boot0"});
  EXPECT_TRUE(IsLeader(0));
}

}  // namespace
}  // namespace llmgw::e2e
