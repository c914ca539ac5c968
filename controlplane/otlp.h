// OTLP/HTTP trace export encoding (docs/OPERATIONS.md, "Tracing"): llmcd's plain span
// values and their two wire forms, `http/protobuf` (ExportTraceServiceRequest, encoded by
// hand with the field numbers of opentelemetry/proto/trace/v1/trace.proto and
// collector/trace/v1/trace_service.proto: the handful of messages needed do not justify a
// generated copy of the OTLP protos) and `http/json` (OTLP's JSON mapping: ids as hex,
// lowerCamelCase names, 64-bit integers as strings, enums as numbers).
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <variant>
#include <vector>

namespace llmgw::cp {

using OtlpValue = std::variant<std::string, int64_t, double, bool>;
using OtlpAttributes = std::vector<std::pair<std::string, OtlpValue>>;

struct OtlpEvent {
  uint64_t time_unix_ns = 0;
  std::string name;
  OtlpAttributes attributes;
};

struct OtlpSpan {
  uint8_t trace_id[16] = {};
  uint8_t span_id[8] = {};
  uint8_t parent_span_id[8] = {};  // all zero: root
  std::string trace_state;
  std::string name;
  int kind = 0;  // OTLP SpanKind: 2 server, 3 client
  uint64_t start_unix_ns = 0, end_unix_ns = 0;
  OtlpAttributes attributes;
  std::vector<OtlpEvent> events;
  int status_code = 0;  // OTLP StatusCode: 0 unset, 1 ok, 2 error
  std::string status_message;
};

struct OtlpResource {
  OtlpAttributes attributes;  // service.name, service.version, host.name, ...
  std::string scope_name = "llmgw";
  std::string scope_version;
};

// The body of POST /v1/traces with Content-Type application/x-protobuf.
std::string EncodeOtlpProtobuf(const OtlpResource& r, const std::vector<OtlpSpan>& spans);
// The body of POST /v1/traces with Content-Type application/json.
std::string EncodeOtlpJson(const OtlpResource& r, const std::vector<OtlpSpan>& spans);

}  // namespace llmgw::cp
