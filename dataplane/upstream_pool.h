// UpstreamPool: one thread's connections to the model servers. An attempt takes a
// connection here (an idle keep-alive one to the same backend, else a new socket) and
// gives it back here when it is over: to the idle pool when the answer left it clean,
// else closed. Connection objects come from a per-thread free list, so a new upstream
// connection costs a socket, not an allocation (the request head's buffer is kept too).
#pragma once

#include <liburing.h>

#include <cstdint>
#include <vector>

#include "common/shm_layout.h"
#include "dataplane/worker_internal.h"

namespace llmgw::dataplane {

class UpstreamPool {
 public:
  UpstreamPool() = default;
  UpstreamPool(const UpstreamPool&) = delete;
  UpstreamPool& operator=(const UpstreamPool&) = delete;
  ~UpstreamPool();

  // `ring`: where the pending operations of a closed connection are cancelled (null when
  // nothing is ever submitted, as in unit tests).
  void Init(io_uring* ring, uint32_t max_idle_per_backend = kMaxIdlePerBackend) {
    ring_ = ring;
    max_idle_ = max_idle_per_backend;
    idle_.assign(shm::kMaxBackends, {});
  }

  // A connection to backend `slot` (`be`): an idle one to the same backend key
  // (*reused = true: connected already), else a new non-blocking socket still to be
  // connected (*reused = false). Null when no socket can be made.
  UpstreamConn* Take(int slot, const shm::BackendEntry& be, bool* reused) {
    auto& pool = idle_[slot];
    while (!pool.empty()) {
      UpstreamConn* u = pool.back();
      pool.pop_back();
      if (u->backend_key == be.key && SameAddress(*u, be)) {
        u->reused = true;
        *reused = true;
        return u;
      }
      Close(u);  // the slot now names another backend, or llmcd re-resolved its address
      Recycle(u);
    }
    *reused = false;
    return Open(slot, be);
  }

  // The attempt is done with `u`. `keep`: the answer ended cleanly and the server keeps
  // the connection; it is pooled unless something is still in flight on it or the pool
  // is full. Returns true when pooled; else `u` is closed and the caller recycles it once
  // its pending operations completed.
  bool Give(UpstreamConn* u, bool keep) {
    u->client = nullptr;
    auto& pool = idle_[u->slot];
    if (keep && !u->recv_armed && !u->send_armed && pool.size() < max_idle_) {
      u->reused = false;
      pool.push_back(u);
      return true;
    }
    Close(u);
    return false;
  }

  // Ends the TCP connection; pending io_uring operations on it are cancelled.
  void Close(UpstreamConn* u);
  // A closed connection with nothing pending: its object goes back to the free list.
  void Recycle(UpstreamConn* u);
  // Shutdown: every idle connection closed and recycled.
  void CloseIdle();
  // A new snapshot: idle connections to a backend it no longer has in their slot (removed
  // by a reload, or the slot reused by another), or made with TLS settings it changed,
  // are closed and recycled. Without this
  // they stayed open for the life of the process: the next Take of the slot only closed
  // them if the slot was ever picked again. Returns how many were closed.
  size_t PruneIdle(const shm::Snapshot& snap);

  size_t idle(int slot) const { return idle_[slot].size(); }
  // Connection objects in use (taken, idle, or closed with operations pending).
  int64_t live() const { return live_; }

 private:
  // Whether `u` was connected to the address the snapshot now gives `be`. llmcd
  // re-resolves backend names (control.resolve_interval_ms): a hosted API that moved must
  // get new connections, not a pool of ones to the address it left.
  static bool SameAddress(const UpstreamConn& u, const shm::BackendEntry& be);
  UpstreamConn* Open(int slot, const shm::BackendEntry& be);

  io_uring* ring_ = nullptr;
  uint32_t max_idle_ = kMaxIdlePerBackend;
  std::vector<std::vector<UpstreamConn*>> idle_;  // per backend slot
  std::vector<UpstreamConn*> free_;               // recycled objects
  int64_t live_ = 0;
};

}  // namespace llmgw::dataplane
