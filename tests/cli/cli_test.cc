// llmctl against an in-process fake admin service: every command's table and JSON output
// (JSON parsed back), exit codes, TLS and tokens, routing, fleet, and watch as a plain
// snapshot stream. The config commands (show, reload, check, diff) are in cli_config_test.cc.
#include <sys/socket.h>
#include <netinet/in.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <gmock/gmock.h>
#include <google/protobuf/util/json_util.h>
#include <google/protobuf/util/message_differencer.h>
#include <gtest/gtest.h>
#include <rapidjson/document.h>

#include "cli/cli.h"
#include "cli/cli_internal.h"
#include "tests/cli/cli_test_support.h"
#include "tests/cli/fake_admin.h"

namespace llmgw::cli {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using testing::FakeServer;
using namespace test_support;  // RunLlmctl, TempDir, ClosedPort, ParseJson, CliTest, ...

// ---- help, usage, options ----

TEST(CliHelpTest, HelpListsEveryCommand) {
  Result r = RunLlmctl({"help"});
  EXPECT_EQ(r.rc, kExitOk);
  for (const char* c : {"status", "backends", "drain", "undrain", "reset", "config", "routing",
                        "watch", "fleet", "keys", "version", "completion"})
    EXPECT_THAT(r.out, HasSubstr(std::string("\n  ") + c)) << c;
  EXPECT_THAT(r.out, HasSubstr("exit codes"));
}

TEST(CliHelpTest, EveryCommandHasHelp) {
  for (const char* c : {"status", "backends", "drain", "undrain", "reset", "config", "routing",
                        "watch", "fleet", "keys", "version", "help", "completion"}) {
    Result a = RunLlmctl({"help", c});
    EXPECT_EQ(a.rc, kExitOk) << c;
    EXPECT_THAT(a.out, HasSubstr(std::string("usage: llmctl [options] ") + c)) << c;
    if (std::string(c) == "help") continue;  // `help --help` is the general help
    Result b = RunLlmctl({c, "--help"});
    EXPECT_EQ(b.rc, kExitOk) << c;
    EXPECT_EQ(a.out, b.out) << c;
  }
}

TEST(CliHelpTest, BadArgumentsAreUsageErrors) {
  EXPECT_EQ(RunLlmctl({}).rc, kExitUsage);
  for (std::vector<std::string> args : std::vector<std::vector<std::string>>{
           {"frobnicate"},
           {"--bogus", "status"},
           {"help", "frobnicate"},
           {"drain"},
           {"drain", "a", "b"},
           {"reset"},
           {"status", "extra"},
           {"config"},
           {"config", "explode"},
           {"config", "check"},
           {"config", "diff"},
           {"-o", "yaml", "status"},
           {"-o"},
           {"--addr", "no-port", "status"},
           {"--timeout", "-1", "status"},
           {"--token-file", "/nonexistent/token", "status"},
           {"watch", "--interval", "5"},
           {"watch", "--count", "zero"},
           {"completion", "zsh"},
       }) {
    Result r = RunLlmctl(args);
    EXPECT_EQ(r.rc, kExitUsage) << args[0];
    EXPECT_THAT(r.err, HasSubstr("llmctl: ")) << args[0];
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << "one line: " << r.err;
  }
}

TEST(CliHelpTest, VersionWorksWithoutServer) {
  std::string addr = "127.0.0.1:" + std::to_string(ClosedPort());
  Result r = RunLlmctl({"--addr", addr, "version"});
  EXPECT_EQ(r.rc, kExitOk);
  EXPECT_THAT(r.out, HasSubstr("llmctl 0.1.0"));
  EXPECT_THAT(r.out, HasSubstr(addr));
}

TEST(CliHelpTest, DefaultAddressIsLocal9090) {
  // `version` names the address in both outcomes, so this holds whatever listens there.
  Result r = RunLlmctl({"--timeout", "0.5", "version"});
  EXPECT_THAT(r.out, HasSubstr("127.0.0.1:9090"));
}

TEST_F(CliTest, AddrFlagOverridesEnvironment) {
  std::string closed = "127.0.0.1:" + std::to_string(ClosedPort());
  Result r = RunLlmctl({"--addr", server_.addr(), "status"}, {{"LLMCTL_ADDR", closed}});
  EXPECT_EQ(r.rc, kExitOk) << r.err;
  Result r2 = RunLlmctl({"status", "--addr=" + closed}, {{"LLMCTL_ADDR", server_.addr()}});
  EXPECT_EQ(r2.rc, kExitUnreachable);
}

TEST(CliHelpTest, CompletionScriptMatchesInstalledFile) {
  Result r = RunLlmctl({"completion", "bash"});
  EXPECT_EQ(r.rc, kExitOk);
  EXPECT_THAT(r.out, HasSubstr("complete -F _llmctl llmctl"));
  EXPECT_THAT(r.out, HasSubstr("status backends drain undrain reset config routing watch fleet"));
  EXPECT_EQ(r.out, ReadFile(SourcePath("deploy/llmctl.bash-completion")))
      << "regenerate: build/bin/llmctl completion bash > deploy/llmctl.bash-completion";
}

// ---- status / backends ----

TEST_F(CliTest, StatusTable) {
  Result r = Cli({"status"});
  ASSERT_EQ(r.rc, kExitOk) << r.err;
  EXPECT_THAT(r.out, HasSubstr("0.1.0-fake"));
  EXPECT_THAT(r.out, HasSubstr("1h01m01s"));
  EXPECT_THAT(r.out, HasSubstr("2/3 healthy"));
  EXPECT_THAT(r.out, HasSubstr("12.5"));
  EXPECT_THAT(r.out, ::testing::ContainsRegex("errors/s +0.25\n"));
  EXPECT_THAT(r.out, HasSubstr("42"));
  EXPECT_THAT(r.out, HasSubstr("alive, 4 threads"));
  EXPECT_TRUE(r.err.empty());
}

TEST_F(CliTest, StatusJsonParsesBackWithProtoFieldNames) {
  Result r = Cli({"-o", "json", "status"});
  ASSERT_EQ(r.rc, kExitOk) << r.err;
  EXPECT_THAT(r.out, HasSubstr("\"snapshot_generation\""));
  EXPECT_THAT(r.out, Not(HasSubstr("snapshotGeneration")));
  EXPECT_THAT(r.out, HasSubstr("\"config_reload_failures\""));  // zero fields are printed too
  auto got = ParseJson<admin::v1::GetStatusResponse>(r.out);
  std::lock_guard<std::mutex> lock(server_.admin.mu);
  EXPECT_TRUE(SameMessage(got, server_.admin.status)) << got.DebugString();
}

TEST_F(CliTest, BackendsTable) {
  Result r = Cli({"backends"});
  ASSERT_EQ(r.rc, kExitOk) << r.err;
  std::istringstream lines(r.out);
  std::string header;
  std::getline(lines, header);
  EXPECT_THAT(header, ::testing::MatchesRegex(
                          "ID +MODEL +STATE +INFLIGHT +RUNNING +WAITING +KV% +LAT_MS +TTFT99_MS +ERR%"));
  std::vector<std::string> rows;
  for (std::string l; std::getline(lines, l);) rows.push_back(l);
  ASSERT_EQ(rows.size(), 3u);
  EXPECT_THAT(rows[0], ::testing::MatchesRegex(
                           "http://127.0.0.1:8001 +llama-3.1-8b +healthy +7 +3 +2 +55.0 +120 +96 +1.5"));
  EXPECT_THAT(rows[1], HasSubstr("circuit_open"));
  EXPECT_THAT(rows[1], HasSubstr("10.0?"));  // stale metrics marked
  EXPECT_THAT(rows[2], HasSubstr("qwen-a"));
}

TEST_F(CliTest, BackendsModelFilterAndJson) {
  Result r = Cli({"backends", "--model", "qwen", "-o", "json"});
  ASSERT_EQ(r.rc, kExitOk) << r.err;
  auto got = ParseJson<admin::v1::ListBackendsResponse>(r.out);
  ASSERT_EQ(got.backends_size(), 1);
  EXPECT_EQ(got.backends(0).id(), "qwen-a");
  EXPECT_THAT(r.out, HasSubstr("\"kv_cache_usage\""));
  EXPECT_THAT(r.out, HasSubstr("\"HEALTHY\""));
  Result all = Cli({"-ojson", "backends"});
  auto every = ParseJson<admin::v1::ListBackendsResponse>(all.out);
  std::lock_guard<std::mutex> lock(server_.admin.mu);
  EXPECT_TRUE(SameMessage(every, server_.admin.backends));
}

// ---- drain / undrain / reset ----

TEST_F(CliTest, DrainUndrainResetChangeState) {
  Result d = Cli({"drain", "qwen-a"});
  ASSERT_EQ(d.rc, kExitOk) << d.err;
  EXPECT_THAT(d.out, HasSubstr("backend qwen-a: draining (state draining)"));
  {
    std::lock_guard<std::mutex> lock(server_.admin.mu);
    EXPECT_EQ(server_.admin.backends.backends(2).state(), admin::v1::DRAINING);
  }
  Result u = Cli({"undrain", "qwen-a", "-o", "json"});
  ASSERT_EQ(u.rc, kExitOk) << u.err;
  auto resp = ParseJson<admin::v1::BackendResponse>(u.out);
  EXPECT_EQ(resp.backend().id(), "qwen-a");
  EXPECT_EQ(resp.backend().state(), admin::v1::HEALTHY);
  Result rs = Cli({"reset", "http://127.0.0.1:8002"});
  ASSERT_EQ(rs.rc, kExitOk) << rs.err;
  EXPECT_THAT(rs.out, HasSubstr("circuit reset"));
  std::lock_guard<std::mutex> lock(server_.admin.mu);
  EXPECT_EQ(server_.admin.backends.backends(1).state(), admin::v1::HALF_OPEN);
}

TEST_F(CliTest, UnknownBackendIsNotFound) {
  for (const char* verb : {"drain", "undrain", "reset"}) {
    Result r = Cli({verb, "nope"});
    EXPECT_EQ(r.rc, kExitNotFound) << verb;
    EXPECT_THAT(r.err, HasSubstr("not found"));
    EXPECT_THAT(r.err, HasSubstr("nope"));
    EXPECT_TRUE(r.out.empty());
  }
}

// ---- errors: unreachable, deadline, auth ----

TEST(CliErrorTest, UnreachableAddress) {
  std::string addr = "127.0.0.1:" + std::to_string(ClosedPort());
  for (std::vector<std::string> args : std::vector<std::vector<std::string>>{
           {"status"}, {"backends"}, {"drain", "x"}, {"config", "show"}, {"routing"}, {"fleet"},
           {"watch", "--count", "1"}}) {
    args.insert(args.begin(), {"--addr", addr, "--timeout", "2"});
    auto start = std::chrono::steady_clock::now();
    Result r = RunLlmctl(args);
    EXPECT_EQ(r.rc, kExitUnreachable) << args[4] << ": " << r.err;
    EXPECT_THAT(r.err, HasSubstr(addr));
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
    EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
  }
}

TEST_F(CliTest, SlowServerHitsTheDeadline) {
  {
    std::lock_guard<std::mutex> lock(server_.admin.mu);
    server_.admin.delay_ms = 1500;
  }
  auto start = std::chrono::steady_clock::now();
  Result r = Cli({"--timeout", "0.3", "status"});
  EXPECT_EQ(r.rc, kExitUnreachable);
  EXPECT_THAT(r.err, HasSubstr("did not answer GetStatus within 0.3s"));
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(1400));
}

