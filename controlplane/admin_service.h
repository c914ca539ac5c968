// The gRPC admin API of llmcd (llmgw.admin.v1.Admin) with server reflection, bearer
// token auth on every call (reflection included) when admin.token_file is set, and
// optional TLS. Without a token it refuses to listen on anything but loopback.
#pragma once

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <memory>
#include <string>

#include "common/config.h"
#include "common/error.h"
#include "controlplane/controller.h"

namespace llmgw::cp {

// True when host (from HOST:PORT) names only the loopback interface.
bool IsLoopbackHost(const std::string& host);

// Issue 17: a bearer token sent in plaintext over a network can be read by anyone on the
// path. Returns the warning llmcd logs at start when that is configured: the admin API
// with admin.token_file on a non-loopback admin.grpc_listen without TLS, or (controller
// non-empty: the fleet agent role, whose channel has no TLS) a token sent to a
// non-loopback controller. Empty when the token stays on the host or is encrypted.
std::string PlaintextTokenWarning(const AdminConfig& admin, const std::string& controller = "");

// True when the call carries `authorization: Bearer <token>` (always when token is empty).
bool CallAuthorized(const grpc::ServerContext* ctx, const std::string& token);

// Reads a token file: surrounding whitespace trimmed; error when unreadable or empty.
Result<std::string> ReadTokenFile(const std::string& path);

class AdminServer {
 public:
  explicit AdminServer(Controller* controller);
  ~AdminServer();
  // Listens on admin.grpc_listen (port 0 allowed). Returns an error when the address is
  // refused, the token or TLS files cannot be read, or the port cannot be bound.
  Status Start(const AdminConfig& admin);
  void Stop();
  int port() const { return port_; }

 private:
  Controller* controller_;
  std::unique_ptr<grpc::Service> service_;
  std::unique_ptr<grpc::Service> fleet_service_;  // llmgw.admin.v1.Fleet (controller role)
  std::unique_ptr<grpc::Server> server_;
  std::shared_ptr<std::atomic<bool>> stopping_;
  int port_ = 0;
};

}  // namespace llmgw::cp
