// Fleet-wide key leases with real processes on loopback: a controller llmcd and two agents
// (`llmcd --agent-of`), each agent with its own llmgw, share one key's rpm. Demand (four
// times the limit) is all on one gateway, then all on the other: over every 10 s window
// the fleet admits no more than the limit (within 5%) and no less than 95% of it; and the
// controller's `llmctl keys list` counts both agents' use of the key.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <atomic>
#include <mutex>
#include <thread>

#include "common/sha256.h"
#include "common/shm.h"
#include "e2e_process.h"

namespace llmgw::e2e {
namespace {

const std::string kSecret = "sk-fleet-shared-0123456789";
constexpr int kRpm = 1800;  // 30 requests/s for the whole fleet

// One keyed chat request on a fresh connection; the status (0: no answer).
int KeyedCall(int port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(static_cast<uint16_t>(port));
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  timeval tv{5, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  if (connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) != 0) {
    close(fd);
    return 0;
  }
  std::string body = kChatBody;
  std::string req = "POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
                    "Authorization: Bearer " + kSecret + "\r\nContent-Type: application/json\r\nContent-Length: " +
                    std::to_string(body.size()) + "\r\n\r\n" + body;
  if (send(fd, req.data(), req.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(req.size())) {
    close(fd);
    return 0;
  }
  std::string raw;
  char buf[4096];
  for (ssize_t n; (n = recv(fd, buf, sizeof(buf), 0)) > 0;) raw.append(buf, static_cast<size_t>(n));
  close(fd);
  return raw.rfind("HTTP/1.1 ", 0) == 0 ? std::atoi(raw.c_str() + 9) : 0;
}

class FleetKeysTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/llmgw-fleetkeys-XXXXXX";
    dir_ = mkdtemp(tmpl);
    std::string pid = std::to_string(getpid());
    instances_ = {"fkc-" + pid, "fka-" + pid, "fkb-" + pid};
    ctl_grpc_ = FreePort();
    mock_ = std::make_unique<Proc>(std::vector<std::string>{LLMGW_MOCK_BIN, "--listen", "127.0.0.1:0", "--model", "m",
                                                            "--token-interval-ms", "0", "--output-tokens", "1"},
                                   dir_ + "/mock.log", true);
    for (size_t i = 0; i < 3; ++i)
      WriteFileAtomically(dir_ + "/" + instances_[i] + ".yaml", Config(instances_[i], i == 0 ? ctl_grpc_ : FreePort()));
  }
  void TearDown() override {
    gws_.clear();
    agents_.clear();
    ctl_.reset();
    mock_.reset();
    for (const auto& i : instances_) {
      shm::Unlink("/llmgw-" + i);
      std::remove(("/dev/shm/llmgw-" + i + ".writer").c_str());
      std::remove((dir_ + "/" + i + ".yaml").c_str());
      std::remove((dir_ + "/" + i + ".log").c_str());
      std::remove((dir_ + "/" + i + ".gw.log").c_str());
    }
    std::remove((dir_ + "/mock.log").c_str());
    rmdir(dir_.c_str());
  }
  std::string Config(const std::string& instance, int grpc_port) {
    return "instance: " + instance +
           "\ngateway:\n  listen: 127.0.0.1:0\n  threads: 2\n"
           "admin:\n  grpc_listen: 127.0.0.1:" + std::to_string(grpc_port) +
           "\n  metrics_listen: 127.0.0.1:" + std::to_string(FreePort()) +
           "\ncontrol: { tick_ms: 20, heartbeat_ms: 200 }\n"
           "keys:\n  - { id: shared, key_sha256: \"" + Sha256Hex(kSecret) + "\", limits: { rpm: " +
           std::to_string(kRpm) + " } }\n"
           "models:\n  - name: m\n    backends:\n      - { id: b0, url: \"" + mock_->url() + "\" }\n";
  }
  void StartFleet() {
    ctl_ = std::make_unique<Proc>(std::vector<std::string>{LLMCD_BIN, "--config", Yaml(0)}, Log(0), false);
    for (size_t i = 1; i < 3; ++i) {
      agents_.push_back(std::make_unique<Proc>(
          std::vector<std::string>{LLMCD_BIN, "--config", Yaml(i), "--agent-of", "127.0.0.1:" + std::to_string(ctl_grpc_)},
          Log(i), false));
      gws_.push_back(std::make_unique<Proc>(std::vector<std::string>{LLMGW_BIN, "--config", Yaml(i)},
                                            dir_ + "/" + instances_[i] + ".gw.log", true));
    }
    for (auto& g : gws_) {
      ASSERT_GT(g->port(), 0) << Logs();
      ASSERT_TRUE(WaitFor([&] { return HttpCall(g->port(), "GET", "/ready", "", 1000).status == 200; }, 8000)) << Logs();
    }
  }
  std::string Yaml(size_t i) { return dir_ + "/" + instances_[i] + ".yaml"; }
  std::string Log(size_t i) { return dir_ + "/" + instances_[i] + ".log"; }
  std::string Logs() {
    std::string s;
    for (size_t i = 0; i < 3; ++i)
      s += "--- " + instances_[i] + "\n" + ReadFile(Log(i)) + ReadFile(dir_ + "/" + instances_[i] + ".gw.log");
    return s;
  }

