// ListenClaim: parsing of /proc/net/unix listings and real claims in this network namespace.
#include "dataplane/listen_claim.h"

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

namespace llmgw::dataplane {
namespace {

constexpr const char* kListing =
    "Num       RefCount Protocol Flags    Type St Inode Path\n"
    "0000000000000000: 00000002 00000000 00010000 0001 01 21112 /run/systemd/private\n"
    "0000000000000000: 00000002 00000000 00000000 0001 01 21113 @llmgw-listen:8080:prod:4242\n"
    "0000000000000000: 00000002 00000000 00000000 0001 01 21114 @llmgw-listen:18080:canary:4343\n"
    "0000000000000000: 00000003 00000000 00000000 0001 03 21115\n";

TEST(ListenClaimTest, FindsAnotherInstanceOnThePort) {
  std::string inst;
  long pid = 0;
  EXPECT_TRUE(ListenClaim::FindOtherInstance(kListing, 8080, "canary", &inst, &pid));
  EXPECT_EQ(inst, "prod");
  EXPECT_EQ(pid, 4242);
}

TEST(ListenClaimTest, SameInstanceOrOtherPortIsNoConflict) {
  std::string inst;
  long pid = 0;
  EXPECT_FALSE(ListenClaim::FindOtherInstance(kListing, 8080, "prod", &inst, &pid));
  EXPECT_FALSE(ListenClaim::FindOtherInstance(kListing, 9090, "prod", &inst, &pid));
  // 808 is a prefix of 8080 and 18080 ends with 8080: neither may match.
  EXPECT_FALSE(ListenClaim::FindOtherInstance(kListing, 808, "x", &inst, &pid));
  EXPECT_FALSE(ListenClaim::FindOtherInstance("", 8080, "x", &inst, &pid));
}

TEST(ListenClaimTest, InstanceNamesThatArePrefixesOfEachOtherDiffer) {
  std::string inst;
  long pid = 0;
  EXPECT_TRUE(ListenClaim::FindOtherInstance(kListing, 8080, "pro", &inst, &pid));
  EXPECT_EQ(inst, "prod");
}

TEST(ListenClaimTest, RealClaimsInThisNamespace) {
  uint16_t port = static_cast<uint16_t>(20000 + getpid() % 20000);
  std::string a = "lcta-" + std::to_string(getpid()), b = "lctb-" + std::to_string(getpid());
  auto first = ListenClaim::Acquire(port, a);
  ASSERT_TRUE(first.ok()) << first.error().message();
  // Same instance twice (the upgrade case; the name differs by pid only in real life, so
  // a fork stands in for the second process).
  pid_t pid = fork();
  if (pid == 0) _exit(ListenClaim::Acquire(port, a).ok() ? 0 : 1);
  int st = 0;
  waitpid(pid, &st, 0);
  EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0);
  auto other = ListenClaim::Acquire(port, b);
  ASSERT_FALSE(other.ok());
  std::string msg = other.error().message();
  EXPECT_NE(msg.find("instance '" + a + "' (pid " + std::to_string(getpid()) + ")"), std::string::npos) << msg;
  first.value().reset();
  EXPECT_TRUE(ListenClaim::Acquire(port, b).ok());
}

TEST(ListenClaimTest, UnreadableListingDoesNotBlockStartup) {
  auto c = ListenClaim::Acquire(static_cast<uint16_t>(40000 + getpid() % 20000), "lctc", "/nonexistent/unix");
  EXPECT_TRUE(c.ok());
}

}  // namespace
}  // namespace llmgw::dataplane
