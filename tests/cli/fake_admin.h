// An in-process fake of llmcd's admin API (Admin, optionally Fleet) for llmctl tests:
// canned, test-controlled data, optional bearer-token check, optional slow answers.
#pragma once

#include <atomic>
#include <memory>
#include <mutex>
#include <string>

#include <grpcpp/grpcpp.h>

#include "llmgw/admin/v1/admin.grpc.pb.h"

namespace llmgw::cli::testing {

class FakeAdmin final : public admin::v1::Admin::Service {
 public:
  FakeAdmin();

  std::mutex mu;  // guards every field below
  std::string required_token;  // empty: no auth
  std::string last_authorization;
  int delay_ms = 0;             // unary answers wait this long (deadline tests)
  bool watch_stalls = false;    // WatchStatus never sends
  admin::v1::GetStatusResponse status;
  admin::v1::ListBackendsResponse backends;
  admin::v1::GetConfigResponse config;
  admin::v1::ReloadConfigResponse reload;
  admin::v1::GetRoutingStatsResponse routing;
  std::atomic<int> watch_updates_sent{0};

  grpc::Status GetStatus(grpc::ServerContext*, const admin::v1::GetStatusRequest*,
                         admin::v1::GetStatusResponse*) override;
  grpc::Status ListBackends(grpc::ServerContext*, const admin::v1::ListBackendsRequest*,
                            admin::v1::ListBackendsResponse*) override;
  grpc::Status DrainBackend(grpc::ServerContext*, const admin::v1::BackendRequest*,
                            admin::v1::BackendResponse*) override;
  grpc::Status UndrainBackend(grpc::ServerContext*, const admin::v1::BackendRequest*,
                              admin::v1::BackendResponse*) override;
  grpc::Status ResetCircuit(grpc::ServerContext*, const admin::v1::BackendRequest*,
                            admin::v1::BackendResponse*) override;
  grpc::Status GetConfig(grpc::ServerContext*, const admin::v1::GetConfigRequest*,
                         admin::v1::GetConfigResponse*) override;
  grpc::Status ReloadConfig(grpc::ServerContext*, const admin::v1::ReloadConfigRequest*,
                            admin::v1::ReloadConfigResponse*) override;
  grpc::Status GetRoutingStats(grpc::ServerContext*, const admin::v1::GetRoutingStatsRequest*,
                               admin::v1::GetRoutingStatsResponse*) override;
  grpc::Status WatchStatus(grpc::ServerContext*, const admin::v1::WatchStatusRequest*,
                           grpc::ServerWriter<admin::v1::StatusUpdate>*) override;

 private:
  grpc::Status Enter(grpc::ServerContext* ctx);  // auth check + delay
  grpc::Status SetState(grpc::ServerContext* ctx, const std::string& id,
                        admin::v1::BackendState state, admin::v1::BackendResponse* resp);
};

class FakeFleet final : public admin::v1::Fleet::Service {
 public:
  admin::v1::ListGatewaysResponse gateways;
  grpc::Status ListGateways(grpc::ServerContext*, const admin::v1::ListGatewaysRequest*,
                            admin::v1::ListGatewaysResponse* resp) override {
    *resp = gateways;
    return grpc::Status::OK;
  }
};

// Starts the fakes on 127.0.0.1:0; the chosen port is in addr().
class FakeServer {
 public:
  explicit FakeServer(bool with_fleet = false);
  // Serves with TLS from PEM texts, as llmcd does with admin.tls_cert_file/tls_key_file.
  FakeServer(const std::string& cert_pem, const std::string& key_pem);
  ~FakeServer();
  std::string addr() const { return "127.0.0.1:" + std::to_string(port_); }
  FakeAdmin admin;
  FakeFleet fleet;

 private:
  int port_ = 0;
  std::unique_ptr<grpc::Server> server_;
};

}  // namespace llmgw::cli::testing
