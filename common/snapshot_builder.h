// Turns a validated Config into a routing Snapshot: models and backends placed in stable
// slots (a backend keeps its slot across reloads, so per-slot stats and the data plane's
// per-slot state keep meaning the same backend), addresses resolved, limits copied.
// llmcd calls this on every (re)load; tests use it to publish snapshots directly.
#pragma once

#include <cstdint>
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
  // Forgets ids/names not in the given config (call after a successful build).
  void Retain(const Config& c);

 private:
  static int Assign(std::map<std::string, int>* m, const std::string& key, uint32_t cap);
  std::map<std::string, int> backends_;
  std::map<std::string, int> models_;
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

// The key stored in BackendEntry::key for a backend id.
uint64_t BackendKey(std::string_view id);

}  // namespace llmgw
