// SHA-256 of client API keys (OpenSSL's one-shot SHA256): llmcd and llmctl hash a new
// secret with it, and the data plane hashes the presented key with the same function, so
// the stored `key_sha256` and the lookup cannot disagree. No allocation.
#pragma once

#include <openssl/sha.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace llmgw {

constexpr size_t kSha256Bytes = 32;

inline void Sha256(std::string_view data, uint8_t out[kSha256Bytes]) {
  ::SHA256(reinterpret_cast<const unsigned char*>(data.data()), data.size(), out);
}

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
