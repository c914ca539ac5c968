// Admin authentication shared by every gRPC service llmcd serves (Admin, Fleet) and by the
// fleet agent: the bearer-token check, the interceptor that guards every method (server
// reflection included), reading the token file, and the loopback test that decides
// whether listening without a token is allowed. Its own file so the services do not
// depend on each other for it.
#pragma once

#include <grpcpp/grpcpp.h>
#include <grpcpp/support/server_interceptor.h>

#include <memory>
#include <string>

#include "common/config.h"
#include "common/error.h"

namespace llmgw::cp {

// What an unauthenticated call is answered with.
inline constexpr char kUnauthMessage[] = "missing or wrong 'authorization: Bearer <token>' metadata";
inline grpc::Status Unauthenticated() { return grpc::Status(grpc::StatusCode::UNAUTHENTICATED, kUnauthMessage); }

// True when host (from HOST:PORT) names only the loopback interface.
bool IsLoopbackHost(const std::string& host);

// True when the call carries `authorization: Bearer <token>` (always when token is empty).
// The comparison takes the same time wherever the first difference is.
bool CallAuthorized(const grpc::ServerContext* ctx, const std::string& token);

// Reads a token file: surrounding whitespace trimmed; error when unreadable or empty.
Result<std::string> ReadTokenFile(const std::string& path);

// Issue 17: a bearer token sent in plaintext over a network can be read by anyone on the
// path. Returns the warning llmcd logs at start when that is configured: the admin API
// with admin.token_file on a non-loopback admin.grpc_listen without TLS, or (controller
// non-empty: the fleet agent role without fleet.tls_ca_file, checked by the caller) a token sent to a
// non-loopback controller. Empty when the token stays on the host or is encrypted.
std::string PlaintextTokenWarning(const AdminConfig& admin, const std::string& controller = "");

// Guards every method of a server, including server reflection whose implementation we
// do not own: an unauthenticated call gets its request messages emptied (so nothing is
// acted on or described) and its final status replaced by UNAUTHENTICATED.
std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface> MakeAuthInterceptorFactory(
    std::shared_ptr<const std::string> token);

}  // namespace llmgw::cp
