// An in-memory etcd for unit tests of the HA fleet's logic: a key space with leases on a
// time the test advances (FakeStore), and per-controller clients (FakeEtcd) a test can cut
// off from it (`down`), as a partition would.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "controlplane/etcd_client.h"

namespace llmgw::cp {

// The key space and leases, shared by every client; time is the test's.
struct FakeStore {
  uint64_t now_ms = 1'000'000;
  int64_t next_lease = 100, revision = 1;
  std::map<int64_t, uint64_t> leases;  // id -> expiry ms
  std::map<std::string, EtcdKeyValue> kv;
  void Expire() {
    for (auto it = leases.begin(); it != leases.end();) {
      if (it->second <= now_ms) {
        for (auto k = kv.begin(); k != kv.end();) k = k->second.lease == it->first ? kv.erase(k) : std::next(k);
        it = leases.erase(it);
      } else {
        ++it;
      }
    }
  }
};

inline Error Down() { return Error(ErrorKind::kIo, ErrorSide::kUpstream, true, "etcd unreachable (test)"); }

// One controller's connection to the store; `down` cuts it off.
class FakeEtcd final : public EtcdKv {
 public:
  explicit FakeEtcd(FakeStore* s) : s_(s) {}
  bool down = false;
  Result<int64_t> LeaseGrant(int64_t ttl_s) override {
    if (down) return Down();
    s_->Expire();
    int64_t id = s_->next_lease++;
    s_->leases[id] = s_->now_ms + static_cast<uint64_t>(ttl_s) * 1000;
    ttl_[id] = ttl_s;
    return id;
  }
  Result<int64_t> LeaseKeepAlive(int64_t id) override {
    if (down) return Down();
    s_->Expire();
    auto it = s_->leases.find(id);
    if (it == s_->leases.end()) return int64_t{0};
    it->second = s_->now_ms + static_cast<uint64_t>(ttl_[id]) * 1000;
    return ttl_[id];
  }
  Status LeaseRevoke(int64_t id) override {
    if (down) return Down();
    s_->leases[id] = 0;
    s_->Expire();
    return Status::Ok();
  }
  Status Put(const std::string& key, const std::string& value, int64_t lease) override {
    if (down) return Down();
    s_->Expire();
    auto& e = s_->kv[key];
    if (e.create_revision == 0) e.create_revision = ++s_->revision;
    e.key = key;
    e.value = value;
    e.lease = lease;
    e.mod_revision = ++s_->revision;
    return Status::Ok();
  }
  Result<bool> CreateIfAbsent(const std::string& key, const std::string& value, int64_t lease,
                              std::optional<EtcdKeyValue>* current) override {
    if (down) return Down();
    s_->Expire();
    auto it = s_->kv.find(key);
    if (it != s_->kv.end()) {
      if (current) *current = it->second;
      return false;
    }
    (void)Put(key, value, lease);
    return true;
  }
  Result<std::optional<EtcdKeyValue>> Get(const std::string& key) override {
    if (down) return Down();
    s_->Expire();
    auto it = s_->kv.find(key);
    if (it == s_->kv.end()) return std::optional<EtcdKeyValue>();
    return std::optional<EtcdKeyValue>(it->second);
  }
  Result<std::vector<EtcdKeyValue>> GetPrefix(const std::string& prefix) override {
    if (down) return Down();
    s_->Expire();
    std::vector<EtcdKeyValue> out;
    for (const auto& [k, v] : s_->kv)
      if (k.rfind(prefix, 0) == 0) out.push_back(v);
    return out;
  }
  Status DeleteIfValue(const std::string& key, const std::string& value) override {
    if (down) return Down();
    auto it = s_->kv.find(key);
    if (it != s_->kv.end() && it->second.value == value) s_->kv.erase(it);
    return Status::Ok();
  }

 private:
  FakeStore* s_;
  std::map<int64_t, int64_t> ttl_;
};

}  // namespace llmgw::cp
