// WriterLock: one holder per shm name; the second is refused naming the holder's pid; the
// lock is free again once the holder is gone; different instances do not interfere.
#include "common/writer_lock.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <string>

namespace llmgw {
namespace {

class WriterLockTest : public ::testing::Test {
 protected:
  std::string name_ = "/llmgw-wltest-" + std::to_string(getpid());
  std::string other_ = "/llmgw-wltest2-" + std::to_string(getpid());
  void TearDown() override {
    shm_unlink(WriterLock::LockName(name_).c_str());
    shm_unlink(WriterLock::LockName(other_).c_str());
  }
};

TEST_F(WriterLockTest, SecondHolderIsRefusedWithTheFirstOnesPid) {
  auto first = WriterLock::Acquire(name_);
  ASSERT_TRUE(first.ok()) << first.error().message();
  auto second = WriterLock::Acquire(name_);  // a new open file description: flock conflicts
  ASSERT_FALSE(second.ok());
  std::string msg = second.error().message();
  EXPECT_NE(msg.find("(pid " + std::to_string(getpid()) + ")"), std::string::npos) << msg;
  EXPECT_NE(msg.find(name_), std::string::npos) << msg;
  EXPECT_EQ(second.error().kind(), ErrorKind::kConfig);
}

TEST_F(WriterLockTest, ReleasedWhenTheHolderGoes) {
  {
    auto first = WriterLock::Acquire(name_);
    ASSERT_TRUE(first.ok());
  }
  auto again = WriterLock::Acquire(name_);
  EXPECT_TRUE(again.ok()) << again.error().message();
}

// A clean release leaves no lock file behind in /dev/shm (each test instance left one).
TEST_F(WriterLockTest, ReleaseRemovesTheFile) {
  { auto first = WriterLock::Acquire(name_); ASSERT_TRUE(first.ok()); }
  int fd = shm_open(WriterLock::LockName(name_).c_str(), O_RDONLY, 0);
  EXPECT_LT(fd, 0) << "the lock file is still there";
  if (fd >= 0) close(fd);
  auto again = WriterLock::Acquire(name_);
  EXPECT_TRUE(again.ok()) << again.error().message();
}

TEST_F(WriterLockTest, InstancesAreIndependent) {
  auto a = WriterLock::Acquire(name_);
  auto b = WriterLock::Acquire(other_);
  EXPECT_TRUE(a.ok());
  EXPECT_TRUE(b.ok());
}

TEST_F(WriterLockTest, HeldAcrossFork) {
  auto first = WriterLock::Acquire(name_);
  ASSERT_TRUE(first.ok());
  pid_t pid = fork();
  if (pid == 0) _exit(WriterLock::Acquire(name_).ok() ? 1 : 0);  // another process: refused
  int st = 0;
  waitpid(pid, &st, 0);
  EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

}  // namespace
}  // namespace llmgw
