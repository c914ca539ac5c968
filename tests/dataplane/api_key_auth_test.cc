// Client API keys on the data plane (dataplane/api_key_auth.h): which header carries the
// key, who the request is for every combination of key / no key / auth.required / keys
// configured, the model allow-list (aliases included), and no heap allocation per lookup.
#include "dataplane/api_key_auth.h"

#include <gtest/gtest.h>

#include <openssl/crypto.h>

#include <atomic>
#include <cstddef>
#include <cstdlib>
#include <new>
#include <memory>
#include <string>

#include "common/config.h"
#include "common/snapshot_builder.h"

// Counts every allocation: operator new, and OpenSSL's through CRYPTO_set_mem_functions
// (installed before OpenSSL allocates anything), so the lookup can be shown to make none.
// OpenSSL 3's one-shot SHA256() made three per call (an EVP fetch and context);
// common/sha256.h avoids it. Not by interposing malloc: ASan and TSan own malloc, and a
// test binary that replaces it dies at start under them (CI's sanitizer job).
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
namespace {
std::atomic<size_t> g_allocs{0};
void* SslMalloc(size_t n, const char*, int) {
  g_allocs.fetch_add(1, std::memory_order_relaxed);
  return std::malloc(n);
}
void* SslRealloc(void* p, size_t n, const char*, int) {
  g_allocs.fetch_add(1, std::memory_order_relaxed);
  return std::realloc(p, n);
}
void SslFree(void* p, const char*, int) { std::free(p); }
const bool g_ssl_counted = CRYPTO_set_mem_functions(SslMalloc, SslRealloc, SslFree) == 1;
}  // namespace
void* operator new(size_t n) {
  g_allocs.fetch_add(1, std::memory_order_relaxed);
  void* p = std::malloc(n ? n : 1);
  if (!p) throw std::bad_alloc();
  return p;
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, size_t) noexcept { std::free(p); }

