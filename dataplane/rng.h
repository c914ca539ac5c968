// The data plane's per-thread random numbers: xorshift64*, no syscalls, no locks. Good
// enough for request ids, retry jitter, tie breaks and access-log sampling.
#pragma once

#include <unistd.h>

#include <cstdint>

namespace llmgw::dataplane {

class Rng {
 public:
  explicit Rng(uint64_t seed) : s_(seed ? seed : 0x9e3779b97f4a7c15ull) {}
  uint64_t Next() {
    s_ ^= s_ >> 12;
    s_ ^= s_ << 25;
    s_ ^= s_ >> 27;
    return s_ * 2685821657736338717ull;
  }

 private:
  uint64_t s_;
};

}  // namespace llmgw::dataplane
