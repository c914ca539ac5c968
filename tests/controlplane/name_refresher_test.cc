// controlplane/name_refresher.h with a fake resolver (tests never resolve names): only a
// changed address is reported, IP literals are never looked up, a host shared by several
// backends is looked up once, and a failing lookup keeps the last address, logged once.
#include "controlplane/name_refresher.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <map>
#include <string>

#include "common/log.h"
#include "test_support.h"

namespace llmgw::cp {
namespace {

ResolvedAddr V4(uint8_t last) {
  ResolvedAddr a;
  a.family = AF_INET;
  a.addr[0] = 10, a.addr[3] = last;
  return a;
}

BackendHost Host(int slot, const std::string& host, ResolvedAddr addr) {
  BackendHost h;
  h.slot = slot;
  h.key = 100 + static_cast<uint64_t>(slot);
  char id[16];  // not "b" + std::to_string: GCC 12 -O3 warns falsely (-Wrestrict) on it
  std::snprintf(id, sizeof id, "b%d", slot);
  h.id = id;
  h.host = host;
  h.port = 443;
  h.addr = addr;
  return h;
}

// A DNS stand-in: a table of names, and a count of lookups per name.
struct FakeDns {
  std::map<std::string, ResolvedAddr> names;
  std::map<std::string, int> lookups;
  Resolver resolver() {
    return [this](const std::string& host, uint16_t, ResolvedAddr* out, std::string* why) {
      ++lookups[host];
      auto it = names.find(host);
      if (it == names.end()) {
        *why = "Name or service not known";
        return false;
      }
      *out = it->second;
      return true;
    };
  }
};

TEST(NameRefresherTest, ReportsOnlyChangedAddresses) {
  FakeDns dns;
  dns.names["api.example.test"] = V4(1);
  dns.names["other.example.test"] = V4(7);
  NameRefresher r(dns.resolver());
  std::vector<BackendHost> hosts = {Host(0, "api.example.test", V4(1)), Host(1, "other.example.test", V4(7)),
                                    Host(2, "api.example.test", V4(1)), Host(3, "10.0.0.9", V4(9)),
                                    Host(4, "::1", ResolvedAddr{})};
  EXPECT_TRUE(r.Refresh(hosts).empty());
  EXPECT_EQ(dns.lookups["api.example.test"], 1) << "one lookup per host, not per backend";
  EXPECT_EQ(dns.lookups.count("10.0.0.9"), 0u) << "IP literals are never looked up";
  EXPECT_EQ(dns.lookups.count("::1"), 0u);
  dns.names["api.example.test"] = V4(2);  // the hosted API moved
  std::vector<AddrChange> changes = r.Refresh(hosts);
  ASSERT_EQ(changes.size(), 2u);
  EXPECT_EQ(changes[0].slot, 0);
  EXPECT_EQ(changes[0].key, 100u);
  EXPECT_TRUE(SameAddr(changes[0].addr, V4(2)));
  EXPECT_EQ(changes[1].slot, 2);
  hosts[0].addr = hosts[2].addr = V4(2);  // published
  EXPECT_TRUE(r.Refresh(hosts).empty());
}

TEST(NameRefresherTest, AFailingLookupKeepsTheAddressAndIsLoggedOnce) {
  char path[] = "/tmp/llmgw-names-log-XXXXXX";
  int fd = mkstemp(path);
  ASSERT_GE(fd, 0);
  SetLogFd(fd);
  FakeDns dns;
  NameRefresher r(dns.resolver());
  std::vector<BackendHost> hosts = {Host(0, "gone.example.test", V4(1))};
  for (int i = 0; i < 4; ++i) EXPECT_TRUE(r.Refresh(hosts).empty()) << "no change: the last address stays";
  EXPECT_EQ(dns.lookups["gone.example.test"], 4) << "still tried every time";
  dns.names["gone.example.test"] = V4(1);
  EXPECT_TRUE(r.Refresh(hosts).empty());
  EXPECT_TRUE(r.Refresh(hosts).empty());
  SetLogFd(2);
  close(fd);
  std::string text = llmgw::test::ReadFile(path);
  std::remove(path);
  auto count = [&](const std::string& what) {
    size_t n = 0;
    for (size_t at = 0; (at = text.find(what, at)) != std::string::npos; at += what.size()) ++n;
    return n;
  };
  EXPECT_EQ(count("backend host name does not resolve now; keeping its last address"), 1u) << text;
  EXPECT_EQ(count("backend host name resolves again"), 1u) << text;
  EXPECT_NE(text.find("Name or service not known"), std::string::npos) << text;
}

// llmcd stops while DNS is away: every lookup would block for the resolver's timeout, so
// a pass over many hosts stops at the next lookup instead of running them all (SIGTERM
// would otherwise wait one timeout per host).
TEST(NameRefresherTest, AStopEndsThePassBeforeTheNextLookup) {
  std::atomic<bool> stop{false};
  bool sigterm_during_lookup = true;
  int lookups = 0;
  NameRefresher r([&](const std::string&, uint16_t, ResolvedAddr*, std::string* why) {
    ++lookups;
    if (sigterm_during_lookup) stop = true;  // arrives during the first (slow) lookup
    *why = "Temporary failure in name resolution";
    return false;
  });
  std::vector<BackendHost> hosts = {Host(0, "a.example", V4(1)), Host(1, "b.example", V4(2)),
                                    Host(2, "c.example", V4(3))};
  EXPECT_TRUE(r.Refresh(hosts, &stop).empty());
  EXPECT_EQ(lookups, 1);
  sigterm_during_lookup = false;
  stop = false;
  EXPECT_TRUE(r.Refresh(hosts, &stop).empty());  // not stopping: every host is looked up
  EXPECT_EQ(lookups, 4);
}

}  // namespace
}  // namespace llmgw::cp
