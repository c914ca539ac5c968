// TraceContext: the W3C Trace Context of one request as llmgw handles it (docs/OPERATIONS.md,
// "Tracing"): the client's `traceparent` parsed (or a new trace started), the head
// sampling decision, fresh span ids for the server span and each upstream attempt, and
// the `traceparent` sent upstream naming the attempt's span as parent. Fixed-size, no
// allocation, no exceptions: it runs on the request path.
#pragma once

#include <cstdint>
#include <cstring>
#include <string_view>

#include "dataplane/rng.h"

namespace llmgw::dataplane {

// A parsed `traceparent` (version 00 layout: 00-<32 hex trace id>-<16 hex parent id>-<2 hex flags>).
struct TraceParent {
  uint8_t trace_id[16] = {};
  uint8_t parent_id[8] = {};
  uint8_t flags = 0;
  bool sampled() const { return flags & 1; }
};

namespace trace_detail {
inline int HexVal(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;  // W3C: lowercase only
}
inline bool ParseHex(std::string_view s, uint8_t* out, size_t n) {
  if (s.size() != 2 * n) return false;
  for (size_t i = 0; i < n; ++i) {
    int hi = HexVal(s[2 * i]), lo = HexVal(s[2 * i + 1]);
    if (hi < 0 || lo < 0) return false;
    out[i] = static_cast<uint8_t>(hi * 16 + lo);
  }
  return true;
}
inline bool AllZero(const uint8_t* p, size_t n) {
  uint8_t any = 0;
  for (size_t i = 0; i < n; ++i) any |= p[i];
  return any == 0;
}
inline void PutHex(const uint8_t* p, size_t n, char* out) {
  static constexpr char kHex[] = "0123456789abcdef";
  for (size_t i = 0; i < n; ++i) {
    out[2 * i] = kHex[p[i] >> 4];
    out[2 * i + 1] = kHex[p[i] & 15];
  }
}
}  // namespace trace_detail

// Parses a traceparent header value; false when it is not a valid one (then the request
// starts a new trace, as the W3C spec asks). Versions after 00 are read by the 00 layout
// when they are at least as long and continue with '-'; version ff is invalid.
inline bool ParseTraceparent(std::string_view v, TraceParent* out) {
  while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) v.remove_prefix(1);
  while (!v.empty() && (v.back() == ' ' || v.back() == '\t')) v.remove_suffix(1);
  if (v.size() < 55 || v[2] != '-' || v[35] != '-' || v[52] != '-') return false;
  uint8_t version;
  if (!trace_detail::ParseHex(v.substr(0, 2), &version, 1) || version == 0xff) return false;
  if (version == 0 && v.size() != 55) return false;
  if (version != 0 && v.size() > 55 && v[55] != '-') return false;
  TraceParent t;
  if (!trace_detail::ParseHex(v.substr(3, 32), t.trace_id, 16) || !trace_detail::ParseHex(v.substr(36, 16), t.parent_id, 8) ||
      !trace_detail::ParseHex(v.substr(53, 2), &t.flags, 1))
    return false;
  if (trace_detail::AllZero(t.trace_id, 16) || trace_detail::AllZero(t.parent_id, 8)) return false;
  *out = t;
  return true;
}

constexpr size_t kTraceparentLen = 55;

// Writes "00-<trace>-<span>-<flags>" (55 characters, no NUL) into out.
inline void FormatTraceparent(const uint8_t trace_id[16], const uint8_t span_id[8], bool sampled, char* out) {
  out[0] = '0';
  out[1] = '0';
  out[2] = '-';
  trace_detail::PutHex(trace_id, 16, out + 3);
  out[35] = '-';
  trace_detail::PutHex(span_id, 8, out + 36);
  out[52] = '-';
  out[53] = '0';
  out[54] = sampled ? '1' : '0';
}

// Fills n bytes with random, never all zero (an all-zero id is invalid).
inline void NewTraceId(Rng* rng, uint8_t* out, size_t n) {
  do {
    for (size_t i = 0; i < n; i += 8) {
      uint64_t r = rng->Next();
      std::memcpy(out + i, &r, n - i < 8 ? n - i : 8);
    }
  } while (trace_detail::AllZero(out, n));
}

// Head sampling by `rate` (0..1) on the trace id, so every hop that samples by the same
// rule on the same trace agrees: the rightmost 7 bytes (random per W3C Trace Context
// level 2) compared with rate * 2^56.
inline bool SampleTrace(const uint8_t trace_id[16], double rate) {
  if (rate <= 0) return false;
  if (rate >= 1) return true;
  uint64_t r = 0;
  for (int i = 9; i < 16; ++i) r = (r << 8) | trace_id[i];
  return static_cast<double>(r) < rate * 72057594037927936.0;  // 2^56
}

// A request's trace state: continued from the client's traceparent or started here, and
// whether it is recorded. The server span's id is made here; each attempt gets its own.
class TraceContext {
 public:
  // `header` is the client's traceparent (empty: none). Recorded when the client says
  // sampled, else by `sample` on the trace id (a new trace or an unsampled parent's).
  void Begin(std::string_view header, double sample, Rng* rng) {
    has_parent_ = ParseTraceparent(header, &parent_);
    if (has_parent_) {
      std::memcpy(trace_id_, parent_.trace_id, 16);
    } else {
      NewTraceId(rng, trace_id_, 16);
      parent_ = TraceParent{};
    }
    NewTraceId(rng, server_span_, 8);
    sampled_ = (has_parent_ && parent_.sampled()) || SampleTrace(trace_id_, sample);
  }
  // A new attempt span; its id goes upstream as the parent in traceparent.
  void NewAttempt(Rng* rng) { NewTraceId(rng, attempt_span_, 8); }
  // The traceparent for the upstream request of the current attempt (55 characters).
  void UpstreamTraceparent(char* out) const { FormatTraceparent(trace_id_, attempt_span_, sampled_, out); }

  bool sampled() const { return sampled_; }
  bool has_parent() const { return has_parent_; }
  bool parent_sampled() const { return has_parent_ && parent_.sampled(); }
  const uint8_t* trace_id() const { return trace_id_; }
  const uint8_t* parent_span() const { return parent_.parent_id; }  // zero without a parent
  const uint8_t* server_span() const { return server_span_; }
  const uint8_t* attempt_span() const { return attempt_span_; }

 private:
  TraceParent parent_;
  bool has_parent_ = false;
  bool sampled_ = false;
  uint8_t trace_id_[16] = {};
  uint8_t server_span_[8] = {};
  uint8_t attempt_span_[8] = {};
};

}  // namespace llmgw::dataplane
