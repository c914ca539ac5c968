// Operator drains in an HA fleet (fleet.etcd): the leader keeps the set of backends an
// operator drained in etcd (PREFIX/drains); standbys apply it to their own state, so a
// failover neither undrains a backend nor loses a drain. Ticked by the election thread.
#pragma once

#include <string>

#include "controlplane/controller.h"
#include "controlplane/etcd_client.h"

namespace llmgw::cp {

class DrainSync {
 public:
  DrainSync(EtcdKv* kv, std::string prefix, Controller* c) : kv_(kv), key_(std::move(prefix) + "drains"), c_(c) {}
  // Leader: writes the drained set when it changed. Standby: applies the stored set.
  void Step(bool leader);

 private:
  EtcdKv* kv_;
  std::string key_;
  Controller* c_;
  std::string written_, applied_;  // the set as last written / applied ("" = unknown)
  bool have_written_ = false, have_applied_ = false;
};

}  // namespace llmgw::cp
