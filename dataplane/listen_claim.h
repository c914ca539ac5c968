// Who may share a listen port. llmgw binds its listeners with SO_REUSEPORT on purpose: a
// new llmgw binary of the SAME instance joins the port, then the old one drains (the
// zero-downtime upgrade of DESIGN.md). The kernel would let any process of the same user
// join that way, so an llmgw of ANOTHER instance started with the same port by mistake
// would silently take a share of the traffic and route it with the wrong config.
//
// ListenClaim prevents that: every llmgw binds an abstract unix socket named
// "@llmgw-listen:<port>:<instance>:<pid>" before it binds the port, then lists the abstract
// sockets of its network namespace (/proc/net/unix). A claim on the same port by another
// instance is refused with a message naming that instance and its pid. Abstract sockets
// live in the network namespace, exactly the scope of ports, and vanish with the process
// (even on SIGKILL), so nothing stale is ever left behind. The port alone is the key:
// two instances on one port with different addresses are refused too (the wildcard
// address overlaps every other).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "common/error.h"

namespace llmgw::dataplane {

class ListenClaim {
 public:
  // Claims `port` for `instance`. `proc_net_unix` is the listing to read (tests pass a
  // file of their own). An error names the other instance and its pid.
  static Result<std::unique_ptr<ListenClaim>> Acquire(uint16_t port, const std::string& instance,
                                                      const char* proc_net_unix = "/proc/net/unix");
  ~ListenClaim();
  ListenClaim(const ListenClaim&) = delete;
  ListenClaim& operator=(const ListenClaim&) = delete;

  // The abstract socket name (without the leading NUL) for (port, instance, pid).
  static std::string Name(uint16_t port, std::string_view instance, long pid);

  // Scans a /proc/net/unix listing for a claim of `port` by an instance other than
  // `instance`; fills *other_instance and *other_pid and returns true when one is found.
  static bool FindOtherInstance(std::string_view listing, uint16_t port, std::string_view instance,
                                std::string* other_instance, long* other_pid);

 private:
  explicit ListenClaim(int fd) : fd_(fd) {}
  int fd_;
};

}  // namespace llmgw::dataplane