TEST_F(CliTest, TokenIsSentAsBearerAndCheckedByServer) {
  {
    std::lock_guard<std::mutex> lock(server_.admin.mu);
    server_.admin.required_token = "s3cret";
  }
  Result none = Cli({"status"});
  EXPECT_EQ(none.rc, kExitUnauthenticated);
  EXPECT_THAT(none.err, HasSubstr("--token-file"));

  Result wrong = RunLlmctl({"status"}, {{"LLMCTL_ADDR", server_.addr()}, {"LLMCTL_TOKEN", "guess"}});
  EXPECT_EQ(wrong.rc, kExitUnauthenticated);
  {
    std::lock_guard<std::mutex> lock(server_.admin.mu);
    EXPECT_EQ(server_.admin.last_authorization, "Bearer guess");
  }
  Result env_ok = RunLlmctl({"status"}, {{"LLMCTL_ADDR", server_.addr()}, {"LLMCTL_TOKEN", "s3cret"}});
  EXPECT_EQ(env_ok.rc, kExitOk) << env_ok.err;

  TempDir dir;
  std::string file = dir.Write("token", "s3cret\n");  // trailing newline is trimmed
  // The file wins over the environment.
  Result file_ok = RunLlmctl({"--token-file", file, "backends"},
                       {{"LLMCTL_ADDR", server_.addr()}, {"LLMCTL_TOKEN", "guess"}});
  EXPECT_EQ(file_ok.rc, kExitOk) << file_ok.err;
  std::lock_guard<std::mutex> lock(server_.admin.mu);
  EXPECT_EQ(server_.admin.last_authorization, "Bearer s3cret");
}

