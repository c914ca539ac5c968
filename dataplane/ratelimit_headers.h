// The x-ratelimit-* header lines of a limited key's answers (OpenAI's names and meanings:
// x-ratelimit-limit-*, -remaining-*, -reset-* for requests and tokens). Formatted by hand
// into the request's own buffer: they are written on every answer of a limited key, and
// snprintf was most of what auth and limits cost per request (issue 12; bench (l)).
#pragma once

#include <cmath>
#include <cstdint>
#include <string_view>

#include "dataplane/small_str.h"

namespace llmgw::dataplane {

template <size_t N>
void AppendDecimal(SmallStr<N>* out, uint64_t v) {
  char buf[20];
  char* end = buf + sizeof buf;
  char* p = end;
  do {
    *--p = static_cast<char>('0' + v % 10);
    v /= 10;
  } while (v != 0);
  out->Append(p, static_cast<size_t>(end - p));
}

template <size_t N>
void AppendText(SmallStr<N>* out, std::string_view s) {
  out->Append(s.data(), s.size());
}

// OpenAI's duration format for x-ratelimit-reset-*: "20ms" under a second (rounded up),
// "1.5s" under a minute (rounded up to a tenth), "6m0s" beyond.
template <size_t N>
void AppendResetDuration(SmallStr<N>* out, double seconds) {
  if (!(seconds > 0)) seconds = 0;  // NaN and negatives: already full
  if (seconds < 1) {
    AppendDecimal(out, static_cast<uint64_t>(std::ceil(seconds * 1000)));
    AppendText(out, "ms");
  } else if (seconds < 60) {
    uint64_t tenths = static_cast<uint64_t>(std::ceil(seconds * 10));
    AppendDecimal(out, tenths / 10);
    if (tenths % 10 != 0) {
      char d[2] = {'.', static_cast<char>('0' + tenths % 10)};
      out->Append(d, 2);
    }
    AppendText(out, "s");
  } else {
    uint64_t s = static_cast<uint64_t>(std::ceil(seconds));
    AppendDecimal(out, s / 60);
    AppendText(out, "m");
    AppendDecimal(out, s % 60);
    AppendText(out, "s");
  }
}

// The three lines for one limit (`what`: "requests" or "tokens") of `limit` per minute
// with `remaining` left (capped at the limit); reset = until the bucket is full again.
template <size_t N>
void AppendRateLimitLines(SmallStr<N>* out, std::string_view what, uint32_t limit, uint64_t remaining) {
  if (remaining > limit) remaining = limit;
  AppendText(out, "x-ratelimit-limit-");
  AppendText(out, what);
  AppendText(out, ": ");
  AppendDecimal(out, limit);
  AppendText(out, "\r\nx-ratelimit-remaining-");
  AppendText(out, what);
  AppendText(out, ": ");
  AppendDecimal(out, remaining);
  AppendText(out, "\r\nx-ratelimit-reset-");
  AppendText(out, what);
  AppendText(out, ": ");
  double missing = static_cast<double>(limit) - static_cast<double>(remaining);
  AppendResetDuration(out, limit ? missing * 60.0 / limit : 0.0);
  AppendText(out, "\r\n");
}

}  // namespace llmgw::dataplane
