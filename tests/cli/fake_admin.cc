// The fake admin service used by the llmctl tests (see fake_admin.h).
#include "tests/cli/fake_admin.h"

#include <chrono>
#include <thread>

namespace llmgw::cli::testing {

using namespace admin::v1;

namespace {
Backend MakeBackend(const std::string& id, const std::string& model, BackendState state,
                    double kv, bool stale) {
  Backend b;
  b.set_id(id);
  b.set_url(id);
  b.set_model(model);
  b.set_state(state);
  b.set_weight(1);
  b.set_in_flight(7);
  b.set_running(3);
  b.set_waiting(2);
  b.set_kv_cache_usage(kv);
  b.set_metrics_stale(stale);
  b.set_ewma_latency_ms(120.4);
  b.set_ewma_ttft_ms(40);
  b.set_ttft_p99_ms(95.6);
  b.set_error_rate(0.015);
  b.set_requests_total(1234);
  b.set_max_concurrent(16);
  b.set_engine("vllm");
  return b;
}
}  // namespace

FakeAdmin::FakeAdmin() {
  status.set_version("0.1.0-fake");
  status.set_uptime_seconds(3661);
  status.set_snapshot_generation(42);
  status.set_backends_healthy(2);
  status.set_backends_total(3);
  status.set_requests_per_second(12.5);
  status.set_errors_per_second(0.25);
  status.set_requests_total(100000);
  status.set_active_requests(9);
  status.set_dataplane_threads(4);
  status.set_dataplane_alive(true);
  status.set_instance("default");
  status.set_role("controller");
  status.set_config_file("/etc/llmgw/llmgw.yaml");
  status.set_config_reloads(3);
  status.set_models(2);
  *backends.add_backends() = MakeBackend("http://127.0.0.1:8001", "llama-3.1-8b", HEALTHY, 0.55, false);
  *backends.add_backends() = MakeBackend("http://127.0.0.1:8002", "llama-3.1-8b", CIRCUIT_OPEN, 0.1, true);
  *backends.add_backends() = MakeBackend("qwen-a", "qwen", HEALTHY, 0.2, false);
  config.set_path("/etc/llmgw/llmgw.yaml");
  config.set_version(4);
  reload.set_ok(true);
  reload.set_version(5);
  reload.set_summary("model llama-3.1-8b: policy p2c_kv -> least_queue");
  auto* m = routing.add_models();
  m->set_model("llama-3.1-8b");
  m->set_policy("p2c_kv");
  m->set_requests(1000);
  m->set_retries(3);
  m->set_fallbacks(1);
  m->set_rejected(2);
  auto* p = m->add_picks();
  p->set_id("http://127.0.0.1:8001");
  p->set_picks(750);
  p = m->add_picks();
  p->set_id("http://127.0.0.1:8002");
  p->set_picks(250);
}

grpc::Status FakeAdmin::Enter(grpc::ServerContext* ctx) {
  std::string token;
  int delay;
  {
    std::lock_guard<std::mutex> lock(mu);
    auto it = ctx->client_metadata().find("authorization");
    last_authorization =
        it == ctx->client_metadata().end() ? "" : std::string(it->second.data(), it->second.size());
    token = required_token;
    delay = delay_ms;
  }
  if (delay > 0) std::this_thread::sleep_for(std::chrono::milliseconds(delay));
  std::lock_guard<std::mutex> lock(mu);
  if (!token.empty() && last_authorization != "Bearer " + token)
    return {grpc::StatusCode::UNAUTHENTICATED, "missing or wrong bearer token"};
  return grpc::Status::OK;
}

grpc::Status FakeAdmin::GetStatus(grpc::ServerContext* ctx, const GetStatusRequest*,
                                  GetStatusResponse* resp) {
  if (auto st = Enter(ctx); !st.ok()) return st;
  std::lock_guard<std::mutex> lock(mu);
  *resp = status;
  return grpc::Status::OK;
}

grpc::Status FakeAdmin::ListBackends(grpc::ServerContext* ctx, const ListBackendsRequest* req,
                                     ListBackendsResponse* resp) {
  if (auto st = Enter(ctx); !st.ok()) return st;
  std::lock_guard<std::mutex> lock(mu);
  for (const auto& b : backends.backends())
    if (req->model().empty() || b.model() == req->model()) *resp->add_backends() = b;
  return grpc::Status::OK;
}

grpc::Status FakeAdmin::SetState(grpc::ServerContext* ctx, const std::string& id,
                                 BackendState state, BackendResponse* resp) {
  if (auto st = Enter(ctx); !st.ok()) return st;
  std::lock_guard<std::mutex> lock(mu);
  for (auto& b : *backends.mutable_backends()) {
    if (b.id() == id) {
      b.set_state(state);
      *resp->mutable_backend() = b;
      return grpc::Status::OK;
    }
  }
  return {grpc::StatusCode::NOT_FOUND, "no backend with id '" + id + "'"};
}

grpc::Status FakeAdmin::DrainBackend(grpc::ServerContext* ctx, const BackendRequest* req,
                                     BackendResponse* resp) {
  return SetState(ctx, req->id(), DRAINING, resp);
}
grpc::Status FakeAdmin::UndrainBackend(grpc::ServerContext* ctx, const BackendRequest* req,
                                       BackendResponse* resp) {
  return SetState(ctx, req->id(), HEALTHY, resp);
}
grpc::Status FakeAdmin::ResetCircuit(grpc::ServerContext* ctx, const BackendRequest* req,
                                     BackendResponse* resp) {
  return SetState(ctx, req->id(), HALF_OPEN, resp);
}

grpc::Status FakeAdmin::GetConfig(grpc::ServerContext* ctx, const GetConfigRequest*,
                                  GetConfigResponse* resp) {
  if (auto st = Enter(ctx); !st.ok()) return st;
  std::lock_guard<std::mutex> lock(mu);
  *resp = config;
  return grpc::Status::OK;
}

grpc::Status FakeAdmin::ReloadConfig(grpc::ServerContext* ctx, const ReloadConfigRequest*,
                                     ReloadConfigResponse* resp) {
  if (auto st = Enter(ctx); !st.ok()) return st;
  std::lock_guard<std::mutex> lock(mu);
  *resp = reload;
  return grpc::Status::OK;
}

grpc::Status FakeAdmin::GetRoutingStats(grpc::ServerContext* ctx, const GetRoutingStatsRequest*,
                                        GetRoutingStatsResponse* resp) {
  if (auto st = Enter(ctx); !st.ok()) return st;
  std::lock_guard<std::mutex> lock(mu);
  *resp = routing;
  return grpc::Status::OK;
}

grpc::Status FakeAdmin::WatchStatus(grpc::ServerContext* ctx, const WatchStatusRequest* req,
                                    grpc::ServerWriter<StatusUpdate>* writer) {
  if (auto st = Enter(ctx); !st.ok()) return st;
  uint32_t interval = std::max<uint32_t>(req->interval_ms() ? req->interval_ms() : 1000, 100);
  auto next = std::chrono::steady_clock::now();
  // Bounded so a test that forgets to stop cannot hang the server's shutdown forever.
  for (int i = 0; i < 600 && !ctx->IsCancelled(); ++i) {
    StatusUpdate u;
    bool stall;
    {
      std::lock_guard<std::mutex> lock(mu);
      stall = watch_stalls;
      *u.mutable_status() = status;
      u.mutable_status()->set_snapshot_generation(status.snapshot_generation() + i);
      *u.mutable_backends() = backends.backends();
    }
    if (!stall) {
      if (!writer->Write(u)) break;
      ++watch_updates_sent;
    }
    next += std::chrono::milliseconds(interval);
    while (std::chrono::steady_clock::now() < next && !ctx->IsCancelled())
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return grpc::Status::OK;
}

FakeServer::FakeServer(bool with_fleet) {
  grpc::ServerBuilder b;
  b.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port_);
  b.RegisterService(&admin);
  if (with_fleet) b.RegisterService(&fleet);
  server_ = b.BuildAndStart();
}

FakeServer::FakeServer(const std::string& cert_pem, const std::string& key_pem) {
  grpc::SslServerCredentialsOptions opts;
  opts.pem_key_cert_pairs.push_back({key_pem, cert_pem});
  grpc::ServerBuilder b;
  b.AddListeningPort("127.0.0.1:0", grpc::SslServerCredentials(opts), &port_);
  b.RegisterService(&admin);
  server_ = b.BuildAndStart();
}

FakeServer::~FakeServer() {
  server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(1));
}

}  // namespace llmgw::cli::testing
