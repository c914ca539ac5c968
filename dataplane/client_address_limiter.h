// Caps the requests one client address may have in flight on a data-plane thread
// (gateway.max_requests_per_client, split over the threads like max_connections), so one
// host — a slow reader holding backend slots, a runaway batch job — cannot take every
// backend slot from everybody else. Keys are IPv4 addresses and IPv6 /64 prefixes (one
// host usually owns a whole /64). A fixed open-addressing table sized at start: no
// allocation per request, no locks (one limiter per thread).
#pragma once

#include <sys/socket.h>

#include <cstdint>
#include <vector>

namespace llmgw::dataplane {

class ClientAddressLimiter {
 public:
  // limit: most in-flight requests per address on this thread (0: no cap, Acquire always
  // succeeds). max_tracked: most distinct addresses at once (this thread's connections).
  ClientAddressLimiter(uint32_t limit, uint32_t max_tracked);

  // The key of a peer address (0 when the family is neither IPv4 nor IPv6).
  static uint64_t KeyOf(const sockaddr_storage& addr);

  bool enabled() const { return limit_ != 0; }

  // One more request from `key`; false (nothing counted) when it is at the limit.
  bool Acquire(uint64_t key);
  // That request ended.
  void Release(uint64_t key);

  uint32_t InFlight(uint64_t key) const;
  uint32_t tracked() const { return used_; }

 private:
  struct Slot {
    uint64_t key = 0;   // 0: empty (KeyOf never returns 0 for a real address)
    uint32_t count = 0;
  };
  size_t Find(uint64_t key) const;  // the slot holding key, or the empty slot where it goes
  void Erase(size_t i);

  uint32_t limit_;
  uint32_t used_ = 0;
  size_t mask_ = 0;
  std::vector<Slot> slots_;
};

}  // namespace llmgw::dataplane
