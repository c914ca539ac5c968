// Client API keys in llmcd (controlplane/controller_keys.cc): AddKey makes a secret,
// stores only its SHA-256 in auth.keys_file and reloads, so the published snapshot knows
// the key at once; RevokeKey takes it out the same way; keys inline in the config, unknown
// models and duplicate ids are refused with the right kind of answer. And the leases: the
// controller's quota leaser, through real shared memory, gives a data-plane thread
// (ThreadLimiter on a claimed stats slot) a lease within a key's limit. In a fleet, the
// keys view adds the agents' reported use to this host's.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <memory>
#include <string>

#include "common/sha256.h"
#include "common/shm.h"
#include "common/snapshot_builder.h"
#include "controlplane/controller.h"
#include "dataplane/thread_limiter.h"
#include "test_support.h"

namespace llmgw::cp {
namespace {

class ControllerKeysTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/llmgw-ckeys-XXXXXX";
    dir_ = mkdtemp(tmpl);
    instance_ = "ckeys-" + std::to_string(getpid()) + "-" + std::to_string(++count_);
  }
  void TearDown() override {
    if (slot_) shm::ReleaseStatsSlot(slot_);
    if (c_) c_->Shutdown();
    if (shm_) shm_->Close();
    std::system(("rm -rf " + dir_).c_str());
  }
  // Starts llmcd's controller on a config in dir_ (extra: more YAML), keys file beside it.
  void Start(const std::string& extra, const std::string& keys_file_text = "keys: []\n") {
    if (!keys_file_text.empty()) test::WriteFileAtomically(dir_ + "/keys.yaml", keys_file_text);
    std::string yaml = "instance: " + instance_ +
                       "\ncontrol: { tick_ms: 20, heartbeat_ms: 100 }\n"
                       "health: { scrape_metrics: false }\n" +
                       extra +
                       "models:\n"
                       "  - { name: llama, aliases: [default], backends: [{ url: \"http://127.0.0.1:9\" }] }\n"
                       "  - { name: qwen, backends: [{ url: \"http://127.0.0.1:10\" }] }\n";
    test::WriteFileAtomically(dir_ + "/gw.yaml", yaml);
    ControllerOptions o;
    o.clock_ms = [this] { return now_ms_; };
    o.worker_threads = 0;
    o.prober = nullptr;
    c_ = std::make_unique<Controller>(o);
    ASSERT_TRUE(c_->Start(dir_ + "/gw.yaml").ok());
    auto obj = shm::ShmObject::Open("/llmgw-" + instance_);
    ASSERT_TRUE(obj.ok());
    shm_ = std::move(obj.value());
  }
  void Step(uint64_t ms = 100) {
    now_ms_ += ms;
    c_->Tick();
  }
  // A data-plane thread: stats slot 0 claimed in the controller's shm and lim_ attached to
  // its lease, refreshed after two ticks gave it one. TearDown releases the slot.
  void AttachThread() {
    Error err;
    slot_ = shm::ClaimStatsSlot(shm_->region(), 0, &err);
    ASSERT_NE(slot_, nullptr);
    uint32_t index = static_cast<uint32_t>(slot_ - shm_->region()->slots);
    lim_.Attach(slot_->limiter_use, &shm_->region()->leases[index], &slot_->lease_seen);
    Step();
    Step();
    lim_.Refresh();
  }
  // The key slot the published snapshot finds for secret, or -1.
  int PublishedSlot(const std::string& secret) {
    Step();
    shm::SnapshotReader reader(shm_->region());
    auto snap = std::make_unique<shm::Snapshot>();
    EXPECT_TRUE(reader.Refresh(snap.get()));
    uint8_t d[kSha256Bytes];
    Sha256(secret, d);
    return FindKeySlot(*snap, d);
  }

  static inline int count_ = 0;
  std::string dir_, instance_;
  uint64_t now_ms_ = 1'000'000;
  std::unique_ptr<Controller> c_;
  std::unique_ptr<shm::ShmObject> shm_;
  shm::StatsSlot* slot_ = nullptr;
  dataplane::ThreadLimiter lim_;
};

