// Operator drains kept in etcd (drain_sync.h). The value is the drained ids, one a line,
// sorted, so equal sets are equal strings.
#include "controlplane/drain_sync.h"

#include <set>
#include <sstream>

#include "common/log.h"

namespace llmgw::cp {

void DrainSync::Step(bool leader) {
  if (leader) {
    have_applied_ = false;  // when this controller stands by again, it reads afresh
    std::set<std::string> drained;
    for (const auto& b : c_->Backends())
      if (b.state == shm::BackendState::kDraining) drained.insert(b.id);
    std::string v;
    for (const auto& id : drained) v += id + "\n";
    if (have_written_ && v == written_) return;
    Status st = kv_->Put(key_, v, 0);
    if (!st.ok()) return;  // tried again next step
    written_ = v;
    have_written_ = true;
    return;
  }
  have_written_ = false;
  auto r = kv_->Get(key_);
  if (!r.ok()) return;
  std::string v = r.value() ? r.value()->value : std::string();
  if (have_applied_ && v == applied_) return;
  std::set<std::string> want;
  std::istringstream in(v);
  for (std::string line; std::getline(in, line);)
    if (!line.empty()) want.insert(line);
  for (const auto& b : c_->Backends()) {
    bool draining = b.state == shm::BackendState::kDraining;
    bool should = want.count(b.id) > 0;
    if (should && !draining) c_->Drain(b.id, nullptr);
    else if (!should && draining) c_->Undrain(b.id, nullptr);
    if (should != draining) LOG_INFO(should ? "fleet: drain from the leader applied" : "fleet: undrain from the leader applied",
                                     {{"backend", b.id}});
  }
  applied_ = v;
  have_applied_ = true;
}

}  // namespace llmgw::cp