TEST(CliTlsTest, TalksTlsWithCaFile) {
  TempDir dir;
  std::string cert = dir.Write("cert.pem", ""), key = dir.Write("key.pem", "");
  // A throwaway self-signed pair, made for this test only.
  std::string cmd = "timeout 20 openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=localhost "
                    "-addext subjectAltName=DNS:localhost -keyout " + key + " -out " + cert +
                    " >/dev/null 2>&1";
  ASSERT_EQ(std::system(cmd.c_str()), 0) << "openssl failed";
  FakeServer server(ReadFile(cert), ReadFile(key));
  Result ok = RunLlmctl({"--addr", server.addr(), "--ca-file", cert, "--tls-server-name",
                         "localhost", "status"});
  EXPECT_EQ(ok.rc, kExitOk) << ok.err;
  EXPECT_THAT(ok.out, HasSubstr("0.1.0-fake"));
  // Plaintext against a TLS server, and TLS with the wrong expected name, both fail to connect.
  EXPECT_EQ(RunLlmctl({"--addr", server.addr(), "--timeout", "2", "status"}).rc, kExitUnreachable);
  EXPECT_EQ(RunLlmctl({"--addr", server.addr(), "--timeout", "2", "--ca-file", cert,
                       "--tls-server-name", "wrong.example", "status"}).rc,
            kExitUnreachable);
  EXPECT_EQ(RunLlmctl({"--ca-file", dir.Write("empty.pem", ""), "status"}).rc, kExitUsage);
}

