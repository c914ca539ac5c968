// SHA-256 of client API keys (OpenSSL's libcrypto): llmcd and llmctl hash a new secret
// with it, and the data plane hashes the presented key with the same function, so the
// stored `key_sha256` and the lookup cannot disagree. On the data plane's hot path: no
// allocation and no lock. That rules out OpenSSL 3's one-shot SHA256(), which is
// EVP_Q_digest underneath (an algorithm fetch through a locked cache and a context
// allocated per call); the low-level SHA256_Init/Update/Final on a context on the stack do
// neither. They are deprecated in OpenSSL 3 (not removed), hence the local pragma.
#pragma once

#include <openssl/sha.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace llmgw {

constexpr size_t kSha256Bytes = 32;

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
inline void Sha256(std::string_view data, uint8_t out[kSha256Bytes]) {
  SHA256_CTX ctx;
  SHA256_Init(&ctx);
  SHA256_Update(&ctx, data.data(), data.size());
  SHA256_Final(out, &ctx);
}
#pragma GCC diagnostic pop

// Lowercase hex of the SHA-256 of data (what `printf %s SECRET | sha256sum` prints).
inline std::string Sha256Hex(std::string_view data) {
  uint8_t d[kSha256Bytes];
  Sha256(data, d);
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string hex(2 * kSha256Bytes, '0');
  for (size_t i = 0; i < kSha256Bytes; ++i) {
    hex[2 * i] = kDigits[d[i] >> 4];
    hex[2 * i + 1] = kDigits[d[i] & 15];
  }
  return hex;
}

}  // namespace llmgw
