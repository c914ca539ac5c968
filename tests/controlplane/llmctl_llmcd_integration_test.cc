// The real llmctl binary against the real llmcd (with llmgw-mock backends and an llmgw
// carrying a little traffic): every command, its JSON output parsed back into the proto
// messages (so the field names are the proto's), tables checked for the facts they must
// show, and the exit codes for not found (5), invalid input (2) and unreachable (3).
#include <google/protobuf/util/json_util.h>
#include <gtest/gtest.h>
#include <rapidjson/document.h>

#include <memory>
#include <sstream>

#include "common/shm.h"
#include "e2e_process.h"

namespace llmgw::e2e {
namespace {

template <typename M>
bool ParseJson(const std::string& json, M* m) {
  return google::protobuf::util::JsonStringToMessage(json, m).ok();
}

class LlmctlLlmcdTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/llmctl-e2e-XXXXXX";
    dir_ = mkdtemp(tmpl);
    config_ = dir_ + "/llmgw.yaml";
    instance_ = "ctl-" + std::to_string(getpid());
    grpc_port_ = FreePort();
    metrics_port_ = FreePort();
    addr_ = "127.0.0.1:" + std::to_string(grpc_port_);
    for (int i = 0; i < 2; ++i)
      mocks_.push_back(std::make_unique<Proc>(
          std::vector<std::string>{LLMGW_MOCK_BIN, "--listen", "127.0.0.1:0", "--model", "m",
                                   "--token-interval-ms", "0", "--output-tokens", "4"},
          dir_ + "/mock.log", true));
    WriteFileAtomically(config_, Config(2));
    cd_ = std::make_unique<Proc>(std::vector<std::string>{LLMCD_BIN, "--config", config_}, dir_ + "/llmcd.log", false);
    stub_ = AdminStub(grpc_port_);
  }
  void TearDown() override {
    gw_.reset();
    cd_.reset();
    mocks_.clear();
    shm::Unlink("/llmgw-" + instance_);
    for (const char* f : {"/llmgw.yaml", "/llmgw.yaml.tmp", "/next.yaml", "/bad.yaml", "/llmcd.log", "/llmgw.log",
                          "/mock.log"})
      std::remove((dir_ + f).c_str());
    rmdir(dir_.c_str());
  }
  std::string Config(size_t n, const std::string& policy = "round_robin") {
    std::string y = "instance: " + instance_ +
                    "\ngateway:\n  listen: 127.0.0.1:0\n  threads: 1\nadmin:\n  grpc_listen: " + addr_ +
                    "\n  metrics_listen: 127.0.0.1:" + std::to_string(metrics_port_) +
                    "\nhealth: { interval_ms: 300, timeout_ms: 1000, unhealthy_after: 2, healthy_after: 1 }\n"
                    "control: { tick_ms: 20, heartbeat_ms: 200 }\n"
                    "models:\n  - name: m\n    policy: " + policy + "\n    backends:\n";
    for (size_t i = 0; i < n && i < mocks_.size(); ++i)
      y += "      - { id: b" + std::to_string(i) + ", url: \"" + mocks_[i]->url() + "\" }\n";
    return y;
  }
  bool Ready() {
    return WaitFor([&] {
      pb::GetStatusResponse s;
      return stub_->GetStatus(Ctx().get(), {}, &s).ok() && s.backends_total() == 2;
    }, 5000);
  }
  CliResult Ctl(std::vector<std::string> args) {
    args.insert(args.begin(), {"--addr", addr_});
    return RunLlmctl(args);
  }
  std::string Logs() {
    std::string state = cd_ && cd_->pid() > 0 ? ReadFile("/proc/" + std::to_string(cd_->pid()) + "/status") : "";
    int ws = 0;
    if (cd_ && cd_->pid() > 0 && waitpid(cd_->pid(), &ws, WNOHANG) == cd_->pid())
      state += "exited: " + std::to_string(WIFEXITED(ws) ? WEXITSTATUS(ws) : -WTERMSIG(ws)) + "\n";
    return "--- llmcd.log\n" + ReadFile(dir_ + "/llmcd.log") + "--- llmcd /proc status\n" +
           state + "--- mock ports " + std::to_string(mocks_[0]->port()) + " " +
           std::to_string(mocks_[1]->port()) + "\n";
  }

  std::string dir_, config_, instance_, addr_;
  int grpc_port_ = 0, metrics_port_ = 0;
  std::vector<std::unique_ptr<Proc>> mocks_;
  std::unique_ptr<Proc> cd_, gw_;
  std::unique_ptr<pb::Admin::Stub> stub_;
};

