// KeyCache (dataplane/key_cache.h) and ApiKeyAuth with it: a verified secret is found again
// without the hash, a wrong one (even of the same length) never is, a secret cached under
// one snapshot is not trusted under the next (a revoked key, or its slot reused by another
// key, is refused at once), Clear forgets everything, and only known keys get cached.
#include "dataplane/key_cache.h"

#include <gtest/gtest.h>

#include <memory>
#include <string>

#include "common/config.h"
#include "common/sha256.h"
#include "common/snapshot_builder.h"
#include "dataplane/api_key_auth.h"

namespace llmgw::dataplane {
namespace {

constexpr const char* kSecretA = "sk-llmgw-cache-a-secret";
constexpr const char* kSecretB = "sk-llmgw-cache-b-secret";  // same length as A

std::unique_ptr<shm::Snapshot> Build(const std::string& keys_yaml, uint64_t generation) {
  std::string yaml =
      "auth: { required: true }\n"
      "models:\n"
      "  - { name: big, backends: [{ url: \"http://127.0.0.1:8001\" }] }\n"
      "keys:\n" +
      keys_yaml;
  ConfigResult r = ParseConfig(yaml, "t.yaml");
  EXPECT_TRUE(r.ok()) << r.ErrorText();
  auto s = std::make_unique<shm::Snapshot>();
  SlotAssigner slots;  // fresh: the first key listed gets slot 0 in every snapshot
  EXPECT_TRUE(BuildSnapshot(r.config, &slots, s.get()).ok());
  s->generation = generation;
  return s;
}

std::string Key(const char* id, const char* secret) {
  return std::string("  - { id: ") + id + ", key_sha256: \"" + Sha256Hex(secret) + "\" }\n";
}

PresentedKey Bearer(const char* secret) {
  PresentedKey k;
  k.OnHeader("Authorization", std::string("Bearer ") + secret);
  return k;
}

TEST(KeyCacheTest, HitMissAndWrongSecretOfTheSameLength) {
  KeyCache c;
  EXPECT_EQ(c.Find(1, kSecretA), -1);
  c.Insert(1, kSecretA, 3);
  EXPECT_EQ(c.Find(1, kSecretA), 3);
  EXPECT_EQ(c.Find(1, kSecretB), -1) << "same length, other bytes";
  EXPECT_EQ(c.Find(1, std::string(kSecretA) + "x"), -1) << "a longer secret with the cached one as prefix";
  EXPECT_EQ(c.Find(1, std::string(kSecretA).substr(0, 10)), -1) << "a prefix of the cached secret";
  EXPECT_EQ(c.Find(2, kSecretA), -1) << "another snapshot generation";
  EXPECT_EQ(c.Find(1, ""), -1);
}

TEST(KeyCacheTest, OldestEntryIsReplacedAndLongSecretsAreNotCached) {
  KeyCache c;
  std::string s[KeyCache::kEntries + 1];
  for (size_t i = 0; i <= KeyCache::kEntries; ++i) {
    s[i] = "sk-entry-" + std::to_string(i);
    c.Insert(7, s[i], static_cast<int>(i));
  }
  EXPECT_EQ(c.size(), KeyCache::kEntries);
  EXPECT_EQ(c.Find(7, s[0]), -1) << "the oldest was replaced";
  for (size_t i = 1; i <= KeyCache::kEntries; ++i) EXPECT_EQ(c.Find(7, s[i]), static_cast<int>(i));
  std::string long_secret(KeyCache::kMaxSecretBytes + 1, 'k');
  c.Insert(7, long_secret, 9);
  EXPECT_EQ(c.Find(7, long_secret), -1);
  c.Clear();
  EXPECT_EQ(c.size(), 0u);
  for (size_t i = 1; i <= KeyCache::kEntries; ++i) EXPECT_EQ(c.Find(7, s[i]), -1);
}

TEST(KeyCacheTest, AuthenticateCachesOnlyKnownKeys) {
  auto snap = Build(Key("a", kSecretA), 5);
  KeyCache c;
  using O = ApiKeyAuth::Outcome;
  EXPECT_EQ(ApiKeyAuth::Authenticate(*snap, Bearer(kSecretB), &c).outcome, O::kInvalid);
  EXPECT_EQ(c.size(), 0u) << "a wrong key is not remembered";
  auto r = ApiKeyAuth::Authenticate(*snap, Bearer(kSecretA), &c);
  ASSERT_EQ(r.outcome, O::kKey);
  EXPECT_EQ(c.size(), 1u);
  EXPECT_EQ(c.Find(5, kSecretA), r.slot);
  // Found again, from the cache, with the same answer.
  auto again = ApiKeyAuth::Authenticate(*snap, Bearer(kSecretA), &c);
  EXPECT_EQ(again.outcome, O::kKey);
  EXPECT_EQ(again.slot, r.slot);
}

// The cache must not outlive a revocation: key a is verified (and cached) in one snapshot;
// the next snapshot drops a and gives its slot to b. a must be refused at once (not
// answered as b's slot), and b found by its own hash.
TEST(KeyCacheTest, RevokedKeyIsRefusedAfterSnapshotChange) {
  using O = ApiKeyAuth::Outcome;
  KeyCache c;
  auto first = Build(Key("a", kSecretA), 10);
  auto a = ApiKeyAuth::Authenticate(*first, Bearer(kSecretA), &c);
  ASSERT_EQ(a.outcome, O::kKey);
  ASSERT_EQ(c.Find(10, kSecretA), a.slot);
  auto second = Build(Key("b", kSecretB), 11);
  ASSERT_EQ(FindKeySlot(*second, first->keys[a.slot].sha256), -1);
  ASSERT_TRUE(second->keys[a.slot].present) << "the test wants a's slot reused by b";
  auto r = ApiKeyAuth::Authenticate(*second, Bearer(kSecretA), &c);
  EXPECT_EQ(r.outcome, O::kInvalid) << "revoked key a accepted from the cache (slot " << r.slot << ")";
  EXPECT_EQ(ApiKeyAuth::Authenticate(*second, Bearer(kSecretB), &c).outcome, O::kKey);
}

}  // namespace
}  // namespace llmgw::dataplane
