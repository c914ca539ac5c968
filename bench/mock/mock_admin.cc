// llmgw-mock's small JSON endpoints: /v1/models, and the /mock/stats counters and
// /mock/faults fault-injection settings used by tests and benchmarks.
#include <cstdio>
#include <string>

#include "bench/mock/mock_server_internal.h"
#include "bench/mock/mock_tls.h"

namespace llmgw::mock::internal {

void Server::HandleModels(Conn* c) {
  std::string body;
  body.append("{\"object\":\"list\",\"data\":[{\"id\":");
  AppendJsonString(&body, opts_.model);
  body.append(",\"object\":\"model\",\"created\":");
  AppendInt(&body, time(nullptr));
  body.append(",\"owned_by\":\"vllm\",\"root\":");
  AppendJsonString(&body, opts_.model);
  body.append(",\"parent\":null,\"max_model_len\":");
  AppendInt(&body, opts_.max_model_len);
  body.append("}]}");
  SendSimple(c, 200, "application/json", body);
}

void Server::HandleStats(Conn* c) {
  std::string b;
  auto kv = [&b](const char* k, uint64_t v, bool last = false) {
    b.append("\"").append(k).append("\":");
    AppendInt(&b, static_cast<int64_t>(v));
    if (!last) b.push_back(',');
  };
  b.push_back('{');
  kv("connections_total", connections_total_);
  kv("connections_open", connections_open_);
  kv("connections_refused", connections_refused_);
  kv("tls_handshakes_total", TlsHandshakes());
  kv("tls_resumed_total", TlsResumed());
  kv("http_requests_total", http_requests_total_);
  kv("requests_total", requests_total_);
  kv("completed_total", completed_total_);
  kv("running", static_cast<uint64_t>(engine_.running()));
  kv("waiting", static_cast<uint64_t>(engine_.waiting()));
  kv("cancelled_total", cancelled_total_);
  kv("errors_injected_total", errors_injected_);
  kv("closed_mid_stream_total", closed_mid_stream_);
  kv("reset_mid_stream_total", reset_mid_stream_);
  kv("stalled_mid_stream_total", stalled_mid_stream_);
  kv("error_events_mid_stream_total", error_events_mid_stream_);
  kv("garbage_events_mid_stream_total", garbage_events_mid_stream_);
  kv("bad_requests_total", bad_requests_);
  kv("provider_auth_failures_total", provider_auth_failures_);
  kv("prompt_tokens_total", metrics_.prompt_tokens_total);
  kv("generation_tokens_total", metrics_.generation_tokens_total);
  kv("prefix_cache_query_tokens", engine_.prefix_queries_tokens());
  kv("prefix_cache_hit_tokens", engine_.prefix_hit_tokens());
  kv("kv_tokens_held", static_cast<uint64_t>(engine_.kv_tokens_held()));
  kv("max_num_seqs", static_cast<uint64_t>(engine_.params().max_num_seqs));
  // Utilisation over a window = delta(busy_slot_seconds) / (delta(uptime_seconds) * max_num_seqs).
  int64_t now = NowUs();
  char num[96];
  std::snprintf(num, sizeof num, "\"busy_slot_seconds\":%.6f,\"uptime_seconds\":%.6f",
                engine_.BusySlotUs(now) / 1e6, static_cast<double>(now - started_us_) / 1e6);
  b.append(num);
  b.push_back('}');
  SendSimple(c, 200, "application/json", b);
}

void Server::HandleFaultsGet(Conn* c) {
  std::string b;
  char num[64];
  std::snprintf(num, sizeof num, "%g", faults_.error_rate);
  b.append("{\"error_rate\":").append(num);
  b.append(",\"error_status\":");
  AppendInt(&b, faults_.error_status);
  b.append(",\"hang_first_byte\":").append(faults_.hang_first_byte ? "true" : "false");
  b.append(",\"slow_first_byte_ms\":");
  AppendInt(&b, faults_.slow_first_byte_ms);
  b.append(",\"close_mid_stream_after\":");
  AppendInt(&b, faults_.close_mid_stream_after);
  b.append(",\"reset_mid_stream_after\":");
  AppendInt(&b, faults_.reset_mid_stream_after);
  b.append(",\"stall_mid_stream_after\":");
  AppendInt(&b, faults_.stall_mid_stream_after);
  b.append(",\"error_event_mid_stream_after\":");
  AppendInt(&b, faults_.error_event_mid_stream_after);
  b.append(",\"garbage_event_mid_stream_after\":");
  AppendInt(&b, faults_.garbage_event_mid_stream_after);
  b.append(",\"refuse_connections\":").append(faults_.refuse_connections ? "true" : "false");
  b.append(",\"die_after\":");
  int64_t left = die_at_ > 0 ? die_at_ - static_cast<int64_t>(DoneCount()) : 0;
  AppendInt(&b, left < 0 ? 0 : left);
  b.append("}");
  SendSimple(c, 200, "application/json", b);
}

bool Server::HandleFaultsPost(Conn* c) {
  JsonDoc d;
  d.Parse(c->body.data(), c->body.size());
  if (d.HasParseError() || !d.IsObject()) {
    SendError(c, 400, "body must be a JSON object");
    return true;
  }
  Faults f = faults_;
  int64_t die_after = -1;
  if (d.HasMember("reset") && d["reset"].IsBool() && d["reset"].GetBool()) {
    f = Faults{};
    die_after = 0;
  }
  for (auto& m : d.GetObject()) {
    std::string_view k(m.name.GetString(), m.name.GetStringLength());
    const auto& v = m.value;
    auto bad = [&](const char* what) {
      SendError(c, 400, std::string(k) + ": " + what, k);
      return true;
    };
    if (k == "reset") {
      if (!v.IsBool()) return bad("must be a boolean");
    } else if (k == "error_rate") {
      if (!v.IsNumber() || v.GetDouble() < 0 || v.GetDouble() > 1) return bad("must be a number in [0, 1]");
      f.error_rate = v.GetDouble();
    } else if (k == "error_status") {
      if (!v.IsInt() || v.GetInt() < 400 || v.GetInt() > 599) return bad("must be an HTTP status 400-599");
      f.error_status = v.GetInt();
    } else if (k == "hang_first_byte" || k == "refuse_connections") {
      if (!v.IsBool()) return bad("must be a boolean");
      (k == "hang_first_byte" ? f.hang_first_byte : f.refuse_connections) = v.GetBool();
    } else if (k == "slow_first_byte_ms" || k == "close_mid_stream_after" || k == "reset_mid_stream_after" ||
               k == "stall_mid_stream_after" || k == "error_event_mid_stream_after" ||
               k == "garbage_event_mid_stream_after") {
      if (!v.IsInt() || v.GetInt() < 0) return bad("must be a non-negative integer");
      int* dst = k == "slow_first_byte_ms"       ? &f.slow_first_byte_ms
                 : k == "close_mid_stream_after" ? &f.close_mid_stream_after
                 : k == "reset_mid_stream_after" ? &f.reset_mid_stream_after
                 : k == "stall_mid_stream_after" ? &f.stall_mid_stream_after
                 : k == "error_event_mid_stream_after" ? &f.error_event_mid_stream_after
                                                       : &f.garbage_event_mid_stream_after;
      *dst = v.GetInt();
    } else if (k == "die_after") {
      if (!v.IsInt64() || v.GetInt64() < 0) return bad("must be a non-negative integer");
      die_after = v.GetInt64();
    } else {
      return bad("unknown fault");
    }
  }
  faults_ = f;
  // die_after counts from now: "serve N more inference requests, then exit".
  if (die_after == 0) die_at_ = 0;
  if (die_after > 0) die_at_ = static_cast<int64_t>(DoneCount()) + die_after;
  HandleFaultsGet(c);
  return true;
}

}  // namespace llmgw::mock::internal
