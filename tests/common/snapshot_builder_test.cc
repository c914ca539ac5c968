// Config -> Snapshot: slots are stable across reloads, fields and limits are copied,
// fallbacks point at model slots, bad hosts are reported, names go through the injected
// resolver (a fake here: no test resolves a name or sends a DNS query).
#include "common/snapshot_builder.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>

#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <variant>
#include <vector>

#include "common/config_keys.h"

namespace llmgw {
namespace {

Config Parse(const char* yaml) {
  ConfigResult r = ParseConfig(yaml, "t.yaml");
  EXPECT_TRUE(r.ok()) << r.ErrorText();
  return r.config;
}

// Issue 13: what the data plane needs to reach a hosted or https backend is published
// by slot: provider, key, parameters, TLS settings and a fingerprint that changes with them.
TEST(SnapshotBuilderTest, PublishesProviderKeyAndTlsSettingsBySlot) {
  const char* yaml = R"(
models:
  - name: m
    backends:
      - { id: az, url: "https://127.0.0.1:8443", provider: azure, api_key_env: K, deployment: gpt-4o,
          api_version: "2024-10-21", upstream_model: gpt-4o-mini,
          tls: { ca_file: /etc/ca.pem, server_name: res.openai.azure.com } }
      - { id: plain, url: "http://127.0.0.1:8001" }
)";
  Config c = Parse(yaml);
  c.models[0].backends[0].api_key = "az-secret";
  SlotAssigner slots;
  auto s = std::make_unique<shm::Snapshot>();
  ASSERT_TRUE(BuildSnapshot(c, &slots, s.get()).ok());
  int az = slots.BackendSlot("az"), plain = slots.BackendSlot("plain");
  EXPECT_EQ(s->backends[az].tls, 1);
  EXPECT_EQ(s->backends[az].provider, 2);  // providers::ProviderKind::kAzure
  EXPECT_EQ(s->backends[az].port, 8443);
  const shm::BackendUpstream& u = s->upstreams[az];
  EXPECT_STREQ(u.api_key, "az-secret");
  EXPECT_STREQ(u.deployment, "gpt-4o");
  EXPECT_STREQ(u.api_version, "2024-10-21");
  EXPECT_STREQ(u.upstream_model, "gpt-4o-mini");
  EXPECT_STREQ(u.server_name, "res.openai.azure.com");
  EXPECT_STREQ(u.ca_file, "/etc/ca.pem");
  EXPECT_EQ(u.tls_verify, 1);
  EXPECT_NE(u.tls_fingerprint, 0u);
  EXPECT_EQ(s->backends[plain].tls, 0);
  EXPECT_EQ(s->backends[plain].provider, 0);
  EXPECT_EQ(s->upstreams[plain].tls_fingerprint, 0u);

