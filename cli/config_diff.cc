// `llmctl config diff`: compares two parsed configs by effective value, so a file that
// spells out a default is not reported as a change. Models are matched by name, backends by
// id (ids are unique across models), every other key by its dotted path.
#include <cstdio>
#include <map>
#include <set>

#include <rapidjson/prettywriter.h>
#include <rapidjson/stringbuffer.h>

#include "cli/cli_internal.h"

namespace llmgw::cli {
namespace {

std::string Num(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.10g", v);
  return buf;
}
std::string Num(uint64_t v) { return std::to_string(v); }
std::string Num(uint32_t v) { return std::to_string(v); }
std::string Bool(bool b) { return b ? "true" : "false"; }
std::string Quote(const std::string& s) { return "\"" + s + "\""; }

std::string List(const std::vector<std::string>& v) {
  std::string s = "[";
  for (size_t i = 0; i < v.size(); ++i) s += (i ? ", " : "") + v[i];
  return s + "]";
}

// Every key outside `models`, as dotted path -> printable value. Keep in step with
// common/config.h; a key missing here is simply not diffed.
std::map<std::string, std::string> FlattenKeys(const Config& c) {
  std::map<std::string, std::string> k;
  k["instance"] = Quote(c.instance);
  k["log_level"] = Quote(c.log_level);
  const auto& g = c.gateway;
  k["gateway.listen"] = Quote(g.listen);
  k["gateway.threads"] = Num(g.threads);
  k["gateway.max_body_bytes"] = Num(g.max_body_bytes);
  k["gateway.max_header_bytes"] = Num(g.max_header_bytes);
  k["gateway.max_connections"] = Num(g.max_connections);
  k["gateway.max_requests_per_client"] = Num(g.max_requests_per_client);
  k["gateway.drain_ms"] = Num(g.drain_ms);
  k["gateway.timeouts.connect_ms"] = Num(g.timeouts.connect_ms);
  k["gateway.timeouts.first_byte_ms"] = Num(g.timeouts.first_byte_ms);
  k["gateway.timeouts.idle_ms"] = Num(g.timeouts.idle_ms);
  k["gateway.timeouts.total_ms"] = Num(g.timeouts.total_ms);
  k["gateway.timeouts.client_header_ms"] = Num(g.timeouts.client_header_ms);
  k["gateway.timeouts.client_body_ms"] = Num(g.timeouts.client_body_ms);
  k["gateway.timeouts.client_idle_ms"] = Num(g.timeouts.client_idle_ms);
  k["gateway.timeouts.client_send_ms"] = Num(g.timeouts.client_send_ms);
  k["gateway.retries.max"] = Num(g.retries.max);
  k["gateway.retries.backoff_ms"] = Num(g.retries.backoff_ms);
  k["gateway.access_log.enabled"] = Bool(g.access_log.enabled);
  k["gateway.access_log.path"] = Quote(g.access_log.path);
  k["gateway.access_log.sample"] = Num(g.access_log.sample);
  k["gateway.admission.queue_size"] = Num(g.admission.queue_size);
  k["gateway.admission.queue_timeout_ms"] = Num(g.admission.queue_timeout_ms);
  k["gateway.admission.priority_field"] = Quote(g.admission.priority_field);
  const auto& a = c.admin;
  k["admin.grpc_listen"] = Quote(a.grpc_listen);
  k["admin.metrics_listen"] = Quote(a.metrics_listen);
  k["admin.token_file"] = Quote(a.token_file);
  k["admin.tls_cert_file"] = Quote(a.tls_cert_file);
  k["admin.tls_key_file"] = Quote(a.tls_key_file);
  const auto& h = c.health;
  k["health.interval_ms"] = Num(h.interval_ms);
  k["health.timeout_ms"] = Num(h.timeout_ms);
  k["health.unhealthy_after"] = Num(h.unhealthy_after);
  k["health.healthy_after"] = Num(h.healthy_after);
  k["health.scrape_metrics"] = Bool(h.scrape_metrics);
  k["health.scrape_interval_ms"] = Num(h.scrape_interval_ms);
  k["health.path"] = Quote(h.path);
  k["health.metrics_stale_ms"] = Num(h.metrics_stale_ms);
  k["health.passive_error_rate"] = Num(h.passive_error_rate);
  const auto& cb = c.circuit_breaker;
  k["circuit_breaker.failure_threshold"] = Num(cb.failure_threshold);
  k["circuit_breaker.success_threshold"] = Num(cb.success_threshold);
  k["circuit_breaker.open_ms"] = Num(cb.open_ms);
  k["circuit_breaker.half_open_requests"] = Num(cb.half_open_requests);
  k["circuit_breaker.slow_call_ms"] = Num(cb.slow_call_ms);
  k["circuit_breaker.window_ms"] = Num(cb.window_ms);
  const auto& r = c.routing;
  k["routing.w_waiting"] = Num(r.w_waiting);
  k["routing.w_running"] = Num(r.w_running);
  k["routing.w_kv"] = Num(r.w_kv);
  k["routing.w_latency"] = Num(r.w_latency);
  k["routing.w_error"] = Num(r.w_error);
  k["routing.bounded_load"] = Num(r.bounded_load);
  k["routing.prefix_bytes"] = Num(r.prefix_bytes);
  k["routing.virtual_nodes"] = Num(r.virtual_nodes);
  k["routing.hash_header"] = Quote(r.hash_header);
  k["routing.adaptive_exploration"] = Num(r.adaptive_exploration);
  k["routing.adaptive_decay"] = Num(r.adaptive_decay);
  k["control.tick_ms"] = Num(c.control.tick_ms);
  k["control.heartbeat_ms"] = Num(c.control.heartbeat_ms);
  k["control.ewma_alpha"] = Num(c.control.ewma_alpha);
  k["fleet.role"] = Quote(c.fleet.role);
  k["fleet.controller"] = Quote(c.fleet.controller);
  k["fleet.agent_id"] = Quote(c.fleet.agent_id);
  return k;
}

std::map<std::string, std::string> ModelFields(const ModelConfig& m) {
  return {{"aliases", List(m.aliases)},
          {"policy", std::string(PolicyName(m.policy))},
          {"fallbacks", List(m.fallbacks)}};
}

std::map<std::string, std::string> BackendFields(const std::string& model, const BackendConfig& b) {
  return {{"model", model},
          {"url", b.url},
          {"max_concurrent", Num(b.max_concurrent)},
          {"weight", Num(b.weight)},
          {"engine", std::string(EngineName(b.engine))}};
}

// "a: x -> y, b: u -> v" for the fields that differ.
std::string FieldChanges(const std::map<std::string, std::string>& from,
                         const std::map<std::string, std::string>& to) {
  std::string s;
  for (const auto& [k, v] : from) {
    auto it = to.find(k);
    if (it != to.end() && it->second != v) s += (s.empty() ? "" : ", ") + k + ": " + v + " -> " + it->second;
  }
  return s;
}

std::string Describe(const std::map<std::string, std::string>& fields) {
  std::string s;
  for (const auto& [k, v] : fields) s += (s.empty() ? "" : ", ") + k + " " + v;
  return s;
}

using Fields = std::map<std::string, std::string>;

// Added, changed (only the fields that differ) and removed entries of one kind, matched by
// name; added_detail describes a new entry.
template <typename AddedDetail>
void DiffEntries(const char* what, const std::map<std::string, Fields>& before,
                 const std::map<std::string, Fields>& after, AddedDetail added_detail,
                 std::vector<ConfigChange>* out) {
  for (const auto& [name, f] : after) {
    auto it = before.find(name);
    if (it == before.end()) out->push_back({ConfigChange::kAdded, what, name, added_detail(name, f)});
    else if (auto d = FieldChanges(it->second, f); !d.empty())
      out->push_back({ConfigChange::kChanged, what, name, d});
  }
  for (const auto& [name, f] : before)
    if (!after.count(name)) out->push_back({ConfigChange::kRemoved, what, name, ""});
}

}  // namespace

std::vector<ConfigChange> DiffConfigs(const Config& running, const Config& next) {
  std::vector<ConfigChange> out;
  std::map<std::string, Fields> old_models, new_models;
  std::map<std::string, size_t> new_backend_counts;
  for (const auto& m : running.models) old_models[m.name] = ModelFields(m);
  for (const auto& m : next.models) {
    new_models[m.name] = ModelFields(m);
    new_backend_counts[m.name] = m.backends.size();
  }
  DiffEntries("model", old_models, new_models, [&](const std::string& name, const Fields& f) {
    return Describe(f) + ", " + std::to_string(new_backend_counts[name]) + " backends";
  }, &out);

  std::map<std::string, Fields> old_backends, new_backends;
  for (const auto& m : running.models)
    for (const auto& b : m.backends) old_backends[b.id] = BackendFields(m.name, b);
  for (const auto& m : next.models)
    for (const auto& b : m.backends) new_backends[b.id] = BackendFields(m.name, b);
  DiffEntries("backend", old_backends, new_backends,
              [](const std::string&, const Fields& f) { return Describe(f); }, &out);

  auto old_keys = FlattenKeys(running), new_keys = FlattenKeys(next);
  for (const auto& [k, v] : new_keys)
    if (old_keys[k] != v) out.push_back({ConfigChange::kChanged, "key", k, old_keys[k] + " -> " + v});
  return out;
}

std::string ConfigChangesJson(const std::vector<ConfigChange>& changes) {
  rapidjson::StringBuffer buf;
  rapidjson::PrettyWriter<rapidjson::StringBuffer> w(buf);
  w.SetIndent(' ', 2);
  w.StartObject();
  w.Key("changed");
  w.Bool(!changes.empty());
  w.Key("changes");
  w.StartArray();
  for (const auto& c : changes) {
    w.StartObject();
    w.Key("change");
    w.String(c.kind == ConfigChange::kAdded ? "added"
             : c.kind == ConfigChange::kRemoved ? "removed" : "changed");
    w.Key("kind");
    w.String(c.what.c_str());
    w.Key("name");
    w.String(c.name.c_str());
    w.Key("detail");
    w.String(c.detail.c_str());
    w.EndObject();
  }
  w.EndArray();
  w.EndObject();
  return buf.GetString();
}

}  // namespace llmgw::cli
