// The YAML configuration shared by llmgw and llmcd, as typed structs with defaults, and
// the loader/validator. Validation errors read `FILE:LINE: key.path: what is wrong` so an
// operator can jump straight to the line. The defaults are the member initialisers below;
// which keys exist, their bounds and checks are the tables of common/config_keys.cc, which
// drive the parser, `llmctl config diff` and a test of docs/CONFIG.md.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace llmgw {

enum class Policy : uint8_t {
  kRoundRobin = 0,
  kWeightedRoundRobin,
  kLeastConnections,
  kLeastQueue,
  kCapacity,
  kP2cKv,
  kConsistentHash,
  kPrefixAffinity,
  kAdaptive,
  kCount
};
std::string_view PolicyName(Policy p);
bool ParsePolicy(std::string_view s, Policy* out);

// Which metric names the scraper reads from a backend's /metrics.
enum class Engine : uint8_t { kAuto = 0, kVllm, kSglang, kTgi, kLlamaCpp, kTrtLlm, kCount };
std::string_view EngineName(Engine e);
bool ParseEngine(std::string_view s, Engine* out);

// A parsed http(s)://host:port URL.
struct Url {
  std::string scheme = "http";  // "http" or "https"
  std::string host;
  uint16_t port = 80;           // default 80 for http, 443 for https
  std::string path;  // base path prefix, usually empty
  bool tls() const { return scheme == "https"; }
};
// Parses http(s)://HOST[:PORT][/path]; returns false with a reason on anything else.
bool ParseUrl(std::string_view s, Url* out, std::string* why);
// The URL with any user:password@ replaced by ***@, for messages and logs.
std::string RedactUrlCredentials(std::string_view url);
// Parses HOST:PORT (IPv4, [IPv6] or name); port 0 allowed when allow_zero_port.
bool ParseHostPort(std::string_view s, std::string* host, uint16_t* port, std::string* why,
                   bool allow_zero_port = true);

struct TimeoutsConfig {
  uint32_t connect_ms = 2000;
  uint32_t first_byte_ms = 120000;
  uint32_t idle_ms = 60000;
  uint32_t total_ms = 600000;
  uint32_t client_header_ms = 10000;  // whole request head must arrive within this
  uint32_t client_body_ms = 60000;    // whole request body must arrive within this
  uint32_t client_idle_ms = 75000;    // idle keep-alive client connection is closed after
  // Each write toward a client must be taken whole within this, or the client is dropped
  // (its backend slot freed): a client that stops reading cannot hold a GPU slot until
  // total_ms. 0: no limit.
  uint32_t client_send_ms = 10000;
};

struct RetriesConfig {
  uint32_t max = 2;         // extra attempts after the first, across backends and fallbacks
  uint32_t backoff_ms = 50; // base; doubles per attempt, with jitter
};

struct AccessLogConfig {
  bool enabled = false;
  std::string path;          // empty: stderr
  double sample = 1.0;       // fraction of requests logged
};

// Request priorities are 0..10, higher served first (DESIGN.md, a key's level). A request
// is at its client's level — its API key's `priority`, kDefaultClientPriority for keys
// that set none and for anonymous requests — and the body's priority field can only lower it: a client may yield to others, never
// push others out of the queue by declaring itself more important.
constexpr int32_t kMaxClientPriority = 10;
constexpr int32_t kDefaultClientPriority = 5;

struct AdmissionConfig {
  uint32_t queue_size = 256;       // per data-plane thread
  uint32_t queue_timeout_ms = 5000;
  std::string priority_field = "priority";  // top-level JSON field read for priority
};

struct GatewayConfig {
  std::string listen = "127.0.0.1:8080";
  uint32_t threads = 0;                 // 0: one per core
  uint64_t max_body_bytes = 8388608;
  uint32_t max_header_bytes = 16384;
  uint32_t max_connections = 65536;     // per process, split evenly over the threads
  uint32_t drain_ms = 30000;            // SIGTERM: how long in-flight requests may finish
  // In-flight requests per client address (IPv4 host, IPv6 /64), split evenly over the
  // threads; beyond it 429. 0: no cap (behind a NAT or L7 balancer every client shares
  // an address).
  uint32_t max_requests_per_client = 0;
  // Stream resume: a stream whose backend fails after the first byte is continued on
  // another backend (docs/DATAPLANE.md); at most this much text is kept per stream.
  bool resume_streams = true;
  uint32_t resume_max_bytes = 262144;
  TimeoutsConfig timeouts;
  RetriesConfig retries;
  AccessLogConfig access_log;
  AdmissionConfig admission;

