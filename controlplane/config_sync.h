// The config stored in etcd for an HA fleet (PREFIX/config; `llmctl config push FILE`):
// every controller, leader or standby, polls the key at each election step and applies a
// new revision merged with its local file (common/fleet_config.h), so all controllers
// serve the same fleet-wide config and a standby that takes over already runs it. A
// revision that does not apply here is logged and skipped (the running config stays);
// while etcd cannot be read the running config keeps serving; a deleted key sends the
// controller back to its local file alone.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "controlplane/controller.h"
#include "controlplane/etcd_client.h"

namespace llmgw::cp {

std::string FleetConfigKey(const std::string& prefix);

class ConfigSync {
 public:
  using ApplyFn = std::function<ReloadOutcome(const std::string& yaml, int64_t revision)>;
  // applied_revision: the revision the running config already holds (0: none).
  ConfigSync(EtcdKv* kv, const std::string& prefix, ApplyFn apply, int64_t applied_revision)
      : kv_(kv), key_(FleetConfigKey(prefix)), apply_(std::move(apply)), seen_(applied_revision) {}
  void Step();
  // The stored revision last handled (applied or refused); 0 when there is none.
  int64_t seen_revision() const { return seen_; }
  uint64_t refused() const { return refused_; }

 private:
  EtcdKv* kv_;
  std::string key_;
  ApplyFn apply_;
  int64_t seen_ = 0;
  uint64_t refused_ = 0;
  bool unreachable_ = false;
};

// Puts yaml at PREFIX/config; etcd's revision of the stored key.
llmgw::Result<int64_t> StoreFleetConfig(EtcdKv* kv, const std::string& prefix, const std::string& yaml);

}  // namespace llmgw::cp
