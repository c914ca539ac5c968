// The x-ratelimit-* lines (dataplane/ratelimit_headers.h): OpenAI's duration format at each
// boundary, remaining capped at the limit, and byte-for-byte the text the snprintf version
// wrote before it (kept here as the reference) over a sweep of limits and remainders.
#include "dataplane/ratelimit_headers.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <string>

namespace llmgw::dataplane {
namespace {

std::string Reset(double seconds) {
  SmallStr<64> s;
  AppendResetDuration(&s, seconds);
  return std::string(s.View());
}

// The previous formatting (keys.cc before issue 12's cost work), the reference.
std::string Reference(const char* what, uint32_t limit, uint64_t remaining) {
  uint64_t r = remaining > limit ? limit : remaining;
  double seconds = (static_cast<double>(limit) - static_cast<double>(r)) * 60.0 / limit;
  char reset[32];
  if (seconds < 1) {
    std::snprintf(reset, sizeof reset, "%dms", static_cast<int>(std::ceil(seconds * 1000)));
  } else if (seconds < 60) {
    std::snprintf(reset, sizeof reset, "%gs", std::ceil(seconds * 10) / 10);
  } else {
    long s = static_cast<long>(std::ceil(seconds));
    std::snprintf(reset, sizeof reset, "%ldm%lds", s / 60, s % 60);
  }
  char buf[256];
  std::snprintf(buf, sizeof buf,
                "x-ratelimit-limit-%s: %u\r\nx-ratelimit-remaining-%s: %llu\r\nx-ratelimit-reset-%s: %s\r\n", what,
                limit, what, static_cast<unsigned long long>(r), what, reset);
  return buf;
}

TEST(RateLimitHeadersTest, ResetDurations) {
  EXPECT_EQ(Reset(0), "0ms");
  EXPECT_EQ(Reset(0.0201), "21ms");
  EXPECT_EQ(Reset(0.999), "999ms");
  EXPECT_EQ(Reset(1), "1s");
  EXPECT_EQ(Reset(1.41), "1.5s");
  EXPECT_EQ(Reset(59.95), "60s");
  EXPECT_EQ(Reset(60), "1m0s");
  EXPECT_EQ(Reset(360.2), "6m1s");
  EXPECT_EQ(Reset(-3), "0ms");
  EXPECT_EQ(Reset(std::nan("")), "0ms");
}

TEST(RateLimitHeadersTest, LinesAndRemainingCappedAtTheLimit) {
  SmallStr<384> s;
  AppendRateLimitLines(&s, "requests", 60, 90);
  EXPECT_EQ(s.View(),
            "x-ratelimit-limit-requests: 60\r\nx-ratelimit-remaining-requests: 60\r\n"
            "x-ratelimit-reset-requests: 0ms\r\n");
  s.Clear();
  AppendRateLimitLines(&s, "tokens", 1000, 0);
  EXPECT_EQ(s.View(),
            "x-ratelimit-limit-tokens: 1000\r\nx-ratelimit-remaining-tokens: 0\r\n"
            "x-ratelimit-reset-tokens: 1m0s\r\n");
  EXPECT_FALSE(s.overflow);
}

TEST(RateLimitHeadersTest, SameTextAsTheSnprintfVersion) {
  const uint32_t limits[] = {1, 3, 7, 60, 100, 1800, 4000, 90000, 4000000000u};
  int compared = 0;
  for (uint32_t limit : limits) {
    for (uint64_t remaining : {uint64_t{0}, uint64_t{1}, uint64_t{limit / 3}, uint64_t{limit / 2}, uint64_t{limit - 1},
                               uint64_t{limit}, uint64_t{limit} + 5}) {
      for (const char* what : {"requests", "tokens"}) {
        SmallStr<384> s;
        AppendRateLimitLines(&s, what, limit, remaining);
        EXPECT_EQ(s.View(), Reference(what, limit, remaining)) << limit << " " << remaining;
        ++compared;
      }
    }
  }
  // Every remainder of a small limit, where each falls into another format.
  for (uint64_t remaining = 0; remaining <= 2000; ++remaining) {
    SmallStr<384> s;
    AppendRateLimitLines(&s, "tokens", 2000, remaining);
    EXPECT_EQ(s.View(), Reference("tokens", 2000, remaining)) << remaining;
    ++compared;
  }
  EXPECT_GT(compared, 2000);
}

}  // namespace
}  // namespace llmgw::dataplane