  // `threads`, with 0 resolved to the number of cores (at least 1).
  uint32_t EffectiveThreads() const;
};

struct AdminConfig {
  std::string grpc_listen = "127.0.0.1:9090";
  std::string metrics_listen = "127.0.0.1:9100";
  std::string token_file;  // empty: no auth, allowed only on loopback
  std::string tls_cert_file;
  std::string tls_key_file;
};

struct HealthConfig {
  uint32_t interval_ms = 2000;
  uint32_t timeout_ms = 1000;
  uint32_t unhealthy_after = 2;
  uint32_t healthy_after = 2;
  bool scrape_metrics = true;
  uint32_t scrape_interval_ms = 1000;
  std::string path = "/health";     // falls back to /v1/models when it answers 404
  uint32_t metrics_stale_ms = 5000; // scraped signals older than this are not trusted
  double passive_error_rate = 0.5;  // data-plane error rate that marks a backend unhealthy
};

struct CircuitBreakerConfig {
  uint32_t failure_threshold = 5;
  uint32_t success_threshold = 3;
  uint32_t open_ms = 30000;
  uint32_t half_open_requests = 3;
  uint32_t slow_call_ms = 5000;
  uint32_t window_ms = 10000;  // failures are counted within this sliding window
};

// Weights of the p2c_kv score and knobs of the hashing policies.
struct RoutingConfig {
  double w_waiting = 1.0;
  double w_running = 0.3;
  double w_kv = 4.0;
  double w_latency = 0.001;   // per millisecond of EWMA latency
  double w_error = 10.0;
  double bounded_load = 1.25; // consistent_hash / prefix_affinity: max c x mean load
  uint32_t prefix_bytes = 256;  // prefix_affinity: leading prompt bytes hashed
  uint32_t virtual_nodes = 160;
  std::string hash_header = "x-session-id";  // consistent_hash key; falls back to `user`
  double adaptive_exploration = 0.1;
  double adaptive_decay = 0.95;  // per observed tick, so the bandit follows change
};

struct ControlConfig {
  uint32_t tick_ms = 100;        // publish cadence of llmcd
  uint32_t heartbeat_ms = 1000;  // publish at least this often even when nothing changed
  double ewma_alpha = 0.2;
  // Backend host names are resolved again this often (a change is published at once);
  // 0: only on load and reload.
  uint32_t resolve_interval_ms = 30000;
};

// fleet.etcd: several controllers elect a leader through etcd; agents find it there.
struct EtcdConfig {
  std::vector<std::string> endpoints;  // http://HOST:PORT of etcd members; empty = no HA
  std::string prefix = "/llmgw/";      // every key llmgw keeps in etcd starts with it
  uint32_t lease_ms = 3000;            // leadership lease; a dead leader is replaced after it
  // https:// endpoints: the CA etcd's server certificate is checked with (empty: the
  // system store) and a client certificate for etcd's --client-cert-auth.
  std::string ca_file;
  std::string client_cert_file;
  std::string client_key_file;
  // etcd with auth enabled: this user's token (from /v3/auth/authenticate) on every call.
  std::string username;
  std::string password_file;  // the password, one line; re-read whenever a token is asked
};

struct FleetConfig {
  std::string role = "controller";  // controller | agent
  std::string controller;           // HOST:PORT of the controller (agent role)
  std::string agent_id;             // default: hostname
  std::string tls_ca_file;          // agents: set = the fleet link uses TLS, verified with it
  EtcdConfig etcd;
};

