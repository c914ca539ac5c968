// One data-plane thread: its io_uring, its SO_REUSEPORT listener, its client connections,
// its upstream keep-alive pools, its snapshot copy, its router and its stats slot. Nothing
// here is shared with other threads except the read-only shm snapshot and the thread's
// own stats slot, so nothing is locked.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <vector>

#include "common/config.h"
#include "common/error.h"
#include "common/shm_layout.h"

namespace llmgw::dataplane {

// Set by the SIGTERM handler; every worker polls it once per loop iteration.
extern std::atomic<bool> g_stop_requested;

// Creates a listening TCP socket on host:port with SO_REUSEPORT (port 0 picks one).
Result<int> OpenListener(const std::string& host, uint16_t port);

// Checks at start that the kernel supports what the loop uses; a clear error otherwise.
Status ProbeIoUring();

class WorkerImpl;
class Worker {
 public:
  // listen_fds: the listening sockets this thread accepts from (usually one; more when it
  // took over a predecessor's with more threads). The worker closes them when it drains.
  Worker(const Config& cfg, shm::ShmRegion* region, uint32_t index, std::vector<int> listen_fds);
  ~Worker();
  Status Init();  // ring, stats slot
  void Run();     // returns after SIGTERM once drained (or drain_ms passed)

 private:
  std::unique_ptr<WorkerImpl> impl_;
};

}  // namespace llmgw::dataplane
