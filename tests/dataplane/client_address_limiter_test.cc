// ClientAddressLimiter: keys per IPv4 host and IPv6 /64, the cap, release, and the table
// against a reference map under random churn (deletions must never lose a key).
#include "dataplane/client_address_limiter.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>

#include <map>
#include <random>

namespace llmgw::dataplane {
namespace {

sockaddr_storage V4(const char* ip) {
  sockaddr_storage ss{};
  auto* a = reinterpret_cast<sockaddr_in*>(&ss);
  a->sin_family = AF_INET;
  inet_pton(AF_INET, ip, &a->sin_addr);
  return ss;
}

sockaddr_storage V6(const char* ip) {
  sockaddr_storage ss{};
  auto* a = reinterpret_cast<sockaddr_in6*>(&ss);
  a->sin6_family = AF_INET6;
  inet_pton(AF_INET6, ip, &a->sin6_addr);
  return ss;
}

TEST(ClientAddressLimiterTest, KeysPerIpv4HostAndIpv6Slash64) {
  using L = ClientAddressLimiter;
  EXPECT_NE(L::KeyOf(V4("10.0.0.1")), 0u);
  EXPECT_NE(L::KeyOf(V4("10.0.0.1")), L::KeyOf(V4("10.0.0.2")));
  EXPECT_EQ(L::KeyOf(V4("10.0.0.1")), L::KeyOf(V6("::ffff:10.0.0.1")));
  EXPECT_EQ(L::KeyOf(V6("2001:db8:1:2::1")), L::KeyOf(V6("2001:db8:1:2:ffff::9")));
  EXPECT_NE(L::KeyOf(V6("2001:db8:1:2::1")), L::KeyOf(V6("2001:db8:1:3::1")));
  EXPECT_NE(L::KeyOf(V6("::")), 0u);
  sockaddr_storage unix_addr{};
  unix_addr.ss_family = AF_UNIX;
  EXPECT_EQ(L::KeyOf(unix_addr), 0u);
}

TEST(ClientAddressLimiterTest, CapsOneAddressAndNotTheOthers) {
  ClientAddressLimiter l(3, 100);
  uint64_t a = ClientAddressLimiter::KeyOf(V4("10.0.0.1"));
  uint64_t b = ClientAddressLimiter::KeyOf(V4("10.0.0.2"));
  EXPECT_TRUE(l.Acquire(a));
  EXPECT_TRUE(l.Acquire(a));
  EXPECT_TRUE(l.Acquire(a));
  EXPECT_FALSE(l.Acquire(a));
  EXPECT_EQ(l.InFlight(a), 3u);
  EXPECT_TRUE(l.Acquire(b));
  l.Release(a);
  EXPECT_TRUE(l.Acquire(a));
  l.Release(a);
  l.Release(a);
  l.Release(a);
  l.Release(b);
  EXPECT_EQ(l.tracked(), 0u);
  l.Release(a);  // one too many: ignored
  EXPECT_EQ(l.InFlight(a), 0u);
}

TEST(ClientAddressLimiterTest, DisabledNeverRefuses) {
  ClientAddressLimiter l(0, 10);
  EXPECT_FALSE(l.enabled());
  for (int i = 0; i < 1000; ++i) EXPECT_TRUE(l.Acquire(42));
}

TEST(ClientAddressLimiterTest, MatchesAReferenceMapUnderChurn) {
  ClientAddressLimiter l(4, 64);
  std::map<uint64_t, uint32_t> ref;
  std::mt19937_64 rng(7);
  for (int step = 0; step < 200000; ++step) {
    uint64_t key = (uint64_t{1} << 63) | (rng() % 60);  // collisions in a 128-slot table
    if (rng() % 2) {
      bool want = ref[key] < 4;
      ASSERT_EQ(l.Acquire(key), want) << step;
      if (want) ++ref[key];
    } else if (ref[key] > 0) {
      l.Release(key);
      --ref[key];
    }
    if (ref[key] == 0) ref.erase(key);
    ASSERT_EQ(l.InFlight(key), ref.count(key) ? ref[key] : 0u) << step;
  }
  for (auto& [k, n] : ref) EXPECT_EQ(l.InFlight(k), n);
  EXPECT_EQ(l.tracked(), ref.size());
}

}  // namespace
}  // namespace llmgw::dataplane
