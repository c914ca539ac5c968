// Unit tests of the prefix-home table on its own (prefix_homes.h): the bookkeeping that
// prefix_affinity and adaptive place and move prefixes by, llmcd's published homes, and
// the per-thread report.
#include "common/routing/prefix_homes.h"

#include <gtest/gtest.h>

#include <memory>
#include <vector>

namespace llmgw::routing {
namespace {

class PrefixHomeTableTest : public ::testing::Test {
 protected:
  PrefixHomeTableTest() {
    snap->num_backends = 4;
    for (uint16_t s = 0; s < 4; ++s) {
      snap->backends[s].key = 100 + s;
      snap->backends[s].state = static_cast<uint8_t>(shm::BackendState::kHealthy);
      snap->backends[s].model_slot = 0;
    }
  }
  void Home(uint64_t tag, uint16_t slot) { t.SetHome(t.Entry(tag), tag, slot, snap->backends[slot].key); }
  std::unique_ptr<shm::Snapshot> snap = std::make_unique<shm::Snapshot>();
  PrefixHomeTable t;
};

TEST_F(PrefixHomeTableTest, TagsDifferByModelAndAreNeverEmpty) {
  EXPECT_NE(PrefixHomeTable::Tag(7, 0), PrefixHomeTable::Tag(7, 1));
  EXPECT_EQ(PrefixHomeTable::Tag(7, 0), PrefixHomeTable::Tag(7, 0));
  EXPECT_NE(PrefixHomeTable::Tag(0, 0), 0u);  // 0 marks an empty entry
}

TEST_F(PrefixHomeTableTest, MovingAHomeMovesItsCountAndTraffic) {
  uint64_t tag = PrefixHomeTable::Tag(1, 0);
  Home(tag, 1);
  for (int i = 0; i < 10; ++i) t.CountPick(t.Entry(tag));
  EXPECT_EQ(t.homed(1), 1u);
  EXPECT_DOUBLE_EQ(t.homed_rate(1), 10.0);
  Home(tag, 2);
  EXPECT_EQ(t.homed(1), 0u);
  EXPECT_DOUBLE_EQ(t.homed_rate(1), 0.0);
  EXPECT_EQ(t.homed(2), 1u);
  EXPECT_DOUBLE_EQ(t.homed_rate(2), 10.0);  // the prefix brings its traffic along
  EXPECT_EQ(t.Entry(tag).slot, 2);
}

TEST_F(PrefixHomeTableTest, ACollidingPrefixTakesTheEntryOverFromZero) {
  uint64_t a = PrefixHomeTable::Tag(1, 0);
  uint64_t b = a + PrefixHomeTable::kEntries;  // same entry, another prefix
  ASSERT_EQ(&t.Entry(a), &t.Entry(b));
  Home(a, 1);
  for (int i = 0; i < 5; ++i) t.CountPick(t.Entry(a));
  Home(b, 3);
  EXPECT_EQ(t.Entry(b).key_hash, b);
  EXPECT_FLOAT_EQ(t.Entry(b).rate, 0.0f);
  EXPECT_EQ(t.homed(1), 0u);
  EXPECT_EQ(t.homed(3), 1u);
  EXPECT_DOUBLE_EQ(t.homed_rate(3), 0.0);
}

TEST_F(PrefixHomeTableTest, TrafficHalvesEveryHalfLife) {
  uint64_t hot = PrefixHomeTable::Tag(1, 0), cold = PrefixHomeTable::Tag(2, 0);
  Home(hot, 0);
  Home(cold, 1);
  for (int i = 0; i < 8; ++i) t.CountPick(t.Entry(cold));
  for (uint32_t i = 8; i < PrefixHomeTable::kRateHalfLifePicks; ++i) t.CountPick(t.Entry(hot));
  // The halving happened on the last pick: backends' sums at once...
  EXPECT_DOUBLE_EQ(t.homed_rate(1), 4.0);
  EXPECT_DOUBLE_EQ(t.homed_rate(0), (PrefixHomeTable::kRateHalfLifePicks - 8) / 2.0);
  // ...entries when next touched.
  PrefixHome& c = t.Entry(cold);
  t.Age(c);
  EXPECT_FLOAT_EQ(c.rate, 4.0f);
}

TEST_F(PrefixHomeTableTest, PublishedHomesArePinnedUntilTheNextSnapshotDropsThem) {
  uint64_t tag = PrefixHomeTable::Tag(9, 0);
  snap->num_prefix_homes = 2;
  snap->prefix_homes[0] = {.tag = tag, .backend_key = 102, .backend_slot = 2, .model_slot = 0};
  // A stale entry (the slot was reused by another backend) is ignored.
  uint64_t stale = PrefixHomeTable::Tag(10, 0);
  snap->prefix_homes[1] = {.tag = stale, .backend_key = 999, .backend_slot = 1, .model_slot = 0};
  t.ApplyPublished(*snap);
  EXPECT_EQ(t.Entry(tag).slot, 2);
  EXPECT_TRUE(t.Pinned(t.Entry(tag)));
  EXPECT_TRUE(PrefixHomeTable::Exists(t.Entry(tag), *snap, 0));
  EXPECT_FALSE(PrefixHomeTable::Exists(t.Entry(tag), *snap, 1));  // another model
  EXPECT_NE(t.Entry(stale).key_hash, stale);
  snap->num_prefix_homes = 0;
  t.ApplyPublished(*snap);
  EXPECT_EQ(t.Entry(tag).slot, 2);  // the home is remembered...
  EXPECT_FALSE(t.Pinned(t.Entry(tag)));  // ...but this thread may move it again
}

TEST_F(PrefixHomeTableTest, AHomeWhoseSlotWasReusedDoesNotExist) {
  uint64_t tag = PrefixHomeTable::Tag(3, 0);
  Home(tag, 1);
  EXPECT_TRUE(PrefixHomeTable::Exists(t.Entry(tag), *snap, 0));
  snap->backends[1].key = 555;  // another backend now lives in slot 1
  EXPECT_FALSE(PrefixHomeTable::Exists(t.Entry(tag), *snap, 0));
  snap->backends[1].key = 101;
  snap->backends[1].state = static_cast<uint8_t>(shm::BackendState::kEmpty);
  EXPECT_FALSE(PrefixHomeTable::Exists(t.Entry(tag), *snap, 0));
}

TEST_F(PrefixHomeTableTest, ReportCountsPicksPerTagAndNeedsAPowerOfTwo) {
  std::vector<shm::PrefixReport> table(8);
  t.SetReport(table.data(), 6);  // not a power of two: reporting stays off
  t.Report(PrefixHomeTable::Tag(1, 0), 0);
  for (auto& r : table) EXPECT_EQ(r.tag.load(), 0u);
  t.SetReport(table.data(), table.size());
  uint64_t tag = PrefixHomeTable::Tag(1, 2);
  t.Report(tag, 2);
  t.Report(tag, 2);
  shm::PrefixReport& r = table[tag & 7];
  EXPECT_EQ(r.tag.load(), tag);
  EXPECT_EQ(r.picks.load(), 2u);
  EXPECT_EQ(r.model_slot.load(), 2u);
  uint64_t other = tag + 8;  // same report entry: the newer prefix restarts the count
  t.Report(other, 2);
  EXPECT_EQ(r.tag.load(), other);
  EXPECT_EQ(r.picks.load(), 1u);
}

}  // namespace
}  // namespace llmgw::routing
