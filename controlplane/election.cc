// Leader election over etcd (election.h).
#include "controlplane/election.h"

#include <chrono>

#include "common/log.h"
#include "common/shm.h"

namespace llmgw::cp {

std::string LeaderKey(const std::string& prefix) { return prefix + "leader"; }

std::string EncodeLeader(const LeaderRecord& r) { return r.id + " " + r.addr; }

bool DecodeLeader(const std::string& value, LeaderRecord* out) {
  // The id may hold spaces only if someone configured it so; the address never does.
  auto sp = value.rfind(' ');
  if (sp == std::string::npos || sp == 0 || sp + 1 == value.size()) return false;
  out->id = value.substr(0, sp);
  out->addr = value.substr(sp + 1);
  return true;
}

bool ReadLeader(EtcdKv* kv, const std::string& prefix, LeaderRecord* out, std::string* why) {
  auto r = kv->Get(LeaderKey(prefix));
  if (!r.ok()) {
    *why = r.error().message();
    return false;
  }
  if (!r.value()) {
    *why = "no leader elected";
    return false;
  }
  if (!DecodeLeader(r.value()->value, out)) {
    *why = "unreadable leader record '" + r.value()->value + "'";
    return false;
  }
  return true;
}

Election::Election(EtcdKv* kv, ElectionOptions o) : kv_(kv), o_(std::move(o)) {
  if (!o_.clock_ms)
    o_.clock_ms = [] {
      return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                       std::chrono::steady_clock::now().time_since_epoch())
                                       .count());
    };
}

uint32_t Election::step_ms() const { return std::max<uint32_t>(50, o_.lease_ms / 4); }

bool Election::is_leader() const {
  std::lock_guard<std::mutex> l(mu_);
  return leader_;
}
LeaderRecord Election::leader() const {
  std::lock_guard<std::mutex> l(mu_);
  return seen_;
}
uint64_t Election::leader_changes() const {
  std::lock_guard<std::mutex> l(mu_);
  return changes_;
}
std::string Election::last_error() const {
  std::lock_guard<std::mutex> l(mu_);
  return error_;
}

void Election::SetLeader(bool leading, const char* why) {
  std::lock_guard<std::mutex> l(mu_);
  if (leading == leader_) return;
  leader_ = leading;
  ++changes_;
  if (leading) {
    seen_ = LeaderRecord{o_.id, o_.addr};
    LOG_INFO("fleet: this controller leads", {{"id", o_.id}, {"addr", o_.addr}});
  } else {
    LOG_WARN("fleet: this controller no longer leads", {{"id", o_.id}, {"reason", why}});
  }
}

void Election::Fail(const std::string& what, const Error& e) {
  std::string msg = what + ": " + e.message();
  std::lock_guard<std::mutex> l(mu_);
  if (msg != error_) LOG_WARN("fleet: etcd call failed", {{"call", what}, {"error", e.message()}});
  error_ = msg;
}

void Election::Step() {
  uint64_t now = o_.clock_ms();
  // The lease: granted once, renewed every third of it; lost when it lapses or etcd says
  // it is gone.
  if (lease_ != 0 && now >= lease_deadline_ms_) {
    SetLeader(false, "lease lapsed (etcd unreachable)");
    lease_ = 0;
  }
  if (lease_ == 0) {
    int64_t ttl = std::max<int64_t>(1, (o_.lease_ms + 999) / 1000);
    auto g = kv_->LeaseGrant(ttl);
    if (!g.ok()) return Fail("lease grant", g.error());
    lease_ = g.value();
    lease_deadline_ms_ = now + o_.lease_ms;
    next_keepalive_ms_ = now + o_.lease_ms / 3;
    registered_ = false;
  } else if (now >= next_keepalive_ms_) {
    auto k = kv_->LeaseKeepAlive(lease_);
    if (!k.ok()) {
      Fail("lease keepalive", k.error());
      next_keepalive_ms_ = now + step_ms();  // try again next step; the deadline decides
      return;
    }
    if (k.value() <= 0) {
      SetLeader(false, "lease expired");
      lease_ = 0;
      return;
    }
    // Measured from before the call: etcd's countdown restarted no earlier than that.
    lease_deadline_ms_ = now + std::min<uint64_t>(o_.lease_ms, static_cast<uint64_t>(k.value()) * 1000);
    next_keepalive_ms_ = now + o_.lease_ms / 3;
  }
  if (!registered_) {
    if (!registered_unix_ms_) registered_unix_ms_ = shm::NowUnixMs();
    Status st = kv_->Put(o_.prefix + "controllers/" + o_.id, o_.addr + " " + std::to_string(registered_unix_ms_), lease_);
    if (!st.ok()) return Fail("register", st.error());
    registered_ = true;
  }
  std::string mine = EncodeLeader(LeaderRecord{o_.id, o_.addr});
  if (!is_leader()) {
    std::optional<EtcdKeyValue> cur;
    auto c = kv_->CreateIfAbsent(LeaderKey(o_.prefix), mine, lease_, &cur);
    if (!c.ok()) return Fail("campaign", c.error());
    if (c.value()) {
      SetLeader(true, "");
    } else if (cur) {
      LeaderRecord r;
      if (DecodeLeader(cur->value, &r)) {
        std::lock_guard<std::mutex> l(mu_);
        if (r.id != seen_.id) LOG_INFO("fleet: standing by", {{"leader", r.id}, {"leader_addr", r.addr}});
        seen_ = r;
      }
    }
  } else {
    // Still ours? An operator may have deleted it, or our lease been revoked.
    auto g = kv_->Get(LeaderKey(o_.prefix));
    if (!g.ok()) return Fail("leader check", g.error());
    if (!g.value() || g.value()->value != mine || g.value()->lease != lease_) SetLeader(false, "leader key lost");
  }
  std::lock_guard<std::mutex> l(mu_);
  error_.clear();
}

void Election::Resign() {
  if (lease_ == 0) return;
  if (is_leader()) (void)kv_->DeleteIfValue(LeaderKey(o_.prefix), EncodeLeader(LeaderRecord{o_.id, o_.addr}));
  (void)kv_->LeaseRevoke(lease_);
  lease_ = 0;
  SetLeader(false, "resigned");
}

std::vector<Election::Member> Election::Members() {
  std::vector<Member> out;
  auto r = kv_->GetPrefix(o_.prefix + "controllers/");
  if (!r.ok()) return out;
  LeaderRecord lead;
  std::string why;
  bool have = ReadLeader(kv_, o_.prefix, &lead, &why);
  size_t skip = o_.prefix.size() + std::string("controllers/").size();
  for (const auto& kv : r.value()) {
    Member m;
    m.id = kv.key.substr(std::min(skip, kv.key.size()));
    auto sp = kv.value.find(' ');
    m.addr = kv.value.substr(0, sp);
    if (sp != std::string::npos) m.registered_unix_ms = std::strtoull(kv.value.c_str() + sp + 1, nullptr, 10);
    m.leader = have && lead.id == m.id;
    out.push_back(std::move(m));
  }
  return out;
}

}  // namespace llmgw::cp
