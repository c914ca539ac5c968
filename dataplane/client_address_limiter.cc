// ClientAddressLimiter: linear probing with backward-shift deletion (no tombstones, so a
// long-running thread's table never degrades).
#include "dataplane/client_address_limiter.h"

#include <netinet/in.h>

#include <cstring>

namespace llmgw::dataplane {
namespace {

uint64_t Mix(uint64_t x) {  // splitmix64 finaliser: spreads neighbouring addresses
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ull;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebull;
  x ^= x >> 31;
  return x;
}

}  // namespace

ClientAddressLimiter::ClientAddressLimiter(uint32_t limit, uint32_t max_tracked) : limit_(limit) {
  if (!limit_) return;
  size_t cap = 16;
  while (cap < static_cast<size_t>(max_tracked) * 2) cap <<= 1;  // load factor <= 1/2
  slots_.assign(cap, Slot{});
  mask_ = cap - 1;
}

uint64_t ClientAddressLimiter::KeyOf(const sockaddr_storage& addr) {
  if (addr.ss_family == AF_INET) {
    const auto* a = reinterpret_cast<const sockaddr_in*>(&addr);
    uint32_t v;
    std::memcpy(&v, &a->sin_addr, 4);
    return (uint64_t{1} << 63) | v;  // the top bit keeps IPv4 keys apart from IPv6 and 0
  }
  if (addr.ss_family == AF_INET6) {
    const auto* a = reinterpret_cast<const sockaddr_in6*>(&addr);
    const uint8_t* b = a->sin6_addr.s6_addr;
    static constexpr uint8_t kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (std::memcmp(b, kMapped, 12) == 0) {  // ::ffff:a.b.c.d is the IPv4 host
      uint32_t v;
      std::memcpy(&v, b + 12, 4);
      return (uint64_t{1} << 63) | v;
    }
    uint64_t prefix;
    std::memcpy(&prefix, b, 8);  // the /64
    uint64_t k = prefix & ~(uint64_t{1} << 63);
    return k ? k : 1;
  }
  return 0;
}

size_t ClientAddressLimiter::Find(uint64_t key) const {
  size_t i = Mix(key) & mask_;
  while (slots_[i].key != 0 && slots_[i].key != key) i = (i + 1) & mask_;
  return i;
}

bool ClientAddressLimiter::Acquire(uint64_t key) {
  if (!limit_ || key == 0) return true;
  size_t i = Find(key);
  Slot& s = slots_[i];
  if (s.key == 0) {
    if (used_ + 1 > slots_.size() / 2) return true;  // more addresses than sized for: no cap
    s.key = key;
    s.count = 0;
    ++used_;
  }
  if (s.count >= limit_) return false;
  ++s.count;
  return true;
}

void ClientAddressLimiter::Release(uint64_t key) {
  if (!limit_ || key == 0) return;
  size_t i = Find(key);
  if (slots_[i].key == 0 || slots_[i].count == 0) return;
  if (--slots_[i].count == 0) Erase(i);
}

uint32_t ClientAddressLimiter::InFlight(uint64_t key) const {
  if (!limit_ || key == 0) return 0;
  size_t i = Find(key);
  return slots_[i].key == key ? slots_[i].count : 0;
}

void ClientAddressLimiter::Erase(size_t i) {
  // Backward shift: move later members of the probe run into the hole when their home
  // slot is at or before it, so every lookup still finds its key without tombstones.
  size_t j = i;
  while (true) {
    j = (j + 1) & mask_;
    if (slots_[j].key == 0) break;
    size_t home = Mix(slots_[j].key) & mask_;
    bool between = i <= j ? (home > i && home <= j) : (home > i || home <= j);
    if (!between) {
      slots_[i] = slots_[j];
      i = j;
    }
  }
  slots_[i] = Slot{};
  --used_;
}

}  // namespace llmgw::dataplane
