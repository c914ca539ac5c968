// The dashboard's state event and token check (dashboard.h); the page is dashboard_page.cc.
#include "controlplane/dashboard.h"

#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <unordered_map>

#include "common/snapshot_builder.h"
#include "controlplane/circuit_breaker.h"

namespace llmgw::cp {

namespace {

std::string_view StateName(shm::BackendState s) {
  switch (s) {
    case shm::BackendState::kHealthy: return "healthy";
    case shm::BackendState::kUnhealthy: return "unhealthy";
    case shm::BackendState::kDraining: return "draining";
    case shm::BackendState::kCircuitOpen: return "circuit_open";
    case shm::BackendState::kHalfOpen: return "half_open";
    default: return "unknown";
  }
}

// Same time whatever the first differing byte (the token is a secret).
bool SameSecret(std::string_view a, std::string_view b) {
  if (b.empty() || a.size() != b.size()) return false;
  unsigned char diff = 0;
  for (size_t i = 0; i < a.size(); ++i) diff |= static_cast<unsigned char>(a[i] ^ b[i]);
  return diff == 0;
}

int Hex(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::string PercentDecode(std::string_view v) {
  std::string out;
  for (size_t i = 0; i < v.size(); ++i) {
    if (v[i] == '+') {
      out.push_back(' ');
    } else if (v[i] == '%' && i + 2 < v.size() && Hex(v[i + 1]) >= 0 && Hex(v[i + 2]) >= 0) {
      out.push_back(static_cast<char>(Hex(v[i + 1]) * 16 + Hex(v[i + 2])));
      i += 2;
    } else {
      out.push_back(v[i]);
    }
  }
  return out;
}

std::string CookieValue(std::string_view header, std::string_view name) {
  while (!header.empty()) {
    size_t semi = header.find(';');
    std::string_view part = header.substr(0, semi);
    while (!part.empty() && part.front() == ' ') part.remove_prefix(1);
    if (part.size() > name.size() && part.substr(0, name.size()) == name && part[name.size()] == '=')
      return PercentDecode(part.substr(name.size() + 1));
    if (semi == std::string_view::npos) break;
    header.remove_prefix(semi + 1);
  }
  return "";
}

}  // namespace

std::string QueryParam(std::string_view query, std::string_view name) {
  while (!query.empty()) {
    size_t amp = query.find('&');
    std::string_view part = query.substr(0, amp);
    if (part.size() > name.size() && part.substr(0, name.size()) == name && part[name.size()] == '=')
      return PercentDecode(part.substr(name.size() + 1));
    if (amp == std::string_view::npos) break;
    query.remove_prefix(amp + 1);
  }
  return "";
}

bool DashboardAuthorized(std::string_view authorization, std::string_view cookie_header, std::string_view query,
                         std::string_view token) {
  if (token.empty()) return true;
  constexpr std::string_view kBearer = "Bearer ";
  bool ok = false;
  if (authorization.size() > kBearer.size() && authorization.substr(0, kBearer.size()) == kBearer)
    ok |= SameSecret(authorization.substr(kBearer.size()), token);
  std::string c = CookieValue(cookie_header, "llmgw_admin_token");
  if (!c.empty()) ok |= SameSecret(c, token);
  std::string q = QueryParam(query, "token");
  if (!q.empty()) ok |= SameSecret(q, token);
  return ok;
}

std::string DashboardStateJson(const Controller& c, uint64_t unix_ms) {
  StatusView st = c.GetStatus();
  std::vector<BackendView> backends = c.Backends();
  auto circuits = c.Circuits();
  RoutingStatsView routing = c.RoutingStats();
  shm::StatsTotals totals = c.StatsCopy();
  auto models = c.ModelSlots();

  std::unordered_map<uint64_t, shm::BackendTotals> by_key;
  for (const auto& row : totals.backends)
    if (row.key != 0) shm::AddTotals(row, &by_key[row.key]);
  std::unordered_map<std::string, uint64_t> picks;
  for (const auto& m : routing.models)
    for (const auto& p : m.picks) picks[p.id] = p.picks;

  rapidjson::StringBuffer sb;
  rapidjson::Writer<rapidjson::StringBuffer> w(sb);
  w.StartObject();
  w.Key("t"); w.Uint64(unix_ms);
  w.Key("status");
  w.StartObject();
  w.Key("version"); w.String(st.version.c_str());
  w.Key("instance"); w.String(st.instance.c_str());
  w.Key("role"); w.String(st.role.c_str());
  w.Key("uptime_s"); w.Double(st.uptime_seconds);
  w.Key("generation"); w.Uint64(st.snapshot_generation);
  w.Key("backends_healthy"); w.Uint(st.backends_healthy);
  w.Key("backends_total"); w.Uint(st.backends_total);
  w.Key("rps"); w.Double(st.requests_per_second);
  w.Key("eps"); w.Double(st.errors_per_second);
  w.Key("active"); w.Uint64(st.active_requests);
  w.Key("dataplane_alive"); w.Bool(st.dataplane_alive);
  w.Key("dataplane_threads"); w.Uint(st.dataplane_threads);
  w.Key("config_reloads"); w.Uint64(st.config_reloads);
  w.Key("config_reload_failures"); w.Uint64(st.config_reload_failures);
  w.Key("publishing"); w.Bool(c.Publishing());
  w.EndObject();

  // Cumulative gateway counters: the page's rate charts difference them.
  uint64_t errors = 0;
  for (size_t i = 1; i < std::size(totals.errors_by_kind); ++i) errors += totals.errors_by_kind[i];
  w.Key("totals");
  w.StartObject();
  w.Key("requests"); w.Uint64(totals.requests_total);
  w.Key("errors"); w.Uint64(errors);
  uint64_t prompt = 0, completion = 0;
  for (const auto& [name, slot] : models) {
    if (slot < 0 || static_cast<size_t>(slot) >= totals.models.size()) continue;
    prompt += totals.models[slot].prompt_tokens;
    completion += totals.models[slot].completion_tokens;
  }
  w.Key("prompt_tokens"); w.Uint64(prompt);
  w.Key("completion_tokens"); w.Uint64(completion);
  // Every gateway of the fleet, last 30 s (a since-start figure hides a recent change).
  w.Key("ttft_p99_ms"); w.Double(st.ttft_p99_ms);
  w.Key("latency_p99_ms"); w.Double(st.latency_p99_ms);
  w.EndObject();

  w.Key("models");
  w.StartArray();
  for (const auto& m : routing.models) {
    w.StartObject();
    w.Key("name"); w.String(m.model.c_str());
    w.Key("policy"); w.String(m.policy.c_str());
    w.Key("requests"); w.Uint64(m.requests);
    w.Key("retries"); w.Uint64(m.retries);
    w.Key("fallbacks"); w.Uint64(m.fallbacks);
    w.Key("rejected"); w.Uint64(m.rejected);
    for (const auto& [name, slot] : models) {
      if (name != m.model || slot < 0 || static_cast<size_t>(slot) >= totals.models.size()) continue;
      w.Key("prompt_tokens"); w.Uint64(totals.models[slot].prompt_tokens);
      w.Key("completion_tokens"); w.Uint64(totals.models[slot].completion_tokens);
    }
    w.EndObject();
  }
  w.EndArray();

  w.Key("backends");
  w.StartArray();
  for (const auto& b : backends) {
    w.StartObject();
    w.Key("id"); w.String(b.id.c_str());
    w.Key("url"); w.String(b.url.c_str());
    w.Key("model"); w.String(b.model.c_str());
    std::string_view state = StateName(b.state);
    w.Key("state"); w.String(state.data(), static_cast<rapidjson::SizeType>(state.size()));
    w.Key("in_flight"); w.Uint64(b.in_flight);
    w.Key("max_concurrent"); w.Uint(b.max_concurrent);
    w.Key("running"); w.Double(b.running);
    w.Key("waiting"); w.Double(b.waiting);
    w.Key("kv_cache_usage"); w.Double(b.kv_cache_usage);
    w.Key("metrics_stale"); w.Bool(b.metrics_stale);
    w.Key("ewma_latency_ms"); w.Double(b.ewma_latency_ms);
    w.Key("latency_p99_ms"); w.Double(b.latency_p99_ms);
    w.Key("ttft_p99_ms"); w.Double(b.ttft_p99_ms);
    w.Key("scraped_ttft_p99_ms"); w.Double(b.scraped_ttft_p99_ms);
    w.Key("error_rate"); w.Double(b.error_rate);
    w.Key("requests_total"); w.Uint64(b.requests_total);
    auto bt = by_key.find(BackendKey(b.id));
    w.Key("errors_total"); w.Uint64(bt == by_key.end() ? 0 : bt->second.ErrorsTotal());
    w.Key("picks"); w.Uint64(picks.count(b.id) ? picks[b.id] : 0);
    auto ci = circuits.find(b.id);
    w.Key("breaker");
    w.String(ci == circuits.end() ? "closed" : std::string(CircuitStateName(ci->second.state)).c_str());
    w.Key("breaker_failures"); w.Uint64(ci == circuits.end() ? 0 : ci->second.failures_total);
    w.Key("engine"); w.String(b.engine.c_str());
    w.Key("last_error"); w.String(b.last_error.c_str());
    w.EndObject();
  }
  w.EndArray();
  w.EndObject();
  return sb.GetString();
}

}  // namespace llmgw::cp
