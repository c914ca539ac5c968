// Config -> Snapshot (see snapshot_builder.h).
#include "common/snapshot_builder.h"

#include "common/providers/provider.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <sys/socket.h>

#include <cstring>

namespace llmgw {

namespace {
void CopyStr(char* dst, size_t cap, std::string_view s) {
  size_t n = s.size() < cap - 1 ? s.size() : cap - 1;
  std::memcpy(dst, s.data(), n);
  dst[n] = 0;
}
}  // namespace

uint64_t BackendKey(std::string_view id) {
  uint64_t k = shm::Fnv1a(id.data(), id.size());
  return k ? k : 1;  // 0 means "no backend" in stats rows
}

int SlotAssigner::Assign(std::map<std::string, int>* m, const std::string& key, uint32_t cap) {
  auto it = m->find(key);
  if (it != m->end()) return it->second;
  std::vector<bool> used(cap, false);
  for (const auto& [k, v] : *m) used[static_cast<size_t>(v)] = true;
  for (uint32_t i = 0; i < cap; ++i) {
    if (!used[i]) {
      (*m)[key] = static_cast<int>(i);
      return static_cast<int>(i);
    }
  }
  return -1;
}

int SlotAssigner::BackendSlot(const std::string& id) { return Assign(&backends_, id, shm::kMaxBackends); }
int SlotAssigner::ModelSlot(const std::string& name) { return Assign(&models_, name, shm::kMaxModels); }
int SlotAssigner::KeySlot(const std::string& id) { return Assign(&keys_, id, shm::kMaxKeys); }

void SlotAssigner::Retain(const Config& c) {
  std::map<std::string, int> b, m, k;
  for (const auto& key : c.keys)
    if (auto it = keys_.find(key.id); it != keys_.end()) k.insert(*it);
  keys_.swap(k);
  for (const auto& model : c.models) {
    if (auto it = models_.find(model.name); it != models_.end()) m.insert(*it);
    for (const auto& be : model.backends)
      if (auto it = backends_.find(be.id); it != backends_.end()) b.insert(*it);
  }
  backends_.swap(b);
  models_.swap(m);
}

bool SystemResolve(const std::string& host, uint16_t port, ResolvedAddr* out, std::string* why) {
  *out = ResolvedAddr();
  // IP literals need no lookup (and send nothing anywhere).
  if (::inet_pton(AF_INET, host.c_str(), out->addr) == 1) {
    out->family = AF_INET;
    return true;
  }
  if (::inet_pton(AF_INET6, host.c_str(), out->addr) == 1) {
    out->family = AF_INET6;
    return true;
  }
  struct addrinfo hints {};
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV;
  struct addrinfo* res = nullptr;
  std::string p = std::to_string(port);
  int rc = ::getaddrinfo(host.c_str(), p.c_str(), &hints, &res);
  if (rc != 0 || !res) {
    *why = gai_strerror(rc);
    return false;
  }
  if (res->ai_family == AF_INET) {
    out->family = AF_INET;
    std::memcpy(out->addr, &reinterpret_cast<sockaddr_in*>(res->ai_addr)->sin_addr, 4);
  } else {
    out->family = AF_INET6;
    std::memcpy(out->addr, &reinterpret_cast<sockaddr_in6*>(res->ai_addr)->sin6_addr, 16);
  }
  ::freeaddrinfo(res);
  return true;
}

namespace {
bool HexToBytes(const std::string& hex, uint8_t* out, size_t n) {
  if (hex.size() != 2 * n) return false;
  auto nib = [](char ch) -> int {
    if (ch >= '0' && ch <= '9') return ch - '0';
    if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
    return -1;
  };
  for (size_t i = 0; i < n; ++i) {
    int hi = nib(hex[2 * i]), lo = nib(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) return false;
    out[i] = static_cast<uint8_t>(hi << 4 | lo);
  }
  return true;
}

// The key table and its hash index. A key slot stays with its id across reloads, so the
// per-key stats rows and leases keep meaning the same key.
Status AddKeys(const Config& c, const std::map<std::string, int>& model_slot, SlotAssigner* slots,
               shm::Snapshot* out) {
  for (const auto& k : c.keys) {
    int ks = slots->KeySlot(k.id);
    if (ks < 0) return Error(ErrorKind::kConfig, ErrorSide::kInternal, false, "more than %u API keys", shm::kMaxKeys);
    shm::KeyEntry& e = out->keys[ks];
    if (!HexToBytes(k.key_sha256, e.sha256, sizeof(e.sha256)))
      return Error(ErrorKind::kConfig, ErrorSide::kInternal, false, "key '%s': key_sha256 is not 64 hex digits",
                   k.id.c_str());
    CopyStr(e.id, sizeof(e.id), k.id);
    e.id_hash = BackendKey(k.id);
    e.models = k.models.empty() ? ~uint64_t{0} : 0;
    for (const auto& name : k.models) {
      const ModelConfig* m = c.FindModel(name);
      if (m) e.models |= uint64_t{1} << model_slot.at(m->name);
    }
    e.rpm = k.limits.rpm;
    e.tpm = k.limits.tpm;
    e.max_concurrent = k.limits.max_concurrent;
    e.priority = static_cast<uint8_t>(k.priority > kMaxClientPriority ? kMaxClientPriority : k.priority);
    e.present = 1;
    if (static_cast<uint32_t>(ks) + 1 > out->num_keys) out->num_keys = static_cast<uint32_t>(ks) + 1;
    uint32_t i = shm::KeyIndexHome(e.sha256);
    while (out->key_index[i] != 0) i = (i + 1) & (shm::kKeyIndexSlots - 1);  // at most half full
    out->key_index[i] = static_cast<uint16_t>(ks + 1);
  }
  return Status::Ok();
}
}  // namespace

Status BuildSnapshot(const Config& c, SlotAssigner* slots, shm::Snapshot* out) {
  return BuildSnapshot(c, slots, out, SystemResolve);
}

Status BuildSnapshot(const Config& c, SlotAssigner* slots, shm::Snapshot* out, const Resolver& resolve) {
  std::memset(static_cast<void*>(out), 0, sizeof(shm::Snapshot));
  shm::Limits& l = out->limits;
  const GatewayConfig& g = c.gateway;
  l.max_body_bytes = g.max_body_bytes;
  l.connect_ms = g.timeouts.connect_ms;
  l.first_byte_ms = g.timeouts.first_byte_ms;
  l.idle_ms = g.timeouts.idle_ms;
  l.total_ms = g.timeouts.total_ms;
  l.retries_max = g.retries.max;
  l.retries_backoff_ms = g.retries.backoff_ms;
  l.admission_queue_size = g.admission.queue_size;
  l.admission_timeout_ms = g.admission.queue_timeout_ms;
  l.resume_streams = g.resume_streams ? 1 : 0;
  l.resume_max_bytes = g.resume_max_bytes;
  const RoutingConfig& r = c.routing;
  l.w_waiting = static_cast<float>(r.w_waiting);
  l.w_running = static_cast<float>(r.w_running);
  l.w_kv = static_cast<float>(r.w_kv);
  l.w_latency = static_cast<float>(r.w_latency);
  l.w_error = static_cast<float>(r.w_error);
  l.bounded_load = static_cast<float>(r.bounded_load);
  l.prefix_bytes = r.prefix_bytes;
  l.virtual_nodes = r.virtual_nodes;
  CopyStr(l.hash_header, sizeof(l.hash_header), r.hash_header);
  l.global_rps = c.limits.global.rps;
  l.global_burst = c.limits.global.burst ? c.limits.global.burst : c.limits.global.rps;
  l.auth_required = c.auth.required ? 1 : 0;

  // First pass: model slots (fallbacks refer to them).
  std::map<std::string, int> model_slot;
  for (const auto& m : c.models) {
    int s = slots->ModelSlot(m.name);
    if (s < 0)
      return Error(ErrorKind::kConfig, ErrorSide::kInternal, false, "more than %u models", shm::kMaxModels);
    model_slot[m.name] = s;
  }
  for (const auto& m : c.models) {
    int ms = model_slot[m.name];
    shm::ModelEntry& me = out->models[ms];
    CopyStr(me.name, sizeof(me.name), m.name);
    me.present = 1;
    me.policy = static_cast<uint8_t>(m.policy);
    for (const auto& a : m.aliases) {
      if (me.num_aliases >= shm::kMaxAliases) break;
      CopyStr(me.aliases[me.num_aliases++], shm::kNameLen, a);
    }
    for (const auto& f : m.fallbacks) {
      const ModelConfig* fm = c.FindModel(f);
      if (!fm || me.num_fallbacks >= shm::kMaxFallbacks) continue;
      me.fallbacks[me.num_fallbacks++] = static_cast<uint16_t>(model_slot[fm->name]);
    }
    me.num_backends = static_cast<uint32_t>(m.backends.size());
    me.rps = m.rps;
    if (static_cast<uint32_t>(ms) + 1 > out->num_models) out->num_models = static_cast<uint32_t>(ms) + 1;

    for (const auto& b : m.backends) {
      int bs = slots->BackendSlot(b.id);
      if (bs < 0)
        return Error(ErrorKind::kConfig, ErrorSide::kInternal, false, "more than %u backends",
                     shm::kMaxBackends);
      shm::BackendEntry& be = out->backends[bs];
      CopyStr(be.id, sizeof(be.id), b.id);
      CopyStr(be.url, sizeof(be.url), b.url);
      std::string host_header = b.parsed.host.find(':') != std::string::npos
                                    ? "[" + b.parsed.host + "]:" + std::to_string(b.parsed.port)
                                    : b.parsed.host + ":" + std::to_string(b.parsed.port);
      CopyStr(be.host_header, sizeof(be.host_header), host_header);
      CopyStr(be.base_path, sizeof(be.base_path), b.parsed.path);
      be.key = BackendKey(b.id);
      be.port = b.parsed.port;
      // Resolve now: the data plane never does DNS.
      ResolvedAddr ra;
      std::string why;
      if (!resolve(b.parsed.host, b.parsed.port, &ra, &why))
        return Error(ErrorKind::kConfig, ErrorSide::kInternal, false, "cannot resolve backend host '%s': %s",
                     b.parsed.host.c_str(), why.c_str());
      be.family = ra.family;
      std::memcpy(be.addr, ra.addr, sizeof(be.addr));
      be.state = static_cast<uint8_t>(shm::BackendState::kHealthy);
      be.engine = static_cast<uint8_t>(b.engine);
      be.tls = b.parsed.tls() ? 1 : 0;
      providers::ProviderKind kind = providers::ProviderKind::kOpenAiCompatible;
      providers::ParseProvider(b.provider, &kind);
      be.provider = static_cast<uint8_t>(kind);
      shm::BackendUpstream& up = out->upstreams[bs];
      CopyStr(up.api_key, sizeof(up.api_key), b.api_key);
      CopyStr(up.api_key_file, sizeof(up.api_key_file), b.api_key_file);
      CopyStr(up.api_key_env, sizeof(up.api_key_env), b.api_key_env);
      CopyStr(up.upstream_model, sizeof(up.upstream_model), b.upstream_model);
      CopyStr(up.organization, sizeof(up.organization), b.organization);
      CopyStr(up.deployment, sizeof(up.deployment), b.deployment);
      CopyStr(up.api_version, sizeof(up.api_version), b.api_version);
      CopyStr(up.server_name, sizeof(up.server_name), b.tls.server_name);
      CopyStr(up.ca_file, sizeof(up.ca_file), b.tls.ca_file);
      CopyStr(up.client_cert_file, sizeof(up.client_cert_file), b.tls.client_cert_file);
      CopyStr(up.client_key_file, sizeof(up.client_key_file), b.tls.client_key_file);
      up.tls_verify = b.tls.verify ? 1 : 0;
      up.tls_fingerprint = 0;
      if (b.parsed.tls()) {
        uint64_t h = 1469598103934665603ull;
        auto mix = [&h](std::string_view s) {
          for (unsigned char ch : s) h = (h ^ ch) * 1099511628211ull;
          h = (h ^ 0xff) * 1099511628211ull;  // separator: ("ab","c") != ("a","bc")
        };
        mix(b.parsed.host);
        mix(b.tls.server_name);
        mix(b.tls.ca_file);
        mix(b.tls.client_cert_file);
        mix(b.tls.client_key_file);
        mix(b.tls.verify ? "1" : "0");
        up.tls_fingerprint = h ? h : 1;
      }
      be.metrics_fresh = 0;
      be.model_slot = static_cast<uint16_t>(ms);
      be.max_concurrent = b.max_concurrent;
      be.half_open_budget = c.circuit_breaker.half_open_requests;
      be.weight = static_cast<float>(b.weight);
      be.rps = b.rps;
      be.adaptive_weight = 0;
      if (static_cast<uint32_t>(bs) + 1 > out->num_backends) out->num_backends = static_cast<uint32_t>(bs) + 1;
    }
  }
  LLMGW_RETURN_IF_ERROR(AddKeys(c, model_slot, slots, out));
  slots->Retain(c);
  return Status::Ok();
}

}  // namespace llmgw