// ---- routing / fleet ----

TEST_F(CliTest, RoutingTableAndJson) {
  Result r = Cli({"routing"});
  ASSERT_EQ(r.rc, kExitOk) << r.err;
  EXPECT_THAT(r.out, HasSubstr("model llama-3.1-8b  policy p2c_kv  requests 1000  retries 3"));
  EXPECT_THAT(r.out, ::testing::ContainsRegex("http://127.0.0.1:8001 +750 +75.0"));
  EXPECT_THAT(r.out, ::testing::ContainsRegex("http://127.0.0.1:8002 +250 +25.0"));
  Result j = Cli({"routing", "-o", "json"});
  auto got = ParseJson<admin::v1::GetRoutingStatsResponse>(j.out);
  std::lock_guard<std::mutex> lock(server_.admin.mu);
  EXPECT_TRUE(SameMessage(got, server_.admin.routing));
}

TEST_F(CliTest, FleetUnimplementedIsNotAController) {
  Result r = Cli({"fleet"});
  EXPECT_EQ(r.rc, kExitError);
  EXPECT_EQ(r.err, "llmctl: this llmcd is not a fleet controller\n");
}

TEST(CliFleetTest, ServerSaysNotController) {
  FakeServer server(/*with_fleet=*/true);
  server.fleet.gateways.set_is_controller(false);
  Result r = RunLlmctl({"--addr", server.addr(), "fleet"});
  EXPECT_EQ(r.rc, kExitError);
  EXPECT_THAT(r.err, HasSubstr("this llmcd is not a fleet controller"));
}

