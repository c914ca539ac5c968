// Unit tests of llmgw-mock's continuous-batching model with a fake clock.
#include "bench/mock/engine_model.h"

#include <gtest/gtest.h>

#include <map>
#include <string>

namespace llmgw::mock {
namespace {

// Runs the model until idle; returns each request's first-token time (us).
std::map<uint64_t, int64_t> RunToIdle(EngineModel& m, int64_t* now) {
  std::map<uint64_t, int64_t> first;
  std::vector<TokenEvent> ev;
  while (m.NextDeadlineUs() >= 0) {
    *now = m.NextDeadlineUs();
    ev.clear();
    m.Advance(*now, &ev);
    for (auto& e : ev)
      if (e.index == 0) first[e.id] = *now;
  }
  return first;
}

EngineParams Params() {
  EngineParams p;
  p.max_num_seqs = 4;
  p.token_interval_ms = 10;
  p.decode_batch_factor = 0.1;
  p.prefill_us_per_token = 100;
  p.prefix_cache_blocks = 1024;
  return p;
}

TEST(EngineModelTest, QueueingMakesTtftGrowWithLoad) {
  auto ttft_at_load = [](int n) {
    EngineModel m(Params());
    int64_t now = 0;
    for (int i = 0; i < n; ++i) m.Submit(static_cast<uint64_t>(i + 1), "prompt " + std::to_string(i), 20, 0);
    auto first = RunToIdle(m, &now);
    int64_t worst = 0;
    for (auto& [id, t] : first) worst = std::max(worst, t);
    EXPECT_EQ(first.size(), static_cast<size_t>(n));
    return worst;
  };
  int64_t light = ttft_at_load(2), full = ttft_at_load(4), queued = ttft_at_load(12);
  EXPECT_LT(light, full);       // bigger batch = slower steps
  EXPECT_GT(queued, 5 * full);  // requests beyond max_num_seqs wait for whole requests to finish
}

TEST(EngineModelTest, WaitingQueueIsFifoAndBounded) {
  EngineModel m(Params());
  for (uint64_t i = 1; i <= 6; ++i) {
    // Built by appends: `"p" + std::to_string(i)` trips GCC 12's false -Wrestrict at -O3.
    std::string prefix = "p";
    prefix += std::to_string(i);
    m.Submit(i, prefix, 5, 0);
  }
  // The first starts a step at once; the others join at the next step boundary.
  EXPECT_EQ(m.running(), 1);
  EXPECT_EQ(m.waiting(), 5);
  std::vector<TokenEvent> ev;
  m.Advance(m.NextDeadlineUs(), &ev);
  EXPECT_EQ(m.running(), 4);
  EXPECT_EQ(m.waiting(), 2);
  int64_t now = 0;
  auto first = RunToIdle(m, &now);
  EXPECT_LT(first[5], first[6] + 1);
  EXPECT_GT(first[5], first[4]);
}

TEST(EngineModelTest, PrefixCacheHitsCutPrefill) {
  EngineModel m(Params());
  std::string prompt(4096, 'a');  // 1024 tokens = 64 blocks
  for (size_t i = 0; i < prompt.size(); ++i) prompt[i] = static_cast<char>('a' + (i * 7) % 26);
  EXPECT_EQ(m.Submit(1, prompt, 1, 0), 0);
  int64_t now = 0;
  int64_t cold = RunToIdle(m, &now)[1];
  int64_t start = now;
  int cached = m.Submit(2, prompt, 1, start);
  EXPECT_EQ(cached, 1023);  // everything but the last token
  int64_t warm = RunToIdle(m, &now)[2] - start;
  EXPECT_LT(warm * 5, cold);
  EXPECT_EQ(m.prefix_hit_tokens(), 1023u);
  EXPECT_EQ(m.prefix_queries_tokens(), 2048u);
}

TEST(EngineModelTest, SharedPrefixOnlyPartlyCached) {
  EngineModel m(Params());
  std::string shared(640, 's');  // 160 tokens = 10 blocks
  m.Submit(1, shared + std::string(640, 'x'), 1, 0);
  int64_t now = 0;
  RunToIdle(m, &now);
  EXPECT_EQ(m.Submit(2, shared + std::string(640, 'y'), 1, now), 160);
}

TEST(EngineModelTest, PrefixCacheEvictsLeastRecentlyUsed) {
  PrefixCache c(2);
  EXPECT_EQ(c.MatchAndInsert({1, 2}), 0u);
  EXPECT_EQ(c.MatchAndInsert({1}), 1u);  // 1 now most recent
  c.MatchAndInsert({3});                   // evicts 2
  EXPECT_EQ(c.MatchAndInsert({2}), 0u);
  EXPECT_EQ(c.size(), 2u);
}

TEST(EngineModelTest, SpeedFactorScalesTime) {
  auto total = [](double speed) {
    EngineParams p = Params();
    p.speed = speed;
    EngineModel m(p);
    m.Submit(1, "hello", 10, 0);
    int64_t now = 0;
    RunToIdle(m, &now);
    return now;
  };
  EXPECT_NEAR(static_cast<double>(total(0.5)), 2.0 * static_cast<double>(total(1.0)), 20);
}

TEST(EngineModelTest, KvUsageTracksTokensHeld) {
  EngineParams p = Params();
  p.kv_capacity_tokens = 1000;
  EngineModel m(p);
  m.Submit(1, std::string(400, 'q'), 10, 0);  // 100 prompt tokens
  EXPECT_DOUBLE_EQ(m.kv_usage(), 0.1);
  std::vector<TokenEvent> ev;
  m.Advance(m.NextDeadlineUs(), &ev);
  EXPECT_EQ(m.kv_tokens_held(), 101);
  int64_t now = 0;
  RunToIdle(m, &now);
  EXPECT_EQ(m.kv_tokens_held(), 0);
}

TEST(EngineModelTest, KvCapacityLimitsAdmission) {
  EngineParams p = Params();
  p.kv_capacity_tokens = 300;
  EngineModel m(p);
  m.Submit(1, std::string(800, 'a'), 10, 0);  // 200 + 10
  m.Submit(2, std::string(800, 'b'), 10, 0);
  EXPECT_EQ(m.running(), 1);
  EXPECT_EQ(m.waiting(), 1);
}

TEST(EngineModelTest, CancelRemovesRunningAndWaiting) {
  EngineModel m(Params());
  for (uint64_t i = 1; i <= 5; ++i) m.Submit(i, "x", 100, 0);
  EXPECT_TRUE(m.Cancel(5));
  EXPECT_TRUE(m.Cancel(1));
  EXPECT_FALSE(m.Cancel(42));
  EXPECT_EQ(m.running(), 0);
  EXPECT_EQ(m.waiting(), 3);
  std::vector<TokenEvent> ev;
  m.Advance(m.NextDeadlineUs(), &ev);
  EXPECT_TRUE(ev.empty());  // the cancelled request's step yields nothing
  EXPECT_EQ(m.running(), 3);
}

TEST(EngineModelTest, EveryRequestGetsExactlyItsTokens) {
  EngineModel m(Params());
  for (uint64_t i = 1; i <= 7; ++i) m.Submit(i, "x", static_cast<int>(i), 0);
  std::map<uint64_t, int> count;
  std::map<uint64_t, bool> finished;
  std::vector<TokenEvent> ev;
  while (m.NextDeadlineUs() >= 0) {
    ev.clear();
    m.Advance(m.NextDeadlineUs(), &ev);
    for (auto& e : ev) {
      EXPECT_EQ(e.index, count[e.id]);
      ++count[e.id];
      if (e.finished) finished[e.id] = true;
    }
  }
  for (uint64_t i = 1; i <= 7; ++i) {
    EXPECT_EQ(count[i], static_cast<int>(i));
    EXPECT_TRUE(finished[i]);
  }
}

TEST(EngineModelTest, BusySlotTimeGrowsWithRunningSequencesOnly) {
  EngineModel m(Params());
  EXPECT_EQ(m.BusySlotUs(0), 0.0);
  EXPECT_EQ(m.BusySlotUs(5'000'000), 0.0);  // idle: no growth however long
  const int64_t t0 = 5'000'000;
  m.Submit(1, "a", 3, t0);  // starts a step at once, alone
  const int64_t end1 = m.NextDeadlineUs();
  EXPECT_DOUBLE_EQ(m.BusySlotUs(t0 + (end1 - t0) / 2), static_cast<double>((end1 - t0) / 2));
  m.Submit(2, "b", 3, t0);  // waits for the step boundary, then both run
  int64_t now = t0;
  RunToIdle(m, &now);
  // Sequence 1 ran 3 steps alone or together with 2; 2 ran its 3 steps from end1: the
  // integral is the sum of both sequences' running time.
  double expected = static_cast<double>(end1 - t0);  // step 1: one sequence
  EngineModel replay(Params());
  replay.Submit(1, "a", 3, t0);
  replay.Submit(2, "b", 3, t0);
  std::vector<TokenEvent> ev;
  int64_t prev = replay.NextDeadlineUs();
  replay.Advance(prev, &ev);
  while (replay.NextDeadlineUs() >= 0) {
    int64_t end = replay.NextDeadlineUs();
    expected += static_cast<double>(replay.running()) * static_cast<double>(end - prev);
    ev.clear();
    replay.Advance(end, &ev);
    prev = end;
  }
  EXPECT_DOUBLE_EQ(m.BusySlotUs(now), expected);
  EXPECT_GT(expected, 2.0 * static_cast<double>(end1 - t0));
  EXPECT_DOUBLE_EQ(m.BusySlotUs(now + 10'000'000), expected);  // idle again: flat
}

TEST(EngineModelTest, BusySlotTimeOfACancelledSequenceStopsAtCancel) {
  EngineModel m(Params());
  m.Submit(1, "a", 100, 0);
  const int64_t end = m.NextDeadlineUs();
  EXPECT_TRUE(m.Cancel(1, end / 4));
  EXPECT_DOUBLE_EQ(m.BusySlotUs(end), static_cast<double>(end / 4));
  EXPECT_DOUBLE_EQ(m.BusySlotUs(10 * end), static_cast<double>(end / 4));
}

}  // namespace
}  // namespace llmgw::mock
