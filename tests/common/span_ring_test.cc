// Unit tests of SpanRing (common/span_ring.h): order, the full ring dropping and counting
// instead of overwriting, and one producer thread against one consumer thread losing or
// duplicating nothing (run under TSan in CI: label threads).
#include "common/span_ring.h"

#include <gtest/gtest.h>

#include <memory>
#include <thread>
#include <vector>

namespace llmgw::shm {
namespace {

SpanRecord Numbered(uint64_t n) {
  SpanRecord r{};
  r.start_unix_ns = n;
  r.span_id[0] = static_cast<uint8_t>(n);
  CopySpanText(r.request_model, sizeof(r.request_model), "m");
  return r;
}

TEST(SpanRingTest, OldestFirstEachOnce) {
  auto ring = std::make_unique<SpanRing>();
  SpanRingWriter w(ring.get());
  SpanRingReader rd(ring.get());
  for (uint64_t i = 1; i <= 10; ++i) ASSERT_TRUE(w.Push(Numbered(i)));
  std::vector<uint64_t> seen;
  EXPECT_EQ(rd.Drain([&](const SpanRecord& r) { seen.push_back(r.start_unix_ns); }), 10u);
  ASSERT_EQ(seen.size(), 10u);
  for (uint64_t i = 0; i < 10; ++i) EXPECT_EQ(seen[i], i + 1);
  EXPECT_EQ(rd.Drain([&](const SpanRecord&) { FAIL() << "drained twice"; }), 0u);
}

TEST(SpanRingTest, FullRingDropsNewRecordsAndCountsThem) {
  auto ring = std::make_unique<SpanRing>();
  SpanRingWriter w(ring.get());
  for (uint64_t i = 0; i < kSpanRingEntries; ++i) ASSERT_TRUE(w.Push(Numbered(i)));
  EXPECT_FALSE(w.Push(Numbered(999)));
  EXPECT_FALSE(w.Push(Numbered(1000)));
  SpanRingReader rd(ring.get());
  EXPECT_EQ(rd.dropped(), 2u);
  uint64_t first = UINT64_MAX, n = 0;
  rd.Drain([&](const SpanRecord& r) {
    if (first == UINT64_MAX) first = r.start_unix_ns;
    EXPECT_NE(r.start_unix_ns, 999u) << "a full ring must not overwrite";
    ++n;
  });
  EXPECT_EQ(first, 0u);
  EXPECT_EQ(n, kSpanRingEntries);
  EXPECT_TRUE(w.Push(Numbered(5)));  // room again
}

TEST(SpanRingTest, DrainHonoursMax) {
  auto ring = std::make_unique<SpanRing>();
  SpanRingWriter w(ring.get());
  SpanRingReader rd(ring.get());
  for (uint64_t i = 0; i < 5; ++i) w.Push(Numbered(i));
  EXPECT_EQ(rd.Drain([](const SpanRecord&) {}, 3), 3u);
  uint64_t next = 0;
  EXPECT_EQ(rd.Drain([&](const SpanRecord& r) { next = next ? next : r.start_unix_ns + 100; }), 2u);
  EXPECT_EQ(next, 103u);
}

TEST(SpanRingTest, UnattachedWriterRefuses) {
  SpanRingWriter w;
  EXPECT_FALSE(w.attached());
  EXPECT_FALSE(w.Push(Numbered(1)));
}

TEST(SpanRingTest, ConcurrentProducerAndConsumerLoseNothing) {
  auto ring = std::make_unique<SpanRing>();
  constexpr uint64_t kTotal = 200000;
  std::atomic<bool> done{false};
  uint64_t pushed = 0;
  std::thread producer([&] {
    SpanRingWriter w(ring.get());
    for (uint64_t i = 1; i <= kTotal; ++i) {
      while (!w.Push(Numbered(i))) std::this_thread::yield();  // full: the test retries, llmgw drops
      ++pushed;
    }
    done = true;
  });
  SpanRingReader rd(ring.get());
  uint64_t expect = 1, got = 0;
  bool in_order = true;
  while (!done.load() || got < kTotal) {
    rd.Drain([&](const SpanRecord& r) {
      in_order &= r.start_unix_ns == expect && r.span_id[0] == static_cast<uint8_t>(expect);
      ++expect;
      ++got;
    });
  }
  producer.join();
  EXPECT_TRUE(in_order);
  EXPECT_EQ(got, kTotal);
  EXPECT_EQ(pushed, kTotal);
}

}  // namespace
}  // namespace llmgw::shm
