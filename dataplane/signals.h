// llmgw's signal handling. Every signal llmgw acts on is blocked in all threads and taken
// synchronously by one thread of its own (sigtimedwait), so its actions may log and never
// interrupt an io_uring wait:
//   SIGTERM, SIGINT  drain and exit (sets g_stop_requested; the workers poll it per tick)
//   SIGHUP           harmless: logged and ignored. llmgw has no config of its own to reload
//                    (models, backends and policies arrive live in llmcd's snapshot); a
//                    changed gateway.* section needs a restart, which drains. A SIGHUP from
//                    logrotate, `systemctl reload` or a closed SSH session used to kill it.
//   SIGUSR1          reopen the access log (logrotate's postrotate): bumps g_reopen_logs;
//                    each worker that writes an access log file compares it with the
//                    generation it saw last and calls ReopenAppendFile on its descriptor.
#pragma once

#include <atomic>
#include <cstdint>
#include <thread>

#include "common/error.h"

namespace llmgw::dataplane {

// Incremented once per SIGUSR1. Readers compare with the value they saw last (relaxed load).
extern std::atomic<uint64_t> g_reopen_logs;

class SignalThread {
 public:
  SignalThread() = default;
  ~SignalThread() { Stop(); }
  SignalThread(const SignalThread&) = delete;
  SignalThread& operator=(const SignalThread&) = delete;

  // Blocks SIGTERM, SIGINT, SIGHUP and SIGUSR1 in the calling thread (call it before any
  // other thread starts, so every thread inherits the mask) and starts the taker thread.
  void Start();
  // Ends the taker thread (within 100 ms). Idempotent.
  void Stop();

 private:
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

// Reopens `path` (O_WRONLY|O_APPEND|O_CREAT, 0644) onto descriptor `fd` with dup2, so the
// descriptor number stays valid throughout: a concurrent write goes to the old file or to
// the new one, never to a closed descriptor. For the access log after a rotation.
Status ReopenAppendFile(int fd, const char* path);

}  // namespace llmgw::dataplane
