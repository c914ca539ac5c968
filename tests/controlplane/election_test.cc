// Leader election on a fake etcd (an in-memory key space with leases on a fake clock):
// one leader at a time, a standby takes over once the leader's lease lapses (not before),
// a leader cut off from etcd steps down before its lease could lapse, resigning hands over
// at once, and the leader record agents read. Also the base64 the JSON gateway needs.
#include <gtest/gtest.h>

#include <map>
#include <memory>

#include "controlplane/election.h"
#include "controlplane/etcd_client.h"

namespace llmgw::cp {
namespace {

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

Error Down() { return Error(ErrorKind::kIo, ErrorSide::kUpstream, true, "etcd unreachable (test)"); }

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

class ElectionTest : public ::testing::Test {
 protected:
  static constexpr uint32_t kLeaseMs = 3000;
  std::unique_ptr<Election> Make(FakeEtcd* kv, const std::string& id) {
    ElectionOptions o;
    o.prefix = "/fleet/";
    o.id = id;
    o.addr = "10.0.0." + id.substr(1) + ":9090";
    o.lease_ms = kLeaseMs;
    o.clock_ms = [this] { return store_.now_ms; };
    return std::make_unique<Election>(kv, o);
  }
  // Advances time by one step interval and steps every live election.
  void StepAll(std::initializer_list<Election*> es) {
    store_.now_ms += es.size() ? (*es.begin())->step_ms() : 750;
    for (Election* e : es) e->Step();
  }
  FakeStore store_;
  FakeEtcd a_kv_{&store_}, b_kv_{&store_};
};

TEST_F(ElectionTest, FirstCampaignerLeadsTheOtherStandsBy) {
  auto a = Make(&a_kv_, "c1");
  auto b = Make(&b_kv_, "c2");
  a->Step();
  b->Step();
  EXPECT_TRUE(a->is_leader());
  EXPECT_FALSE(b->is_leader());
  EXPECT_EQ(b->leader().id, "c1");
  EXPECT_EQ(b->leader().addr, "10.0.0.1:9090");
  // Agents read the same record.
  LeaderRecord r;
  std::string why;
  ASSERT_TRUE(ReadLeader(&a_kv_, "/fleet/", &r, &why)) << why;
  EXPECT_EQ(r.addr, "10.0.0.1:9090");
  // Renewals keep it stable over many leases.
  for (int i = 0; i < 40; ++i) StepAll({a.get(), b.get()});
  EXPECT_TRUE(a->is_leader());
  EXPECT_FALSE(b->is_leader());
  EXPECT_EQ(a->leader_changes(), 1u);
  auto members = b->Members();
  ASSERT_EQ(members.size(), 2u);
  EXPECT_TRUE(members[0].leader);
  EXPECT_EQ(members[1].id, "c2");
  EXPECT_EQ(members[1].addr, "10.0.0.2:9090");
}

TEST_F(ElectionTest, StandbyTakesOverOnceTheDeadLeadersLeaseLapsesNotBefore) {
  auto a = Make(&a_kv_, "c1");
  auto b = Make(&b_kv_, "c2");
  a->Step();
  b->Step();
  ASSERT_TRUE(a->is_leader());
  uint64_t died = store_.now_ms;  // a stops stepping (SIGKILL)
  uint64_t took_over = 0;
  for (int i = 0; i < 20 && !took_over; ++i) {
    StepAll({b.get()});
    if (b->is_leader()) took_over = store_.now_ms;
  }
  ASSERT_NE(took_over, 0u);
  EXPECT_GE(took_over - died, kLeaseMs - a->step_ms()) << "took over while the leader's lease was still valid";
  EXPECT_LE(took_over - died, 2 * kLeaseMs);
  LeaderRecord r;
  std::string why;
  ASSERT_TRUE(ReadLeader(&b_kv_, "/fleet/", &r, &why));
  EXPECT_EQ(r.id, "c2");
}

TEST_F(ElectionTest, LeaderCutOffFromEtcdStepsDownBeforeTheStandbyCanLead) {
  auto a = Make(&a_kv_, "c1");
  auto b = Make(&b_kv_, "c2");
  a->Step();
  b->Step();
  ASSERT_TRUE(a->is_leader());
  a_kv_.down = true;  // a partition between the leader and etcd
  bool a_stepped_down = false;
  for (int i = 0; i < 30; ++i) {
    StepAll({a.get(), b.get()});
    EXPECT_FALSE(a->is_leader() && b->is_leader()) << "two leaders at " << store_.now_ms;
    a_stepped_down |= !a->is_leader();
  }
  EXPECT_TRUE(a_stepped_down);
  EXPECT_TRUE(b->is_leader());
  EXPECT_NE(a->last_error().find("unreachable"), std::string::npos) << a->last_error();
  // Back in touch: a stands by behind b.
  a_kv_.down = false;
  for (int i = 0; i < 8; ++i) StepAll({a.get(), b.get()});
  EXPECT_FALSE(a->is_leader());
  EXPECT_TRUE(b->is_leader());
  EXPECT_EQ(a->leader().id, "c2");
}

TEST_F(ElectionTest, ResignHandsOverAtTheNextStep) {
  auto a = Make(&a_kv_, "c1");
  auto b = Make(&b_kv_, "c2");
  a->Step();
  b->Step();
  a->Resign();
  EXPECT_FALSE(a->is_leader());
  StepAll({b.get()});
  EXPECT_TRUE(b->is_leader());
}

TEST_F(ElectionTest, LeaderWhoseKeyVanishesStepsDownAndCampaignsAgain) {
  auto a = Make(&a_kv_, "c1");
  a->Step();
  ASSERT_TRUE(a->is_leader());
  store_.kv.erase("/fleet/leader");  // an operator's `etcdctl del`
  StepAll({a.get()});
  EXPECT_FALSE(a->is_leader());
  StepAll({a.get()});
  EXPECT_TRUE(a->is_leader());
  EXPECT_EQ(a->leader_changes(), 3u);
}

TEST(EtcdWire, Base64RoundTripsAnyBytes) {
  for (std::string s : {std::string(), std::string("a"), std::string("ab"), std::string("abc"),
                        std::string("/llmgw/leader"), std::string("\0\xff\x80 x", 5)}) {
    std::string back;
    ASSERT_TRUE(Base64Decode(Base64Encode(s), &back));
    EXPECT_EQ(back, s);
  }
  EXPECT_EQ(Base64Encode("foo"), "Zm9v");
  EXPECT_EQ(Base64Encode("fo"), "Zm8=");
  std::string out;
  EXPECT_FALSE(Base64Decode("Zm9v!", &out));
  LeaderRecord r;
  EXPECT_TRUE(DecodeLeader("host/a 127.0.0.1:9090", &r));
  EXPECT_EQ(r.id, "host/a");
  EXPECT_EQ(r.addr, "127.0.0.1:9090");
  EXPECT_FALSE(DecodeLeader("nospace", &r));
}

}  // namespace
}  // namespace llmgw::cp
