// Admin service implementation, auth interceptor and server assembly.
#include "controlplane/admin_service.h"

#include <arpa/inet.h>
#include <google/protobuf/message.h>
#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/health_check_service_interface.h>
#include <grpcpp/security/server_credentials.h>
#include <grpcpp/support/server_interceptor.h>

#include <chrono>
#include <cstring>
#include <fstream>
#include <sstream>
#include <thread>

#include "common/log.h"
#include "controlplane/fleet.h"
#include "llmgw/admin/v1/admin.grpc.pb.h"

namespace llmgw::cp {

namespace admin = ::llmgw::admin::v1;

bool IsLoopbackHost(const std::string& host_in) {
  std::string host = host_in;
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  if (host == "localhost" || host == "::1") return true;
  in_addr a4{};
  if (inet_pton(AF_INET, host.c_str(), &a4) == 1) return (ntohl(a4.s_addr) >> 24) == 127;
  return false;
}

std::string PlaintextTokenWarning(const AdminConfig& admin, const std::string& controller) {
  if (admin.token_file.empty()) return "";
  std::string host, why;
  uint16_t port = 0;
  if (!controller.empty()) {
    if (!ParseHostPort(controller, &host, &port, &why, false) || IsLoopbackHost(host)) return "";
    return "the admin token is sent to the fleet controller " + controller +
           " without TLS: anyone on the network path can read it and then call the admin API; "
           "use a private network or a TLS tunnel";
  }
  bool tls = !admin.tls_cert_file.empty() && !admin.tls_key_file.empty();
  if (tls || !ParseHostPort(admin.grpc_listen, &host, &port, &why, true) || IsLoopbackHost(host)) return "";
  return "admin.token_file is set but admin.grpc_listen " + admin.grpc_listen +
         " is not loopback and TLS is off: the token crosses the network in plaintext and "
         "anyone on the path can read it and then call the admin API; set admin.tls_cert_file "
         "and admin.tls_key_file, or listen on 127.0.0.1";
}

Result<std::string> ReadTokenFile(const std::string& path) {
  std::ifstream f(path);
  if (!f) return Error(ErrorKind::kConfig, ErrorSide::kInternal, false, "admin.token_file: cannot read %s", path.c_str());
  std::stringstream ss;
  ss << f.rdbuf();
  std::string t = ss.str();
  size_t b = t.find_first_not_of(" \t\r\n");
  size_t e = t.find_last_not_of(" \t\r\n");
  if (b == std::string::npos) return Error(ErrorKind::kConfig, ErrorSide::kInternal, false, "admin.token_file: %s is empty", path.c_str());
  return t.substr(b, e - b + 1);
}

namespace {

bool ReadWholeFile(const std::string& path, std::string* out) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return false;
  std::stringstream ss;
  ss << f.rdbuf();
  *out = ss.str();
  return true;
}

// Constant-time comparison so the token cannot be guessed byte by byte from timing.
bool TokenEquals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  unsigned char d = 0;
  for (size_t i = 0; i < a.size(); ++i) d |= static_cast<unsigned char>(a[i] ^ b[i]);
  return d == 0;
}

template <typename Map>
bool Authorized(const Map& md, const std::string& token) {
  if (token.empty()) return true;
  auto it = md.find("authorization");
  if (it == md.end()) return false;
  std::string_view v(it->second.data(), it->second.size());
  constexpr std::string_view kBearer = "Bearer ";
  if (v.size() < kBearer.size() || v.substr(0, kBearer.size()) != kBearer) return false;
  return TokenEquals(v.substr(kBearer.size()), token);
}

}  // namespace

bool CallAuthorized(const grpc::ServerContext* ctx, const std::string& token) {
  return Authorized(ctx->client_metadata(), token);
}

namespace {

const char kUnauthMessage[] = "missing or wrong 'authorization: Bearer <token>' metadata";

// Guards every method, including server reflection whose implementation we do not own:
// an unauthenticated call gets its request messages emptied (so nothing is acted on or
// described) and its final status replaced by UNAUTHENTICATED.
class AuthInterceptor : public grpc::experimental::Interceptor {
 public:
  explicit AuthInterceptor(std::shared_ptr<const std::string> token) : token_(std::move(token)) {}
  void Intercept(grpc::experimental::InterceptorBatchMethods* m) override {
    using H = grpc::experimental::InterceptionHookPoints;
    if (m->QueryInterceptionHookPoint(H::POST_RECV_INITIAL_METADATA)) {
      authorized_ = Authorized(*m->GetRecvInitialMetadata(), *token_);
    }
    if (!authorized_ && m->QueryInterceptionHookPoint(H::POST_RECV_MESSAGE)) {
      if (void* msg = m->GetRecvMessage()) static_cast<google::protobuf::Message*>(msg)->Clear();
    }
    if (!authorized_ && m->QueryInterceptionHookPoint(H::PRE_SEND_STATUS)) {
      m->ModifySendStatus(grpc::Status(grpc::StatusCode::UNAUTHENTICATED, kUnauthMessage));
    }
    m->Proceed();
  }

