// UTF-8 validity, for the places where bytes from outside (config files, request paths,
// backend answers) end up in JSON logs or protobuf strings, both of which must be valid
// UTF-8: a stray Latin-1 byte made llmcd's log invalid JSON and its gRPC answers
// unserialisable (issue 17).
#pragma once

#include <cstddef>
#include <string_view>

namespace llmgw {

// Length (1-4) of the well-formed UTF-8 sequence starting at p[0] (RFC 3629: no overlong
// forms, no surrogates, nothing above U+10FFFF), or 0 when p does not start one. n > 0.
inline size_t Utf8SequenceLength(const unsigned char* p, size_t n) {
  unsigned char c = p[0];
  if (c < 0x80) return 1;
  size_t len;
  unsigned char lo = 0x80, hi = 0xBF;  // allowed range of the second byte
  if (c >= 0xC2 && c <= 0xDF) {
    len = 2;
  } else if (c >= 0xE0 && c <= 0xEF) {
    len = 3;
    if (c == 0xE0) lo = 0xA0;         // overlong
    else if (c == 0xED) hi = 0x9F;    // surrogates
  } else if (c >= 0xF0 && c <= 0xF4) {
    len = 4;
    if (c == 0xF0) lo = 0x90;         // overlong
    else if (c == 0xF4) hi = 0x8F;    // above U+10FFFF
  } else {
    return 0;
  }
  if (n < len || p[1] < lo || p[1] > hi) return 0;
  for (size_t i = 2; i < len; ++i)
    if (p[i] < 0x80 || p[i] > 0xBF) return 0;
  return len;
}

// Offset of the first byte that is not part of well-formed UTF-8, or npos.
inline size_t FirstInvalidUtf8(std::string_view s) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  for (size_t i = 0; i < s.size();) {
    size_t len = Utf8SequenceLength(p + i, s.size() - i);
    if (len == 0) return i;
    i += len;
  }
  return std::string_view::npos;
}

}  // namespace llmgw