// How llmgw talks TLS to one backend (https:// URLs only).
struct BackendTlsConfig {
  std::string ca_file;           // empty: the system trust store
  std::string server_name;       // SNI and the name checked on the certificate; empty: the URL's host
  bool verify = true;            // false: no certificate check (test rigs only)
  std::string client_cert_file;  // optional client certificate (PEM) ...
  std::string client_key_file;   // ... and its key; both or neither
};

struct BackendConfig {
  std::string id;   // default: the URL
  std::string url;
  Url parsed;
  uint32_t max_concurrent = 64;
  double weight = 1.0;
  Engine engine = Engine::kAuto;
  uint32_t rps = 0;  // attempts per second sent to it (whole gateway/fleet); 0 = no limit
  // Hosted providers (DESIGN.md "Upstream TLS and hosted providers").
  std::string provider = "openai_compatible";  // | openai | azure | anthropic | gemini
  std::string api_key_file;  // relative to the config file
  std::string api_key_env;
  std::string organization;  // openai: OpenAI-Organization header
  std::string deployment;    // azure
  std::string api_version;   // azure: api-version query parameter
  std::string upstream_model;  // model name sent upstream; empty: the model's name
  BackendTlsConfig tls;
  int line = 0;
  // The key itself, read from api_key_file / api_key_env by ResolveBackendKeys (llmcd and
  // llmgw only; never in the YAML, never logged, never shown: see KeyFingerprint).
  std::string api_key;
  bool hosted() const { return provider != "openai_compatible"; }
};

// What a model's tokens cost, in USD per million tokens (`models[].price`). llmcd turns
// the tokens the data plane counts per (key, model) into llm_gateway_cost_usd_total;
// the data plane itself never handles money. 0 = not priced (no cost series).
struct ModelPrice {
  double input_per_mtok = 0;   // prompt tokens
  double output_per_mtok = 0;  // completion tokens
  bool priced() const { return input_per_mtok > 0 || output_per_mtok > 0; }
};

struct ModelConfig {
  std::string name;
  std::vector<std::string> aliases;
  Policy policy = Policy::kLeastConnections;
  std::vector<std::string> fallbacks;
  std::vector<BackendConfig> backends;
  uint32_t rps = 0;  // requests per second for this model (whole gateway/fleet); 0 = no limit
  ModelPrice price;
  int line = 0;
};

// Client API keys (DESIGN.md "Client API keys and limits"). The secret is stored nowhere:
// a key is known by the SHA-256 of its secret.
struct AuthConfig {
  // true: a request without a key gets 401. false: it passes as key id "anonymous" (a key
  // that is presented must still be a known one once any key is configured).
  bool required = false;
  // Optional YAML file of more keys (same schema as `keys:`), relative to the config file;
  // llmcd reloads it when it changes and `llmctl keys add|revoke` edit it.
  std::string keys_file;
};

// A key's limits; 0 = no limit. In a fleet they hold for the whole fleet.
struct KeyLimitsConfig {
  uint32_t rpm = 0;             // requests per minute (token bucket, capacity = rpm)
  uint32_t tpm = 0;             // tokens (input + output) per minute
  uint32_t max_concurrent = 0;  // requests in flight
};

struct KeyConfig {
  std::string id;          // shown in metrics, logs and llmctl; never the secret
  std::string key_sha256;  // 64 lowercase hex digits: SHA-256 of the secret
  std::vector<std::string> models;  // names or aliases; empty = every model
  uint32_t priority = kDefaultClientPriority;  // 0..10: the key's level in the admission queue
  KeyLimitsConfig limits;
  std::string source;      // the file it was read from (the config or auth.keys_file)
  int line = 0;
};

constexpr std::string_view kAnonymousKeyId = "anonymous";

// Gateway-wide (fleet-wide in a fleet) request rate: a token bucket of `burst` requests
// refilled at `rps` per second.
struct GlobalLimitsConfig {
  uint32_t rps = 0;    // 0 = no limit
  uint32_t burst = 0;  // 0 = rps (one second's worth)
};

struct LimitsConfig {
  GlobalLimitsConfig global;
};

