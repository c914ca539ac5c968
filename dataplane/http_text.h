// Internal to the data plane: the small HTTP text helpers both sides of the proxy use
// (case-insensitive header names, hop-by-hop filtering, status lines, number and JSON
// formatting). Header-only so the hot path inlines them as before the split.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "common/log.h"

namespace llmgw::dataplane {


// ASCII case folding by table: header names are compared several times per request, and
// tolower() is a locale-aware library call.
struct LowerTable {
  unsigned char t[256];
  constexpr LowerTable() : t() {
    for (int i = 0; i < 256; ++i) t[i] = static_cast<unsigned char>(i >= 'A' && i <= 'Z' ? i + 32 : i);
  }
};
constexpr LowerTable kLower;

inline bool EqualsNoCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (kLower.t[static_cast<unsigned char>(a[i])] != kLower.t[static_cast<unsigned char>(b[i])]) return false;
  return true;
}

inline bool StartsWithNoCase(std::string_view s, std::string_view prefix) {
  return s.size() >= prefix.size() && EqualsNoCase(s.substr(0, prefix.size()), prefix);
}

// Hop-by-hop headers (RFC 9110 7.6.1, plus the historical Keep-Alive and Proxy-*) belong
// to one connection and are never forwarded, in either direction.
inline bool IsHopByHopOtherThanConnection(std::string_view name) {
  return EqualsNoCase(name, "keep-alive") || StartsWithNoCase(name, "proxy-") || EqualsNoCase(name, "te") ||
         EqualsNoCase(name, "trailer") || EqualsNoCase(name, "transfer-encoding") || EqualsNoCase(name, "upgrade");
}
inline bool IsHopByHop(std::string_view name) {
  return EqualsNoCase(name, "connection") || IsHopByHopOtherThanConnection(name);
}

// Removes from `lines` ("Name: value\r\n" each) every header named in a Connection
// header's value (`tokens`, comma-separated): those are hop-by-hop too (RFC 9110 7.6.1).
inline void RemoveConnectionNamed(std::string* lines, std::string_view tokens) {
  while (!tokens.empty()) {
    size_t comma = tokens.find(',');
    std::string_view tok = tokens.substr(0, comma);
    tokens = comma == std::string_view::npos ? std::string_view() : tokens.substr(comma + 1);
    while (!tok.empty() && (tok.front() == ' ' || tok.front() == '\t')) tok.remove_prefix(1);
    while (!tok.empty() && (tok.back() == ' ' || tok.back() == '\t')) tok.remove_suffix(1);
    if (tok.empty() || EqualsNoCase(tok, "close") || EqualsNoCase(tok, "keep-alive")) continue;
    size_t pos = 0;
    while (pos < lines->size()) {
      size_t eol = lines->find("\r\n", pos);
      if (eol == std::string::npos) break;
      size_t colon = lines->find(':', pos);
      if (colon < eol && EqualsNoCase(std::string_view(*lines).substr(pos, colon - pos), tok)) {
        lines->erase(pos, eol + 2 - pos);  // in place: the capacity stays
      } else {
        pos = eol + 2;
      }
    }
  }
}

inline std::string_view ReasonPhrase(int status) {
  switch (status) {
    case 100: return "Continue";
    case 200: return "OK";
    case 201: return "Created";
    case 204: return "No Content";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 413: return "Payload Too Large";
    case 422: return "Unprocessable Entity";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    default: return "Unknown";
  }
}

// Number formatting without printf (which costs more than the rest of a header line).
inline void AppendUint(std::string* s, uint64_t v) {
  char b[24];
  char* e = b + sizeof(b);
  char* p = e;
  do {
    *--p = static_cast<char>('0' + v % 10);
    v /= 10;
  } while (v);
  s->append(p, static_cast<size_t>(e - p));
}

// Lower-case hex of v into out (no leading zeros); returns the length.
inline size_t FormatHex(uint64_t v, char* out) {
  static constexpr char kDigits[] = "0123456789abcdef";
  char b[16];
  size_t n = 0;
  do {
    b[n++] = kDigits[v & 15];
    v >>= 4;
  } while (v);
  for (size_t i = 0; i < n; ++i) out[i] = b[n - 1 - i];
  return n;
}

inline void AppendJsonString(std::string* s, std::string_view v) {
  char buf[512];
  size_t n = JsonEscapeInto(buf, 0, sizeof(buf), v);
  s->push_back('"');
  s->append(buf, n);
  s->push_back('"');
}
}  // namespace llmgw::dataplane