namespace llmgw::dataplane {
namespace {

constexpr const char* kSecretA = "sk-llmgw-team-a-secret";
constexpr const char* kSecretB = "sk-llmgw-team-b-secret";

std::unique_ptr<shm::Snapshot> Build(const std::string& extra, bool with_keys = true) {
  std::string yaml = extra +
                     "models:\n"
                     "  - { name: big, aliases: [default], backends: [{ url: \"http://127.0.0.1:8001\" }] }\n"
                     "  - { name: small, backends: [{ url: \"http://127.0.0.1:8002\" }] }\n";
  if (with_keys)
    yaml += "keys:\n"
            "  - { id: team-a, key_sha256: \"" + Sha256Hex(kSecretA) + "\", models: [default] }\n"
            "  - { id: team-b, key_sha256: \"" + Sha256Hex(kSecretB) + "\" }\n";
  ConfigResult r = ParseConfig(yaml, "t.yaml");
  EXPECT_TRUE(r.ok()) << r.ErrorText();
  auto s = std::make_unique<shm::Snapshot>();
  SlotAssigner slots;
  EXPECT_TRUE(BuildSnapshot(r.config, &slots, s.get()).ok());
  return s;
}

PresentedKey Key(std::string_view name, std::string_view value) {
  PresentedKey k;
  k.OnHeader(name, value);
  return k;
}

TEST(ApiKeyAuthTest, KeyHeaders) {
  EXPECT_EQ(Key("Authorization", "Bearer abc").secret(), "abc");
  EXPECT_EQ(Key("authorization", "bearer   abc  ").secret(), "abc");
  EXPECT_EQ(Key("api-key", "abc").secret(), "abc");
  EXPECT_EQ(Key("X-Api-Key", "abc").secret(), "abc");
  EXPECT_FALSE(Key("Authorization", "Basic dXNlcjpwYXNz").present());
  EXPECT_FALSE(Key("x-api-keys", "abc").present());
  EXPECT_TRUE(Key("Authorization", "Bearer ").present());
  EXPECT_EQ(Key("Authorization", "Bearer ").secret(), "");
  // Authorization wins, whatever the order.
  PresentedKey k;
  k.OnHeader("x-api-key", "anthropic");
  k.OnHeader("authorization", "Bearer openai");
  k.OnHeader("api-key", "azure");
  EXPECT_EQ(k.secret(), "openai");
  k.Clear();
  EXPECT_FALSE(k.present());
  EXPECT_TRUE(IsClientCredential("Authorization"));
  EXPECT_TRUE(IsClientCredential("API-KEY"));
  EXPECT_TRUE(IsClientCredential("x-api-key"));
  EXPECT_FALSE(IsClientCredential("x-request-id"));
}

TEST(ApiKeyAuthTest, WhoTheRequestIs) {
  using O = ApiKeyAuth::Outcome;
  auto keys = Build("auth: { required: true }\n");
  auto r = ApiKeyAuth::Authenticate(*keys, Key("Authorization", std::string("Bearer ") + kSecretB));
  EXPECT_EQ(r.outcome, O::kKey);
  EXPECT_STREQ(keys->keys[r.slot].id, "team-b");
  r = ApiKeyAuth::Authenticate(*keys, Key("x-api-key", kSecretA));
  EXPECT_EQ(r.outcome, O::kKey);
  EXPECT_STREQ(keys->keys[r.slot].id, "team-a");
  EXPECT_EQ(ApiKeyAuth::Authenticate(*keys, Key("api-key", "wrong")).outcome, O::kInvalid);
  EXPECT_EQ(ApiKeyAuth::Authenticate(*keys, Key("Authorization", "Bearer ")).outcome, O::kInvalid);
  EXPECT_EQ(ApiKeyAuth::Authenticate(*keys, PresentedKey()).outcome, O::kMissing);

  // Not required: no key is anonymous, a wrong key is still refused.
  auto optional = Build("");
  EXPECT_EQ(ApiKeyAuth::Authenticate(*optional, PresentedKey()).outcome, O::kAnonymous);
  EXPECT_EQ(ApiKeyAuth::Authenticate(*optional, Key("api-key", "wrong")).outcome, O::kInvalid);
  EXPECT_EQ(ApiKeyAuth::Authenticate(*optional, Key("api-key", kSecretA)).outcome, O::kKey);

  // No key configured: what clients send because their SDK insists is ignored.
  auto none = Build("", false);
  EXPECT_EQ(ApiKeyAuth::Authenticate(*none, Key("Authorization", "Bearer sk-dummy")).outcome, O::kAnonymous);
  EXPECT_EQ(ApiKeyAuth::Authenticate(*none, PresentedKey()).outcome, O::kAnonymous);
}

TEST(ApiKeyAuthTest, ModelAllowList) {
  auto s = Build("");
  const shm::KeyEntry& a = s->keys[0];  // models: [default] = big (slot 0)
  const shm::KeyEntry& b = s->keys[1];  // every model
  EXPECT_TRUE(ApiKeyAuth::ModelAllowed(a, 0));
  EXPECT_FALSE(ApiKeyAuth::ModelAllowed(a, 1));
  EXPECT_TRUE(ApiKeyAuth::ModelAllowed(b, 0));
  EXPECT_TRUE(ApiKeyAuth::ModelAllowed(b, 1));
  EXPECT_TRUE(ApiKeyAuth::ModelAllowed(b, 63));
  EXPECT_FALSE(ApiKeyAuth::ModelAllowed(b, 64));
}

TEST(ApiKeyAuthTest, LookupAllocatesNothing) {
  auto s = Build("");
  std::string header = std::string("Bearer ") + kSecretA;
  ASSERT_TRUE(g_ssl_counted) << "CRYPTO_set_mem_functions came too late";
  size_t before = g_allocs.load();
  int found = 0;
  for (int i = 0; i < 1000; ++i) {
    PresentedKey k;
    k.OnHeader("Authorization", header);
    found += ApiKeyAuth::Authenticate(*s, k).outcome == ApiKeyAuth::Outcome::kKey;
  }
  EXPECT_EQ(g_allocs.load(), before);
  EXPECT_EQ(found, 1000);
}

}  // namespace
}  // namespace llmgw::dataplane
