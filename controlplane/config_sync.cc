// The stored fleet config, kept in step with etcd (config_sync.h).
#include "controlplane/config_sync.h"

#include "common/log.h"

namespace llmgw::cp {

std::string FleetConfigKey(const std::string& prefix) { return prefix + "config"; }

void ConfigSync::Step() {
  auto r = kv_->Get(key_);
  if (!r.ok()) {
    if (!unreachable_)
      LOG_WARN("fleet config: cannot read it from etcd; keeping the running config",
               {{"key", key_}, {"error", r.error().message()}});
    unreachable_ = true;
    return;
  }
  if (unreachable_) LOG_INFO("fleet config: etcd readable again", {{"key", key_}});
  unreachable_ = false;
  const auto& kv = r.value();
  if (!kv) {
    if (seen_ == 0) return;
    LOG_WARN("fleet config: deleted from etcd; serving the local config file alone", {{"key", key_}});
    ReloadOutcome o = apply_("", 0);
    if (!o.ok) ++refused_;
    seen_ = 0;
    return;
  }
  if (kv->mod_revision == seen_) return;
  seen_ = kv->mod_revision;  // handled once: a refused revision is not retried every step
  ReloadOutcome o = apply_(kv->value, kv->mod_revision);
  if (o.ok) {
    LOG_INFO("fleet config applied", {{"revision", static_cast<long>(kv->mod_revision)}, {"changes", o.summary}});
  } else {
    ++refused_;
    LOG_ERROR("fleet config refused here; keeping the running config",
              {{"revision", static_cast<long>(kv->mod_revision)},
               {"error", o.errors.empty() ? std::string() : o.errors.front()}});
  }
}

llmgw::Result<int64_t> StoreFleetConfig(EtcdKv* kv, const std::string& prefix, const std::string& yaml) {
  Status st = kv->Put(FleetConfigKey(prefix), yaml, 0);
  if (!st.ok()) return st.error();
  auto g = kv->Get(FleetConfigKey(prefix));
  if (!g.ok()) return g.error();
  if (!g.value()) return Error(ErrorKind::kIo, ErrorSide::kUpstream, true, "etcd: the stored config vanished");
  return g.value()->mod_revision;
}

}  // namespace llmgw::cp