TEST_F(ControllerKeysTest, AddedKeyIsLiveAtOnceAndOnlyItsHashIsStored) {
  Start("auth: { required: true, keys_file: keys.yaml }\n");
  KeyConfig k;
  k.id = "team-a";
  k.models = {"default"};
  k.priority = 8;
  k.limits.rpm = 600;
  KeyEditResult r = c_->AddKey(k);
  ASSERT_EQ(r.code, KeyEditResult::kOk) << r.error;
  EXPECT_EQ(r.secret.rfind("sk-llmgw-", 0), 0u);
  EXPECT_GE(r.secret.size(), 9u + 43u);
  std::string file = test::ReadFile(dir_ + "/keys.yaml");
  EXPECT_NE(file.find(Sha256Hex(r.secret)), std::string::npos) << file;
  EXPECT_EQ(file.find(r.secret), std::string::npos) << "the secret itself must not be stored";
  EXPECT_EQ(r.key.id, "team-a");
  EXPECT_TRUE(r.key.in_keys_file);
  EXPECT_EQ(r.key.rpm, 600u);
  EXPECT_GE(PublishedSlot(r.secret), 0);

  KeysView v = c_->ListKeys();
  ASSERT_EQ(v.keys.size(), 1u);
  EXPECT_EQ(v.keys[0].models, std::vector<std::string>{"default"});
  EXPECT_EQ(v.keys[0].priority, 8u);
  EXPECT_EQ(v.keys[0].key_sha256_prefix, Sha256Hex(r.secret).substr(0, 12));
  EXPECT_TRUE(v.auth_required);

  // Two secrets are never the same.
  KeyConfig k2;
  k2.id = "team-b";
  KeyEditResult r2 = c_->AddKey(k2);
  ASSERT_EQ(r2.code, KeyEditResult::kOk) << r2.error;
  EXPECT_NE(r2.secret, r.secret);
  EXPECT_EQ(c_->ListKeys().keys.size(), 2u);
}

TEST_F(ControllerKeysTest, RevokedKeyLeavesTheSnapshot) {
  Start("auth: { keys_file: keys.yaml }\n");
  KeyConfig k;
  k.id = "temp";
  KeyEditResult added = c_->AddKey(k);
  ASSERT_EQ(added.code, KeyEditResult::kOk) << added.error;
  ASSERT_GE(PublishedSlot(added.secret), 0);
  KeyEditResult r = c_->RevokeKey("temp");
  ASSERT_EQ(r.code, KeyEditResult::kOk) << r.error;
  EXPECT_GT(r.config_version, added.config_version);
  EXPECT_EQ(PublishedSlot(added.secret), -1);
  EXPECT_TRUE(c_->ListKeys().keys.empty());
  EXPECT_EQ(c_->RevokeKey("temp").code, KeyEditResult::kNotFound);
}

TEST_F(ControllerKeysTest, RefusalsSayWhy) {
  Start("auth: { keys_file: keys.yaml }\nkeys: [{ id: inline, key_sha256: \"" + std::string(64, 'a') + "\" }]\n");
  KeyConfig k;
  k.id = "inline";
  EXPECT_EQ(c_->AddKey(k).code, KeyEditResult::kExists);
  k.id = "bad id";
  EXPECT_EQ(c_->AddKey(k).code, KeyEditResult::kInvalid);
  k.id = "anonymous";
  EXPECT_EQ(c_->AddKey(k).code, KeyEditResult::kInvalid);
  k.id = "x";
  k.models = {"lama"};
  KeyEditResult r = c_->AddKey(k);
  EXPECT_EQ(r.code, KeyEditResult::kInvalid);
  EXPECT_NE(r.error.find("did you mean 'llama'"), std::string::npos) << r.error;
  r = c_->RevokeKey("inline");
  EXPECT_EQ(r.code, KeyEditResult::kPrecondition);
  EXPECT_NE(r.error.find("gw.yaml"), std::string::npos) << r.error;
  EXPECT_EQ(test::ReadFile(dir_ + "/keys.yaml"), "keys: []\n") << "a refused add writes nothing";
}

TEST_F(ControllerKeysTest, WithoutAKeysFileAddIsAPreconditionFailure) {
  Start("", "");
  KeyConfig k;
  k.id = "a";
  KeyEditResult r = c_->AddKey(k);
  EXPECT_EQ(r.code, KeyEditResult::kPrecondition);
  EXPECT_NE(r.error.find("auth.keys_file"), std::string::npos) << r.error;
}

