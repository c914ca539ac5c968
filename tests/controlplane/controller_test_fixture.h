// What the Controller tests share (controller_test.cc, controller_reload_test.cc): a
// config for one model on given backend URLs, a fake Prober answering from a function,
// and the fixture that starts a Controller on an injected clock (Step ticks it) or on the
// real prober and clock.
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "common/shm.h"
#include "controlplane/controller.h"
#include "controlplane/prober.h"
#include "test_http_server.h"
#include "test_support.h"

namespace llmgw::cp::controller_test {

using testing::TestHttpServer;
using testing::TestResponse;
using Clock = std::chrono::steady_clock;

inline constexpr char kVllmMetrics[] =
    "# TYPE vllm:num_requests_running gauge\n"
    "vllm:num_requests_running{engine=\"0\",model_name=\"m\"} 5.0\n"
    "vllm:num_requests_waiting{engine=\"0\",model_name=\"m\"} 3.0\n"
    "vllm:kv_cache_usage_perc{engine=\"0\",model_name=\"m\"} 0.62\n";

inline std::string UniqueInstance() {
  static int n = 0;
  return "cptest-" + std::to_string(getpid()) + "-" + std::to_string(++n);
}

inline std::string Yaml(const std::string& instance, const std::vector<std::string>& urls, const std::string& extra = "",
                 int timeout_ms = 100) {
  std::string y = "instance: " + instance +
                  "\nhealth: { interval_ms: 100, timeout_ms: " + std::to_string(timeout_ms) +
                  ", unhealthy_after: 2, healthy_after: 1, "
                  "scrape_interval_ms: 100, metrics_stale_ms: 400 }\n"
                  "control: { tick_ms: 20, heartbeat_ms: 100 }\n"
                  "circuit_breaker: { failure_threshold: 3, success_threshold: 1, open_ms: 200, "
                  "half_open_requests: 1, slow_call_ms: 1000, window_ms: 1000 }\n" +
                  extra + "models:\n  - name: m\n    policy: adaptive\n    backends:\n";
  for (const auto& u : urls) y += "      - { url: " + u + ", max_concurrent: 8 }\n";
  return y;
}

// Ticks until pred holds or the timeout passes; returns whether it held.
template <typename P>
inline bool TickUntil(Controller& c, P pred, int timeout_ms = 2000) {
  auto end = Clock::now() + std::chrono::milliseconds(timeout_ms);
  while (Clock::now() < end) {
    c.Tick();
    if (pred()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return false;
}

inline shm::BackendState StateOf(Controller& c, const std::string& id) {
  BackendView b;
  EXPECT_TRUE(c.GetBackend(id, &b));
  return b.state;
}

// Answers probes and scrapes from a function of (host:port, path); counts calls per path.
// Optionally holds every call until Release() (a hung backend).
class FakeProber final : public Prober {
 public:
  using Answer = std::function<HttpResponse(const std::string& host, const std::string& path)>;
  void Set(Answer a) {
    std::lock_guard<std::mutex> l(mu_);
    answer_ = std::move(a);
  }
  void Hold() {
    std::lock_guard<std::mutex> l(mu_);
    hold_ = true;
  }
  void Release() {
    {
      std::lock_guard<std::mutex> l(mu_);
      hold_ = false;
    }
    cv_.notify_all();
  }
  HttpTarget last_target(const std::string& path) const {
    std::lock_guard<std::mutex> l(mu_);
    auto it = last_target_.find(path);
    return it == last_target_.end() ? HttpTarget{} : it->second;
  }
  int calls(const std::string& path) const {
    std::lock_guard<std::mutex> l(mu_);
    auto it = calls_.find(path);
    return it == calls_.end() ? 0 : it->second;
  }
  HttpResponse Get(const HttpTarget& t, const std::string& path, uint32_t, size_t,
                   const std::atomic<bool>* cancel) override {
    std::unique_lock<std::mutex> l(mu_);
    ++calls_[path];
    last_target_[path] = t;
    while (hold_ && !(cancel && cancel->load())) cv_.wait_for(l, std::chrono::milliseconds(10));
    if (hold_) return HttpResponse{0, "", "cancelled"};
    Answer a = answer_;
    l.unlock();
    return a ? a(t.host_header, path) : HttpResponse{200, "ok", ""};
  }

 private:
  mutable std::mutex mu_;
  std::condition_variable cv_;
  Answer answer_;
  bool hold_ = false;
  std::map<std::string, int> calls_;
  std::map<std::string, HttpTarget> last_target_;
};

inline HttpResponse Ok(std::string body = "ok") { return HttpResponse{200, std::move(body), ""}; }
inline HttpResponse Status(int code) { return HttpResponse{code, "", ""}; }
inline HttpResponse Refused() { return HttpResponse{0, "", "connect: Connection refused"}; }

// Backends that are never contacted (the fake prober answers for them).
inline constexpr char kUrlA[] = "http://127.0.0.1:9";
inline constexpr char kUrlB[] = "http://127.0.0.1:10";

class ControllerTest : public ::testing::Test {
 protected:
  // fake: fake prober, injected clock and inline probe jobs; otherwise the real prober,
  // steady clock and worker threads.
  void Start(const std::string& yaml, bool fake = true, std::function<void(Config&)> tweak = nullptr) {
    instance_ = yaml.substr(10, yaml.find('\n') - 10);
    ConfigResult r = ParseConfig(yaml, "test.yaml");
    ASSERT_TRUE(r.ok()) << r.ErrorText();
    if (tweak) tweak(r.config);
    ControllerOptions o;
    if (fake) {
      o.clock_ms = [this] { return now_ms_.load(); };
      o.prober = prober_;
      o.worker_threads = 0;
    }
    c_ = std::make_unique<Controller>(o);
    ASSERT_TRUE(c_->StartWithConfig(std::move(r.config)).ok());
    auto obj = shm::ShmObject::Open("/llmgw-" + instance_);
    ASSERT_TRUE(obj.ok());
    shm_ = std::move(obj.value());
  }
  void TearDown() override {
    if (c_) c_->Shutdown();
    if (shm_) shm_->Close();
  }
  // Advances the fake clock by ms and ticks once.
  void Step(uint64_t ms = 20) {
    now_ms_ += ms;
    c_->Tick();
  }
  // Steps until pred holds, at most max_ms of fake time; returns the fake ms it took, or -1.
  template <typename P>
  int64_t StepUntil(P pred, uint64_t max_ms = 2000, uint64_t step = 20) {
    for (uint64_t t = step; t <= max_ms; t += step) {
      Step(step);
      if (pred()) return static_cast<int64_t>(t);
    }
    return -1;
  }
  shm::BackendEntry Published(int slot) {
    shm::SnapshotReader reader(shm_->region());
    auto snap = std::make_unique<shm::Snapshot>();
    EXPECT_TRUE(reader.Refresh(snap.get()));
    return snap->backends[slot];
  }
  std::shared_ptr<FakeProber> prober_ = std::make_shared<FakeProber>();
  std::atomic<uint64_t> now_ms_{1'000'000};
  std::unique_ptr<Controller> c_;
  std::string instance_;
  std::unique_ptr<shm::ShmObject> shm_;
};

}  // namespace llmgw::cp::controller_test
