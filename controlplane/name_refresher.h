// Backend host names re-resolved while llmcd runs (control.resolve_interval_ms): a hosted
// API or a service behind DNS whose addresses change keeps being reached without a reload.
// The lookups block, so they run on a control-plane thread of their own, never on the
// controller's tick and never in the data plane (which never does DNS); the controller
// republishes only when an address changed. The resolver is injected: tests use a fake,
// so none resolves a name.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "common/snapshot_builder.h"

namespace llmgw::cp {

// A backend as published now (Controller::BackendHosts).
struct BackendHost {
  int slot = -1;
  uint64_t key = 0;   // BackendEntry::key, so a slot reused by a reload is not touched
  std::string id;
  std::string host;   // as in the URL: a name or an IP literal
  uint16_t port = 0;
  ResolvedAddr addr;  // published now
};

// A backend whose host now resolves to another address.
struct AddrChange {
  int slot = -1;
  uint64_t key = 0;
  ResolvedAddr addr;
};

class NameRefresher {
 public:
  explicit NameRefresher(Resolver resolve) : resolve_(std::move(resolve)) {}
  // Resolves every host name of hosts once (IP literals are not looked up) and returns
  // the backends whose address differs from the published one. A lookup that fails keeps
  // the published address (a DNS hiccup must not take a backend away); it is logged when
  // the reason appears or changes, and once when the name resolves again. `stop` (when
  // given) is checked before each lookup: while DNS is away every lookup can block for the
  // resolver's whole timeout, and llmcd's shutdown must wait for one of them at most, not
  // one per backend host.
  std::vector<AddrChange> Refresh(const std::vector<BackendHost>& hosts, const std::atomic<bool>* stop = nullptr);

 private:
  Resolver resolve_;
  std::map<std::string, std::string> failing_;  // host -> why its last lookup failed
};

bool SameAddr(const ResolvedAddr& a, const ResolvedAddr& b);

}  // namespace llmgw::cp
