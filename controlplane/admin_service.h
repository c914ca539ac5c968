// The gRPC admin API of llmcd (llmgw.admin.v1.Admin) with server reflection, bearer
// token auth on every call (reflection included) when admin.token_file is set, and
// optional TLS. Without a token it refuses to listen on anything but loopback. Other
// services on the same listener (the Fleet service of a controller) are added by the
// caller (llmcd's main.cc), so this file depends on neither of them; auth is auth.h.
#pragma once

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "common/config.h"
#include "common/error.h"
#include "controlplane/auth.h"
#include "controlplane/controller.h"

namespace llmgw::cp {

class AdminServer {
 public:
  explicit AdminServer(Controller* controller);
  ~AdminServer();
  // Makes a service to serve next to Admin, given the admin token (empty: none) and the
  // flag that turns true when the server stops (for long-lived streams).
  using ServiceFactory = std::function<std::unique_ptr<grpc::Service>(
      std::shared_ptr<const std::string> token, std::shared_ptr<std::atomic<bool>> stopping)>;
  // Before Start.
  void AddService(ServiceFactory make);
  // Listens on admin.grpc_listen (port 0 allowed). Returns an error when the address is
  // refused, the token or TLS files cannot be read, or the port cannot be bound.
  Status Start(const AdminConfig& admin);
  void Stop();
  // grpc.health.v1.Health's answer: SERVING while the controller publishes snapshots,
  // NOT_SERVING when it stopped (the same judgement as GET /healthz). main's loop calls it.
  void SetServing(bool serving);
  int port() const { return port_; }

 private:
  Controller* controller_;
  std::unique_ptr<grpc::Service> service_;
  std::vector<ServiceFactory> extra_factories_;
  std::vector<std::unique_ptr<grpc::Service>> extra_services_;
  std::unique_ptr<grpc::Server> server_;
  bool serving_ = true;  // what the health service says now (it starts SERVING)
  std::shared_ptr<std::atomic<bool>> stopping_;
  int port_ = 0;
};

}  // namespace llmgw::cp
