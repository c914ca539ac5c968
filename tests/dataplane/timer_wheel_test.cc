// Unit tests of TimerWheel: deadlines fire once and on time (to the tick), far deadlines
// survive wheel turns, cancel/reschedule from inside a callback, a long stall.
#include "dataplane/timer_wheel.h"

#include <gtest/gtest.h>

#include <vector>

namespace llmgw::dataplane {
namespace {

struct Item {
  TimerNode node;  // first member: the node's address is the item's
  int id = 0;
};
Item* Of(TimerNode* n) { return reinterpret_cast<Item*>(n); }

TEST(TimerWheelTest, FiresWhenDueAndOnlyOnce) {
  TimerWheel w(10);
  w.Start(1000);
  Item a{{}, 1}, b{{}, 2};
  w.Schedule(&a.node, 1025);
  w.Schedule(&b.node, 1050);
  std::vector<int> fired;
  auto fire = [&](TimerNode* n) { fired.push_back(Of(n)->id); };
  w.Advance(1019, fire);
  EXPECT_TRUE(fired.empty());
  w.Advance(1030, fire);
  EXPECT_EQ(fired, std::vector<int>({1}));
  EXPECT_FALSE(a.node.linked());
  w.Advance(1049, fire);
  EXPECT_EQ(fired.size(), 1u);  // b's tick (105) reached, its deadline not yet
  w.Advance(1060, fire);
  EXPECT_EQ(fired, std::vector<int>({1, 2}));
  EXPECT_EQ(w.size(), 0u);
  w.Advance(5000, fire);
  EXPECT_EQ(fired.size(), 2u);
}

TEST(TimerWheelTest, PastDeadlineFiresAtTheNextAdvance) {
  TimerWheel w(10);
  w.Start(1000);
  Item a{{}, 1};
  w.Schedule(&a.node, 10);
  int n = 0;
  w.Advance(1010, [&](TimerNode*) { ++n; });
  EXPECT_EQ(n, 1);
}

TEST(TimerWheelTest, FarDeadlinesSurviveWheelTurns) {
  TimerWheel w(10);
  w.Start(0);
  Item a{{}, 1};
  uint64_t far = 3 * TimerWheel::kSlots * 10 + 55;  // three turns and a bit
  w.Schedule(&a.node, far);
  int n = 0;
  for (uint64_t t = 0; t < far; t += 10) w.Advance(t, [&](TimerNode*) { ++n; });
  EXPECT_EQ(n, 0);
  w.Advance(far + 10, [&](TimerNode*) { ++n; });
  EXPECT_EQ(n, 1);
}

TEST(TimerWheelTest, CancelAndRescheduleInsideACallback) {
  TimerWheel w(10);
  w.Start(0);
  Item a{{}, 1}, b{{}, 2}, c{{}, 3};
  w.Schedule(&a.node, 20);
  w.Schedule(&b.node, 20);
  w.Schedule(&c.node, 20);
  std::vector<int> fired;
  w.Advance(30, [&](TimerNode* n) {
    fired.push_back(Of(n)->id);
    if (Of(n)->id == 1) {
      w.Cancel(&b.node);            // another node of the same slot
      w.Schedule(&a.node, 100);     // itself, later
    }
  });
  EXPECT_EQ(fired, std::vector<int>({1, 3}));
  EXPECT_TRUE(a.node.linked());
  EXPECT_FALSE(b.node.linked());
  w.Advance(100, [&](TimerNode* n) { fired.push_back(Of(n)->id); });
  EXPECT_EQ(fired, std::vector<int>({1, 3, 1}));
}

TEST(TimerWheelTest, MovingEarlierAndLater) {
  TimerWheel w(10);
  w.Start(0);
  Item a{{}, 1};
  w.Schedule(&a.node, 5000);
  w.Schedule(&a.node, 40);  // sooner
  int n = 0;
  w.Advance(50, [&](TimerNode*) { ++n; });
  EXPECT_EQ(n, 1);
  w.Schedule(&a.node, 60);
  w.Schedule(&a.node, 900);  // later
  w.Advance(100, [&](TimerNode*) { ++n; });
  EXPECT_EQ(n, 1);
  w.Advance(900, [&](TimerNode*) { ++n; });
  EXPECT_EQ(n, 2);
}

TEST(TimerWheelTest, LongStallFiresEverythingDueAndKeepsTheRest) {
  TimerWheel w(10);
  w.Start(0);
  Item due{{}, 1}, later{{}, 2};
  w.Schedule(&due.node, 100);
  uint64_t stall = 2 * TimerWheel::kSlots * 10;  // the loop was stuck for two turns
  w.Schedule(&later.node, stall + 5);
  std::vector<int> fired;
  w.Advance(stall, [&](TimerNode* n) { fired.push_back(Of(n)->id); });
  EXPECT_EQ(fired, std::vector<int>({1}));
  w.Advance(stall + 10, [&](TimerNode* n) { fired.push_back(Of(n)->id); });
  EXPECT_EQ(fired, std::vector<int>({1, 2}));
}

}  // namespace
}  // namespace llmgw::dataplane
