// The config key tables (see config_keys.h) and the table-driven config diff used by
// `llmctl config diff` and llmcd's reload summary.
#include "common/config_keys.h"

#include <cstdio>
#include <map>

namespace llmgw {

std::string_view AppliesName(Applies a) {
  switch (a) {
    case Applies::kReload: return "reload";
    case Applies::kLlmgwRestart: return "restart llmgw";
    case Applies::kLlmcdRestart: return "restart llmcd";
    case Applies::kRestart: return "restart both";
  }
  return "reload";
}

// Row helpers: F(expr) is the field accessor of a row.
#define F(expr) [](auto& c) -> FieldPtr { return &c.expr; }
#define SECTION [](auto&) -> FieldPtr { return std::monostate{}; }

namespace {
using A = Applies;
using K = KeyCheck;
constexpr double kMaxU32 = 0;  // 0 = the field type's largest value
}  // namespace

const std::vector<ConfigKey<Config>>& ConfigKeys() {
  static const std::vector<ConfigKey<Config>> keys = {
      {"instance", F(instance), A::kRestart, 0, 0, K::kInstanceName, {}, {},
       "names the shared-memory object /llmgw-<instance>"},
      {"log_level", F(log_level), A::kRestart, 0, 0, K::kOneOf, "debug|info|warn|error|off", {}, "log verbosity"},

      {"gateway.listen", F(gateway.listen), A::kLlmgwRestart, 0, 0, K::kListen, {}, {}, "OpenAI endpoint HOST:PORT"},
      {"gateway.threads", F(gateway.threads), A::kLlmgwRestart, 0, 1024, K::kNone, {}, {}, "data-plane threads; 0 = one per core"},
      {"gateway.max_body_bytes", F(gateway.max_body_bytes), A::kReload, 1, 0, K::kNone, {}, {}, "larger bodies get 413"},
      {"gateway.max_header_bytes", F(gateway.max_header_bytes), A::kLlmgwRestart, 1024, 1 << 20, K::kNone, {}, {},
       "larger request heads get 431"},
      {"gateway.max_connections", F(gateway.max_connections), A::kLlmgwRestart, 1, kMaxU32, K::kNone, {}, {},
       "client connections per process"},
      {"gateway.max_requests_per_client", F(gateway.max_requests_per_client), A::kLlmgwRestart, 0, 0, K::kNone, {},
       {}, "in-flight requests per client address; 0 = no cap"},
      {"gateway.drain_ms", F(gateway.drain_ms), A::kLlmgwRestart, 1, 0, K::kNone, {}, {},
       "how long in-flight requests may finish on SIGTERM"},
      {"gateway.timeouts.connect_ms", F(gateway.timeouts.connect_ms), A::kReload, 1, 0, K::kNone, {}, {}, "upstream connect"},
      {"gateway.timeouts.first_byte_ms", F(gateway.timeouts.first_byte_ms), A::kReload, 1, 0, K::kNone, {}, {},
       "upstream response head"},
      {"gateway.timeouts.idle_ms", F(gateway.timeouts.idle_ms), A::kReload, 1, 0, K::kNone, {}, {},
       "silence between upstream chunks"},
      {"gateway.timeouts.total_ms", F(gateway.timeouts.total_ms), A::kReload, 1, 0, K::kNone, {}, {},
       "whole request, retries included"},
      {"gateway.timeouts.client_header_ms", F(gateway.timeouts.client_header_ms), A::kLlmgwRestart, 1, 0, K::kNone, {}, {},
       "client request head"},
      {"gateway.timeouts.client_body_ms", F(gateway.timeouts.client_body_ms), A::kLlmgwRestart, 1, 0, K::kNone, {}, {},
       "client request body"},
      {"gateway.timeouts.client_idle_ms", F(gateway.timeouts.client_idle_ms), A::kLlmgwRestart, 1, 0, K::kNone, {}, {},
       "idle keep-alive client connection"},
      {"gateway.timeouts.client_send_ms", F(gateway.timeouts.client_send_ms), A::kLlmgwRestart, 0, 0, K::kNone, {}, {},
       "each write toward a client must be taken within this; 0 = no limit"},
      {"gateway.resume_streams", F(gateway.resume_streams), A::kReload, 0, 0, K::kNone, {}, {},
       "continue a stream on another backend when its backend fails after the first byte"},
      {"gateway.resume_max_bytes", F(gateway.resume_max_bytes), A::kReload, 0, 64 << 20, K::kNone, {}, {},
       "text kept per stream for that; a longer stream is not resumed"},
      {"gateway.retries.max", F(gateway.retries.max), A::kReload, 0, 10, K::kNone, {}, {}, "extra attempts after the first"},
      {"gateway.retries.backoff_ms", F(gateway.retries.backoff_ms), A::kReload, 0, 60000, K::kNone, {}, {},
       "base backoff between attempts"},
      {"gateway.access_log.enabled", F(gateway.access_log.enabled), A::kLlmgwRestart, 0, 0, K::kNone, {}, {},
       "JSON access log"},
      {"gateway.access_log.path", F(gateway.access_log.path), A::kLlmgwRestart, 0, 0, K::kNone, {}, {},
       "file to append to; empty = stderr"},
      {"gateway.access_log.sample", F(gateway.access_log.sample), A::kLlmgwRestart, 0, 1, K::kNone, {}, {},
       "fraction of requests logged"},
      {"gateway.admission.queue_size", F(gateway.admission.queue_size), A::kLlmgwRestart, 0, 1 << 20, K::kNone, {}, {},
       "per thread: requests that may wait for a backend slot"},
      {"gateway.admission.queue_timeout_ms", F(gateway.admission.queue_timeout_ms), A::kLlmgwRestart, 1, 0, K::kNone,
       {}, {}, "longest wait in that queue"},
      {"gateway.admission.priority_field", F(gateway.admission.priority_field), A::kLlmgwRestart, 0, 0, K::kNone, {},
       {}, "JSON field that orders the queue"},

      {"admin.grpc_listen", F(admin.grpc_listen), A::kLlmcdRestart, 0, 0, K::kListen, {}, {}, "gRPC admin API"},
      {"admin.metrics_listen", F(admin.metrics_listen), A::kLlmcdRestart, 0, 0, K::kListen, {}, {},
       "Prometheus /metrics and /load-stats"},
      {"admin.token_file", F(admin.token_file), A::kLlmcdRestart, 0, 0, K::kNone, {}, {}, "admin bearer token file"},
      {"admin.tls_cert_file", F(admin.tls_cert_file), A::kLlmcdRestart, 0, 0, K::kNone, {}, {}, "admin API TLS certificate"},
      {"admin.tls_key_file", F(admin.tls_key_file), A::kLlmcdRestart, 0, 0, K::kNone, {}, {}, "admin API TLS key"},

      {"health.interval_ms", F(health.interval_ms), A::kReload, 1, 0, K::kNone, {}, {}, "active probe interval"},
      {"health.timeout_ms", F(health.timeout_ms), A::kReload, 1, 0, K::kNone, {}, {}, "probe timeout"},
      {"health.unhealthy_after", F(health.unhealthy_after), A::kReload, 1, 1000, K::kNone, {}, {},
       "failed probes before UNHEALTHY"},
      {"health.healthy_after", F(health.healthy_after), A::kReload, 1, 1000, K::kNone, {}, {},
       "good probes before HEALTHY again"},
      {"health.scrape_metrics", F(health.scrape_metrics), A::kReload, 0, 0, K::kNone, {}, {}, "scrape backends' /metrics"},
      {"health.scrape_interval_ms", F(health.scrape_interval_ms), A::kReload, 1, 0, K::kNone, {}, {}, "scrape interval"},
      {"health.path", F(health.path), A::kReload, 0, 0, K::kAbsPath, {}, {}, "probe path"},
      {"health.metrics_stale_ms", F(health.metrics_stale_ms), A::kReload, 1, 0, K::kNone, {}, {},
       "scraped signals older than this are stale"},
      {"health.passive_error_rate", F(health.passive_error_rate), A::kReload, 0, 1, K::kNone, {}, {},
       "data-plane error rate that marks a backend unhealthy"},

      {"circuit_breaker.failure_threshold", F(circuit_breaker.failure_threshold), A::kReload, 1, 1000000, K::kNone, {},
       {}, "failures within window_ms that open the circuit"},
      {"circuit_breaker.success_threshold", F(circuit_breaker.success_threshold), A::kReload, 1, 1000000, K::kNone, {},
       {}, "successful half-open trials that close it"},
      {"circuit_breaker.open_ms", F(circuit_breaker.open_ms), A::kReload, 1, 0, K::kNone, {}, {},
       "time open before half-open"},
      {"circuit_breaker.half_open_requests", F(circuit_breaker.half_open_requests), A::kReload, 1, 1000000, K::kNone,
       {}, {}, "trial requests a half-open backend admits per thread"},
      {"circuit_breaker.slow_call_ms", F(circuit_breaker.slow_call_ms), A::kLlmgwRestart, 1, 0, K::kNone, {}, {},
       "a call slower than this counts as a failure (counted by llmgw)"},
      {"circuit_breaker.window_ms", F(circuit_breaker.window_ms), A::kReload, 1, 0, K::kNone, {}, {},
       "sliding window for counting failures"},

      {"routing.w_waiting", F(routing.w_waiting), A::kReload, 0, 1e6, K::kNone, {}, {}, "p2c_kv weight of waiting"},
      {"routing.w_running", F(routing.w_running), A::kReload, 0, 1e6, K::kNone, {}, {}, "p2c_kv weight of running"},
      {"routing.w_kv", F(routing.w_kv), A::kReload, 0, 1e6, K::kNone, {}, {}, "p2c_kv weight of KV usage"},
      {"routing.w_latency", F(routing.w_latency), A::kReload, 0, 1e6, K::kNone, {}, {}, "p2c_kv weight of latency (per ms)"},
      {"routing.w_error", F(routing.w_error), A::kReload, 0, 1e6, K::kNone, {}, {}, "p2c_kv weight of error rate"},
      {"routing.bounded_load", F(routing.bounded_load), A::kReload, 1, 100, K::kNone, {}, {},
       "most load a hashing policy gives one backend, x the mean"},
      {"routing.prefix_bytes", F(routing.prefix_bytes), A::kReload, 1, 1 << 20, K::kNone, {}, {},
       "prefix_affinity: prompt bytes hashed"},
      {"routing.virtual_nodes", F(routing.virtual_nodes), A::kReload, 1, 10000, K::kNone, {}, {},
       "points per backend on the hash ring"},
      {"routing.hash_header", F(routing.hash_header), A::kReload, 0, 0, K::kNone, {}, {}, "consistent_hash key header"},
      {"routing.adaptive_exploration", F(routing.adaptive_exploration), A::kLlmcdRestart, 0, 1, K::kNone, {}, {},
       "share of adaptive picks spent exploring"},
      {"routing.adaptive_decay", F(routing.adaptive_decay), A::kLlmcdRestart, 0, 1, K::kNone, {}, {},
       "decay of the bandit's memory per tick"},

      {"control.tick_ms", F(control.tick_ms), A::kReload, 1, 60000, K::kNone, {}, {}, "llmcd's publish cadence"},
      {"control.heartbeat_ms", F(control.heartbeat_ms), A::kReload, 1, 0, K::kNone, {}, {},
       "publish at least this often"},
      {"control.ewma_alpha", F(control.ewma_alpha), A::kReload, 0.001, 1, K::kNone, {}, {},
       "smoothing of EWMA latency and TTFT"},
      {"control.resolve_interval_ms", F(control.resolve_interval_ms), A::kReload, 0, 0, K::kNone, {}, {},
       "re-resolve backend host names this often; 0: only on load and reload"},

      {"fleet.role", F(fleet.role), A::kLlmcdRestart, 0, 0, K::kOneOf, "controller|agent", {}, "controller or agent"},
      {"fleet.controller", F(fleet.controller), A::kLlmcdRestart, 0, 0, K::kHostPortOpt, {}, {},
       "HOST:PORT of the controller (agents)"},
      {"fleet.agent_id", F(fleet.agent_id), A::kLlmcdRestart, 0, 0, K::kNone, {}, "<hostname>/<instance>",
       "name reported to the controller"},
      {"fleet.tls_ca_file", F(fleet.tls_ca_file), A::kLlmcdRestart, 0, 0, K::kNone, {}, {},
       "agents: CA the controller's admin certificate is verified with; set = TLS"},
      {"fleet.etcd.endpoints", F(fleet.etcd.endpoints), A::kLlmcdRestart, 0, 0, K::kNone, {}, {},
       "etcd members (http(s)://HOST:PORT); set: controllers elect a leader, agents find it"},
      {"fleet.etcd.prefix", F(fleet.etcd.prefix), A::kLlmcdRestart, 0, 0, K::kNone, {}, {},
       "prefix of every key llmgw keeps in etcd"},
      {"fleet.etcd.lease_ms", F(fleet.etcd.lease_ms), A::kLlmcdRestart, 1000, 600000, K::kNone, {}, {},
       "leadership lease; a dead leader is replaced after it"},
      {"fleet.etcd.ca_file", F(fleet.etcd.ca_file), A::kLlmcdRestart, 0, 0, K::kNone, {}, {},
       "https:// endpoints: CA of etcd's server certificate; empty = the system store"},
      {"fleet.etcd.client_cert_file", F(fleet.etcd.client_cert_file), A::kLlmcdRestart, 0, 0, K::kNone, {}, {},
       "client certificate (PEM) for etcd's --client-cert-auth"},
      {"fleet.etcd.client_key_file", F(fleet.etcd.client_key_file), A::kLlmcdRestart, 0, 0, K::kNone, {}, {},
       "its key"},
      {"fleet.etcd.username", F(fleet.etcd.username), A::kLlmcdRestart, 0, 0, K::kNone, {}, {},
       "etcd user when etcd's auth is enabled"},
      {"fleet.etcd.password_file", F(fleet.etcd.password_file), A::kLlmcdRestart, 0, 0, K::kNone, {}, {},
       "file holding that user's password"},

      {"auth.required", F(auth.required), A::kReload, 0, 0, K::kNone, {}, {},
       "requests without an API key get 401 (false: they pass as key id anonymous)"},
      {"auth.keys_file", F(auth.keys_file), A::kReload, 0, 0, K::kNone, {}, {},
       "YAML file of more keys, relative to the config file, hot-reloaded"},
      {"limits.global.rps", F(limits.global.rps), A::kReload, 0, 0, K::kNone, {}, {},
       "requests per second of the whole gateway (fleet); 0 = no limit"},
      {"limits.global.burst", F(limits.global.burst), A::kReload, 0, 0, K::kNone, {}, "rps",
       "requests the global bucket holds; 0 = rps"},
      {"tracing.otlp_endpoint", F(tracing.otlp_endpoint), A::kRestart, 0, 0, K::kNone, {}, {},
       "OTLP/HTTP collector base URL; empty = no tracing"},
      {"tracing.protocol", F(tracing.protocol), A::kLlmcdRestart, 0, 0, K::kOneOf, "http/protobuf|http/json", {},
       "OTLP/HTTP encoding"},
      {"tracing.sample", F(tracing.sample), A::kLlmgwRestart, 0, 1, K::kNone, {}, {},
       "fraction of traces llmgw starts that are recorded"},
      {"tracing.service_name", F(tracing.service_name), A::kLlmcdRestart, 0, 0, K::kNone, {}, {},
       "resource attribute service.name"},
      {"tracing.max_queue_spans", F(tracing.max_queue_spans), A::kLlmcdRestart, 1, 1 << 22, K::kNone, {}, {},
       "llmcd's export queue bound"},

      {"models", SECTION, A::kReload, 0, 0, K::kNone, {}, "required", "the models served"},
      {"keys", SECTION, A::kReload, 0, 0, K::kNone, {}, {}, "client API keys"},
  };
  return keys;
}

const std::vector<ConfigKey<ModelConfig>>& ModelKeys() {
  static const std::vector<ConfigKey<ModelConfig>> keys = {
      {"name", F(name), A::kReload, 0, 0, K::kNone, {}, "required", "the model clients send"},
      {"aliases", F(aliases), A::kReload, 0, 0, K::kNone, {}, {}, "other names for it"},
      {"policy", F(policy), A::kReload, 0, 0, K::kNone, {}, {}, "routing policy"},
      {"fallbacks", F(fallbacks), A::kReload, 0, 0, K::kNone, {}, {}, "models tried when this one cannot serve"},
      {"rps", F(rps), A::kReload, 0, 0, K::kNone, {}, {}, "requests per second for the model; 0 = no limit"},
      {"price.input_per_mtok", F(price.input_per_mtok), A::kReload, 0, 1e6, K::kNone, {}, {},
       "USD per million prompt tokens (llm_gateway_cost_usd_total)"},
      {"price.output_per_mtok", F(price.output_per_mtok), A::kReload, 0, 1e6, K::kNone, {}, {},
       "USD per million completion tokens"},
      {"backends", SECTION, A::kReload, 0, 0, K::kNone, {}, "required", "its backends"},
  };
  return keys;
}

const std::vector<ConfigKey<BackendConfig>>& BackendKeys() {
  static const std::vector<ConfigKey<BackendConfig>> keys = {
      {"url", F(url), A::kReload, 0, 0, K::kNone, {}, "required", "http(s)://HOST[:PORT][/base]"},
      {"id", F(id), A::kReload, 0, 0, K::kNone, {}, "the URL", "admin name"},
      {"max_concurrent", F(max_concurrent), A::kReload, 1, 1000000, K::kNone, {}, {}, "most requests in flight to it"},
      {"weight", F(weight), A::kReload, 0, 1e6, K::kNone, {}, {}, "weighted_round_robin weight"},
      {"engine", F(engine), A::kReload, 0, 0, K::kNone, {}, {}, "which /metrics names to read"},
      {"provider", F(provider), A::kReload, 0, 0, K::kOneOf, "openai_compatible|openai|azure|anthropic|gemini", {},
       "API the backend speaks; hosted providers are probed on their model list, never scraped"},
      {"api_key_file", F(api_key_file), A::kReload, 0, 0, K::kNone, {}, {},
       "file holding the provider key (re-read on reload); relative to the config file"},
      {"api_key_env", F(api_key_env), A::kReload, 0, 0, K::kNone, {}, {}, "environment variable holding the key"},
      {"organization", F(organization), A::kReload, 0, 0, K::kNone, {}, {}, "openai: OpenAI-Organization header"},
      {"deployment", F(deployment), A::kReload, 0, 0, K::kNone, {}, {},
       "azure: /openai/deployments/<deployment>/..."},
      {"api_version", F(api_version), A::kReload, 0, 0, K::kNone, {}, {}, "azure: api-version query parameter"},
      {"upstream_model", F(upstream_model), A::kReload, 0, 0, K::kNone, {}, "the model's name",
       "model name sent upstream"},
      {"tls.ca_file", F(tls.ca_file), A::kReload, 0, 0, K::kNone, {}, "system store",
       "CA bundle (PEM) that verifies an https backend"},
      {"tls.server_name", F(tls.server_name), A::kReload, 0, 0, K::kNone, {}, "the URL's host",
       "SNI and the name checked on the certificate"},
      {"tls.verify", F(tls.verify), A::kReload, 0, 0, K::kNone, {}, {}, "verify the backend's certificate"},
      {"tls.client_cert_file", F(tls.client_cert_file), A::kReload, 0, 0, K::kNone, {}, {},
       "client certificate (PEM) presented to the backend"},
      {"tls.client_key_file", F(tls.client_key_file), A::kReload, 0, 0, K::kNone, {}, {}, "its private key (PEM)"},
      {"rps", F(rps), A::kReload, 0, 0, K::kNone, {}, {}, "attempts per second sent to it; 0 = no limit"},
  };
  return keys;
}

const std::vector<ConfigKey<KeyConfig>>& KeyKeys() {
  static const std::vector<ConfigKey<KeyConfig>> keys = {
      {"id", F(id), A::kReload, 0, 0, K::kKeyId, {}, "required", "name in metrics, logs and llmctl"},
      {"key_sha256", F(key_sha256), A::kReload, 0, 0, K::kSha256Hex, {}, "required", "SHA-256 of the secret, hex"},
      {"models", F(models), A::kReload, 0, 0, K::kNone, {}, {}, "models it may use; empty = every model"},
      {"priority", F(priority), A::kReload, 0, 10, K::kNone, {}, {}, "0..10, higher is served first when requests queue"},
      {"limits.rpm", F(limits.rpm), A::kReload, 0, 0, K::kNone, {}, {}, "requests per minute; 0 = no limit"},
      {"limits.tpm", F(limits.tpm), A::kReload, 0, 0, K::kNone, {}, {}, "tokens (input + output) per minute; 0 = no limit"},
      {"limits.max_concurrent", F(limits.max_concurrent), A::kReload, 0, 0, K::kNone, {}, {},
       "requests in flight; 0 = no limit"},
  };
  return keys;
}

#undef F
#undef SECTION

std::string KeyValueText(const FieldPtr& f, bool quote_strings) {
  struct V {
    bool quote;
    std::string operator()(std::monostate) const { return ""; }
    std::string operator()(const uint32_t* v) const { return std::to_string(*v); }
    std::string operator()(const uint64_t* v) const { return std::to_string(*v); }
    std::string operator()(const double* v) const {
      char buf[64];
      std::snprintf(buf, sizeof buf, "%.10g", *v);
      return buf;
    }
    std::string operator()(const bool* v) const { return *v ? "true" : "false"; }
    std::string operator()(const std::string* v) const { return quote ? "\"" + *v + "\"" : *v; }
    std::string operator()(const std::vector<std::string>* v) const {
      std::string s = "[";
      for (size_t i = 0; i < v->size(); ++i) s += (i ? ", " : "") + (*v)[i];
      return s + "]";
    }
    std::string operator()(const Policy* v) const { return std::string(PolicyName(*v)); }
    std::string operator()(const Engine* v) const { return std::string(EngineName(*v)); }
  };
  return std::visit(V{quote_strings}, f);
}

namespace {

using Fields = std::map<std::string, std::string>;

// Every valued key of a table (sections skipped, `skip` left out), path -> text. The
// table accessors take a mutable root; they only hand out the field's address, which is
// read here, never written.
template <typename Root>
Fields TableFields(const std::vector<ConfigKey<Root>>& keys, const Root& r, bool quote, std::string_view skip = {}) {
  Fields out;
  Root& root = const_cast<Root&>(r);
  for (const auto& k : keys) {
    FieldPtr f = k.field(root);
    if (std::holds_alternative<std::monostate>(f) || k.path == skip) continue;
    out[std::string(k.path)] = KeyValueText(f, quote);
  }
  return out;
}

std::vector<ConfigFieldChange> FieldChanges(const Fields& from, const Fields& to) {
  std::vector<ConfigFieldChange> out;
  for (const auto& [k, v] : from) {
    auto it = to.find(k);
    if (it != to.end() && it->second != v) out.push_back({k, v, it->second});
  }
  return out;
}

std::string Detail(const std::vector<ConfigFieldChange>& ch) {
  std::string s;
  for (const auto& c : ch) s += (s.empty() ? "" : ", ") + c.field + ": " + c.from + " -> " + c.to;
  return s;
}

std::string Describe(const Fields& fields) {
  std::string s;
  for (const auto& [k, v] : fields) s += (s.empty() ? "" : ", ") + k + " " + v;
  return s;
}

// Added, changed (only the fields that differ) and removed entries of one kind, matched by
// name; added_detail describes a new entry.
template <typename AddedDetail>
void DiffEntries(const char* what, const std::map<std::string, Fields>& before,
                 const std::map<std::string, Fields>& after, AddedDetail added_detail,
                 std::vector<ConfigChange>* out) {
  for (const auto& [name, f] : after) {
    auto it = before.find(name);
    if (it == before.end()) {
      out->push_back({ConfigChange::kAdded, what, name, added_detail(name, f), {}, Applies::kReload});
    } else if (auto d = FieldChanges(it->second, f); !d.empty()) {
      out->push_back({ConfigChange::kChanged, what, name, Detail(d), d, Applies::kReload});
    }
  }
  for (const auto& [name, f] : before)
    if (!after.count(name)) out->push_back({ConfigChange::kRemoved, what, name, "", {}, Applies::kReload});
}

}  // namespace

std::vector<ConfigChange> DiffConfigs(const Config& running, const Config& next) {
  std::vector<ConfigChange> out;
  std::map<std::string, Fields> old_models, new_models;
  std::map<std::string, size_t> new_backend_counts;
  for (const auto& m : running.models) old_models[m.name] = TableFields(ModelKeys(), m, false, "name");
  for (const auto& m : next.models) {
    new_models[m.name] = TableFields(ModelKeys(), m, false, "name");
    new_backend_counts[m.name] = m.backends.size();
  }
  DiffEntries("model", old_models, new_models, [&](const std::string& name, const Fields& f) {
    return Describe(f) + ", " + std::to_string(new_backend_counts[name]) + " backends";
  }, &out);

  // Backends are matched by id (unique across models); which model one serves is a field.
  std::map<std::string, Fields> old_backends, new_backends;
  auto backend_fields = [](const ModelConfig& m, const BackendConfig& b) {
    Fields f = TableFields(BackendKeys(), b, false, "id");
    f["model"] = m.name;
    // A rotated key shows as a changed fingerprint, never as the key.
    if (!b.api_key.empty()) f["api_key"] = KeyFingerprint(b.api_key);
    return f;
  };
  for (const auto& m : running.models)
    for (const auto& b : m.backends) old_backends[b.id] = backend_fields(m, b);
  for (const auto& m : next.models)
    for (const auto& b : m.backends) new_backends[b.id] = backend_fields(m, b);
  DiffEntries("backend", old_backends, new_backends,
              [](const std::string&, const Fields& f) { return Describe(f); }, &out);

  // API keys by id; the hash is a field like any other (it is not the secret).
  std::map<std::string, Fields> old_keys, new_keys;
  for (const auto& k : running.keys) old_keys[k.id] = TableFields(KeyKeys(), k, false, "id");
  for (const auto& k : next.keys) new_keys[k.id] = TableFields(KeyKeys(), k, false, "id");
  DiffEntries("api key", old_keys, new_keys, [](const std::string&, const Fields& f) { return Describe(f); }, &out);

  Config& r = const_cast<Config&>(running);
  Config& n = const_cast<Config&>(next);
  for (const auto& k : ConfigKeys()) {
    FieldPtr a = k.field(r), b = k.field(n);
    if (std::holds_alternative<std::monostate>(a)) continue;
    std::string from = KeyValueText(a), to = KeyValueText(b);
    if (from == to) continue;
    std::string path(k.path);
    out.push_back({ConfigChange::kChanged, "key", path, from + " -> " + to, {{path, from, to}}, k.applies});
  }
  return out;
}

std::string ConfigChangesSummary(const std::vector<ConfigChange>& changes) {
  std::string s;
  for (const auto& c : changes) {
    if (c.kind == ConfigChange::kAdded) {
      s += "added " + c.what + " " + c.name + "\n";
    } else if (c.kind == ConfigChange::kRemoved) {
      s += "removed " + c.what + " " + c.name + "\n";
    } else if (c.what == "key") {
      s += c.name + " " + c.fields.front().from + " -> " + c.fields.front().to;
      if (c.applies != Applies::kReload) s += " (takes effect after: " + std::string(AppliesName(c.applies)) + ")";
      s += "\n";
    } else {
      for (const auto& f : c.fields) s += c.what + " " + c.name + " " + f.field + " " + f.from + " -> " + f.to + "\n";
    }
  }
  return s.empty() ? "no changes\n" : s;
}

}  // namespace llmgw
