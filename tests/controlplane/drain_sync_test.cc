// Operator drains across an HA failover: what an operator drains on the leader is applied
// by the standby (through the fake etcd), an undrain too, and a standby that becomes
// leader keeps the drains and writes them on.
#include <gtest/gtest.h>

#include "controlplane/controller.h"
#include "controlplane/drain_sync.h"
#include "controlplane/prober.h"
#include "fake_etcd.h"

namespace llmgw::cp {
namespace {

class OkProber final : public Prober {
 public:
  HttpResponse Get(const HttpTarget&, const std::string&, uint32_t, size_t, const std::atomic<bool>*) override {
    return HttpResponse{200, "ok", ""};
  }
};

std::unique_ptr<Controller> MakeController() {
  ConfigResult r = ParseConfig(
      "instance: drainsync\nmodels:\n  - name: m\n    backends:\n"
      "      - { id: b0, url: \"http://127.0.0.1:9\" }\n      - { id: b1, url: \"http://127.0.0.1:10\" }\n",
      "test.yaml");
  EXPECT_TRUE(r.ok()) << r.ErrorText();
  ControllerOptions o;
  o.prober = std::make_shared<OkProber>();
  o.worker_threads = 0;
  o.use_shm = false;
  auto c = std::make_unique<Controller>(o);
  EXPECT_TRUE(c->StartWithConfig(std::move(r.config)).ok());
  return c;
}

bool Draining(Controller& c, const std::string& id) {
  BackendView v;
  EXPECT_TRUE(c.GetBackend(id, &v));
  return v.state == shm::BackendState::kDraining;
}

TEST(DrainSyncTest, StandbyFollowsTheLeadersDrainsAndKeepsThemWhenItLeads) {
  FakeStore store;
  FakeEtcd a_kv(&store), b_kv(&store);
  auto a = MakeController();
  auto b = MakeController();
  DrainSync a_sync(&a_kv, "/f/", a.get()), b_sync(&b_kv, "/f/", b.get());
  a_sync.Step(true);
  b_sync.Step(false);
  EXPECT_FALSE(Draining(*b, "b0"));

  ASSERT_TRUE(a->Drain("b0", nullptr));  // the operator, on the leader
  a_sync.Step(true);
  b_sync.Step(false);
  EXPECT_TRUE(Draining(*b, "b0"));
  EXPECT_FALSE(Draining(*b, "b1"));

  ASSERT_TRUE(a->Undrain("b0", nullptr));
  ASSERT_TRUE(a->Drain("b1", nullptr));
  a_sync.Step(true);
  b_sync.Step(false);
  EXPECT_FALSE(Draining(*b, "b0"));
  EXPECT_TRUE(Draining(*b, "b1"));

  // a dies; b leads and keeps b1 drained; a comes back as a standby and follows b.
  b_sync.Step(true);
  EXPECT_TRUE(Draining(*b, "b1"));
  auto a2 = MakeController();
  DrainSync a2_sync(&a_kv, "/f/", a2.get());
  a2_sync.Step(false);
  EXPECT_TRUE(Draining(*a2, "b1"));
  EXPECT_FALSE(Draining(*a2, "b0"));
  a->Shutdown();
  b->Shutdown();
  a2->Shutdown();
}

}  // namespace
}  // namespace llmgw::cp
