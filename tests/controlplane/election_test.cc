// Leader election on a fake etcd (an in-memory key space with leases on a fake clock):
// one leader at a time, a standby takes over once the leader's lease lapses (not before),
// a leader cut off from etcd steps down before its lease could lapse, resigning hands over
// at once, and the leader record agents read. Also the base64 the JSON gateway needs.
#include <gtest/gtest.h>

#include <map>
#include <memory>

#include "controlplane/election.h"
#include "controlplane/etcd_client.h"
#include "fake_etcd.h"

namespace llmgw::cp {
namespace {

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
