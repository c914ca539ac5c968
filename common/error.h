// The one error type of llmgw: what failed (kind), on which side (the client, the
// upstream model server, or ourselves) and whether a retry on another backend may help.
// Used with status returns everywhere; on the data plane it never allocates (the
// message lives in a fixed inline buffer), so it can be built on the hot path.
#pragma once

#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <string_view>
#include <utility>

namespace llmgw {

enum class ErrorKind : uint8_t {
  kNone = 0,
  kBadRequest,        // malformed HTTP or JSON from the client
  kNotFound,          // unknown path or model
  kMethodNotAllowed,
  kPayloadTooLarge,   // body over gateway.max_body_bytes
  kHeaderTooLarge,
  kTimeout,           // connect, first byte, idle or total deadline passed
  kConnectFailed,
  kConnectionReset,   // peer closed or reset mid-exchange
  kUpstreamStatus,    // upstream answered 5xx / 429
  kUpstreamProtocol,  // upstream sent something that is not HTTP we understand
  kNoBackend,         // every backend of the model is ineligible
  kOverloaded,        // admission queue full or timed out
  kClientGone,        // the client closed while we worked for it
  kConfig,
  kShm,
  kIo,
  kInternal,
  kClientTooSlow,     // the client did not take what we sent within timeouts.client_send_ms
  kInvalidApiKey,     // no client API key where one is required, or an unknown one (401)
  kModelNotAllowed,   // the key may not use the model (403)
  kRateLimited,       // a rate or concurrency limit refused the request (429)
  kCount
};

enum class ErrorSide : uint8_t { kDownstream = 0, kUpstream, kInternal };

constexpr std::string_view ErrorKindName(ErrorKind k) {
  switch (k) {
    case ErrorKind::kNone: return "none";
    case ErrorKind::kBadRequest: return "bad_request";
    case ErrorKind::kNotFound: return "not_found";
    case ErrorKind::kMethodNotAllowed: return "method_not_allowed";
    case ErrorKind::kPayloadTooLarge: return "payload_too_large";
    case ErrorKind::kHeaderTooLarge: return "header_too_large";
    case ErrorKind::kTimeout: return "timeout";
    case ErrorKind::kConnectFailed: return "connect_failed";
    case ErrorKind::kConnectionReset: return "connection_reset";
    case ErrorKind::kUpstreamStatus: return "upstream_status";
    case ErrorKind::kUpstreamProtocol: return "upstream_protocol";
    case ErrorKind::kNoBackend: return "no_backend";
    case ErrorKind::kOverloaded: return "overloaded";
    case ErrorKind::kClientGone: return "client_gone";
    case ErrorKind::kConfig: return "config";
    case ErrorKind::kShm: return "shm";
    case ErrorKind::kIo: return "io";
    case ErrorKind::kInternal: return "internal";
    case ErrorKind::kClientTooSlow: return "client_too_slow";
    case ErrorKind::kInvalidApiKey: return "invalid_api_key";
    case ErrorKind::kModelNotAllowed: return "model_not_allowed";
    case ErrorKind::kRateLimited: return "rate_limited";
    case ErrorKind::kCount: break;
  }
  return "unknown";
}

constexpr std::string_view ErrorSideName(ErrorSide s) {
  switch (s) {
    case ErrorSide::kDownstream: return "downstream";
    case ErrorSide::kUpstream: return "upstream";
    case ErrorSide::kInternal: return "internal";
  }
  return "unknown";
}

class Error {
 public:
  Error() = default;
  Error(ErrorKind kind, ErrorSide side, bool retryable, const char* fmt, ...)
      __attribute__((format(printf, 5, 6)))
      : kind_(kind), side_(side), retryable_(retryable) {
    va_list ap;
    va_start(ap, fmt);
    std::vsnprintf(msg_, sizeof(msg_), fmt, ap);
    va_end(ap);
  }

  ErrorKind kind() const { return kind_; }
  ErrorSide side() const { return side_; }
  bool retryable() const { return retryable_; }
  const char* message() const { return msg_; }
  // The HTTP status the upstream answered with (kUpstreamStatus), else 0.
  uint16_t upstream_status() const { return upstream_status_; }
  Error& set_upstream_status(uint16_t s) {
    upstream_status_ = s;
    return *this;
  }

 private:
  ErrorKind kind_ = ErrorKind::kNone;
  ErrorSide side_ = ErrorSide::kInternal;
  bool retryable_ = false;
  uint16_t upstream_status_ = 0;
  char msg_[160] = {};
};

// Status: ok, or an Error. Cheap to return by value (no heap).
class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(Error e) : ok_(false), err_(e) {}  // NOLINT: implicit on purpose, `return Error(...)`
  static Status Ok() { return Status(); }
  bool ok() const { return ok_; }
  const Error& error() const { return err_; }

 private:
  bool ok_ = true;
  Error err_;
};

// Result<T>: a value or an Error, for functions that produce something.
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T v) : ok_(true), value_(std::move(v)) {}  // NOLINT
  Result(Error e) : ok_(false), err_(e) {}          // NOLINT
  bool ok() const { return ok_; }
  T& value() { return value_; }
  const T& value() const { return value_; }
  const Error& error() const { return err_; }

 private:
  bool ok_;
  T value_{};
  Error err_;
};

#define LLMGW_RETURN_IF_ERROR(expr)          \
  do {                                       \
    ::llmgw::Status _st = (expr);            \
    if (!_st.ok()) return _st.error();       \
  } while (0)

}  // namespace llmgw
