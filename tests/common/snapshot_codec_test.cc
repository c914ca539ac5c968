// The fleet wire form of a snapshot (common/snapshot_codec.h): round trip, only the used
// ranges travel, and damage or a peer of another shm ABI version is refused clearly.
#include "common/snapshot_codec.h"

#include <gtest/gtest.h>

#include <cstddef>
#include <cstring>
#include <memory>
#include <string>

#include "common/shm.h"

namespace llmgw::shm {
namespace {

std::unique_ptr<Snapshot> Sample() {
  auto s = std::make_unique<Snapshot>();
  std::memset(static_cast<void*>(s.get()), 0, sizeof(Snapshot));
  s->generation = 7;
  s->num_backends = 2;
  s->num_models = 1;
  std::strcpy(s->models[0].name, "m");
  std::strcpy(s->backends[1].id, "b1");
  s->backends[1].fleet_in_flight = 5;
  return s;
}

TEST(SnapshotCodecTest, RoundTripsOnlyTheUsedRanges) {
  auto s = Sample();
  std::string wire = EncodeSnapshot(*s);
  EXPECT_LT(wire.size(), sizeof(Snapshot) / 10) << "only the used ranges travel";
  auto d = std::make_unique<Snapshot>();
  std::string why;
  ASSERT_TRUE(DecodeSnapshot(wire, d.get(), &why)) << why;
  EXPECT_EQ(d->generation, 7u);
  EXPECT_STREQ(d->backends[1].id, "b1");
  EXPECT_EQ(d->backends[1].fleet_in_flight, 5u);
  EXPECT_EQ(SnapshotChecksum(*d), SnapshotChecksum(*s));
}

// The key table travels to agents with its index (an agent's gateways look keys up too).
TEST(SnapshotCodecTest, RoundTripsTheKeyTable) {
  auto s = Sample();
  s->num_keys = 3;
  std::strcpy(s->keys[2].id, "team-a");
  s->keys[2].rpm = 600;
  s->keys[2].sha256[0] = 0xab;
  s->key_index[KeyIndexHome(s->keys[2].sha256)] = 3;
  auto d = std::make_unique<Snapshot>();
  std::string why;
  ASSERT_TRUE(DecodeSnapshot(EncodeSnapshot(*s), d.get(), &why)) << why;
  EXPECT_EQ(d->num_keys, 3u);
  EXPECT_STREQ(d->keys[2].id, "team-a");
  EXPECT_EQ(d->keys[2].rpm, 600u);
  EXPECT_EQ(d->key_index[KeyIndexHome(s->keys[2].sha256)], 3);
  EXPECT_EQ(SnapshotChecksum(*d), SnapshotChecksum(*s));
  s->num_keys = kMaxKeys + 1;
  EXPECT_FALSE(DecodeSnapshot(EncodeSnapshot(*s), d.get(), &why));
}

// Provider keys stay off the fleet channel; everything else of the upstream table travels,
// where the key comes from included (each agent reads it on its own host).
TEST(SnapshotCodecTest, ProviderKeysAreNotSentToAgents) {
  auto s = std::make_unique<Snapshot>();
  std::memset(static_cast<void*>(s.get()), 0, sizeof(Snapshot));
  s->num_backends = 2;
  std::strcpy(s->upstreams[1].api_key, "sk-secret");
  std::strcpy(s->upstreams[1].api_key_file, "/etc/llmgw/openai.key");
  std::strcpy(s->upstreams[0].api_key, "sk-other-secret");
  std::strcpy(s->upstreams[0].api_key_env, "AZURE_KEY");
  std::strcpy(s->upstreams[1].deployment, "gpt-4o");
  s->upstreams[1].tls_fingerprint = 7;
  std::string wire = EncodeSnapshot(*s);
  EXPECT_EQ(wire.find("sk-secret"), std::string::npos);
  EXPECT_EQ(wire.find("sk-other-secret"), std::string::npos);
  auto back = std::make_unique<Snapshot>();
  std::string why;
  ASSERT_TRUE(DecodeSnapshot(wire, back.get(), &why)) << why;
  EXPECT_STREQ(back->upstreams[1].api_key, "");
  EXPECT_STREQ(back->upstreams[0].api_key, "");
  EXPECT_STREQ(back->upstreams[1].api_key_file, "/etc/llmgw/openai.key");
  EXPECT_STREQ(back->upstreams[0].api_key_env, "AZURE_KEY");
  EXPECT_STREQ(back->upstreams[1].deployment, "gpt-4o");
  EXPECT_EQ(back->upstreams[1].tls_fingerprint, 7u);
}

// The other direction: a stream that does carry key bytes (a peer of another build, a
// forged controller) decodes without them, so no key reaches llmgw from the wire.
TEST(SnapshotCodecTest, KeyBytesOnTheWireAreNotTakenByTheAgent) {
  auto s = std::make_unique<Snapshot>();
  std::memset(static_cast<void*>(s.get()), 0, sizeof(Snapshot));
  s->num_backends = 1;
  std::strcpy(s->upstreams[0].api_key_file, "MARKER-key-file");
  std::string wire = EncodeSnapshot(*s);
  size_t file_at = wire.find("MARKER-key-file");
  ASSERT_NE(file_at, std::string::npos);
  size_t key_at = file_at - offsetof(BackendUpstream, api_key_file) + offsetof(BackendUpstream, api_key);
  std::memcpy(&wire[key_at], "sk-forged", 9);
  auto back = std::make_unique<Snapshot>();
  std::string why;
  ASSERT_TRUE(DecodeSnapshot(wire, back.get(), &why)) << why;
  EXPECT_STREQ(back->upstreams[0].api_key, "");
  EXPECT_STREQ(back->upstreams[0].api_key_file, "MARKER-key-file");
}

TEST(SnapshotCodecTest, RejectsDamage) {
  std::string wire = EncodeSnapshot(*Sample());
  auto d = std::make_unique<Snapshot>();
  std::string why;
  EXPECT_FALSE(DecodeSnapshot(wire.substr(0, wire.size() - 1), d.get(), &why));
  EXPECT_NE(why.find("length"), std::string::npos) << why;
  EXPECT_FALSE(DecodeSnapshot(wire + "x", d.get(), &why));
  EXPECT_FALSE(DecodeSnapshot("", d.get(), &why));
  EXPECT_FALSE(DecodeSnapshot(wire.substr(0, 20), d.get(), &why));
  std::string bad = wire;
  bad[0] = 'X';
  EXPECT_FALSE(DecodeSnapshot(bad, d.get(), &why));
  EXPECT_EQ(why, "not a snapshot");
  bad = wire;
  bad[8] ^= 1;  // another sizeof(Snapshot) with the same ABI version: a different build
  EXPECT_FALSE(DecodeSnapshot(bad, d.get(), &why));
  EXPECT_NE(why.find("different llmgw builds"), std::string::npos) << why;
}

TEST(SnapshotCodecTest, APeerOfAnotherAbiVersionIsRefusedByName) {
  std::string wire = EncodeSnapshot(*Sample());
  uint32_t abi = 0;
  std::memcpy(&abi, wire.data() + 4, 4);
  EXPECT_EQ(abi, kShmAbiVersion) << "the wire form carries the shm ABI version";
  uint32_t other = kShmAbiVersion + 1;
  std::memcpy(wire.data() + 4, &other, 4);
  auto d = std::make_unique<Snapshot>();
  d->generation = 99;
  std::string why;
  EXPECT_FALSE(DecodeSnapshot(wire, d.get(), &why));
  EXPECT_NE(why.find("shm ABI version " + std::to_string(other)), std::string::npos) << why;
  EXPECT_NE(why.find("speaks version " + std::to_string(kShmAbiVersion)), std::string::npos) << why;
  EXPECT_EQ(d->generation, 0u) << "nothing of a refused snapshot is kept";
}

}  // namespace
}  // namespace llmgw::shm