// The controller's leaser hands a data-plane thread a lease for a key's rpm through the
// shared memory, within the limit, and more as the bucket refills.
TEST_F(ControllerKeysTest, ThreadsGetLeasesWithinTheKeysLimit) {
  Start("keys: [{ id: k, key_sha256: \"" + std::string(64, 'b') + "\", limits: { rpm: 60, max_concurrent: 4 } }]\n");
  AttachThread();
  if (HasFatalFailure()) return;
  dataplane::ThreadLimiter& lim = lim_;
  const uint32_t rpm = shm::LimiterIndex(shm::LimitKind::kKeyRpm, 0);
  const uint32_t conc = shm::LimiterIndex(shm::LimitKind::kKeyConcurrency, 0);
  EXPECT_GT(lim.grant(rpm), 0u);
  EXPECT_LE(lim.grant(rpm), 60u);
  EXPECT_EQ(lim.grant(conc), 4u) << "the only live thread gets the whole concurrency limit";
  // Hammer it for 30 s of controller time: the thread admits at most 60 + 30 (bucket + refill).
  uint64_t admitted = 0;
  for (int tick = 0; tick < 300; ++tick) {
    lim.Refresh();
    for (int i = 0; i < 5; ++i) admitted += lim.Admit({{rpm, dataplane::ThreadLimiter::Mode::kTake}}) < 0;
    Step();
  }
  EXPECT_LE(admitted, 60u + 30u);
  EXPECT_GE(admitted, static_cast<uint64_t>(0.95 * (60 + 30) - 1));
  KeysView v = c_->ListKeys();
  ASSERT_EQ(v.keys.size(), 1u);
  EXPECT_EQ(v.keys[0].requests_total, 1500u);
  EXPECT_EQ(v.keys[0].rejected_total, 1500u - admitted);
}

// In a fleet, `llmctl keys list` on the controller counts every gateway's use of a key:
// this host's threads plus what each agent reported (AgentStats.limiter_use), matched by
// limiter and the key's id hash (a report for another key that had the slot before a
// reload is not counted). A gone agent's requests in flight stop counting; its counters stay.
TEST_F(ControllerKeysTest, KeysListCountsTheAgentsReportedUse) {
  Start("keys: [{ id: k, key_sha256: \"" + std::string(64, 'b') + "\", limits: { rpm: 600, tpm: 100000, max_concurrent: 8 } }]\n");
  AttachThread();
  if (HasFatalFailure()) return;
  dataplane::ThreadLimiter& lim = lim_;
  const uint32_t rpm = shm::LimiterIndex(shm::LimitKind::kKeyRpm, 0);
  const uint32_t tpm = shm::LimiterIndex(shm::LimitKind::kKeyTpm, 0);
  const uint32_t conc = shm::LimiterIndex(shm::LimitKind::kKeyConcurrency, 0);
  // This host: 3 requests, one still in flight.
  for (int i = 0; i < 3; ++i) ASSERT_LT(lim.Admit({{rpm, dataplane::ThreadLimiter::Mode::kTake}}), 0);
  ASSERT_LT(lim.Admit({{conc, dataplane::ThreadLimiter::Mode::kEnter}}), 0);
  lim.Charge(tpm, 50);
  const uint64_t id = BackendKey("k");
  auto agent = [&](uint64_t requests, uint64_t refused, uint64_t tokens, uint64_t in_flight) {
    return std::vector<HostUse>{{rpm, id, requests - refused, refused, requests},
                                {tpm, id, tokens, 0, requests - refused},
                                {conc, id, in_flight, 0, requests - refused},
                                // Another key's counters in the same slot: never counted.
                                {rpm, id + 1, 1000, 1000, 1000}};
  };
  c_->ReportLimiterUse("gw-a", agent(10, 2, 400, 2));
  c_->ReportLimiterUse("gw-b", agent(5, 0, 100, 1));
  Step(1000);
  KeysView v = c_->ListKeys();
  ASSERT_EQ(v.keys.size(), 1u);
  EXPECT_EQ(v.keys[0].requests_total, 3u + 10 + 5);
  EXPECT_EQ(v.keys[0].rejected_total, 2u);
  EXPECT_EQ(v.keys[0].in_flight, 1u + 2 + 1);
  // The last minute's figures move with the agents' reports too.
  c_->ReportLimiterUse("gw-a", agent(30, 2, 1400, 2));
  Step(1000);
  v = c_->ListKeys();
  EXPECT_EQ(v.keys[0].requests_total, 3u + 30 + 5);
  EXPECT_GE(v.keys[0].requests_last_minute, 20.0);
  EXPECT_GE(v.keys[0].tokens_last_minute, 1000.0);
  c_->GatewayGone("gw-a");
  v = c_->ListKeys();
  EXPECT_EQ(v.keys[0].in_flight, 1u + 1) << "gw-a's requests in flight went with it";
  EXPECT_EQ(v.keys[0].requests_total, 3u + 30 + 5) << "what gw-a counted stays counted";
}

}  // namespace
}  // namespace llmgw::cp
