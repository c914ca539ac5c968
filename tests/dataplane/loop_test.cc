// Unit tests of Loop on a socketpair: completions come back with the user data they were
// submitted with, multishot recv fills the provided buffers, a wait with nothing to do
// times out.
#include "dataplane/loop.h"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <string>
#include <vector>

namespace llmgw::dataplane {
namespace {

struct Completion {
  uint64_t ud;
  int res;
  uint32_t flags;
};

struct LoopTest : ::testing::Test {
  Loop loop;
  int sv[2] = {-1, -1};
  void SetUp() override {
    Loop::Options o;
    o.entries = 64;
    o.cq_entries = 256;
    o.recv_buf_count = 8;
    o.recv_buf_size = 64;
    Status st = loop.Init(o);
    ASSERT_TRUE(st.ok()) << st.error().message();
    ASSERT_TRUE(loop.EnableOnThisThread().ok());
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
  }
  void TearDown() override {
    ::close(sv[0]);
    ::close(sv[1]);
  }
  std::vector<Completion> WaitAll(uint32_t timeout_ms = 1000) {
    std::vector<Completion> got;
    int woke = 0;
    EXPECT_TRUE(loop.Wait(timeout_ms, [&] { ++woke; },
                          [&](uint64_t ud, int res, uint32_t flags) { got.push_back({ud, res, flags}); }));
    EXPECT_EQ(woke, 1);
    return got;
  }
};

TEST_F(LoopTest, CompletionCarriesItsUserData) {
  char buf[16];
  io_uring_sqe* s = loop.Sqe();
  io_uring_prep_recv(s, sv[0], buf, sizeof(buf), 0);
  io_uring_sqe_set_data64(s, 0xabc0 | 3);  // a tag: an object's address and an operation
  ASSERT_EQ(::write(sv[1], "hello", 5), 5);
  std::vector<Completion> got = WaitAll();
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].ud, 0xabc0u | 3);
  EXPECT_EQ(got[0].res, 5);
  EXPECT_EQ(std::string(buf, 5), "hello");
}

TEST_F(LoopTest, MultishotRecvUsesProvidedBuffers) {
  io_uring_sqe* s = loop.Sqe();
  io_uring_prep_recv_multishot(s, sv[0], nullptr, 0, 0);
  s->flags |= IOSQE_BUFFER_SELECT;
  s->buf_group = loop.recv_buf_group();
  io_uring_sqe_set_data64(s, 42);
  std::string seen;
  for (const char* piece : {"first", "second"}) {
    ASSERT_GT(::write(sv[1], piece, std::strlen(piece)), 0);
    std::vector<Completion> got = WaitAll();
    ASSERT_EQ(got.size(), 1u);
    EXPECT_EQ(got[0].ud, 42u);
    EXPECT_TRUE(got[0].flags & IORING_CQE_F_BUFFER);
    EXPECT_TRUE(got[0].flags & IORING_CQE_F_MORE);  // still armed: one submission, many reads
    uint32_t bid = got[0].flags >> IORING_CQE_BUFFER_SHIFT;
    seen.append(loop.RecvBuf(bid), static_cast<size_t>(got[0].res));
    loop.ReturnRecvBuf(bid);
  }
  EXPECT_EQ(seen, "firstsecond");
}

TEST_F(LoopTest, WaitTimesOutWithNothingToDo) {
  std::vector<Completion> got = WaitAll(20);
  EXPECT_TRUE(got.empty());
}

TEST_F(LoopTest, TimerWheelIsTheLoops) {
  TimerNode n;
  loop.timers().Start(0);
  loop.timers().Schedule(&n, 50);
  int fired = 0;
  loop.timers().Advance(60, [&](TimerNode*) { ++fired; });
  EXPECT_EQ(fired, 1);
}

}  // namespace
}  // namespace llmgw::dataplane
