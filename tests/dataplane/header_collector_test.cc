// Unit tests of HeaderCollector, the one header-block collector both sides of the proxy
// use: pieces as llhttp delivers them, keep/drop, hop-by-hop and Connection-named
// removal, the fixed capacity.
#include "dataplane/header_collector.h"

#include <gtest/gtest.h>

#include <string>
#include <utility>
#include <vector>

namespace llmgw::dataplane {
namespace {

// Feeds one header, the name and the value each in two pieces; keeps it unless the
// collector drops it as hop-by-hop or `drop` says so.
bool Feed(HeaderCollector* hc, std::string_view name, std::string_view value, bool drop = false) {
  size_t h = name.size() / 2, v = value.size() / 2;
  if (!hc->OnField(name.data(), h) || !hc->OnField(name.data() + h, name.size() - h)) return false;
  if (!value.empty() && (!hc->OnValue(value.data(), v) || !hc->OnValue(value.data() + v, value.size() - v)))
    return false;
  std::string_view n, val;
  if (!hc->OnValueComplete(&n, &val)) return false;
  EXPECT_EQ(n, name);
  if (hc->DropIfHopByHop(n, val)) return true;
  if (drop) {
    hc->Drop();
    return true;
  }
  return hc->Keep(val);
}

TEST(HeaderCollectorTest, CollectsLinesAndTrimsValues) {
  HeaderCollector hc;
  hc.Reserve(256);
  hc.Clear();
  ASSERT_TRUE(Feed(&hc, "Content-Type", "application/json  "));
  ASSERT_TRUE(Feed(&hc, "X-Empty", ""));
  ASSERT_TRUE(Feed(&hc, "Host", "client", /*drop=*/true));
  ASSERT_TRUE(Feed(&hc, "Authorization", "Bearer k"));
  hc.Finish();
  EXPECT_EQ(hc.lines(), "Content-Type: application/json\r\nX-Empty: \r\nAuthorization: Bearer k\r\n");
}

TEST(HeaderCollectorTest, HopByHopAndConnectionNamedAreRemoved) {
  HeaderCollector hc;
  hc.Reserve(512);
  hc.Clear();
  ASSERT_TRUE(Feed(&hc, "Keep-Alive", "timeout=5"));
  ASSERT_TRUE(Feed(&hc, "Connection", "close, X-Secret"));
  ASSERT_TRUE(Feed(&hc, "X-Secret", "1"));
  ASSERT_TRUE(Feed(&hc, "Transfer-Encoding", "chunked"));
  ASSERT_TRUE(Feed(&hc, "Proxy-Authorization", "x"));
  ASSERT_TRUE(Feed(&hc, "Upgrade", "h2c"));
  ASSERT_TRUE(Feed(&hc, "TE", "trailers"));
  ASSERT_TRUE(Feed(&hc, "Connection", "x-other"));  // a second Connection header adds names
  ASSERT_TRUE(Feed(&hc, "X-Other", "2"));
  ASSERT_TRUE(Feed(&hc, "X-Kept", "3"));
  hc.Finish();
  EXPECT_EQ(hc.lines(), "X-Kept: 3\r\n");
}

TEST(HeaderCollectorTest, OverflowNeverReallocates) {
  HeaderCollector hc;
  hc.Reserve(32);
  hc.Clear();
  EXPECT_TRUE(Feed(&hc, "A", "b"));
  EXPECT_FALSE(Feed(&hc, "X-Long", std::string(64, 'v')));
  EXPECT_TRUE(hc.overflow());
  hc.Clear();
  EXPECT_FALSE(hc.overflow());
  EXPECT_TRUE(Feed(&hc, "A", "b"));
}

}  // namespace
}  // namespace llmgw::dataplane
