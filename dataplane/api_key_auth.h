// Client API keys on the data plane (DESIGN.md "Client API keys and limits"): finding the
// key a request presents (`Authorization: Bearer`, `api-key` for Azure clients,
// `x-api-key` for Anthropic clients), and deciding who the request is: a known key (by
// the SHA-256 of the secret, looked up in the snapshot's key index), anonymous, or refused
// (401). The headers that carry a key are never forwarded upstream (IsClientCredential).
// No allocation: the secret is a view into the request's header block, hashed in place.
#pragma once

#include <cstdint>
#include <string_view>

#include "common/sha256.h"
#include "common/shm_layout.h"
#include "common/snapshot_builder.h"
#include "dataplane/http_text.h"

namespace llmgw::dataplane {

// The headers that carry a client's credentials: dropped from what goes upstream (the
// backend gets its own credentials, or none) and never written to a log.
inline bool IsClientCredential(std::string_view name) {
  return EqualsNoCase(name, "authorization") || EqualsNoCase(name, "api-key") || EqualsNoCase(name, "x-api-key");
}

// The key a request presents, fed one header at a time. When several headers carry one,
// Authorization wins over api-key over x-api-key (the order OpenAI, Azure and Anthropic
// SDKs are most often configured in); an Authorization of another scheme (Basic) is not
// an API key.
class PresentedKey {
 public:
  void Clear() {
    secret_ = {};
    rank_ = 0;
  }
  void OnHeader(std::string_view name, std::string_view value) {
    int rank = 0;
    std::string_view v = value;
    if (EqualsNoCase(name, "authorization")) {
      constexpr std::string_view kBearer = "bearer ";
      if (v.size() < kBearer.size() || !EqualsNoCase(v.substr(0, kBearer.size()), kBearer)) return;
      v.remove_prefix(kBearer.size());
      rank = 3;
    } else if (EqualsNoCase(name, "api-key")) {
      rank = 2;
    } else if (EqualsNoCase(name, "x-api-key")) {
      rank = 1;
    } else {
      return;
    }
    if (rank <= rank_) return;
    while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) v.remove_prefix(1);
    while (!v.empty() && (v.back() == ' ' || v.back() == '\t')) v.remove_suffix(1);
    secret_ = v;
    rank_ = rank;
  }
  bool present() const { return rank_ != 0; }
  std::string_view secret() const { return secret_; }

 private:
  std::string_view secret_;
  int rank_ = 0;
};

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
  static Result Authenticate(const shm::Snapshot& s, const PresentedKey& k) {
    bool required = s.limits.auth_required != 0;
    if (!k.present()) return {required ? Outcome::kMissing : Outcome::kAnonymous, -1};
    if (s.num_keys == 0) return {required ? Outcome::kInvalid : Outcome::kAnonymous, -1};
    if (k.secret().empty()) return {Outcome::kInvalid, -1};
    uint8_t digest[kSha256Bytes];
    Sha256(k.secret(), digest);
    int slot = FindKeySlot(s, digest);
    if (slot < 0 || !s.keys[slot].present) return {Outcome::kInvalid, -1};
    return {Outcome::kKey, slot};
  }

  // Whether key `k` may use the model in `model_slot` (an alias allows its model).
  static bool ModelAllowed(const shm::KeyEntry& k, uint32_t model_slot) {
    return model_slot < 64 && ((k.models >> model_slot) & 1) != 0;
  }
};

}  // namespace llmgw::dataplane