  uint64_t before = u.tls_fingerprint;
  c.models[0].backends[0].tls.ca_file = "/etc/other.pem";
  ASSERT_TRUE(BuildSnapshot(c, &slots, s.get()).ok());
  EXPECT_NE(s->upstreams[az].tls_fingerprint, before);
  c.models[0].backends[0].tls.ca_file = "/etc/ca.pem";
  c.models[0].backends[0].api_key = "rotated";  // a new key is not a new TLS context
  ASSERT_TRUE(BuildSnapshot(c, &slots, s.get()).ok());
  EXPECT_EQ(s->upstreams[az].tls_fingerprint, before);
  EXPECT_STREQ(s->upstreams[az].api_key, "rotated");
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

// A fake resolver: names in `table` resolve, anything else fails; it records the calls.
struct FakeResolver {
  std::map<std::string, ResolvedAddr> table;
  std::vector<std::string> calls;
  Resolver Get() {
    return [this](const std::string& host, uint16_t port, ResolvedAddr* out, std::string* why) {
      calls.push_back(host + ":" + std::to_string(port));
      auto it = table.find(host);
      if (it == table.end()) {
        *why = "Name or service not known";
        return false;
      }
      *out = it->second;
      return true;
    };
  }
};

TEST(SnapshotBuilderTest, UnresolvableHostIsAnError) {
  Config c = Parse("models:\n  - name: m\n    backends: [{url: \"http://no-such-host.invalid:1\"}]\n");
  SlotAssigner slots;
  auto s = std::make_unique<shm::Snapshot>();
  FakeResolver fake;
  Status st = BuildSnapshot(c, &slots, s.get(), fake.Get());
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(std::string(st.error().message()),
            "cannot resolve backend host 'no-such-host.invalid': Name or service not known");
  EXPECT_EQ(fake.calls, std::vector<std::string>{"no-such-host.invalid:1"});
}

TEST(SnapshotBuilderTest, NamesAreResolvedThroughTheInjectedResolver) {
  Config c = Parse(R"(
models:
  - name: m
    backends:
      - { id: a, url: "http://gpu-a.test:8001" }
      - { id: b, url: "http://gpu-b.test:8002" }
)");
  FakeResolver fake;
  ResolvedAddr v4;
  v4.family = AF_INET;
  v4.addr[0] = 10, v4.addr[3] = 7;
  ResolvedAddr v6;
  v6.family = AF_INET6;
  v6.addr[0] = 0xfd, v6.addr[15] = 1;
  fake.table = {{"gpu-a.test", v4}, {"gpu-b.test", v6}};
  SlotAssigner slots;
  auto s = std::make_unique<shm::Snapshot>();
  ASSERT_TRUE(BuildSnapshot(c, &slots, s.get(), fake.Get()).ok());
  EXPECT_EQ(fake.calls, (std::vector<std::string>{"gpu-a.test:8001", "gpu-b.test:8002"}));
  EXPECT_EQ(s->backends[0].family, AF_INET);
  EXPECT_EQ(s->backends[0].addr[0], 10);
  EXPECT_EQ(s->backends[0].addr[3], 7);
  EXPECT_EQ(s->backends[1].family, AF_INET6);
  EXPECT_EQ(s->backends[1].addr[0], 0xfd);
  EXPECT_EQ(s->backends[1].addr[15], 1);
  EXPECT_STREQ(s->backends[0].host_header, "gpu-a.test:8001");
}

// The system resolver turns IP literals into addresses without a lookup (the other tests
// here use only literals or the fake, so no test sends a DNS query).
TEST(SnapshotBuilderTest, SystemResolverTakesLiteralsWithoutLookup) {
  ResolvedAddr a;
  std::string why;
  ASSERT_TRUE(SystemResolve("127.0.0.1", 80, &a, &why)) << why;
  EXPECT_EQ(a.family, AF_INET);
  EXPECT_EQ(a.addr[0], 127);
  EXPECT_EQ(a.addr[3], 1);
  ASSERT_TRUE(SystemResolve("::1", 80, &a, &why)) << why;
  EXPECT_EQ(a.family, AF_INET6);
  EXPECT_EQ(a.addr[15], 1);
}

// The `applies` column of the key table, checked against what the data plane receives on
// reload: a gateway.* or routing.* key marked `reload` must change the snapshot's limits
// (llmgw reads nothing else from llmcd). (The reverse does not hold: the admission queue
// settings are copied into the limits but llmgw sizes its queue at start, so they are
// marked `restart llmgw`.)
TEST(SnapshotBuilderTest, ReloadableGatewayKeysReachTheSnapshotLimits) {
  const std::string models = "models:\n  - name: m\n    backends: [{url: \"http://127.0.0.1:1\"}]\n";
  SlotAssigner slots;
  auto base = std::make_unique<shm::Snapshot>();
  ASSERT_TRUE(BuildSnapshot(Parse(models.c_str()), &slots, base.get()).ok());
  int checked = 0;
  for (const auto& k : ConfigKeys()) {
    std::string path(k.path);
    if (path.rfind("gateway.", 0) != 0 && path.rfind("routing.", 0) != 0) continue;
    if (k.applies != Applies::kReload) continue;
    Config c = Parse(models.c_str());
    FieldPtr f = k.field(c);
    // Change the value in place (bounds do not matter: the parser is not involved).
    if (auto* u = std::get_if<uint32_t*>(&f)) **u += 3;
    else if (auto* u64 = std::get_if<uint64_t*>(&f)) **u64 += 3;
    else if (auto* d = std::get_if<double*>(&f)) **d += 0.25;
    else if (auto* b = std::get_if<bool*>(&f)) **b = !**b;
    else if (auto* str = std::get_if<std::string*>(&f)) **str += "-x";
    else continue;
    auto s = std::make_unique<shm::Snapshot>();
    ASSERT_TRUE(BuildSnapshot(c, &slots, s.get()).ok()) << path;
    EXPECT_NE(std::memcmp(&s->limits, &base->limits, sizeof(shm::Limits)), 0)
        << path << " is marked reload but does not reach llmgw";
    ++checked;
  }
  EXPECT_EQ(checked, 18);
}

}  // namespace
}  // namespace llmgw

