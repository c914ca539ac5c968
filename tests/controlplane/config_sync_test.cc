// ConfigSync (controlplane/config_sync.h) on the in-memory etcd: a stored config is applied
// once per revision, a refused revision is not retried every step, an unreachable etcd
// keeps the running config, and a deleted key sends the controller back to its file.
#include "controlplane/config_sync.h"

#include <gtest/gtest.h>

#include "fake_etcd.h"

namespace llmgw::cp {
namespace {

struct Applied {
  std::string yaml;
  int64_t revision;
};

class ConfigSyncTest : public ::testing::Test {
 protected:
  ConfigSync Make(int64_t applied_revision = 0) {
    return ConfigSync(&etcd_, "/p/", [this](const std::string& yaml, int64_t rev) {
      calls_.push_back({yaml, rev});
      ReloadOutcome o;
      o.ok = yaml.find("broken") == std::string::npos;
      if (!o.ok) o.errors.push_back("<fleet>:1: broken");
      return o;
    }, applied_revision);
  }
  FakeStore store_;
  FakeEtcd etcd_{&store_};
  std::vector<Applied> calls_;
};

TEST_F(ConfigSyncTest, NoStoredConfigAppliesNothing) {
  ConfigSync s = Make();
  s.Step();
  s.Step();
  EXPECT_TRUE(calls_.empty());
}

TEST_F(ConfigSyncTest, EachRevisionIsAppliedOnce) {
  ConfigSync s = Make();
  auto rev = StoreFleetConfig(&etcd_, "/p/", "models: a");
  ASSERT_TRUE(rev.ok());
  s.Step();
  s.Step();
  ASSERT_EQ(calls_.size(), 1u);
  EXPECT_EQ(calls_[0].yaml, "models: a");
  EXPECT_EQ(calls_[0].revision, rev.value());
  EXPECT_EQ(s.seen_revision(), rev.value());
  auto rev2 = StoreFleetConfig(&etcd_, "/p/", "models: b");
  ASSERT_TRUE(rev2.ok());
  EXPECT_GT(rev2.value(), rev.value());
  s.Step();
  ASSERT_EQ(calls_.size(), 2u);
  EXPECT_EQ(calls_[1].yaml, "models: b");
}

TEST_F(ConfigSyncTest, TheRevisionTheControllerStartedWithIsNotAppliedAgain) {
  auto rev = StoreFleetConfig(&etcd_, "/p/", "models: a");
  ConfigSync s = Make(rev.value());
  s.Step();
  EXPECT_TRUE(calls_.empty());
}

TEST_F(ConfigSyncTest, RefusedRevisionIsCountedAndNotRetriedEveryStep) {
  ConfigSync s = Make();
  ASSERT_TRUE(StoreFleetConfig(&etcd_, "/p/", "broken").ok());
  s.Step();
  s.Step();
  EXPECT_EQ(calls_.size(), 1u);
  EXPECT_EQ(s.refused(), 1u);
  ASSERT_TRUE(StoreFleetConfig(&etcd_, "/p/", "models: fixed").ok());
  s.Step();
  ASSERT_EQ(calls_.size(), 2u);
  EXPECT_EQ(calls_[1].yaml, "models: fixed");
}

TEST_F(ConfigSyncTest, UnreachableEtcdKeepsTheRunningConfigAndCatchesUpLater) {
  ConfigSync s = Make();
  ASSERT_TRUE(StoreFleetConfig(&etcd_, "/p/", "models: a").ok());
  s.Step();
  etcd_.down = true;
  FakeEtcd other(&store_);
  ASSERT_TRUE(StoreFleetConfig(&other, "/p/", "models: b").ok());
  s.Step();
  s.Step();
  EXPECT_EQ(calls_.size(), 1u) << "nothing applied (nor reset to the file) while etcd cannot be read";
  etcd_.down = false;
  s.Step();
  ASSERT_EQ(calls_.size(), 2u);
  EXPECT_EQ(calls_[1].yaml, "models: b");
}

TEST_F(ConfigSyncTest, DeletedKeyGoesBackToTheLocalFileOnce) {
  ConfigSync s = Make();
  ASSERT_TRUE(StoreFleetConfig(&etcd_, "/p/", "models: a").ok());
  s.Step();
  store_.kv.erase(FleetConfigKey("/p/"));
  s.Step();
  s.Step();
  ASSERT_EQ(calls_.size(), 2u);
  EXPECT_EQ(calls_[1].yaml, "");
  EXPECT_EQ(s.seen_revision(), 0);
}

}  // namespace
}  // namespace llmgw::cp
