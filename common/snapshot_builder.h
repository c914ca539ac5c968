// Turns a validated Config into a routing Snapshot: models and backends placed in stable
// slots (a backend keeps its slot across reloads, so per-slot stats and the data plane's
// per-slot state keep meaning the same backend), addresses resolved, limits copied.
// llmcd calls this on every (re)load; tests use it to publish snapshots directly.
#pragma once

#include <cstdint>
#include <cstring>
#include <functional>
#include <map>
#include <string>

#include "common/config.h"
#include "common/error.h"
#include "common/shm_layout.h"

namespace llmgw {

// Remembers which slot each backend id and model name occupies. A slot freed by a reload
// is not handed to a backend added in that same reload (requests to the removed backend
// may still be in flight on it); later reloads may reuse it.
class SlotAssigner {
 public:
  int BackendSlot(const std::string& id);  // -1 when the table is full
  int ModelSlot(const std::string& name);
  int KeySlot(const std::string& id);  // client API keys, by id
  // Forgets ids/names not in the given config (call after a successful build).
  void Retain(const Config& c);

 private:
  static int Assign(std::map<std::string, int>* m, const std::string& key, uint32_t cap);
  std::map<std::string, int> backends_;
  std::map<std::string, int> models_;
  std::map<std::string, int> keys_;
};

// A backend host turned into an address for the data plane (which never does DNS).
struct ResolvedAddr {
  uint8_t family = 0;   // AF_INET or AF_INET6
  uint8_t addr[16] = {};  // IPv4 in the first 4 bytes
};
// Resolves host (a name or an IP literal) for port; false with *why on failure. Blocking
// is allowed: only llmcd and tests build snapshots. Tests pass a fake so none resolves a
// name (which would send a DNS query off the machine).
using Resolver = std::function<bool(const std::string& host, uint16_t port, ResolvedAddr* out, std::string* why)>;
// getaddrinfo; IP literals are converted without a lookup.
bool SystemResolve(const std::string& host, uint16_t port, ResolvedAddr* out, std::string* why);

// Builds *out from c. Every backend starts HEALTHY with metrics not fresh; llmcd then
// overlays health, circuit state and scraped signals. Hostnames are resolved here with
// `resolve` (default: SystemResolve). Returns an error for unresolvable hosts or when
// more than kMaxBackends/kMaxModels are configured.
Status BuildSnapshot(const Config& c, SlotAssigner* slots, shm::Snapshot* out, const Resolver& resolve);
Status BuildSnapshot(const Config& c, SlotAssigner* slots, shm::Snapshot* out);

// The key stored in BackendEntry::key for a backend id (and KeyEntry::id_hash for a key id).
uint64_t BackendKey(std::string_view id);

// The key slot whose SHA-256 is `sha256` (32 bytes), or -1: the data plane's lookup of a
// presented key, here so the builder's index and the lookup cannot disagree.
inline int FindKeySlot(const shm::Snapshot& s, const uint8_t* sha256) {
  if (s.num_keys == 0) return -1;
  uint32_t i = shm::KeyIndexHome(sha256);
  for (uint32_t n = 0; n < shm::kKeyIndexSlots; ++n, i = (i + 1) & (shm::kKeyIndexSlots - 1)) {
    uint16_t v = s.key_index[i];
    if (v == 0) return -1;
    const shm::KeyEntry& k = s.keys[v - 1];
    if (std::memcmp(k.sha256, sha256, 32) == 0) return v - 1;
  }
  return -1;
}

}  // namespace llmgw
