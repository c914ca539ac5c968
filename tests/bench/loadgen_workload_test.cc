// Unit tests of llmgw-bench's workload: prefix-group popularity under --prefix-zipf follows
// rank order (group 0 most popular, weight 1/(rank+1)^S), --prefix-zipf 0 stays uniform, and
// both are deterministic under a seed.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "bench/loadgen/loadgen.h"

namespace llmgw::bench {
namespace {

std::vector<int> GroupCounts(double zipf, int groups, int samples, uint64_t seed) {
  WorkloadOptions o;
  o.prefix_groups = groups;
  o.prefix_tokens = 16;
  o.prefix_zipf = zipf;
  Workload w(o, seed);
  std::string err;
  EXPECT_TRUE(w.Init(&err)) << err;
  std::vector<int> counts(static_cast<size_t>(groups), 0);
  for (int i = 0; i < samples; ++i) ++counts[static_cast<size_t>(w.SampleGroup())];
  return counts;
}

TEST(LoadgenWorkloadTest, ZipfPopularityFollowsRankOrder) {
  const int kGroups = 8, kSamples = 80000;
  std::vector<int> c = GroupCounts(1.0, kGroups, kSamples, 3);
  double norm = 0;
  for (int g = 0; g < kGroups; ++g) norm += 1.0 / (g + 1);
  for (int g = 0; g < kGroups; ++g) {
    if (g > 0) {
      EXPECT_GT(c[static_cast<size_t>(g - 1)], c[static_cast<size_t>(g)]) << "rank " << g;
    }
    double expected = kSamples * (1.0 / (g + 1)) / norm;
    EXPECT_NEAR(c[static_cast<size_t>(g)], expected, 0.06 * expected) << "group " << g;
  }
  // A steeper exponent concentrates more on the head.
  std::vector<int> steep = GroupCounts(2.0, kGroups, kSamples, 3);
  EXPECT_GT(steep[0], c[0]);
  EXPECT_LT(steep[kGroups - 1], c[kGroups - 1]);
}

TEST(LoadgenWorkloadTest, ZipfZeroStaysUniform) {
  const int kGroups = 8, kSamples = 80000;
  std::vector<int> c = GroupCounts(0.0, kGroups, kSamples, 3);
  for (int g = 0; g < kGroups; ++g) EXPECT_NEAR(c[static_cast<size_t>(g)], kSamples / kGroups, 0.05 * kSamples / kGroups);
}

TEST(LoadgenWorkloadTest, SameSeedSameGroupsAndPrompts) {
  WorkloadOptions o;
  o.prefix_groups = 16;
  o.prefix_tokens = 8;
  o.prefix_zipf = 1.2;
  Workload a(o, 42), b(o, 42), c(o, 43);
  std::string err;
  ASSERT_TRUE(a.Init(&err) && b.Init(&err) && c.Init(&err)) << err;
  BuiltRequest ra, rb, rc;
  int differ = 0;
  for (int i = 0; i < 200; ++i) {
    a.Next(&ra);
    b.Next(&rb);
    c.Next(&rc);
    EXPECT_EQ(ra.group, rb.group);
    EXPECT_EQ(ra.raw, rb.raw);
    EXPECT_GE(ra.group, 0);
    EXPECT_LT(ra.group, 16);
    differ += ra.group != rc.group;
  }
  EXPECT_GT(differ, 0);  // the seed matters
}

TEST(LoadgenWorkloadTest, NoGroupsMeansNoGroup) {
  WorkloadOptions o;
  Workload w(o, 1);
  std::string err;
  ASSERT_TRUE(w.Init(&err)) << err;
  BuiltRequest r;
  w.Next(&r);
  EXPECT_EQ(r.group, -1);
}

TEST(LoadgenWorkloadTest, BadZipfAndTargetsAreRejected) {
  auto parse = [](std::vector<std::string> args, std::string* err) {
    std::vector<char*> argv{const_cast<char*>("llmgw-bench")};
    for (auto& s : args) argv.push_back(s.data());
    BenchArgs a;
    return ParseBenchArgs(static_cast<int>(argv.size()), argv.data(), &a, err);
  };
  std::string err;
  EXPECT_FALSE(parse({"--rate", "1", "--prefix-zipf", "-1"}, &err));
  EXPECT_NE(err.find("--prefix-zipf"), std::string::npos) << err;
  EXPECT_FALSE(parse({"--rate", "1", "--affinity-targets", "127.0.0.1:1,nope"}, &err));
  EXPECT_NE(err.find("nope"), std::string::npos) << err;
  EXPECT_FALSE(parse({"--rate", "1", "--target", "127.0.0.1:1", "--affinity-targets", "127.0.0.1:2"}, &err));
  EXPECT_NE(err.find("not both"), std::string::npos) << err;
  EXPECT_TRUE(parse({"--rate", "1", "--affinity-targets", "127.0.0.1:1,127.0.0.1:2", "--prefix-zipf", "1"}, &err))
      << err;
}

}  // namespace
}  // namespace llmgw::bench
