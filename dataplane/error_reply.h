// The one table from a failure (common/error.h's Error: kind and side) to what the client
// gets: the HTTP status and the OpenAI error `type` and `code`. Every answer llmgw makes
// for a failure, and the SSE error event that ends a broken stream, come from here.
#pragma once

#include <cstdint>
#include <string_view>

#include "common/error.h"

namespace llmgw::dataplane {

struct ErrorReply {
  int status;
  std::string_view type;  // OpenAI error type
  std::string_view code;  // OpenAI error code
};

constexpr ErrorReply ReplyFor(ErrorKind kind, ErrorSide side, uint16_t upstream_status) {
  constexpr std::string_view kInvalid = "invalid_request_error";
  constexpr std::string_view kUpstream = "upstream_error";
  switch (kind) {
    case ErrorKind::kBadRequest: return {400, kInvalid, "bad_request"};
    case ErrorKind::kNotFound: return {404, kInvalid, "not_found"};
    case ErrorKind::kMethodNotAllowed: return {405, kInvalid, "method_not_allowed"};
    case ErrorKind::kPayloadTooLarge: return {413, kInvalid, "payload_too_large"};
    case ErrorKind::kHeaderTooLarge: return {431, kInvalid, "header_too_large"};
    case ErrorKind::kTimeout:
      // The client was too slow sending its request: 408; the upstream too slow: 504.
      if (side == ErrorSide::kDownstream) return {408, kInvalid, "timeout"};
      return {504, kUpstream, "upstream_timeout"};
    case ErrorKind::kUpstreamStatus:
      // A 429 from the model server is passed on as a 429 (the client should back off).
      return {upstream_status == 429 ? 429 : 502, kUpstream, "upstream_error"};
    case ErrorKind::kConnectFailed:
    case ErrorKind::kConnectionReset:
    case ErrorKind::kUpstreamProtocol: return {502, kUpstream, "upstream_error"};
    case ErrorKind::kNoBackend: return {503, "service_unavailable", "no_backend"};
    case ErrorKind::kOverloaded: return {429, "rate_limit_error", "overloaded"};
    case ErrorKind::kClientGone: return {499, kInvalid, "client_gone"};
    case ErrorKind::kClientTooSlow: return {408, kInvalid, "client_too_slow"};
    case ErrorKind::kNone:
    case ErrorKind::kConfig:
    case ErrorKind::kShm:
    case ErrorKind::kIo:
    case ErrorKind::kInternal:
    case ErrorKind::kCount: break;
  }
  return {500, "internal_error", "internal_error"};
}

inline ErrorReply ReplyFor(const Error& e) { return ReplyFor(e.kind(), e.side(), e.upstream_status()); }

// Not a failure of the request but the gateway stopping: drain_ms passed while it was
// still being answered (not an ErrorKind: those size the shm stats slot).
// The status counted and access-logged for an answer cut after its first byte reached
// the client (an upstream failure mid-stream, the drain deadline): the client already has
// a 200 head, but the request failed, so it must not count as one. Not an HTTP status
// anyone sends; in the 5xx range so 5xx error-rate alerts see it (docs/OPERATIONS.md).
constexpr int kStreamCutStatus = 520;

constexpr ErrorReply kShuttingDownReply{503, "service_unavailable", "shutting_down"};

}  // namespace llmgw::dataplane
