// Listener hand-over between two llmgw processes of the same instance, for binary upgrades
// that lose nothing: the running llmgw offers its listening sockets on an abstract unix
// socket, and a new llmgw of the same instance and listen address takes them (SCM_RIGHTS)
// instead of binding sockets of its own. Both then accept from the same accept queues, so
// when the old one drains and closes its descriptors, the connections waiting in those
// queues are the new one's — with separate SO_REUSEPORT sockets, closing the old listener
// reset every connection still in its queue.
//
// Control path only (start and drain), never on the request path. Only a process of the
// same user (or root) is given the sockets (SO_PEERCRED).
#pragma once

#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "common/error.h"

namespace llmgw::dataplane {

class ListenerHandover {
 public:
  ListenerHandover() = default;
  ~ListenerHandover();
  ListenerHandover(const ListenerHandover&) = delete;
  ListenerHandover& operator=(const ListenerHandover&) = delete;

  // The abstract socket's name for an instance (without the leading NUL).
  static std::string SocketName(const std::string& instance);

  // Asks a running llmgw of `instance` for its listening sockets on `listen` (the
  // gateway.listen string, compared as written). Returns the received descriptors, or none
  // when no llmgw of the instance runs, it listens elsewhere, or it does not answer within
  // timeout_ms. Every returned descriptor is a listening TCP socket.
  static std::vector<int> TakeFromPredecessor(const std::string& instance, const std::string& listen,
                                              int timeout_ms = 1000);

  // Offers `fds` (duplicated here: the caller keeps and closes its own) to successors on
  // the instance's abstract socket, from a thread of its own, until `stop` becomes true;
  // then the duplicates are closed, so the sockets close once the workers closed theirs —
  // unless a successor holds them. A second llmgw of the instance already offering keeps
  // the name; this one then offers nothing (and logs it).
  Status Start(const std::string& instance, const std::string& listen, const std::vector<int>& fds,
               const std::atomic<bool>* stop);

  // How many successors took the sockets so far.
  int handed_over() const { return handed_over_.load(); }
  // How many requests of another user were refused.
  int refused() const { return refused_.load(); }

  // Stops the thread and closes the duplicates (also done by the destructor).
  void Stop();

 private:
  void Serve();
  void Answer(int conn);

  std::string listen_;
  std::vector<int> fds_;
  int server_fd_ = -1;
  const std::atomic<bool>* stop_ = nullptr;
  std::atomic<bool> quit_{false};
  std::atomic<int> handed_over_{0};
  std::atomic<int> refused_{0};
  std::thread thread_;
};

}  // namespace llmgw::dataplane