TEST(CliFleetTest, ControllerListsGateways) {
  FakeServer server(/*with_fleet=*/true);
  server.fleet.gateways.set_is_controller(true);
  auto* g = server.fleet.gateways.add_gateways();
  g->set_agent_id("host-a");
  g->set_peer("ipv4:10.0.0.5:41000");
  g->set_last_seen_seconds_ago(0.4);
  g->set_requests_total(777);
  g->set_dataplane_threads(8);
  Result r = RunLlmctl({"--addr", server.addr(), "fleet"});
  ASSERT_EQ(r.rc, kExitOk) << r.err;
  EXPECT_THAT(r.out, ::testing::ContainsRegex("AGENT +PEER +AGE +LAST_SEEN +LAG +ACTIVE +REQUESTS +THREADS"));
  EXPECT_THAT(r.out, ::testing::ContainsRegex("host-a +ipv4:10.0.0.5:41000 +0s +0.4s +0 +0 +777 +8"));
  EXPECT_THAT(r.out, ::testing::Not(HasSubstr("CONTROLLER")));  // no etcd: no controllers table
  Result j = RunLlmctl({"--addr", server.addr(), "-o", "json", "fleet"});
  auto got = ParseJson<admin::v1::ListGatewaysResponse>(j.out);
  EXPECT_TRUE(SameMessage(got, server.fleet.gateways));
}

TEST(CliFleetTest, HaControllerListsLeaderStandbysAndAgentAgeAndLag) {
  FakeServer server(/*with_fleet=*/true);
  auto& f = server.fleet.gateways;
  f.set_is_controller(true);
  f.set_leader("ctl0");
  auto* c0 = f.add_controllers();
  c0->set_id("ctl0");
  c0->set_addr("10.0.0.1:9090");
  c0->set_leader(true);
  c0->set_age_seconds(120);
  auto* c1 = f.add_controllers();
  c1->set_id("ctl1");
  c1->set_addr("10.0.0.2:9090");
  c1->set_age_seconds(30);
  auto* g = f.add_gateways();
  g->set_agent_id("gw-a");
  g->set_peer("ipv4:10.0.0.5:41000");
  g->set_connected_seconds(65);
  g->set_lag_generations(2);
  g->set_active_requests(3);
  Result r = RunLlmctl({"--addr", server.addr(), "fleet"});
  ASSERT_EQ(r.rc, kExitOk) << r.err;
  EXPECT_THAT(r.out, ::testing::ContainsRegex("CONTROLLER +ADDR +ROLE +AGE"));
  EXPECT_THAT(r.out, ::testing::ContainsRegex("ctl0 +10.0.0.1:9090 +leader +120s"));
  EXPECT_THAT(r.out, ::testing::ContainsRegex("ctl1 +10.0.0.2:9090 +standby +30s"));
  EXPECT_THAT(r.out, HasSubstr("this controller stands by; agents attach to the leader ctl0"));
  EXPECT_THAT(r.out, ::testing::ContainsRegex("gw-a +ipv4:10.0.0.5:41000 +65s +0.0s +2 +3 +0 +0"));
}

TEST_F(CliTest, VersionShowsServerVersion) {
  Result r = Cli({"version"});
  EXPECT_EQ(r.rc, kExitOk);
  EXPECT_THAT(r.out, HasSubstr("llmcd  0.1.0-fake"));
  Result j = Cli({"version", "-o", "json"});
  rapidjson::Document d;
  ASSERT_FALSE(d.Parse(j.out.c_str()).HasParseError()) << j.out;
  EXPECT_STREQ(d["server_version"].GetString(), "0.1.0-fake");
  EXPECT_STREQ(d["client_version"].GetString(), "0.1.0");
}

