// Config -> Snapshot: slots are stable across reloads, fields and limits are copied,
// fallbacks point at model slots, bad hosts are reported.
#include "common/snapshot_builder.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>

#include <memory>

namespace llmgw {
namespace {

Config Parse(const char* yaml) {
  ConfigResult r = ParseConfig(yaml, "t.yaml");
  EXPECT_TRUE(r.ok()) << r.ErrorText();
  return r.config;
}

TEST(SnapshotBuilderTest, CopiesModelsBackendsAndLimits) {
  Config c = Parse(R"(
gateway: { retries: { max: 3 } }
models:
  - name: big
    aliases: [default, b]
    policy: prefix_affinity
    fallbacks: [small]
    backends:
      - { id: gpu-1, url: "http://127.0.0.1:8001", max_concurrent: 8, weight: 2 }
  - name: small
    backends:
      - { url: "http://127.0.0.1:8002/base" }
)");
  SlotAssigner slots;
  auto s = std::make_unique<shm::Snapshot>();
  ASSERT_TRUE(BuildSnapshot(c, &slots, s.get()).ok());
  EXPECT_EQ(s->num_models, 2u);
  EXPECT_EQ(s->num_backends, 2u);
  EXPECT_EQ(s->limits.retries_max, 3u);
  EXPECT_STREQ(s->models[0].name, "big");
  EXPECT_EQ(s->models[0].num_aliases, 2);
  EXPECT_STREQ(s->models[0].aliases[1], "b");
  EXPECT_EQ(s->models[0].policy, static_cast<uint8_t>(Policy::kPrefixAffinity));
  EXPECT_EQ(s->models[0].num_fallbacks, 1);
  EXPECT_EQ(s->models[0].fallbacks[0], 1);
  const auto& b0 = s->backends[0];
  EXPECT_STREQ(b0.id, "gpu-1");
  EXPECT_EQ(b0.port, 8001);
  EXPECT_EQ(b0.family, AF_INET);
  EXPECT_EQ(b0.addr[0], 127);
  EXPECT_EQ(b0.max_concurrent, 8u);
  EXPECT_FLOAT_EQ(b0.weight, 2.0f);
  EXPECT_EQ(b0.key, BackendKey("gpu-1"));
  EXPECT_EQ(b0.state, static_cast<uint8_t>(shm::BackendState::kHealthy));
  EXPECT_STREQ(s->backends[1].base_path, "/base");
  EXPECT_STREQ(s->backends[1].host_header, "127.0.0.1:8002");
  EXPECT_EQ(s->backends[1].model_slot, 1);
}

TEST(SnapshotBuilderTest, SlotsStayStableAcrossReloads) {
  SlotAssigner slots;
  auto s = std::make_unique<shm::Snapshot>();
  Config a = Parse(R"(
models:
  - name: m
    backends: [{url: "http://127.0.0.1:1"}, {url: "http://127.0.0.1:2"}, {url: "http://127.0.0.1:3"}]
)");
  ASSERT_TRUE(BuildSnapshot(a, &slots, s.get()).ok());
  EXPECT_STREQ(s->backends[2].url, "http://127.0.0.1:3");
  // Remove the first backend and add a new one: :2 and :3 keep their slots.
  Config b = Parse(R"(
models:
  - name: m
    backends: [{url: "http://127.0.0.1:2"}, {url: "http://127.0.0.1:3"}, {url: "http://127.0.0.1:4"}]
)");
  ASSERT_TRUE(BuildSnapshot(b, &slots, s.get()).ok());
  EXPECT_STREQ(s->backends[1].url, "http://127.0.0.1:2");
  EXPECT_STREQ(s->backends[2].url, "http://127.0.0.1:3");
  // The new backend does not take the slot freed in this same reload (requests to the
  // removed backend may still be in flight there); it gets a fresh one.
  EXPECT_STREQ(s->backends[3].url, "http://127.0.0.1:4");
  EXPECT_EQ(s->backends[0].state, static_cast<uint8_t>(shm::BackendState::kEmpty));
  // A later reload may reuse it.
  Config c = Parse(R"(
models:
  - name: m
    backends: [{url: "http://127.0.0.1:2"}, {url: "http://127.0.0.1:3"}, {url: "http://127.0.0.1:4"}, {url: "http://127.0.0.1:5"}]
)");
  ASSERT_TRUE(BuildSnapshot(c, &slots, s.get()).ok());
  EXPECT_STREQ(s->backends[0].url, "http://127.0.0.1:5");
}

TEST(SnapshotBuilderTest, UnresolvableHostIsAnError) {
  Config c = Parse("models:\n  - name: m\n    backends: [{url: \"http://no-such-host.invalid:1\"}]\n");
  SlotAssigner slots;
  auto s = std::make_unique<shm::Snapshot>();
  Status st = BuildSnapshot(c, &slots, s.get());
  ASSERT_FALSE(st.ok());
  EXPECT_NE(std::string(st.error().message()).find("no-such-host.invalid"), std::string::npos);
}

}  // namespace
}  // namespace llmgw
