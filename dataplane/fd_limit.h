// How many file descriptors llmgw needs for its configuration, and lifting the process's
// soft RLIMIT_NOFILE to the hard limit at start (a proxy holds a client socket and an
// upstream socket per request; distributions default the soft limit to 1024).
#pragma once

#include <cstdint>

#include "common/config.h"

namespace llmgw::dataplane {

// Upper bound of descriptors in use at once: gateway.max_connections client sockets, one
// upstream socket per in-flight request (at most the backends' max_concurrent summed, and
// never more than the clients), each thread's idle keep-alive pools, plus a fixed reserve
// (listeners, rings, shm, log files).
uint64_t FdsNeeded(const Config& cfg, uint32_t threads);

struct FdLimit {
  uint64_t soft_before = 0;
  uint64_t soft = 0;  // after the raise
  uint64_t hard = 0;
  bool raised = false;
};

// Sets the soft RLIMIT_NOFILE to the hard one (no-op if already there) and reports both.
FdLimit RaiseFdLimit();

}  // namespace llmgw::dataplane
