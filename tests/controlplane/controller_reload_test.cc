// Controller config reload: the summary lists every changed key, a good reload keeps
// state and adds and removes backends, a bad one is rejected with its reason while the
// old config serves on, and snapshots stay consistent while reloading under traffic.
// The fixture (fake prober, injected clock) is in controller_test_fixture.h.
#include <gtest/gtest.h>

#include <string>
#include <thread>

#include "controller_test_fixture.h"

namespace llmgw::cp {
namespace {

using namespace controller_test;  // Yaml, FakeProber, ControllerTest, ...

// Issue 16: a reload that only changed max_concurrent was summarised as "no changes".
TEST_F(ControllerTest, ReloadSummaryListsEveryChangedKey) {
  std::string inst = UniqueInstance();
  std::string y = Yaml(inst, {std::string(kUrlA)});
  Start(y);
  std::string more = y;
  more.replace(more.find("max_concurrent: 8"), 17, "max_concurrent: 32");
  auto o = c_->ReloadFromText(more, "test.yaml");
  ASSERT_TRUE(o.ok) << (o.errors.empty() ? "" : o.errors[0]);
  EXPECT_EQ(o.summary, "backend " + std::string(kUrlA) + " max_concurrent 8 -> 32\n");
  o = c_->ReloadFromText(Yaml(inst, {std::string(kUrlA)}, "gateway: { retries: { max: 5 } }\n"), "test.yaml");
  ASSERT_TRUE(o.ok);
  EXPECT_NE(o.summary.find("backend " + std::string(kUrlA) + " max_concurrent 32 -> 8\n"), std::string::npos) << o.summary;
  EXPECT_NE(o.summary.find("gateway.retries.max 2 -> 5\n"), std::string::npos) << o.summary;
  o = c_->ReloadFromText(Yaml(inst, {std::string(kUrlA)}, "gateway: { retries: { max: 5 } }\n"), "test.yaml");
  ASSERT_TRUE(o.ok);
  EXPECT_EQ(o.summary, "no changes\n");
}

TEST_F(ControllerTest, ReloadGoodKeepsStateAddsAndRemovesBackends) {
  std::string inst = UniqueInstance();
  Start(Yaml(inst, {kUrlA}));
  ASSERT_TRUE(c_->Drain(kUrlA, nullptr));
  auto o = c_->ReloadFromText(Yaml(inst, {kUrlA, kUrlB}), "test.yaml");
  ASSERT_TRUE(o.ok) << (o.errors.empty() ? "" : o.errors[0]);
  EXPECT_EQ(o.version, 2u);
  EXPECT_NE(o.summary.find(std::string("added backend ") + kUrlB), std::string::npos) << o.summary;
  EXPECT_EQ(c_->Backends().size(), 2u);
  EXPECT_EQ(StateOf(*c_, kUrlA), shm::BackendState::kDraining);  // operator state survives reloads
  Step();
  EXPECT_EQ(Published(0).state, static_cast<uint8_t>(shm::BackendState::kDraining));
  o = c_->ReloadFromText(Yaml(inst, {kUrlB}), "test.yaml");
  ASSERT_TRUE(o.ok);
  EXPECT_NE(o.summary.find(std::string("removed backend ") + kUrlA), std::string::npos);
  EXPECT_EQ(c_->Backends().size(), 1u);
  EXPECT_EQ(c_->GetStatus().config_reloads, 2u);
}

TEST_F(ControllerTest, ReloadBadIsRejectedWithReasonAndOldKeepsServing) {
  std::string inst = UniqueInstance();
  Start(Yaml(inst, {kUrlA}));
  auto gen_before = c_->GetStatus().snapshot_generation;
  auto o = c_->ReloadFromText("instance: " + inst + "\nmodels:\n  - name: m\n    policy: nonsense\n", "bad.yaml");
  EXPECT_FALSE(o.ok);
  ASSERT_FALSE(o.errors.empty());
  std::string all;
  for (const auto& e : o.errors) all += e + "\n";
  EXPECT_NE(all.find("bad.yaml:4: models[0].policy: unknown policy 'nonsense'"), std::string::npos) << all;
  EXPECT_EQ(c_->config_version(), 1u);
  EXPECT_EQ(c_->GetStatus().config_reload_failures, 1u);
  EXPECT_EQ(c_->Backends().size(), 1u);
  // Changing the instance is refused too: it names the shm object the gateways read.
  o = c_->ReloadFromText(Yaml("other-instance", {kUrlA}), "x.yaml");
  EXPECT_FALSE(o.ok);
  EXPECT_NE(o.errors[0].find("instance"), std::string::npos);
  Step();
  EXPECT_GE(c_->GetStatus().snapshot_generation, gen_before);
  EXPECT_EQ(Published(0).state, static_cast<uint8_t>(shm::BackendState::kHealthy));
  // ValidateConfig reports without applying.
  auto v = Controller::Validate("models: 5\n", "");
  EXPECT_FALSE(v.ok);
  EXPECT_NE(v.errors[0].find("<request>"), std::string::npos) << v.errors[0];
  EXPECT_TRUE(Controller::Validate(Yaml(inst, {kUrlA}), "ok.yaml").ok);
}

TEST_F(ControllerTest, ReloadWhileServingKeepsSnapshotsConsistent) {
  // Real time and the real publish loop (Run) against reloads from this thread; the
  // backends are the fake prober's.
  prober_->Set([](const std::string&, const std::string& p) { return p == "/metrics" ? Ok(kVllmMetrics) : Ok(); });
  std::string inst = UniqueInstance();
  ConfigResult r = ParseConfig(Yaml(inst, {kUrlA}), "test.yaml");
  ASSERT_TRUE(r.ok());
  instance_ = inst;
  ControllerOptions opts;
  opts.prober = prober_;
  c_ = std::make_unique<Controller>(opts);
  ASSERT_TRUE(c_->StartWithConfig(std::move(r.config)).ok());
  auto obj = shm::ShmObject::Open("/llmgw-" + instance_);
  ASSERT_TRUE(obj.ok());
  shm_ = std::move(obj.value());
  std::atomic<bool> stop{false};
  std::thread loop([&] { c_->Run(stop); });
  shm::SnapshotReader reader(shm_->region());
  auto snap = std::make_unique<shm::Snapshot>();
  int reads = 0;
  for (int i = 0; i < 20; ++i) {
    auto o = c_->ReloadFromText(Yaml(inst, i % 2 ? std::vector<std::string>{kUrlA}
                                                 : std::vector<std::string>{kUrlA, kUrlB}),
                                "test.yaml");
    ASSERT_TRUE(o.ok);
    for (int j = 0; j < 5; ++j) {
      if (reader.Refresh(snap.get())) {
        ++reads;
        EXPECT_EQ(snap->checksum, shm::SnapshotChecksum(*snap));
        // a stays in slot 0 across every reload
        EXPECT_STREQ(snap->backends[0].id, kUrlA);
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  }
  stop = true;
  loop.join();
  EXPECT_GT(reads, 0);
  EXPECT_EQ(c_->GetStatus().config_reloads, 20u);
}

}  // namespace
}  // namespace llmgw::cp
