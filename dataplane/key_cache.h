// KeyCache: a data-plane thread's memory of the last few client API keys it verified, so
// a client that sends the same key on every request (they all do) is not SHA-256'd on
// every request (issue 12: the cost of auth and limits). Holds the presented secret's
// bytes, in this worker's own memory only (never shared memory, never a log), and maps
// them to the key slot they were verified against in one snapshot generation. A lookup
// compares the whole secret in constant time (CRYPTO_memcmp): a hit is exactly the bytes
// whose SHA-256 was found in the key table, so nothing weaker than the hash lookup decides
// who a request is, and the timing does not tell an attacker how much of a cached secret
// they guessed. Only known keys are cached (a wrong key always pays the hash). Wiped
// (OPENSSL_cleanse) on every new snapshot, so a revoked or replaced key stops matching as
// soon as the worker sees the snapshot without it; entries also carry their generation,
// so a cache that somehow missed the wipe still never answers for another snapshot.
// Docs: docs/OPERATIONS.md "Keys and limits".
#pragma once

#include <openssl/crypto.h>

#include <cstdint>
#include <cstring>
#include <string_view>

namespace llmgw::dataplane {

class KeyCache {
 public:
  static constexpr size_t kEntries = 4;         // distinct keys one thread serves at a time
  static constexpr size_t kMaxSecretBytes = 128;  // longer secrets are never cached

  KeyCache() = default;
  KeyCache(const KeyCache&) = delete;
  KeyCache& operator=(const KeyCache&) = delete;
  ~KeyCache() { Clear(); }

  // The key slot `secret` was verified against under snapshot `generation`, or -1.
  int Find(uint64_t generation, std::string_view secret) const {
    if (secret.size() > kMaxSecretBytes || secret.empty()) return -1;
    for (const Entry& e : entries_) {
      if (e.slot < 0 || e.generation != generation || e.len != secret.size()) continue;
      if (CRYPTO_memcmp(e.secret, secret.data(), secret.size()) == 0) return e.slot;
    }
    return -1;
  }

  // Remembers that `secret` is key `slot` under snapshot `generation` (after the hash
  // lookup found it), replacing the oldest entry.
  void Insert(uint64_t generation, std::string_view secret, int slot) {
    if (secret.size() > kMaxSecretBytes || secret.empty() || slot < 0) return;
    Entry& e = entries_[next_];
    next_ = (next_ + 1) % kEntries;
    OPENSSL_cleanse(e.secret, sizeof e.secret);
    std::memcpy(e.secret, secret.data(), secret.size());
    e.len = static_cast<uint32_t>(secret.size());
    e.generation = generation;
    e.slot = slot;
  }

  // Forgets every secret (overwritten, not just marked unused): on every new snapshot.
  void Clear() {
    for (Entry& e : entries_) {
      OPENSSL_cleanse(e.secret, sizeof e.secret);
      e.len = 0;
      e.slot = -1;
      e.generation = 0;
    }
    next_ = 0;
  }

  size_t size() const {
    size_t n = 0;
    for (const Entry& e : entries_) n += e.slot >= 0;
    return n;
  }

 private:
  struct Entry {
    uint64_t generation = 0;
    int slot = -1;
    uint32_t len = 0;
    unsigned char secret[kMaxSecretBytes] = {};
  };
  Entry entries_[kEntries];
  size_t next_ = 0;
};

}  // namespace llmgw::dataplane