namespace llmgw {
namespace {

std::string Hex(uint8_t fill, uint8_t first) {
  static const char* d = "0123456789abcdef";
  std::string h;
  for (int i = 0; i < 32; ++i) {
    uint8_t b = i == 0 ? first : fill;
    h += d[b >> 4];
    h += d[b & 15];
  }
  return h;
}

// Keys, their allow-lists as model-slot masks, their limits, the global and per-model /
// per-backend rates, and the hash index the data plane looks keys up in.
TEST(SnapshotBuilderTest, CarriesTheKeyTableAndTheLimits) {
  // Two keys whose hashes share a home slot in the index (same first 8 bytes but one):
  // the second is found by probing.
  std::string h1 = Hex(0x11, 0x01), h2 = Hex(0x11, 0x01);
  h2[63] = '2';
  std::string yaml = R"(
auth: { required: true }
limits: { global: { rps: 50 } }
models:
  - name: big
    aliases: [default]
    rps: 20
    backends: [{ id: gpu-1, url: "http://127.0.0.1:8001", rps: 7 }]
  - name: small
    backends: [{ url: "http://127.0.0.1:8002" }]
keys:
  - { id: team-a, key_sha256: ")" + h1 + R"(", models: [default], priority: 9,
      limits: { rpm: 600, tpm: 200000, max_concurrent: 16 } }
  - { id: team-b, key_sha256: ")" + h2 + R"(" }
)";
  Config c = Parse(yaml.c_str());
  SlotAssigner slots;
  auto s = std::make_unique<shm::Snapshot>();
  ASSERT_TRUE(BuildSnapshot(c, &slots, s.get()).ok());
  EXPECT_EQ(s->limits.global_rps, 50u);
  EXPECT_EQ(s->limits.global_burst, 50u);  // burst 0 = rps
  EXPECT_EQ(s->limits.auth_required, 1u);
  EXPECT_EQ(s->models[0].rps, 20u);
  EXPECT_EQ(s->backends[0].rps, 7u);
  ASSERT_EQ(s->num_keys, 2u);
  const shm::KeyEntry& a = s->keys[0];
  EXPECT_STREQ(a.id, "team-a");
  EXPECT_EQ(a.id_hash, BackendKey("team-a"));
  EXPECT_EQ(a.models, uint64_t{1} << 0);  // `default` is an alias of big (slot 0)
  EXPECT_EQ(a.priority, 9);
  EXPECT_EQ(a.rpm, 600u);
  EXPECT_EQ(a.tpm, 200000u);
  EXPECT_EQ(a.max_concurrent, 16u);
  EXPECT_EQ(s->keys[1].models, ~uint64_t{0});
  EXPECT_EQ(s->keys[1].priority, kDefaultClientPriority);

  uint8_t sha[32];
  std::memset(sha, 0x11, sizeof sha);
  sha[0] = 0x01;
  EXPECT_EQ(FindKeySlot(*s, sha), 0);
  sha[31] = 0x12;
  EXPECT_EQ(FindKeySlot(*s, sha), 1);
  sha[31] = 0x13;
  EXPECT_EQ(FindKeySlot(*s, sha), -1);

  // A reload that drops team-a keeps team-b in its slot (stats rows and leases stay its).
  std::string yaml2 = R"(
models:
  - name: big
    backends: [{ id: gpu-1, url: "http://127.0.0.1:8001" }]
keys:
  - { id: team-c, key_sha256: ")" + Hex(0x33, 0x33) + R"(" }
  - { id: team-b, key_sha256: ")" + h2 + R"(" }
)";
  ASSERT_TRUE(BuildSnapshot(Parse(yaml2.c_str()), &slots, s.get()).ok());
  EXPECT_STREQ(s->keys[1].id, "team-b");
  EXPECT_EQ(FindKeySlot(*s, sha), -1);
  sha[31] = 0x12;
  EXPECT_EQ(FindKeySlot(*s, sha), 1);
  EXPECT_EQ(s->keys[0].present, 0) << "team-a's slot is not handed out in the reload that freed it";
  EXPECT_STREQ(s->keys[2].id, "team-c");
  EXPECT_EQ(s->num_keys, 3u);
}

}  // namespace
}  // namespace llmgw
