// Gateway-wide prefix homes: the report tables threads write, the collector llmcd reads
// them with, the PrefixPlacer's placement and moves, and Routers obeying published homes.
#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "common/routing/prefix_placer.h"
#include "tests/common/routing_test_util.h"

namespace llmgw::routing {
namespace {

using testing::Fleet;
using shm::BackendState;

std::vector<PlacerBackend> Backends(const std::vector<double>& weights) {
  std::vector<PlacerBackend> out;
  for (size_t i = 0; i < weights.size(); ++i) {
    std::string id = testing::Named("b", i);
    out.push_back({.slot = static_cast<uint16_t>(i), .key = shm::Fnv1a(id.data(), id.size()), .eligible = true,
                   .weight = weights[i], .in_flight = 0, .max_concurrent = 64});
  }
  return out;
}

// Feeds `ticks` ticks of 100 ms in which prefix p gets rate[p] picks per tick.
void Feed(PrefixPlacer& pl, std::span<const PlacerBackend> bs, const std::vector<double>& per_tick, int ticks) {
  for (int t = 0; t < ticks; ++t) {
    for (size_t p = 0; p < per_tick.size(); ++p) pl.Observe(1000 + p, per_tick[p]);
    pl.Tick(bs, 100);
  }
}

std::vector<double> Zipf(int n, double total) {
  double norm = 0;
  for (int i = 1; i <= n; ++i) norm += 1.0 / i;
  std::vector<double> out;
  for (int i = 1; i <= n; ++i) out.push_back(total / i / norm);
  return out;
}

TEST(PrefixPlacerTest, HomesBringTrafficInProportionToWeightAndSpreadPrompts) {
  auto bs = Backends({1, 1, 0.5, 0.25});
  PrefixPlacer pl;
  auto rate = Zipf(32, 4.0);  // 40 req/s
  Feed(pl, bs, rate, 600);     // one minute
  std::vector<double> traffic(4, 0);
  std::vector<int> count(4, 0);
  for (size_t p = 0; p < rate.size(); ++p) {
    int h = pl.HomeOf(1000 + p);
    ASSERT_GE(h, 0) << "every prefix has a home";
    traffic[h] += rate[p];
    ++count[h];
  }
  double total = 4.0, wsum = 2.75;
  for (int b = 0; b < 4; ++b) {
    double share = traffic[b] / total / (bs[b].weight / wsum);
    EXPECT_GT(share, 0.5) << "backend " << b;
    EXPECT_LT(share, 1.5) << "backend " << b;
    EXPECT_GE(count[b], 1) << "backend " << b;
  }
  std::vector<PlacedHome> homes;
  pl.Homes(100, &homes);
  ASSERT_EQ(homes.size(), 32u);
  for (size_t i = 1; i < homes.size(); ++i) EXPECT_GE(homes[i - 1].rate, homes[i].rate) << "busiest first";
}

TEST(PrefixPlacerTest, IneligibleBackendLosesItsHomesOnlyThoseMove) {
  auto bs = Backends({1, 1, 1, 1});
  PrefixPlacer pl;
  std::vector<double> rate(16, 0.2);
  Feed(pl, bs, rate, 100);
  std::map<int, int> before;
  for (int p = 0; p < 16; ++p) before[p] = pl.HomeOf(1000 + p);
  bs[2].eligible = false;
  Feed(pl, bs, rate, 1);
  int moved = 0;
  for (int p = 0; p < 16; ++p) {
    int h = pl.HomeOf(1000 + p);
    EXPECT_NE(h, 2);
    if (before[p] == 2) ++moved;
    else EXPECT_EQ(h, before[p]) << "prefix " << p << " was not on the leaver";
  }
  EXPECT_GT(moved, 0);
}

TEST(PrefixPlacerTest, OverloadedBackendShedsOnePrefixPerIntervalNotAtOnce) {
  // Every prefix starts on backend 0 (the only eligible one), then the others join: four
  // times its share, so it sheds at the fastest pace, one prefix per kMinMoveMs.
  auto bs = Backends({1, 1, 1, 1});
  for (int i = 1; i < 4; ++i) bs[i].eligible = false;
  PrefixPlacer pl;
  std::vector<double> rate(12, 0.3);
  Feed(pl, bs, rate, 20);
  for (int p = 0; p < 12; ++p) ASSERT_EQ(pl.HomeOf(1000 + p), 0);
  for (int i = 1; i < 4; ++i) bs[i].eligible = true;
  const int fast = static_cast<int>(PrefixPlacer::kMinMoveMs / 100);
  Feed(pl, bs, rate, fast - 1);
  EXPECT_EQ(pl.moves(), 0u) << "a shorter overload moves nothing";
  Feed(pl, bs, rate, 1);
  EXPECT_EQ(pl.moves(), 1u);
  Feed(pl, bs, rate, fast - 1);
  EXPECT_EQ(pl.moves(), 1u) << "one prefix per interval, not all at once";
  Feed(pl, bs, rate, 1);
  EXPECT_EQ(pl.moves(), 2u);
  Feed(pl, bs, rate, 600);
  std::vector<int> count(4, 0);
  for (int p = 0; p < 12; ++p) ++count[pl.HomeOf(1000 + p)];
  for (int b = 0; b < 4; ++b) {
    EXPECT_GE(count[b], 2) << "backend " << b;
    EXPECT_LE(count[b], 4) << "backend " << b;
  }
}

TEST(PrefixPlacerTest, PromptThatIsMostOfTheTrafficStaysPut) {
  auto bs = Backends({1, 1, 1});
  PrefixPlacer pl;
  std::vector<double> rate = {8.0, 0.1, 0.1, 0.1};
  Feed(pl, bs, rate, 50);
  int home = pl.HomeOf(1000);
  uint64_t moves = pl.moves();
  Feed(pl, bs, rate, 600);
  EXPECT_EQ(pl.HomeOf(1000), home);
  EXPECT_LE(pl.moves(), moves + 3) << "nothing churns";
}

TEST(PrefixPlacerTest, InFlightOverloadMovesPrefixesSoonerTheFurtherOver) {
  // All weights 1 but backend 3 is slow: its in-flight stays above c x the mean (and above
  // a quarter of max_concurrent, 16). Just over: it waits about kMoveAfterMs; far over:
  // much sooner.
  for (uint32_t in_flight : {17u, 40u}) {
    SCOPED_TRACE(in_flight);
    auto bs = Backends({1, 1, 1, 1});
    PrefixPlacer pl;
    std::vector<double> rate(16, 0.25);
    Feed(pl, bs, rate, 50);
    int on3 = 0;
    for (int p = 0; p < 16; ++p) on3 += pl.HomeOf(1000 + p) == 3;
    ASSERT_GT(on3, 1);
    bs[0].in_flight = bs[1].in_flight = bs[2].in_flight = 4;
    bs[3].in_flight = in_flight;
    double severity = (in_flight + 1.0) / 16.0;
    double wait = std::max<double>(PrefixPlacer::kMinMoveMs, PrefixPlacer::kMoveAfterMs / (severity * severity));
    int ticks = static_cast<int>(std::ceil(wait / 100));
    Feed(pl, bs, rate, ticks - 1);
    int after = 0;
    for (int p = 0; p < 16; ++p) after += pl.HomeOf(1000 + p) == 3;
    EXPECT_EQ(after, on3) << "not yet";
    Feed(pl, bs, rate, 1);
    after = 0;
    for (int p = 0; p < 16; ++p) after += pl.HomeOf(1000 + p) == 3;
    EXPECT_EQ(after, on3 - 1) << "one prefix leaves after " << ticks * 100 << " ms";
    if (in_flight == 17) {
      EXPECT_GE(ticks * 100, 3000);
    }
    if (in_flight == 40) {
      EXPECT_LE(ticks * 100, 1000);
    }
  }
}

TEST(PrefixPlacerTest, QuietPrefixesAreForgotten) {
  auto bs = Backends({1, 1});
  PrefixPlacer pl;
  pl.Observe(7, 1);
  pl.Tick(bs, 100);
  EXPECT_GE(pl.HomeOf(7), 0);
  for (int i = 0; i < 100; ++i) pl.Tick(bs, 1000);  // 100 s of silence
  EXPECT_EQ(pl.HomeOf(7), -1);
  EXPECT_EQ(pl.size(), 0u);
}

TEST(PrefixReportCollectorTest, DeltasPerTagAndReplacedEntriesStartFromZero) {
  auto region = std::make_unique<shm::ShmRegion>();
  region->slots[3].heartbeat_unix_ms.store(1);
  auto& e = region->slots[3].prefix_report[5];
  e.picks.store(10);
  e.model_slot.store(2);
  e.tag.store(77);
  PrefixReportCollector c;
  std::map<uint64_t, uint64_t> got;
  auto collect = [&] {
    got.clear();
    c.Collect(*region, [&](uint16_t model, uint64_t tag, uint64_t d) {
      EXPECT_EQ(model, 2);
      got[tag] += d;
    });
  };
  collect();
  EXPECT_EQ(got[77], 10u);
  collect();
  EXPECT_TRUE(got.empty()) << "nothing new";
  e.picks.store(13);
  collect();
  EXPECT_EQ(got[77], 3u);
  // Another prefix takes the entry over: its count starts from 0.
  e.picks.store(2);
  e.tag.store(99);
  collect();
  EXPECT_EQ(got.count(77), 0u);
  EXPECT_EQ(got[99], 2u);
}

// Two gateway threads (Routers) see the same prefixes in different orders and loads;
// without llmcd they may home them differently; with the published homes they agree,
// and their reports are what the placer placed from.
TEST(GatewayWidePrefixHomesTest, ThreadsAgreeOnceHomesArePublished) {
  Fleet a(Policy::kPrefixAffinity, 4, 64), b(Policy::kPrefixAffinity, 4, 64);
  auto region = std::make_unique<shm::ShmRegion>();
  region->slots[0].heartbeat_unix_ms.store(1);
  region->slots[1].heartbeat_unix_ms.store(1);
  a.router.SetPrefixReport(region->slots[0].prefix_report, shm::kPrefixReportEntries);
  b.router.SetPrefixReport(region->slots[1].prefix_report, shm::kPrefixReportEntries);
  std::vector<std::string> prompts;
  for (int p = 0; p < 12; ++p) prompts.push_back("system prompt number " + std::to_string(p) + " for the assistant");
  // Thread a sees them in order, thread b in reverse with some load on backend 0.
  b.local[0].in_flight = 10;
  for (int r = 0; r < 3; ++r) {
    for (int p = 0; p < 12; ++p) a.Pick({.prefix = prompts[p]});
    for (int p = 11; p >= 0; --p) b.Pick({.prefix = prompts[p]});
  }
  int disagree = 0;
  for (int p = 0; p < 12; ++p) {
    uint64_t h = Router::HashKey(prompts[p]);
    disagree += a.router.PrefixHomeOf(h, 0) != b.router.PrefixHomeOf(h, 0);
  }
  EXPECT_GT(disagree, 0) << "the threads' own placements differ (what llmcd's homes fix)";
  PrefixReportCollector coll;
  PrefixPlacer pl;
  uint64_t reported = 0;
  coll.Collect(*region, [&](uint16_t, uint64_t tag, uint64_t d) {
    pl.Observe(tag, static_cast<double>(d));
    reported += d;
  });
  EXPECT_EQ(reported, 72u) << "every pick of both threads was reported";
  std::vector<PlacerBackend> bs;
  for (int s = 0; s < 4; ++s)
    bs.push_back({.slot = static_cast<uint16_t>(s), .key = a.b(s).key, .eligible = true, .weight = 1, .in_flight = 0, .max_concurrent = 64});
  pl.Tick(bs, 100);
  std::vector<PlacedHome> homes;
  pl.Homes(shm::kMaxPrefixHomes, &homes);
  ASSERT_EQ(homes.size(), 12u);
  for (Fleet* f : {&a, &b}) {
    f->snap->num_prefix_homes = static_cast<uint32_t>(homes.size());
    for (size_t i = 0; i < homes.size(); ++i) f->snap->prefix_homes[i] = {homes[i].tag, homes[i].backend_key, homes[i].slot, 0, 0};
    f->Publish();
  }
  for (int p = 0; p < 12; ++p) {
    uint64_t h = Router::HashKey(prompts[p].substr(0, 256));
    bool pa = false, pb = false;
    int ha = a.router.PrefixHomeOf(h, 0, &pa), hb = b.router.PrefixHomeOf(h, 0, &pb);
    EXPECT_TRUE(pa && pb) << "prefix " << p << " placed by llmcd";
    EXPECT_EQ(ha, hb) << "prefix " << p;
    EXPECT_EQ(ha, pl.HomeOf(Router::PrefixTag(h, 0)));
    // And both threads send it there.
    EXPECT_EQ(a.Pick({.prefix = prompts[p]}), ha);
    EXPECT_EQ(b.Pick({.prefix = prompts[p]}), ha);
  }
}

TEST(GatewayWidePrefixHomesTest, FullHomeSpillsTheRequestButKeepsThePrefix) {
  Fleet f(Policy::kPrefixAffinity, 3, 8);
  std::string prompt = "a long shared system prompt";
  uint64_t h = Router::HashKey(prompt);
  uint64_t tag = Router::PrefixTag(h, 0);
  f.snap->num_prefix_homes = 1;
  f.snap->prefix_homes[0] = {tag, f.b(1).key, 1, 0, 0};
  f.Publish();
  EXPECT_EQ(f.Pick({.prefix = prompt}), 1);
  // Home at max_concurrent: the request goes elsewhere, the home stays (only llmcd moves it).
  f.local[1].in_flight = 8;
  for (int i = 0; i < 100; ++i) EXPECT_NE(f.Pick({.prefix = prompt}), 1);
  bool pinned = false;
  EXPECT_EQ(f.router.PrefixHomeOf(h, 0, &pinned), 1);
  EXPECT_TRUE(pinned);
  f.local[1].in_flight = 0;
  EXPECT_EQ(f.Pick({.prefix = prompt}), 1);
}

TEST(GatewayWidePrefixHomesTest, StaleOrForeignEntriesAreIgnored) {
  Fleet f(Policy::kPrefixAffinity, 3, 8);
  std::string prompt = "another prompt";
  uint64_t h = Router::HashKey(prompt);
  uint64_t tag = Router::PrefixTag(h, 0);
  f.snap->num_prefix_homes = 3;
  f.snap->prefix_homes[0] = {tag, 12345, 1, 0, 0};           // key does not match slot 1
  f.snap->prefix_homes[1] = {tag ^ 2, f.b(2).key, 2, 1, 0};  // another model
  f.snap->prefix_homes[2] = {tag ^ 4, f.b(2).key, 900, 0, 0};  // slot out of range
  f.Publish();
  bool pinned = true;
  f.router.PrefixHomeOf(h, 0, &pinned);
  EXPECT_FALSE(pinned);
  EXPECT_GE(f.Pick({.prefix = prompt}), 0) << "placed by the thread itself";
  // Unpublished in the next snapshot: no longer authoritative.
  f.snap->num_prefix_homes = 1;
  f.snap->prefix_homes[0] = {tag, f.b(0).key, 0, 0, 0};
  f.Publish();
  EXPECT_EQ(f.Pick({.prefix = prompt}), 0);
  f.snap->num_prefix_homes = 0;
  f.Publish();
  f.router.PrefixHomeOf(h, 0, &pinned);
  EXPECT_FALSE(pinned);
}

}  // namespace
}  // namespace llmgw::routing
