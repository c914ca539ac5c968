// The dashboard's HTTP side on a real llmcd (admin token set): the token check on the
// page and on the event stream (header, cookie, query), the server-sent events (state
// events at >= 1 Hz whose data is the state JSON), the cap on concurrent streams, and
// that /metrics stays served while viewers hold streams open.
#include <gtest/gtest.h>
#include <rapidjson/document.h>

#include <memory>

#include "common/shm.h"
#include "e2e_process.h"

namespace llmgw::e2e {
namespace {

// Sends `request` on a new connection and returns what arrives within read_ms (or until
// the server closes). Not HttpCall: an event stream never ends by itself.
std::string Raw(int port, const std::string& request, int read_ms) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(static_cast<uint16_t>(port));
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  std::string out;
  if (connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) != 0 ||
      send(fd, request.data(), request.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(request.size())) {
    close(fd);
    return out;
  }
  auto end = Clock::now() + std::chrono::milliseconds(read_ms);
  for (;;) {
    int left = static_cast<int>(std::chrono::duration_cast<std::chrono::milliseconds>(end - Clock::now()).count());
    if (left <= 0) break;
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, left) <= 0) continue;
    char buf[65536];
    ssize_t n = recv(fd, buf, sizeof(buf), 0);
    if (n <= 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  close(fd);
  return out;
}

std::string Get(const std::string& path, const std::string& headers = "") {
  return "GET " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\n" + headers + "Connection: close\r\n\r\n";
}

int StatusOf(const std::string& raw) { return raw.rfind("HTTP/1.1 ", 0) == 0 ? std::atoi(raw.c_str() + 9) : 0; }

size_t Count(const std::string& s, const std::string& what) {
  size_t n = 0;
  for (size_t p = s.find(what); p != std::string::npos; p = s.find(what, p + 1)) ++n;
  return n;
}

class DashboardHttpTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/llmgw-dash-XXXXXX";
    dir_ = mkdtemp(tmpl);
    instance_ = "dashit-" + std::to_string(getpid());
    metrics_port_ = FreePort();
    WriteFileAtomically(dir_ + "/token", std::string(kToken) + "\n");
    WriteFileAtomically(dir_ + "/llmgw.yaml",
                        "instance: " + instance_ + "\nadmin:\n  grpc_listen: 127.0.0.1:" + std::to_string(FreePort()) +
                            "\n  metrics_listen: 127.0.0.1:" + std::to_string(metrics_port_) + "\n  token_file: " +
                            dir_ + "/token\ncontrol: { tick_ms: 50 }\n"
                            "models:\n  - name: m\n    backends:\n      - { id: gpu-one, url: \"http://127.0.0.1:9\" }\n");
    cd_ = std::make_unique<Proc>(std::vector<std::string>{LLMCD_BIN, "--config", dir_ + "/llmgw.yaml"},
                                 dir_ + "/llmcd.log", false);
    ASSERT_TRUE(WaitFor([&] { return HttpCall(metrics_port_, "GET", "/healthz", "", 500).status == 200; }, 5000))
        << ReadFile(dir_ + "/llmcd.log");
  }
  void TearDown() override {
    cd_.reset();
    shm::Unlink("/llmgw-" + instance_);
    for (const char* f : {"/llmgw.yaml", "/llmgw.yaml.tmp", "/token", "/token.tmp", "/llmcd.log"})
      std::remove((dir_ + f).c_str());
    rmdir(dir_.c_str());
  }
  static constexpr char kToken[] = "t0k&n=42";  // characters a URL must escape
  std::string dir_, instance_;
  int metrics_port_ = 0;
  std::unique_ptr<Proc> cd_;
};

