// Admin service implementation and server assembly (authentication: auth.cc).
#include "controlplane/admin_service.h"

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/health_check_service_interface.h>
#include <grpcpp/security/server_credentials.h>

#include <chrono>
#include <cstring>
#include <fstream>
#include <sstream>
#include <thread>

#include "common/log.h"
#include "controlplane/admin_convert.h"
#include "controlplane/auth.h"
#include "llmgw/admin/v1/admin.grpc.pb.h"

namespace llmgw::cp {

namespace admin = ::llmgw::admin::v1;

namespace {

bool ReadWholeFile(const std::string& path, std::string* out) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return false;
  std::stringstream ss;
  ss << f.rdbuf();
  *out = ss.str();
  return true;
}

class AdminServiceImpl final : public admin::Admin::Service {
 public:
  AdminServiceImpl(Controller* c, std::shared_ptr<const std::string> token, std::shared_ptr<std::atomic<bool>> stopping)
      : c_(c), token_(std::move(token)), stopping_(std::move(stopping)) {}

  grpc::Status GetStatus(grpc::ServerContext* ctx, const admin::GetStatusRequest*, admin::GetStatusResponse* r) override {
    if (!Auth(ctx)) return Unauth();
    *r = ToProto(c_->GetStatus());
    return grpc::Status::OK;
  }
  grpc::Status ListBackends(grpc::ServerContext* ctx, const admin::ListBackendsRequest* q,
                            admin::ListBackendsResponse* r) override {
    if (!Auth(ctx)) return Unauth();
    for (const auto& b : c_->Backends(q->model())) *r->add_backends() = ToProto(b);
    return grpc::Status::OK;
  }
  grpc::Status DrainBackend(grpc::ServerContext* ctx, const admin::BackendRequest* q, admin::BackendResponse* r) override {
    if (!Auth(ctx)) return Unauth();
    BackendView v;
    return Answer(c_->Drain(q->id(), &v), q->id(), v, r);
  }
  grpc::Status UndrainBackend(grpc::ServerContext* ctx, const admin::BackendRequest* q, admin::BackendResponse* r) override {
    if (!Auth(ctx)) return Unauth();
    BackendView v;
    return Answer(c_->Undrain(q->id(), &v), q->id(), v, r);
  }
  grpc::Status ResetCircuit(grpc::ServerContext* ctx, const admin::BackendRequest* q, admin::BackendResponse* r) override {
    if (!Auth(ctx)) return Unauth();
    BackendView v;
    return Answer(c_->ResetCircuit(q->id(), &v), q->id(), v, r);
  }
  grpc::Status GetConfig(grpc::ServerContext* ctx, const admin::GetConfigRequest*, admin::GetConfigResponse* r) override {
    if (!Auth(ctx)) return Unauth();
    *r = ToProto(c_->ConfigView());
    return grpc::Status::OK;
  }
  grpc::Status ReloadConfig(grpc::ServerContext* ctx, const admin::ReloadConfigRequest*,
                            admin::ReloadConfigResponse* r) override {
    if (!Auth(ctx)) return Unauth();
    LOG_INFO("config reload requested over gRPC", {{"peer", ctx->peer()}});
    ReloadOutcome o = c_->ReloadFromFile();
    r->set_ok(o.ok);
    for (const auto& e : o.errors) r->add_errors(e);
    r->set_version(o.version);
    r->set_summary(o.summary);
    return grpc::Status::OK;  // a rejected config is an answer, not an RPC failure
  }
  grpc::Status ValidateConfig(grpc::ServerContext* ctx, const admin::ValidateConfigRequest* q,
                              admin::ValidateConfigResponse* r) override {
    if (!Auth(ctx)) return Unauth();
    ReloadOutcome o = Controller::Validate(q->yaml(), q->filename());
    r->set_ok(o.ok);
    for (const auto& e : o.errors) r->add_errors(e);
    return grpc::Status::OK;
  }
  grpc::Status PushConfig(grpc::ServerContext* ctx, const admin::PushConfigRequest* q,
                          admin::PushConfigResponse* r) override {
    if (!Auth(ctx)) return Unauth();
    LOG_INFO("fleet config push requested over gRPC", {{"peer", ctx->peer()}, {"file", q->filename()}});
    int64_t revision = 0;
    ReloadOutcome o = c_->PushFleetConfig(q->yaml(), q->filename(), &revision);
    r->set_ok(o.ok);
    for (const auto& e : o.errors) r->add_errors(e);
    r->set_revision(revision);
    r->set_summary(o.summary);
    return grpc::Status::OK;  // a refused config is an answer, as for ReloadConfig
  }
  grpc::Status GetRoutingStats(grpc::ServerContext* ctx, const admin::GetRoutingStatsRequest*,
                               admin::GetRoutingStatsResponse* r) override {
    if (!Auth(ctx)) return Unauth();
    *r = ToProto(c_->RoutingStats());
    return grpc::Status::OK;
  }
  grpc::Status WatchStatus(grpc::ServerContext* ctx, const admin::WatchStatusRequest* q,
                           grpc::ServerWriter<admin::StatusUpdate>* w) override {
    if (!Auth(ctx)) return Unauth();
    uint32_t interval = q->interval_ms() == 0 ? 1000 : std::max<uint32_t>(q->interval_ms(), 100);
    while (!ctx->IsCancelled() && !stopping_->load()) {
      admin::StatusUpdate u;
      *u.mutable_status() = ToProto(c_->GetStatus());
      for (const auto& b : c_->Backends()) *u.add_backends() = ToProto(b);
      if (!w->Write(u)) break;
      auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(interval);
      while (std::chrono::steady_clock::now() < until && !ctx->IsCancelled() && !stopping_->load())
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return grpc::Status::OK;
  }

  grpc::Status ListKeys(grpc::ServerContext* ctx, const admin::ListKeysRequest*, admin::ListKeysResponse* r) override {
    if (!Auth(ctx)) return Unauth();
    *r = ToProto(c_->ListKeys());
    return grpc::Status::OK;
  }
  grpc::Status AddKey(grpc::ServerContext* ctx, const admin::AddKeyRequest* q, admin::AddKeyResponse* r) override {
    if (!Auth(ctx)) return Unauth();
    KeyConfig k;
    k.id = q->id();
    k.models.assign(q->models().begin(), q->models().end());
    if (q->has_priority()) k.priority = q->priority();
    k.limits.rpm = q->rpm();
    k.limits.tpm = q->tpm();
    k.limits.max_concurrent = q->max_concurrent();
    LOG_INFO("API key add requested over gRPC", {{"peer", ctx->peer()}, {"key", k.id}});
    KeyEditResult res = c_->AddKey(k);
    if (res.code != KeyEditResult::kOk) return KeyError(res);
    *r->mutable_key() = ToProto(res.key);
    r->set_secret(res.secret);
    r->set_config_version(res.config_version);
    return grpc::Status::OK;
  }
  grpc::Status RevokeKey(grpc::ServerContext* ctx, const admin::RevokeKeyRequest* q,
                         admin::RevokeKeyResponse* r) override {
    if (!Auth(ctx)) return Unauth();
    LOG_INFO("API key revoke requested over gRPC", {{"peer", ctx->peer()}, {"key", q->id()}});
    KeyEditResult res = c_->RevokeKey(q->id());
    if (res.code != KeyEditResult::kOk) return KeyError(res);
    r->set_config_version(res.config_version);
    return grpc::Status::OK;
  }

 private:
  static grpc::Status KeyError(const KeyEditResult& r) {
    grpc::StatusCode code = grpc::StatusCode::INTERNAL;
    switch (r.code) {
      case KeyEditResult::kOk: return grpc::Status::OK;
      case KeyEditResult::kInvalid: code = grpc::StatusCode::INVALID_ARGUMENT; break;
      case KeyEditResult::kNotFound: code = grpc::StatusCode::NOT_FOUND; break;
      case KeyEditResult::kExists: code = grpc::StatusCode::ALREADY_EXISTS; break;
      case KeyEditResult::kPrecondition: code = grpc::StatusCode::FAILED_PRECONDITION; break;
      case KeyEditResult::kFailed: code = grpc::StatusCode::INTERNAL; break;
    }
    return grpc::Status(code, r.error);
  }
  bool Auth(grpc::ServerContext* ctx) const { return CallAuthorized(ctx, *token_); }
  static grpc::Status Unauth() { return Unauthenticated(); }
  static grpc::Status NotFound(const std::string& id) {
    return grpc::Status(grpc::StatusCode::NOT_FOUND, "no backend with id '" + id + "'");
  }
  // An operator action's answer: the backend after it, or NOT_FOUND.
  static grpc::Status Answer(bool found, const std::string& id, const BackendView& v, admin::BackendResponse* r) {
    if (!found) return NotFound(id);
    *r->mutable_backend() = ToProto(v);
    return grpc::Status::OK;
  }
  Controller* c_;
  std::shared_ptr<const std::string> token_;
  std::shared_ptr<std::atomic<bool>> stopping_;
};

}  // namespace

AdminServer::AdminServer(Controller* controller)
    : controller_(controller), stopping_(std::make_shared<std::atomic<bool>>(false)) {}

AdminServer::~AdminServer() { Stop(); }

void AdminServer::AddService(ServiceFactory make) { extra_factories_.push_back(std::move(make)); }

Status AdminServer::Start(const AdminConfig& cfg) {
  std::string host;
  uint16_t port = 0;
  std::string why;
  if (!ParseHostPort(cfg.grpc_listen, &host, &port, &why))
    return Error(ErrorKind::kConfig, ErrorSide::kInternal, false, "admin.grpc_listen: %s", why.c_str());
  std::string token;
  if (!cfg.token_file.empty()) {
    auto t = ReadTokenFile(cfg.token_file);
    if (!t.ok()) return t.error();
    token = t.value();
  } else if (!IsLoopbackHost(host)) {
    return Error(ErrorKind::kConfig, ErrorSide::kInternal, false,
                 "admin.grpc_listen: %s is not loopback and admin.token_file is empty; "
                 "set a token or listen on 127.0.0.1",
                 cfg.grpc_listen.c_str());
  }
  std::shared_ptr<grpc::ServerCredentials> creds;
  if (!cfg.tls_cert_file.empty() || !cfg.tls_key_file.empty()) {
    grpc::SslServerCredentialsOptions::PemKeyCertPair pair;
    if (!ReadWholeFile(cfg.tls_cert_file, &pair.cert_chain) || !ReadWholeFile(cfg.tls_key_file, &pair.private_key))
      return Error(ErrorKind::kConfig, ErrorSide::kInternal, false, "admin.tls_cert_file/tls_key_file: cannot read");
    grpc::SslServerCredentialsOptions opts;
    opts.pem_key_cert_pairs.push_back(pair);
    creds = grpc::SslServerCredentials(opts);
  } else {
    creds = grpc::InsecureServerCredentials();
  }
  auto token_ptr = std::make_shared<const std::string>(token);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  // grpc.health.v1.Health on the admin port (SERVING while up, NOT_SERVING on shutdown):
  // what Kubernetes gRPC probes, grpc_health_probe and load balancers ask.
  grpc::EnableDefaultHealthCheckService(true);
  grpc::ServerBuilder builder;
  // gRPC binds with SO_REUSEPORT by default, so a second llmcd on the same port would
  // start "fine" and answer half the admin calls. The port is exclusive: the second fails.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  std::string addr = host.find(':') != std::string::npos ? "[" + host + "]:" + std::to_string(port)
                                                         : host + ":" + std::to_string(port);
  builder.AddListeningPort(addr, creds, &port_);
  service_ = std::make_unique<AdminServiceImpl>(controller_, token_ptr, stopping_);
  builder.RegisterService(service_.get());
  // Services wired in by the caller (llmcd's main: Fleet), behind the same token.
  extra_services_.clear();
  for (const auto& make : extra_factories_) {
    extra_services_.push_back(make(token_ptr, stopping_));
    builder.RegisterService(extra_services_.back().get());
  }
  if (!token.empty()) {
    std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>> f;
    f.push_back(MakeAuthInterceptorFactory(token_ptr));
    builder.experimental().SetInterceptorCreators(std::move(f));
  }
  server_ = builder.BuildAndStart();
  if (!server_ || port_ == 0)
    return Error(ErrorKind::kIo, ErrorSide::kInternal, false,
                 "admin.grpc_listen: cannot listen on %s (address in use, e.g. by another llmcd, or not local)",
                 addr.c_str());
  LOG_INFO("admin gRPC listening", {{"addr", host + ":" + std::to_string(port_)}, {"auth", !token.empty()},
                                    {"tls", !cfg.tls_cert_file.empty()}});
  return Status::Ok();
}

void AdminServer::SetServing(bool serving) {
  if (!server_ || serving == serving_) return;
  serving_ = serving;
  if (grpc::HealthCheckServiceInterface* h = server_->GetHealthCheckService()) h->SetServingStatus(serving);
}

void AdminServer::Stop() {
  if (!server_) return;
  stopping_->store(true);
  // Every handler finishes within milliseconds (WatchStatus sees stopping_ within 20 ms),
  // so a short grace suffices. A long one costs its full length whenever a client keeps
  // an idle channel open (seen with gRPC 1.51), which made SIGTERM take 2 s.
  server_->Shutdown(std::chrono::system_clock::now() + std::chrono::milliseconds(300));
  server_->Wait();
  server_.reset();
}

}  // namespace llmgw::cp