TEST_F(LlmctlLlmcdTest, StatusBackendsAndBackendCommands) {
  ASSERT_TRUE(Ready()) << Logs();
  CliResult r = Ctl({"status", "-o", "json"});
  ASSERT_EQ(r.code, 0) << r.err;
  pb::GetStatusResponse st;
  ASSERT_TRUE(ParseJson(r.out, &st)) << r.out;
  EXPECT_EQ(st.instance(), instance_);
  EXPECT_EQ(st.role(), "controller");
  EXPECT_EQ(st.backends_total(), 2u);
  EXPECT_EQ(st.config_file(), config_);
  EXPECT_FALSE(st.version().empty());
  r = Ctl({"status"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find(instance_), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("2/2 healthy"), std::string::npos) << r.out;

  r = Ctl({"backends", "-o", "json"});
  ASSERT_EQ(r.code, 0) << r.err;
  pb::ListBackendsResponse bl;
  ASSERT_TRUE(ParseJson(r.out, &bl)) << r.out;
  ASSERT_EQ(bl.backends_size(), 2);
  EXPECT_EQ(bl.backends(0).id(), "b0");
  EXPECT_EQ(bl.backends(1).url(), mocks_[1]->url());
  EXPECT_EQ(bl.backends(1).state(), pb::HEALTHY);
  r = Ctl({"backends"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("b1"), std::string::npos);
  EXPECT_NE(r.out.find("healthy"), std::string::npos) << r.out;

  // drain / undrain / reset change what llmcd reports.
  r = Ctl({"drain", "b1", "-o", "json"});
  ASSERT_EQ(r.code, 0) << r.err;
  pb::BackendResponse br;
  ASSERT_TRUE(ParseJson(r.out, &br)) << r.out;
  EXPECT_EQ(br.backend().id(), "b1");
  EXPECT_EQ(br.backend().state(), pb::DRAINING);
  EXPECT_EQ(StateOf(stub_.get(), "b1"), pb::DRAINING);
  r = Ctl({"backends"});
  EXPECT_NE(r.out.find("draining"), std::string::npos) << r.out;
  r = Ctl({"undrain", "b1"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("b1"), std::string::npos) << r.out;
  EXPECT_EQ(StateOf(stub_.get(), "b1"), pb::HEALTHY);
  r = Ctl({"reset", "b1", "-o", "json"});
  ASSERT_EQ(r.code, 0) << r.err;
  ASSERT_TRUE(ParseJson(r.out, &br)) << r.out;
  EXPECT_EQ(br.backend().state(), pb::HEALTHY);

  // Unknown ids: NOT_FOUND → exit 5 with one line on stderr.
  for (const char* cmd : {"drain", "undrain", "reset"}) {
    r = Ctl({cmd, "nope"});
    EXPECT_EQ(r.code, 5) << cmd << ": " << r.err;
    EXPECT_EQ(r.err.rfind("llmctl: ", 0), 0u) << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
    EXPECT_NE(r.err.find("nope"), std::string::npos) << r.err;
  }
}

TEST_F(LlmctlLlmcdTest, ConfigShowReloadDiffAndCheck) {
  ASSERT_TRUE(Ready()) << Logs();
  CliResult r = Ctl({"config", "show", "-o", "json"});
  ASSERT_EQ(r.code, 0) << r.err;
  pb::GetConfigResponse gc;
  ASSERT_TRUE(ParseJson(r.out, &gc)) << r.out;
  EXPECT_EQ(gc.path(), config_);
  EXPECT_NE(gc.yaml().find("instance: " + instance_), std::string::npos) << gc.yaml();
  uint64_t version = gc.version();
  r = Ctl({"config", "show"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find(config_), std::string::npos);
  EXPECT_NE(r.out.find(mocks_[1]->url()), std::string::npos) << r.out;

  // diff against a file with one backend less and another policy.
  WriteFileAtomically(dir_ + "/next.yaml", Config(1, "least_connections"));
  r = Ctl({"config", "diff", dir_ + "/next.yaml", "-o", "json"});
  ASSERT_EQ(r.code, 0) << r.err;
  rapidjson::Document d;
  ASSERT_FALSE(d.Parse(r.out.c_str()).HasParseError()) << r.out;
  ASSERT_TRUE(d.IsObject() && d.HasMember("changed") && d.HasMember("changes")) << r.out;
  EXPECT_TRUE(d["changed"].GetBool());
  bool removed_b1 = false, policy_changed = false;
  for (const auto& c : d["changes"].GetArray()) {
    std::string change = c["change"].GetString(), kind = c["kind"].GetString(), name = c["name"].GetString();
    if (change == "removed" && kind == "backend" && name == "b1") removed_b1 = true;
    if (change == "changed" && kind == "model" && name == "m") policy_changed = true;
  }
  EXPECT_TRUE(removed_b1) << r.out;
  EXPECT_TRUE(policy_changed) << r.out;
  r = Ctl({"config", "diff", dir_ + "/next.yaml"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("- backend b1"), std::string::npos) << r.out;
  r = Ctl({"config", "diff", config_});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("no changes"), std::string::npos) << r.out;

  // check is offline: good file 0, bad file 2 with FILE:LINE: key.
  r = RunLlmctl({"--addr", "127.0.0.1:1", "config", "check", dir_ + "/next.yaml"});
  EXPECT_EQ(r.code, 0) << r.err;
  WriteFileAtomically(dir_ + "/bad.yaml", "instance: x\nmodels:\n  - name: m\n    policy: fastest\n");
  r = RunLlmctl({"--addr", "127.0.0.1:1", "config", "check", dir_ + "/bad.yaml"});
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find(dir_ + "/bad.yaml:4: models[0].policy"), std::string::npos) << r.err;
  r = Ctl({"config", "diff", dir_ + "/bad.yaml"});
  EXPECT_EQ(r.code, 2) << r.err;

  // reload: the file as it is (ok), then a broken file (rejected, exit 2, old config stays).
  r = Ctl({"config", "reload", "-o", "json"});
  ASSERT_EQ(r.code, 0) << r.err;
  pb::ReloadConfigResponse rr;
  ASSERT_TRUE(ParseJson(r.out, &rr)) << r.out;
  EXPECT_TRUE(rr.ok());
  EXPECT_GT(rr.version(), version);
  std::string good = ReadFile(config_);
  // llmcd's inotify reload sees the broken file too: that only adds another rejection.
  WriteFileAtomically(config_, "instance: " + instance_ + "\nmodels:\n  - name: m\n    policy: fastest\n");
  r = Ctl({"config", "reload"});
  EXPECT_EQ(r.code, 2) << r.out << r.err;
  EXPECT_NE(r.err.find("policy"), std::string::npos) << r.err;
  WriteFileAtomically(config_, good);
  pb::GetStatusResponse st;
  ASSERT_TRUE(stub_->GetStatus(Ctx().get(), {}, &st).ok());
  EXPECT_EQ(st.backends_total(), 2u);
  EXPECT_GE(st.config_reload_failures(), 1u);
}

// Issue 17: a config file with a non-UTF-8 byte made llmctl say "llmcd does not implement
// ReloadConfig" (llmcd could not serialise its own answer) and put invalid JSON in
// llmcd's log. Now: a clear rejection naming line and column, and a log that parses.
TEST_F(LlmctlLlmcdTest, NonUtf8ConfigIsRejectedClearlyAndTheLogStaysJson) {
  ASSERT_TRUE(Ready()) << Logs();
  std::string good = ReadFile(config_);
  std::string bad = good;
  size_t pol = bad.find("policy: round_robin");
  ASSERT_NE(pol, std::string::npos) << bad;
  bad.replace(pol, 19, "policy: r\xe9ound_robin");
  WriteFileAtomically(config_, bad);
  CliResult r = Ctl({"config", "reload"});
  EXPECT_EQ(r.code, 2) << r.out << r.err;
  EXPECT_EQ(r.err.find("does not implement"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("not valid UTF-8: byte 0xE9"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find(config_ + ":"), std::string::npos) << r.err;
  r = RunLlmctl({"--addr", "127.0.0.1:1", "config", "check", config_});
  EXPECT_EQ(r.code, 2) << r.err;
  EXPECT_NE(r.err.find("not valid UTF-8"), std::string::npos) << r.err;
  WriteFileAtomically(config_, good);
  pb::GetStatusResponse st;
  ASSERT_TRUE(stub_->GetStatus(Ctx().get(), {}, &st).ok());
  EXPECT_EQ(st.backends_total(), 2u);
  // Every line llmcd wrote is JSON in valid UTF-8.
  std::istringstream log(ReadFile(dir_ + "/llmcd.log"));
  std::string line;
  int lines = 0;
  bool saw_rejection = false;
  while (std::getline(log, line)) {
    if (line.empty() || line[0] != '{') continue;  // not a log line (e.g. gRPC's own stderr)
    ++lines;
    rapidjson::Document d;
    d.Parse<rapidjson::kParseValidateEncodingFlag>(line.c_str(), line.size());
    EXPECT_FALSE(d.HasParseError()) << "not valid JSON: " << line;
    if (line.find("not valid UTF-8") != std::string::npos) saw_rejection = true;
  }
  EXPECT_GT(lines, 0);
  EXPECT_TRUE(saw_rejection) << Logs();
}

TEST_F(LlmctlLlmcdTest, RoutingWatchFleetVersionAndUnreachable) {
  ASSERT_TRUE(Ready()) << Logs();
  gw_ = std::make_unique<Proc>(std::vector<std::string>{LLMGW_BIN, "--config", config_}, dir_ + "/llmgw.log", true);
  ASSERT_GT(gw_->port(), 0);
  ASSERT_TRUE(WaitFor([&] { return HttpCall(gw_->port(), "GET", "/ready", "", 1000).status == 200; }, 5000));
  for (int i = 0; i < 10; ++i)
    ASSERT_EQ(HttpCall(gw_->port(), "POST", "/v1/chat/completions", kChatBody).status, 200);

  // routing: the picks the data plane counted, summed by llmcd (round robin: 5 and 5).
  pb::GetRoutingStatsResponse rs;
  ASSERT_TRUE(WaitFor([&] {
    CliResult r = Ctl({"routing", "-o", "json"});
    if (r.code != 0 || !ParseJson(r.out, &rs) || rs.models_size() != 1) return false;
    uint64_t picks = 0;
    for (const auto& p : rs.models(0).picks()) picks += p.picks();
    return picks == 10;
  }, 5000)) << rs.DebugString();
  EXPECT_EQ(rs.models(0).model(), "m");
  EXPECT_EQ(rs.models(0).policy(), "round_robin");
  for (const auto& p : rs.models(0).picks()) EXPECT_EQ(p.picks(), 5u) << p.id();
  CliResult r = Ctl({"routing"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("policy round_robin"), std::string::npos) << r.out;

  // watch on a pipe: plain snapshots, then JSON lines of StatusUpdate.
  r = Ctl({"watch", "--interval", "100", "--count", "2"});
  ASSERT_EQ(r.code, 0) << r.err;
  size_t frames = 0;
  for (size_t p = r.out.find("--- "); p != std::string::npos; p = r.out.find("--- ", p + 1)) ++frames;
  EXPECT_EQ(frames, 2u) << r.out;
  EXPECT_EQ(r.out.find('\x1b'), std::string::npos) << "escape codes on a pipe";
  EXPECT_NE(r.out.find("b1"), std::string::npos);
  r = Ctl({"watch", "--interval", "100", "--count", "2", "-o", "json"});
  ASSERT_EQ(r.code, 0) << r.err;
  std::istringstream lines(r.out);
  std::string line;
  int updates = 0;
  while (std::getline(lines, line)) {
    pb::StatusUpdate u;
    ASSERT_TRUE(ParseJson(line, &u)) << line;
    EXPECT_EQ(u.status().instance(), instance_);
    EXPECT_EQ(u.backends_size(), 2);
    ++updates;
  }
  EXPECT_EQ(updates, 2);

  // fleet: a controller with no agents (the fleet itself: fleet_integration_test).
  r = Ctl({"fleet", "-o", "json"});
  ASSERT_EQ(r.code, 0) << r.err;
  pb::ListGatewaysResponse lg;
  ASSERT_TRUE(ParseJson(r.out, &lg)) << r.out;
  EXPECT_TRUE(lg.is_controller());
  EXPECT_EQ(lg.gateways_size(), 0);
  r = Ctl({"fleet"});
  EXPECT_EQ(r.code, 0) << r.err;

  // version: client and server.
  pb::GetStatusResponse st;
  ASSERT_TRUE(stub_->GetStatus(Ctx().get(), {}, &st).ok());
  r = Ctl({"version", "-o", "json"});
  ASSERT_EQ(r.code, 0) << r.err;
  rapidjson::Document d;
  ASSERT_FALSE(d.Parse(r.out.c_str()).HasParseError()) << r.out;
  ASSERT_TRUE(d.HasMember("server_version") && d["server_version"].IsString()) << r.out;
  EXPECT_EQ(std::string(d["server_version"].GetString()), st.version());

  // Unreachable: llmcd gone → exit 3, one line on stderr, for every server command.
  ASSERT_EQ(cd_->Stop(SIGTERM, 5000), 0);
  for (std::vector<std::string> cmd : std::vector<std::vector<std::string>>{
           {"status"}, {"backends"}, {"drain", "b0"}, {"config", "show"}, {"routing"}, {"fleet"}}) {
    cmd.insert(cmd.end(), {"--timeout", "2"});
    r = Ctl(cmd);
    EXPECT_EQ(r.code, 3) << cmd[0] << ": " << r.err;
    EXPECT_EQ(r.err.rfind("llmctl: ", 0), 0u) << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  }
  r = Ctl({"version", "--timeout", "2"});
  EXPECT_EQ(r.code, 0) << "version works without a server";
}

}  // namespace
}  // namespace llmgw::e2e