 private:
  std::shared_ptr<const std::string> token_;
  bool authorized_ = true;
};

class AuthInterceptorFactory : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  explicit AuthInterceptorFactory(std::shared_ptr<const std::string> token) : token_(std::move(token)) {}
  grpc::experimental::Interceptor* CreateServerInterceptor(grpc::experimental::ServerRpcInfo* info) override {
    // Health checks carry no token (Kubernetes probes, load balancers) and reveal nothing;
    // their messages are not protobuf objects either, which the interceptor assumes.
    if (info && info->method() && std::strncmp(info->method(), "/grpc.health.v1.Health/", 23) == 0) return nullptr;
    return new AuthInterceptor(token_);
  }

 private:
  std::shared_ptr<const std::string> token_;
};

class AdminServiceImpl final : public admin::Admin::Service {
 public:
  AdminServiceImpl(Controller* c, std::shared_ptr<const std::string> token, std::shared_ptr<std::atomic<bool>> stopping)
      : c_(c), token_(std::move(token)), stopping_(std::move(stopping)) {}

  grpc::Status GetStatus(grpc::ServerContext* ctx, const admin::GetStatusRequest*, admin::GetStatusResponse* r) override {
    if (!Auth(ctx)) return Unauth();
    *r = c_->GetStatus();
    return grpc::Status::OK;
  }
  grpc::Status ListBackends(grpc::ServerContext* ctx, const admin::ListBackendsRequest* q,
                            admin::ListBackendsResponse* r) override {
    if (!Auth(ctx)) return Unauth();
    for (auto& b : c_->Backends(q->model())) *r->add_backends() = std::move(b);
    return grpc::Status::OK;
  }
  grpc::Status DrainBackend(grpc::ServerContext* ctx, const admin::BackendRequest* q, admin::BackendResponse* r) override {
    if (!Auth(ctx)) return Unauth();
    return c_->Drain(q->id(), r->mutable_backend()) ? grpc::Status::OK : NotFound(q->id());
  }
  grpc::Status UndrainBackend(grpc::ServerContext* ctx, const admin::BackendRequest* q, admin::BackendResponse* r) override {
    if (!Auth(ctx)) return Unauth();
    return c_->Undrain(q->id(), r->mutable_backend()) ? grpc::Status::OK : NotFound(q->id());
  }
  grpc::Status ResetCircuit(grpc::ServerContext* ctx, const admin::BackendRequest* q, admin::BackendResponse* r) override {
    if (!Auth(ctx)) return Unauth();
    return c_->ResetCircuit(q->id(), r->mutable_backend()) ? grpc::Status::OK : NotFound(q->id());
  }
  grpc::Status GetConfig(grpc::ServerContext* ctx, const admin::GetConfigRequest*, admin::GetConfigResponse* r) override {
    if (!Auth(ctx)) return Unauth();
    *r = c_->ConfigView();
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
  grpc::Status GetRoutingStats(grpc::ServerContext* ctx, const admin::GetRoutingStatsRequest*,
                               admin::GetRoutingStatsResponse* r) override {
    if (!Auth(ctx)) return Unauth();
    *r = c_->RoutingStats();
    return grpc::Status::OK;
  }
  grpc::Status WatchStatus(grpc::ServerContext* ctx, const admin::WatchStatusRequest* q,
                           grpc::ServerWriter<admin::StatusUpdate>* w) override {
    if (!Auth(ctx)) return Unauth();
    uint32_t interval = q->interval_ms() == 0 ? 1000 : std::max<uint32_t>(q->interval_ms(), 100);
    while (!ctx->IsCancelled() && !stopping_->load()) {
      admin::StatusUpdate u;
      *u.mutable_status() = c_->GetStatus();
      for (auto& b : c_->Backends()) *u.add_backends() = std::move(b);
      if (!w->Write(u)) break;
      auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(interval);
      while (std::chrono::steady_clock::now() < until && !ctx->IsCancelled() && !stopping_->load())
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return grpc::Status::OK;
  }

 private:
  bool Auth(grpc::ServerContext* ctx) const { return Authorized(ctx->client_metadata(), *token_); }
  static grpc::Status Unauth() { return grpc::Status(grpc::StatusCode::UNAUTHENTICATED, kUnauthMessage); }
  static grpc::Status NotFound(const std::string& id) {
    return grpc::Status(grpc::StatusCode::NOT_FOUND, "no backend with id '" + id + "'");
  }
  Controller* c_;
  std::shared_ptr<const std::string> token_;
  std::shared_ptr<std::atomic<bool>> stopping_;
};

}  // namespace

AdminServer::AdminServer(Controller* controller)
    : controller_(controller), stopping_(std::make_shared<std::atomic<bool>>(false)) {}

AdminServer::~AdminServer() { Stop(); }

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
  fleet_service_ = MakeFleetService(controller_, std::make_shared<FleetRegistry>(controller_), token_ptr, stopping_);
  builder.RegisterService(fleet_service_.get());
  if (!token.empty()) {
    std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>> f;
    f.push_back(std::make_unique<AuthInterceptorFactory>(token_ptr));
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
