// RLIMIT_NOFILE handling at start; see fd_limit.h.
#include "dataplane/fd_limit.h"

#include <sys/resource.h>

#include <algorithm>

#include "dataplane/worker_internal.h"

namespace llmgw::dataplane {

uint64_t FdsNeeded(const Config& cfg, uint32_t threads) {
  uint64_t clients = cfg.gateway.max_connections;
  uint64_t concurrent = 0;
  uint64_t backends = 0;
  for (const ModelConfig& m : cfg.models) {
    for (const BackendConfig& b : m.backends) {
      concurrent += b.max_concurrent;
      ++backends;
    }
  }
  uint64_t in_flight = std::min(clients, concurrent);
  uint64_t idle = static_cast<uint64_t>(threads) * backends * kMaxIdlePerBackend;
  constexpr uint64_t kReserve = 64;
  return clients + in_flight + idle + kReserve + 4ull * threads;
}

FdLimit RaiseFdLimit() {
  FdLimit out;
  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return out;
  out.soft_before = out.soft = rl.rlim_cur;
  out.hard = rl.rlim_max;
  if (rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &rl) == 0) {
      out.soft = rl.rlim_cur;
      out.raised = true;
    }
  }
  return out;
}

}  // namespace llmgw::dataplane