  // Clients offering `per_s` requests/s in all to gateway `target()` until stop; every
  // admitted request's time (ms since start) is recorded.
  struct Load {
    std::atomic<bool> stop{false};
    std::atomic<int> target{0};
    std::atomic<long> refused{0}, failed{0};
    std::mutex mu;
    std::vector<long> admitted_ms;
    std::vector<std::thread> threads;
  };
  void StartLoad(Load* l, int threads, int per_s, Clock::time_point t0) {
    for (int k = 0; k < threads; ++k)
      l->threads.emplace_back([this, l, threads, per_s, t0] {
        auto gap = std::chrono::microseconds(1000000L * threads / per_s);
        auto next = Clock::now();
        while (!l->stop.load()) {
          int st = KeyedCall(gws_[static_cast<size_t>(l->target.load())]->port());
          if (st == 200) {
            std::lock_guard<std::mutex> g(l->mu);
            l->admitted_ms.push_back(
                std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0).count());
          } else if (st == 429) {
            ++l->refused;
          } else {
            ++l->failed;
          }
          next += gap;
          if (next > Clock::now()) std::this_thread::sleep_until(next);
          else next = Clock::now();
        }
      });
  }

  std::string dir_;
  std::vector<std::string> instances_;  // controller, agent a, agent b
  int ctl_grpc_ = 0;
  std::unique_ptr<Proc> mock_, ctl_;
  std::vector<std::unique_ptr<Proc>> agents_, gws_;
};

TEST_F(FleetKeysTest, TwoGatewaysShareOneKeysRpmWhileDemandMoves) {
  StartFleet();
  if (HasFatalFailure()) return;
  const double rate = kRpm / 60.0;
  auto t0 = Clock::now();
  Load load;
  StartLoad(&load, 6, static_cast<int>(4 * rate), t0);  // four times the limit
  auto sleep_s = [](int s) { std::this_thread::sleep_for(std::chrono::seconds(s)); };
  // The buckets start empty on the agents (the fleet's first burst stays with the
  // controller's host, which serves nothing): the rate is what is leased from the start.
  sleep_s(14);
  load.target = 1;  // all demand moves to the other gateway
  sleep_s(14);
  load.stop = true;
  for (auto& t : load.threads) t.join();
  std::vector<long> ms = load.admitted_ms;
  std::sort(ms.begin(), ms.end());
  EXPECT_EQ(load.failed.load(), 0) << Logs();
  EXPECT_GT(load.refused.load(), 0);
  // Every 10 s window from 2 s on (a second's slide), the move included.
  std::string table;
  bool ok = true;
  for (long from = 2000; from + 10000 <= 28000; from += 1000) {
    long n = std::count_if(ms.begin(), ms.end(), [&](long t) { return t >= from && t < from + 10000; });
    double want = rate * 10;
    table += std::to_string(from / 1000) + "s-" + std::to_string(from / 1000 + 10) + "s: " + std::to_string(n) + " of " +
             std::to_string(static_cast<int>(want)) + "\n";
    if (n > 1.05 * want || n < 0.95 * want) ok = false;
  }
  std::printf("admitted per 10 s window (limit %.0f):\n%s", rate * 10, table.c_str());
  EXPECT_TRUE(ok) << "admitted per 10 s window (limit " << rate * 10 << "):\n" << table << Logs();
  // Both gateways served their phase: a lease followed the demand.
  long first = std::count_if(ms.begin(), ms.end(), [](long t) { return t >= 4000 && t < 14000; });
  long second = std::count_if(ms.begin(), ms.end(), [](long t) { return t >= 18000 && t < 28000; });
  EXPECT_GE(first, 0.95 * rate * 10);
  EXPECT_GE(second, 0.95 * rate * 10);
  // `llmctl keys list` on the controller (which serves nothing itself) counts the agents'
  // reported use: every request either gateway checked, and every one refused.
  const long want_total = static_cast<long>(ms.size()) + load.refused.load();
  auto field = [](const std::string& json, const std::string& name) {
    size_t at = json.find("\"" + name + "\":");
    if (at == std::string::npos) return -1L;
    at += name.size() + 3;
    while (at < json.size() && (json[at] == ' ' || json[at] == '"')) ++at;  // uint64 is a JSON string
    return std::atol(json.c_str() + at);
  };
  CliResult keys;
  bool counted = WaitFor(
      [&] {
        keys = RunLlmctl({"--addr", "127.0.0.1:" + std::to_string(ctl_grpc_), "keys", "list", "-o", "json"}, 5000);
        return keys.code == 0 && field(keys.out, "requests_total") == want_total &&
               field(keys.out, "rejected_total") == load.refused.load();
      },
      5000);
  EXPECT_TRUE(counted) << "want requests_total " << want_total << ", rejected_total " << load.refused.load()
                       << "; llmctl keys list: " << keys.out << keys.err;
}

}  // namespace
}  // namespace llmgw::e2e
