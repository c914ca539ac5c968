// The fleet in one process, for the tests where a Controller with its admin server (Fleet
// service, wired as llmcd's main wires it) and FleetAgents on other instances meet
// (fleet_test.cc under TSan, fleet_tls_test.cc): their configs, the started pieces with
// RAII that stops and joins them even when an assertion returns early, and a look at what
// an agent published.
#pragma once

#include <gtest/gtest.h>

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "common/shm.h"
#include "controlplane/admin_service.h"
#include "controlplane/controller.h"
#include "controlplane/fleet.h"

namespace llmgw::cp::fleet_test {

inline Config ParseOrDie(const std::string& yaml) {
  ConfigResult cr = ParseConfig(yaml, "test.yaml");
  EXPECT_TRUE(cr.ok()) << cr.ErrorText();
  return cr.config;
}

// One model `m` with one backend `b0` at url; fast health checks and ticks.
inline std::string Yaml(const std::string& instance, const std::string& url) {
  return "instance: " + instance +
         "\nadmin: { grpc_listen: 127.0.0.1:0 }\n"
         "health: { interval_ms: 100, timeout_ms: 100, unhealthy_after: 2, healthy_after: 1, scrape_metrics: false }\n"
         "control: { tick_ms: 20, heartbeat_ms: 100 }\n"
         "models:\n  - name: m\n    backends:\n      - { id: b0, url: \"" + url + "\" }\n";
}

// The state of backend 0 in what is currently published in region r; -1 when nothing is.
inline int PublishedState(const shm::ShmRegion* r) {
  auto snap = std::make_unique<shm::Snapshot>();
  shm::SnapshotReader reader(r);
  if (!reader.Refresh(snap.get()) || snap->num_backends == 0) return -1;
  return snap->backends[0].state;
}

// A controller publishing on its instance and serving Admin + Fleet on 127.0.0.1:<port>.
// Start() once; Stop() (or the destructor) stops the loop, the admin server and the shm.
class InProcessController {
 public:
  Status Start(const Config& cfg) {
    instance_ = cfg.instance;
    Status st = controller.StartWithConfig(cfg);
    if (!st.ok()) return st;
    admin_ = std::make_unique<AdminServer>(&controller);
    admin_->AddService([this](auto token, auto stopping) {
      return MakeFleetService(&controller, std::make_shared<FleetRegistry>(&controller), token, stopping);
    });
    st = admin_->Start(cfg.admin);
    if (!st.ok()) return st;
    loop_ = std::thread([this] { controller.Run(stop_); });
    return Status::Ok();
  }
  std::string addr() const { return "127.0.0.1:" + std::to_string(admin_ ? admin_->port() : 0); }
  int port() const { return admin_ ? admin_->port() : 0; }
  void Stop() {
    stop_ = true;
    if (loop_.joinable()) loop_.join();
    if (admin_) admin_->Stop();
    controller.Shutdown();
  }
  ~InProcessController() {
    Stop();
    if (!instance_.empty()) shm::Unlink("/llmgw-" + instance_);
  }

  Controller controller;

 private:
  std::string instance_;
  std::unique_ptr<AdminServer> admin_;
  std::atomic<bool> stop_{false};
  std::thread loop_;
};

// A FleetAgent of the controller at addr, running in its own thread once Start() succeeded.
class InProcessAgent {
 public:
  InProcessAgent(const Config& cfg, const std::string& addr) : instance_(cfg.instance), agent(cfg, addr) {}
  Status Start() {
    Status st = agent.Start();
    if (st.ok()) loop_ = std::thread([this] { agent.Run(stop_); });
    return st;
  }
  void Stop() {
    stop_ = true;
    if (loop_.joinable()) loop_.join();
    agent.Shutdown();
  }
  ~InProcessAgent() {
    Stop();
    shm::Unlink("/llmgw-" + instance_);
  }

 private:
  std::string instance_;

 public:
  FleetAgent agent;

 private:
  std::atomic<bool> stop_{false};
  std::thread loop_;
};

}  // namespace llmgw::cp::fleet_test