TEST_F(DashboardHttpTest, PageNeedsTheAdminToken) {
  std::string r = Raw(metrics_port_, Get("/dashboard"), 2000);
  EXPECT_EQ(StatusOf(r), 401) << r;
  EXPECT_NE(r.find("WWW-Authenticate: Bearer"), std::string::npos) << r;
  EXPECT_EQ(r.find("<canvas"), std::string::npos) << "no page without the token";
  EXPECT_EQ(StatusOf(Raw(metrics_port_, Get("/dashboard", "Authorization: Bearer wrong\r\n"), 2000)), 401);
  EXPECT_EQ(StatusOf(Raw(metrics_port_, Get("/dashboard?token=wrong"), 2000)), 401);
  EXPECT_EQ(StatusOf(Raw(metrics_port_, Get("/dashboard/events"), 2000)), 401);
  EXPECT_EQ(StatusOf(Raw(metrics_port_, Get("/dashboard/state"), 2000)), 401);

  r = Raw(metrics_port_, Get("/dashboard?token=t0k%26n%3D42"), 2000);
  ASSERT_EQ(StatusOf(r), 200) << r;
  EXPECT_NE(r.find("Content-Type: text/html"), std::string::npos);
  EXPECT_NE(r.find("Set-Cookie: llmgw_admin_token=t0k%26n%3D42; Path=/dashboard; HttpOnly; SameSite=Strict"),
            std::string::npos)
      << r;
  EXPECT_NE(r.find("<canvas"), std::string::npos);
  // The cookie the page set is enough afterwards (what the browser's EventSource sends).
  EXPECT_EQ(StatusOf(Raw(metrics_port_, Get("/dashboard/state", "Cookie: llmgw_admin_token=t0k%26n%3D42\r\n"), 2000)),
            200);
  // The Prometheus endpoints stay open (scrapers carry no token).
  EXPECT_EQ(HttpCall(metrics_port_, "GET", "/metrics").status, 200);
}

TEST_F(DashboardHttpTest, EventStreamPushesStateAtLeastOnceASecond) {
  std::string r = Raw(metrics_port_, Get("/dashboard/events", std::string("Authorization: Bearer ") + kToken + "\r\n"),
                      3200);
  ASSERT_EQ(StatusOf(r), 200) << r.substr(0, 300);
  EXPECT_NE(r.find("Content-Type: text/event-stream"), std::string::npos);
  size_t events = Count(r, "event: state\ndata: ");
  EXPECT_GE(events, 4u) << "3.2 s of stream at >= 1 Hz (llmcd sends 2 Hz)";
  // Each event's data is the state JSON, naming every backend.
  size_t p = r.find("event: state\ndata: ");
  ASSERT_NE(p, std::string::npos);
  size_t start = p + std::strlen("event: state\ndata: "), end = r.find("\n\n", start);
  ASSERT_NE(end, std::string::npos);
  rapidjson::Document d;
  d.Parse(r.substr(start, end - start).c_str());
  ASSERT_TRUE(d.IsObject()) << r.substr(start, end - start);
  EXPECT_EQ(std::string(d["status"]["instance"].GetString()), instance_);
  ASSERT_EQ(d["backends"].Size(), 1u);
  EXPECT_EQ(std::string(d["backends"][0]["id"].GetString()), "gpu-one");
  // Time moves from one event to the next.
  size_t p2 = r.find("event: state\ndata: ", end);
  ASSERT_NE(p2, std::string::npos);
  rapidjson::Document d2;
  size_t s2 = p2 + std::strlen("event: state\ndata: ");
  d2.Parse(r.substr(s2, r.find("\n\n", s2) - s2).c_str());
  ASSERT_TRUE(d2.IsObject());
  EXPECT_GT(d2["t"].GetUint64(), d["t"].GetUint64());
}

TEST_F(DashboardHttpTest, StreamsAreCappedAndMetricsStayServed) {
  std::string auth = std::string("Authorization: Bearer ") + kToken + "\r\n";
  // Five viewers hold streams open for 4 s...
  std::vector<std::thread> viewers;
  std::atomic<int> ok{0};
  for (int i = 0; i < 5; ++i)
    viewers.emplace_back([&] {
      if (StatusOf(Raw(metrics_port_, Get("/dashboard/events", auth), 4000)) == 200) ok.fetch_add(1);
    });
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  // ...a sixth is told to come back later, and Prometheus still gets its scrape.
  std::string sixth = Raw(metrics_port_, Get("/dashboard/events", auth), 1500);
  EXPECT_EQ(StatusOf(sixth), 503) << sixth.substr(0, 200);
  EXPECT_NE(sixth.find("Retry-After:"), std::string::npos);
  HttpResult m = HttpCall(metrics_port_, "GET", "/metrics", "", 3000);
  EXPECT_EQ(m.status, 200) << m.error;
  EXPECT_EQ(HttpCall(metrics_port_, "GET", "/healthz", "", 3000).status, 200);
  for (auto& t : viewers) t.join();
  EXPECT_EQ(ok.load(), 5);
  // The viewers left: streams are free again.
  EXPECT_TRUE(WaitFor([&] { return StatusOf(Raw(metrics_port_, Get("/dashboard/events", auth), 700)) == 200; }, 5000));
}

}  // namespace
}  // namespace llmgw::e2e
