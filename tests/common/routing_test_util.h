// Test helper: a snapshot with one model and N backends, plus the thread's LocalLoad.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/config.h"
#include "common/routing/router.h"
#include "common/shm_layout.h"

namespace llmgw::routing::testing {

// prefix + decimal n, built by appends: `"b" + std::to_string(n)` trips GCC 12's false
// -Wrestrict (GCC bug 105651) at -O3, which fails the Release build with warnings as errors.
inline std::string Named(std::string_view prefix, uint64_t n) {
  std::string s(prefix);
  s += std::to_string(n);
  return s;
}

struct Fleet {
  std::unique_ptr<shm::Snapshot> snap = std::make_unique<shm::Snapshot>();
  std::vector<LocalLoad> local = std::vector<LocalLoad>(shm::kMaxBackends);
  Router router;

  Fleet(Policy policy, int n, uint32_t max_concurrent = 1000) {
    snap->num_models = 1;
    snap->models[0].present = 1;
    snap->models[0].policy = static_cast<uint8_t>(policy);
    snap->limits.bounded_load = 1.25f;
    snap->limits.virtual_nodes = 160;
    snap->limits.prefix_bytes = 256;
    snap->limits.w_waiting = 1.0f;
    snap->limits.w_running = 0.3f;
    snap->limits.w_kv = 4.0f;
    snap->limits.w_latency = 0.001f;
    snap->limits.w_error = 10.0f;
    for (int i = 0; i < n; ++i) Add(max_concurrent);
    Publish();
  }
  // Appends a backend with a stable key derived from its id "b<slot>".
  int Add(uint32_t max_concurrent = 1000) {
    int s = static_cast<int>(snap->num_backends++);
    auto& b = snap->backends[s];
    std::string id = Named("b", static_cast<uint64_t>(s));
    b.key = shm::Fnv1a(id.data(), id.size());
    b.state = static_cast<uint8_t>(shm::BackendState::kHealthy);
    b.max_concurrent = max_concurrent;
    b.half_open_budget = 1;
    b.weight = 1;
    b.model_slot = 0;
    return s;
  }
  shm::BackendEntry& b(int s) { return snap->backends[s]; }
  void SetState(int s, shm::BackendState st) { b(s).state = static_cast<uint8_t>(st); }
  void Publish() { router.OnSnapshot(*snap); }
  int Pick(const RequestInfo& req = {}, std::span<const uint16_t> exclude = {}) {
    return router.Pick(0, req, local, exclude);
  }
  // Picks and records the request as in flight, like the data plane does.
  int PickAndStart(const RequestInfo& req = {}) {
    int s = Pick(req);
    if (s >= 0) ++local[s].in_flight;
    return s;
  }
  uint32_t Load(int s) { return Router::EstimatedInFlight(b(s), local[s]); }
};

// Deterministic per-request random bits.
inline uint64_t SplitMix(uint64_t& x) {
  uint64_t z = (x += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

}  // namespace llmgw::routing::testing
