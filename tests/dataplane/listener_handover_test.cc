// ListenerHandover in-process: a successor of the same instance and listen address gets
// the very listening sockets (same accept queue), anyone else gets nothing.
#include "dataplane/listener_handover.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <thread>

namespace llmgw::dataplane {
namespace {

int Listener(uint16_t* port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  EXPECT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0);
  EXPECT_EQ(::listen(fd, 16), 0);
  socklen_t len = sizeof(a);
  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  *port = ntohs(a.sin_port);
  return fd;
}

uint16_t PortOf(int fd) {
  sockaddr_in a{};
  socklen_t len = sizeof(a);
  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  return ntohs(a.sin_port);
}

std::string Instance() { return "unit-" + std::to_string(::getpid()); }

TEST(ListenerHandoverTest, SuccessorGetsTheSameSocketAndItsQueue) {
  uint16_t port = 0;
  int fd = Listener(&port);
  std::atomic<bool> stop{false};
  ListenerHandover h;
  ASSERT_TRUE(h.Start(Instance(), "127.0.0.1:8080", {fd}, &stop).ok());
  std::vector<int> got;
  for (int i = 0; i < 50 && got.empty(); ++i) {  // the server thread binds its name first
    got = ListenerHandover::TakeFromPredecessor(Instance(), "127.0.0.1:8080", 500);
    if (got.empty()) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ASSERT_EQ(got.size(), 1u);
  EXPECT_NE(got[0], fd);
  EXPECT_EQ(PortOf(got[0]), port);
  for (int i = 0; i < 100 && h.handed_over() == 0; ++i)  // counted just after its sendmsg
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  EXPECT_EQ(h.handed_over(), 1);
  // A connection queued on the original is accepted through the received descriptor.
  int c = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::connect(c, reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0);
  ::close(fd);  // the predecessor lets go: the queue lives on in the successor
  int s = ::accept4(got[0], nullptr, nullptr, SOCK_CLOEXEC);
  EXPECT_GE(s, 0);
  ::close(s);
  ::close(c);
  ::close(got[0]);
  stop = true;
}

TEST(ListenerHandoverTest, OtherListenAddressOrInstanceGetsNothing) {
  uint16_t port = 0;
  int fd = Listener(&port);
  std::atomic<bool> stop{false};
  ListenerHandover h;
  ASSERT_TRUE(h.Start(Instance() + "-b", "127.0.0.1:9000", {fd}, &stop).ok());
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_TRUE(ListenerHandover::TakeFromPredecessor(Instance() + "-b", "0.0.0.0:9000", 500).empty());
  EXPECT_TRUE(ListenerHandover::TakeFromPredecessor(Instance() + "-nobody-runs-this", "127.0.0.1:9000", 500).empty());
  EXPECT_EQ(h.handed_over(), 0);
  stop = true;
  ::close(fd);
}

TEST(ListenerHandoverTest, AnotherUserGetsNothing) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to run a client as another user";
  uint16_t port = 0;
  int fd = Listener(&port);
  // The child is forked before the hand-over thread exists (no fork of a threaded
  // process), drops to nobody, and waits for the go.
  const std::string instance = Instance() + "-c";  // the parent's pid, not the child's
  int go[2];
  ASSERT_EQ(::pipe(go), 0);
  pid_t pid = ::fork();
  if (pid == 0) {
    ::close(go[1]);
    if (::setgid(65534) != 0 || ::setuid(65534) != 0) _exit(3);
    char b;
    if (::read(go[0], &b, 1) != 1) _exit(4);
    auto got = ListenerHandover::TakeFromPredecessor(instance, "127.0.0.1:9001", 500);
    _exit(got.empty() ? 0 : 1);
  }
  ::close(go[0]);
  std::atomic<bool> stop{false};
  ListenerHandover h;
  ASSERT_TRUE(h.Start(instance, "127.0.0.1:9001", {fd}, &stop).ok());
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  ASSERT_EQ(::write(go[1], "x", 1), 1);
  ::close(go[1]);
  int st = 0;
  ::waitpid(pid, &st, 0);
  ASSERT_TRUE(WIFEXITED(st));
  EXPECT_EQ(WEXITSTATUS(st), 0) << "1: another user received the listening socket";
  EXPECT_EQ(h.handed_over(), 0);
  EXPECT_EQ(h.refused(), 1) << "the request must reach the server and be refused there";
  stop = true;
  ::close(fd);
}

TEST(ListenerHandoverTest, NothingIsOfferedOnceDrainingStarted) {
  uint16_t port = 0;
  int fd = Listener(&port);
  std::atomic<bool> stop{false};
  ListenerHandover h;
  ASSERT_TRUE(h.Start(Instance() + "-d", "127.0.0.1:9002", {fd}, &stop).ok());
  stop = true;
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  EXPECT_TRUE(ListenerHandover::TakeFromPredecessor(Instance() + "-d", "127.0.0.1:9002", 300).empty());
  ::close(fd);
}

}  // namespace
}  // namespace llmgw::dataplane