// OpenTelemetry traces (docs/OPERATIONS.md, "Tracing"): llmgw records spans into shared
// memory, llmcd exports them over OTLP/HTTP. No endpoint: no spans recorded at all.
struct TracingConfig {
  std::string otlp_endpoint;            // e.g. http://127.0.0.1:4318 (POST <endpoint>/v1/traces)
  std::string protocol = "http/protobuf";  // or http/json
  double sample = 0.01;                 // head sampling of traces llmgw starts (0..1)
  std::string service_name = "llmgw";   // resource attribute service.name
  uint32_t max_queue_spans = 8192;      // llmcd's export queue; spans beyond it are dropped (counted)
};

struct Config {
  std::string instance = "default";
  std::string log_level = "info";
  GatewayConfig gateway;
  AdminConfig admin;
  HealthConfig health;
  CircuitBreakerConfig circuit_breaker;
  RoutingConfig routing;
  ControlConfig control;
  FleetConfig fleet;
  AuthConfig auth;
  LimitsConfig limits;
  TracingConfig tracing;
  std::vector<ModelConfig> models;
  std::vector<KeyConfig> keys;   // inline `keys:` first, then those of auth.keys_file
  std::string keys_file_path;    // auth.keys_file resolved against the config's folder

  std::string source_file;  // where it was loaded from
  std::string source_text;  // the YAML as read

  const ModelConfig* FindModel(std::string_view name_or_alias) const;
  std::string ShmName() const { return "/llmgw-" + instance; }
};

struct ConfigError {
  std::string file;
  int line = 0;  // 1-based; 0 when unknown
  std::string key;
  std::string message;
  std::string ToString() const;  // FILE:LINE: key: message
};

struct ConfigResult {
  bool ok() const { return errors.empty(); }
  Config config;
  std::vector<ConfigError> errors;
  std::string ErrorText() const;  // all errors, one per line
};

// Parses and validates YAML text. `filename` appears in error messages.
ConfigResult ParseConfig(std::string_view yaml, std::string_view filename);
// Reads the file and parses it; with read_backend_keys also ResolveBackendKeys (llmcd:
// the keys reach llmgw in the snapshot, so llmgw never needs the key files or variables).
ConfigResult LoadConfigFile(const std::string& path, bool read_backend_keys = false);

// Reads every backend's api_key_file (relative to the directory of config->source_file) or
// api_key_env into BackendConfig::api_key. Errors name the key, never its content. Called
// by LoadConfigFile and by whoever parses config text it will run (llmcd's reload); not by
// ParseConfig, so llmctl's local checks never read the server's secrets.
void ResolveBackendKeys(Config* config, std::vector<ConfigError>* errors);
// One backend's key: api_key_file (a relative path is taken under dir, which ends in '/'
// or is empty) or else api_key_env, trailing newline dropped and checked to be a usable
// header value. False with *why (names the file or variable, never the content). Also
// used by a fleet agent, which reads the keys a controller's snapshot names on its own host.
bool ReadBackendKey(const std::string& api_key_file, const std::string& api_key_env, const std::string& dir,
                    std::string* key, std::string* why);
// A short, non-reversible tag of a secret for diffs and logs ("sha256:1a2b3c4d"): shows
// that a key changed without showing the key. Empty for an empty secret.
std::string KeyFingerprint(std::string_view secret);

// Parses a keys file (a list of keys, or a mapping with `keys:`) against the models of
// `c` (for the allow-lists); errors name `filename`. Used for auth.keys_file and by
// `llmctl keys add|revoke` to check what they write.
std::vector<ConfigError> ParseKeysFile(std::string_view yaml, std::string_view filename, const Config& c,
                                       std::vector<KeyConfig>* out);
// Serialises keys as a keys file (`keys:` mapping), one flow mapping per key.
std::string RenderKeysFile(const std::vector<KeyConfig>& keys);
// auth.keys_file resolved against the folder of the config file `config_file`.
std::string ResolveKeysFile(const std::string& config_file, const std::string& keys_file);

// Returns the closest candidate to `word` for "did you mean" hints, or empty.
std::string DidYouMean(std::string_view word, const std::vector<std::string_view>& candidates);

}  // namespace llmgw