// ---- watch (not a terminal) ----

TEST_F(CliTest, WatchPrintsPlainSnapshotsWhenNotATerminal) {
  Result r = Cli({"watch", "--interval", "100", "--count", "3"});
  ASSERT_EQ(r.rc, kExitOk) << r.err;
  EXPECT_EQ(r.out.find('\x1b'), std::string::npos) << "no escape codes off a terminal";
  std::vector<int> gens;
  std::istringstream lines(r.out);
  for (std::string l; std::getline(lines, l);) {
    if (l.rfind("--- ", 0) != 0) continue;
    EXPECT_THAT(l, ::testing::MatchesRegex(
                       "--- [-0-9T:Z]+  gen [0-9]+  backends 2/3 healthy  req/s 12.5  .*"));
    gens.push_back(std::stoi(l.substr(l.find(" gen ") + 5)));
  }
  ASSERT_EQ(gens.size(), 3u) << r.out;
  EXPECT_LT(gens[0], gens[1]);  // fresh updates, not one repeated
  EXPECT_LT(gens[1], gens[2]);
  EXPECT_THAT(r.out, HasSubstr("http://127.0.0.1:8002"));
}

TEST_F(CliTest, WatchJsonLines) {
  Result r = Cli({"watch", "--interval", "100", "--count", "2", "-o", "json"});
  ASSERT_EQ(r.rc, kExitOk) << r.err;
  std::istringstream lines(r.out);
  int n = 0;
  for (std::string l; std::getline(lines, l); ++n) {
    auto u = ParseJson<admin::v1::StatusUpdate>(l);
    EXPECT_EQ(u.backends_size(), 3);
  }
  EXPECT_EQ(n, 2);
}

TEST_F(CliTest, WatchUnauthenticated) {
  {
    std::lock_guard<std::mutex> lock(server_.admin.mu);
    server_.admin.required_token = "s3cret";
  }
  Result r = Cli({"watch", "--count", "1"});
  EXPECT_EQ(r.rc, kExitUnauthenticated);
}

TEST_F(CliTest, WatchGivesUpWhenUpdatesStop) {
  {
    std::lock_guard<std::mutex> lock(server_.admin.mu);
    server_.admin.watch_stalls = true;
  }
  auto start = std::chrono::steady_clock::now();
  Result r = Cli({"--timeout", "0.3", "watch", "--interval", "100"});
  EXPECT_EQ(r.rc, kExitUnreachable);
  EXPECT_THAT(r.err, HasSubstr("sent no WatchStatus update"));
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(3));
}

// ---- watch frame layout ----

TEST(CliWatchFrameTest, FitsEightyByTwentyFour) {
  admin::v1::StatusUpdate u;
  u.mutable_status()->set_version("0.1.0");
  u.mutable_status()->set_backends_total(40);
  for (int i = 0; i < 40; ++i) {
    auto* b = u.add_backends();
    b->set_id("http://very-long-backend-host-name-number-" + std::to_string(i) + ".example.internal:8000");
    b->set_model("meta-llama/Llama-3.1-70B-Instruct");
    b->set_state(admin::v1::HEALTHY);
  }
  auto lines = RenderWatchFrame(u, 24, 80, "127.0.0.1:9090");
  EXPECT_LE(lines.size(), 24u);
  EXPECT_EQ(lines.size(), 24u);  // it uses the whole screen
  for (const auto& l : lines) EXPECT_LE(l.size(), 80u) << l;
  EXPECT_THAT(lines.back(), HasSubstr("more backends"));
  // Rightmost column survives: ids are shortened rather than ERR% cut off.
  EXPECT_THAT(lines[3], HasSubstr("ERR%"));
  EXPECT_THAT(lines[4], HasSubstr("~"));
  EXPECT_THAT(lines[4], HasSubstr("internal:8000"));    // the tail of the id is kept
  EXPECT_THAT(lines[4], ::testing::EndsWith(" 0.0"));     // ... and the ERR% column
}

}  // namespace
}  // namespace llmgw::cli
