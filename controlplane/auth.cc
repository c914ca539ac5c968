// Admin authentication (see auth.h).
#include "controlplane/auth.h"

#include <arpa/inet.h>
#include <google/protobuf/message.h>

#include <cstring>
#include <fstream>
#include <sstream>
#include <string_view>

namespace llmgw::cp {

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
           "set fleet.tls_ca_file (the controllers serving admin.tls_cert_file) or use a private network";
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
      m->ModifySendStatus(Unauthenticated());
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

}  // namespace

bool CallAuthorized(const grpc::ServerContext* ctx, const std::string& token) {
  return Authorized(ctx->client_metadata(), token);
}

std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface> MakeAuthInterceptorFactory(
    std::shared_ptr<const std::string> token) {
  return std::make_unique<AuthInterceptorFactory>(std::move(token));
}

}  // namespace llmgw::cp
