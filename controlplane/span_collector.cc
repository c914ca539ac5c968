// SpanCollector (span_collector.h).
#include "controlplane/span_collector.h"

#include <string>
#include <string_view>

#include "common/error.h"

namespace llmgw::cp {

namespace {

std::string Text(const char* s, size_t cap) { return std::string(s, strnlen(s, cap)); }

// "http://host:port/base" -> host, port (0 when none).
void HostPort(std::string_view url, std::string* host, int64_t* port) {
  size_t scheme = url.find("://");
  if (scheme != std::string_view::npos) url.remove_prefix(scheme + 3);
  url = url.substr(0, url.find('/'));
  size_t colon = url.rfind(':');
  size_t bracket = url.rfind(']');
  if (colon != std::string_view::npos && (bracket == std::string_view::npos || colon > bracket)) {
    *host = std::string(url.substr(0, colon));
    *port = std::atoll(std::string(url.substr(colon + 1)).c_str());
  } else {
    *host = std::string(url);
    *port = 0;
  }
  if (host->size() > 1 && host->front() == '[') *host = host->substr(1, host->size() - 2);
}

}  // namespace

OtlpSpan SpanFromRecord(const shm::SpanRecord& r, const shm::Snapshot* snap) {
  OtlpSpan s;
  std::memcpy(s.trace_id, r.trace_id, 16);
  std::memcpy(s.span_id, r.span_id, 8);
  std::memcpy(s.parent_span_id, r.parent_span_id, 8);
  s.trace_state = Text(r.trace_state, sizeof(r.trace_state));
  s.kind = r.kind;
  s.start_unix_ns = r.start_unix_ns;
  s.end_unix_ns = r.end_unix_ns;
  auto op = static_cast<shm::SpanOperation>(r.operation);
  std::string request_model = Text(r.request_model, sizeof(r.request_model));
  std::string model;  // the model that served (after aliases and fallbacks)
  if (snap && r.model_slot < shm::kMaxModels && r.model_slot < snap->num_models && snap->models[r.model_slot].present)
    model = Text(snap->models[r.model_slot].name, shm::kNameLen);
  const shm::BackendEntry* backend = nullptr;
  if (snap && r.backend_slot < snap->num_backends && r.backend_slot < shm::kMaxBackends &&
      snap->backends[r.backend_slot].key == r.backend_key)
    backend = &snap->backends[r.backend_slot];
  bool server = r.kind == static_cast<uint8_t>(shm::SpanKind::kServer);
  // GenAI semantic conventions: "{gen_ai.operation.name} {gen_ai.request.model}".
  std::string_view opname = shm::SpanOperationName(op);
  std::string span_model = server ? (request_model.empty() ? model : request_model) : model;
  s.name = std::string(opname) + (span_model.empty() ? "" : " " + span_model);
  auto& a = s.attributes;
  if (op != shm::SpanOperation::kOther) a.emplace_back("gen_ai.operation.name", std::string(opname));
  if (server && !request_model.empty()) a.emplace_back("gen_ai.request.model", request_model);
  if (!server && !model.empty()) a.emplace_back("gen_ai.request.model", model);
  if (!model.empty() && r.status_code >= 200 && r.status_code < 300) a.emplace_back("gen_ai.response.model", model);
  if (r.prompt_tokens || r.completion_tokens) {
    a.emplace_back("gen_ai.usage.input_tokens", static_cast<int64_t>(r.prompt_tokens));
    a.emplace_back("gen_ai.usage.output_tokens", static_cast<int64_t>(r.completion_tokens));
  }
  if (r.status_code) a.emplace_back("http.response.status_code", static_cast<int64_t>(r.status_code));
  if (backend) {
    a.emplace_back("llmgw.backend.id", Text(backend->id, shm::kUrlLen));
    if (!server) {
      std::string host;
      int64_t port = 0;
      HostPort(Text(backend->url, shm::kUrlLen), &host, &port);
      a.emplace_back("server.address", host);
      if (port) a.emplace_back("server.port", port);
    }
  }
  if (server) {
    a.emplace_back("http.request.method", std::string("POST"));
    a.emplace_back("llmgw.stream", r.stream != 0);
    a.emplace_back("llmgw.attempts", static_cast<int64_t>(r.attempt));
    if (r.request_id[0]) a.emplace_back("llmgw.request_id", Text(r.request_id, sizeof(r.request_id)));
  } else {
    a.emplace_back("llmgw.attempt", static_cast<int64_t>(r.attempt));
    a.emplace_back("llmgw.attempt.reason",
                   std::string(shm::AttemptReasonName(static_cast<shm::AttemptReason>(r.reason))));
  }
  bool failed = r.error_kind != 0 || (server ? r.status_code >= 500 : (r.status_code >= 400 || r.status_code == 0));
  if (r.error_kind) {
    std::string_view k = ErrorKindName(static_cast<ErrorKind>(r.error_kind));
    a.emplace_back("error.type", std::string(k));
  } else if (failed && r.status_code) {
    a.emplace_back("error.type", std::to_string(r.status_code));
  }
  if (r.first_token_unix_ns) {
    OtlpEvent e;
    e.time_unix_ns = r.first_token_unix_ns;
    e.name = "gen_ai.first_token";
    e.attributes.emplace_back("gen_ai.server.time_to_first_token",
                              static_cast<double>(r.first_token_unix_ns - r.start_unix_ns) / 1e9);
    s.events.push_back(std::move(e));
  }
  s.status_code = failed ? 2 : 0;  // ERROR; success stays UNSET (OTel HTTP conventions)
  if (r.status_code == 520) s.status_message = "stream cut after the first byte";
  return s;
}

SpanCollector::SpanCollector(shm::ShmRegion* region)
    : region_(region), reader_(region), snap_(std::make_unique<shm::Snapshot>()) {
  for (uint32_t i = 0; i < shm::kMaxStatsSlots; ++i) dropped_seen_[i] = shm::SpanRingReader(&region_->span_rings[i]).dropped();
}

std::vector<OtlpSpan> SpanCollector::Collect(uint64_t* dropped, size_t max_spans) {
  if (reader_.Changed() || !have_snap_) have_snap_ = reader_.Refresh(snap_.get()) || have_snap_;
  std::vector<OtlpSpan> out;
  *dropped = 0;
  for (uint32_t i = 0; i < shm::kMaxStatsSlots; ++i) {
    shm::SpanRingReader rd(&region_->span_rings[i]);
    uint64_t d = rd.dropped();
    *dropped += d >= dropped_seen_[i] ? d - dropped_seen_[i] : d;
    dropped_seen_[i] = d;
    if (out.size() >= max_spans) continue;
    rd.Drain([&](const shm::SpanRecord& r) { out.push_back(SpanFromRecord(r, have_snap_ ? snap_.get() : nullptr)); },
             max_spans - out.size());
  }
  return out;
}

}  // namespace llmgw::cp
