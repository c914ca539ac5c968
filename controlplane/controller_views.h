// What the Controller answers with: plain C++ views of its state, so the Controller does
// not depend on the admin API's protobuf messages. admin_convert.h turns them into the
// llmgw.admin.v1 messages at the edge (admin service, and the metrics exporter until it
// reads these directly). Field meanings are the proto's (proto/llmgw/admin/v1/admin.proto).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/shm_layout.h"

namespace llmgw::cp {

struct BackendView {
  std::string id, url, model;
  shm::BackendState state = shm::BackendState::kHealthy;  // as published
  double weight = 0;
  uint64_t in_flight = 0;  // fleet-wide
  double running = 0, waiting = 0, kv_cache_usage = 0;  // scraped; 0 when not exported
  bool metrics_stale = true;
  double ewma_latency_ms = 0, ewma_ttft_ms = 0, ttft_p50_ms = 0, ttft_p99_ms = 0;
  double latency_p50_ms = 0, latency_p99_ms = 0;
  double scraped_ttft_p50_ms = 0, scraped_ttft_p99_ms = 0;
  double error_rate = 0;
  uint64_t requests_total = 0;
  uint32_t max_concurrent = 0;
  std::string engine;  // vllm, sglang, tgi, llamacpp, trtllm, unknown
  double adaptive_weight = 0;
  std::string last_error;
};

struct StatusView {
  std::string version;
  double uptime_seconds = 0;
  uint64_t snapshot_generation = 0;
  uint32_t backends_healthy = 0, backends_total = 0;
  double requests_per_second = 0, errors_per_second = 0;
  uint64_t requests_total = 0, active_requests = 0;
  uint32_t dataplane_threads = 0;
  bool dataplane_alive = false;
  std::string instance, role, config_file;
  uint64_t config_reloads = 0, config_reload_failures = 0;
  uint32_t models = 0;
  // Every gateway of the fleet (this host's alone without one), last 30 s; 0 = none seen.
  double ttft_p50_ms = 0, ttft_p99_ms = 0, latency_p50_ms = 0, latency_p99_ms = 0;
};

struct ConfigText {
  std::string yaml;  // as loaded (secrets live in files, never in the YAML)
  std::string path;
  uint64_t version = 0;
  int64_t fleet_config_revision = 0;  // the stored fleet config merged in (0: none)
};

struct RoutingStatsView {
  struct Picks {
    std::string id;
    uint64_t picks = 0;
  };
  struct Model {
    std::string model, policy;
    std::vector<Picks> picks;
    uint64_t retries = 0, fallbacks = 0, requests = 0, rejected = 0;
  };
  std::vector<Model> models;
};

// One gateway of the fleet as the controller counts it (its own data plane or an agent's).
struct GatewayStatsView {
  std::string name;
  bool local = false;       // the controller's own host
  bool connected = false;   // live link (local: a live data-plane thread)
  double report_age_seconds = 0;
  uint64_t requests_answered = 0, active_requests = 0, live_threads = 0;
  std::vector<std::pair<std::string, uint64_t>> errors_by_kind;  // non-zero kinds only
};

// A client API key and its use (proto ApiKey). Never the secret.
struct KeyView {
  std::string id;
  std::vector<std::string> models;
  uint32_t priority = 0, rpm = 0, tpm = 0, max_concurrent = 0;
  std::string source;
  bool in_keys_file = false;
  std::string key_sha256_prefix;
  double requests_last_minute = 0, tokens_last_minute = 0;
  uint64_t in_flight = 0, requests_total = 0, rejected_total = 0;
};

struct KeysView {
  std::vector<KeyView> keys;
  bool auth_required = false;
  std::string keys_file;
};

// The answer of AddKey / RevokeKey: ok, or why not with the kind of refusal (the admin
// service maps it to a gRPC code).
struct KeyEditResult {
  enum Code { kOk, kInvalid, kNotFound, kExists, kPrecondition, kFailed } code = kOk;
  std::string error;
  KeyView key;          // AddKey: the new key
  std::string secret;   // AddKey: shown once
  uint64_t config_version = 0;
};

}  // namespace llmgw::cp
