// Client API keys on the data plane (DESIGN.md "Client API keys and limits"): deciding who
// a request is from the key it presented (presented_key.h): a known key (by the SHA-256 of
// the secret, looked up in the snapshot's key index), anonymous, or refused (401); and
// whether that key may use a model. No allocation: the secret is hashed in place, or found
// in the thread's KeyCache (key_cache.h) when it was verified before in this snapshot.
#pragma once

#include <cstdint>
#include <string_view>

#include "common/sha256.h"
#include "common/shm_layout.h"
#include "common/snapshot_builder.h"
#include "dataplane/key_cache.h"
#include "dataplane/presented_key.h"

namespace llmgw::dataplane {

class ApiKeyAuth {
 public:
  enum class Outcome : uint8_t {
    kKey,        // a known key: slot says which
    kAnonymous,  // no key and auth.required is false (or no key is configured at all)
    kMissing,    // no key and auth.required: 401
    kInvalid,    // a key that is not in the table: 401
  };
  struct Result {
    Outcome outcome;
    int slot;  // key slot for kKey, else -1
  };

  // Who the request is. A presented key must be a known one as soon as any key is
  // configured; with no key configured, presented keys are ignored unless auth.required.
  // With a cache, a secret verified before under this snapshot's generation skips the
  // hash, and a newly verified one is remembered.
  static Result Authenticate(const shm::Snapshot& s, const PresentedKey& k, KeyCache* cache = nullptr) {
    bool required = s.limits.auth_required != 0;
    if (!k.present()) return {required ? Outcome::kMissing : Outcome::kAnonymous, -1};
    if (s.num_keys == 0) return {required ? Outcome::kInvalid : Outcome::kAnonymous, -1};
    if (k.secret().empty() || k.overflow()) return {Outcome::kInvalid, -1};
    if (cache) {
      int hit = cache->Find(s.generation, k.secret());
      if (hit >= 0 && static_cast<uint32_t>(hit) < s.num_keys && s.keys[hit].present) return {Outcome::kKey, hit};
    }
    uint8_t digest[kSha256Bytes];
    Sha256(k.secret(), digest);
    int slot = FindKeySlot(s, digest);
    if (slot < 0 || !s.keys[slot].present) return {Outcome::kInvalid, -1};
    if (cache) cache->Insert(s.generation, k.secret(), slot);
    return {Outcome::kKey, slot};
  }

  // Whether key `k` may use the model in `model_slot` (an alias allows its model).
  static bool ModelAllowed(const shm::KeyEntry& k, uint32_t model_slot) {
    return model_slot < 64 && ((k.models >> model_slot) & 1) != 0;
  }
};

}  // namespace llmgw::dataplane
