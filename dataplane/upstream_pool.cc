// UpstreamPool: see upstream_pool.h.
#include "dataplane/upstream_pool.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>

namespace llmgw::dataplane {

namespace {
constexpr size_t kMaxFree = 1024;  // objects kept for reuse beyond the current peak
}

UpstreamPool::~UpstreamPool() {
  for (auto& pool : idle_)
    for (UpstreamConn* u : pool) {
      Close(u);
      delete u;
    }
  for (UpstreamConn* u : free_) delete u;
}

UpstreamConn* UpstreamPool::Open(int slot, const shm::BackendEntry& be) {
  int fam = be.family == AF_INET6 ? AF_INET6 : AF_INET;
  int fd = ::socket(fam, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return nullptr;
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  UpstreamConn* u;
  if (!free_.empty()) {
    u = free_.back();
    free_.pop_back();
    u->ResetForReuse();
  } else {
    u = new UpstreamConn();  // the free list grows to the thread's peak, then reuses
  }
  ++live_;
  u->fd = fd;
  u->slot = static_cast<uint16_t>(slot);
  u->backend_key = be.key;
  if (fam == AF_INET) {
    auto* a = reinterpret_cast<sockaddr_in*>(&u->addr);
    *a = sockaddr_in{};
    a->sin_family = AF_INET;
    a->sin_port = htons(be.port);
    std::memcpy(&a->sin_addr, be.addr, 4);
    u->addr_len = sizeof(sockaddr_in);
  } else {
    auto* a = reinterpret_cast<sockaddr_in6*>(&u->addr);
    *a = sockaddr_in6{};
    a->sin6_family = AF_INET6;
    a->sin6_port = htons(be.port);
    std::memcpy(&a->sin6_addr, be.addr, 16);
    u->addr_len = sizeof(sockaddr_in6);
  }
  return u;
}

bool UpstreamPool::SameAddress(const UpstreamConn& u, const shm::BackendEntry& be) {
  if (be.family == AF_INET) {
    if (u.addr.ss_family != AF_INET) return false;
    const auto* a = reinterpret_cast<const sockaddr_in*>(&u.addr);
    return a->sin_port == htons(be.port) && std::memcmp(&a->sin_addr, be.addr, 4) == 0;
  }
  if (u.addr.ss_family != AF_INET6) return false;
  const auto* a = reinterpret_cast<const sockaddr_in6*>(&u.addr);
  return a->sin6_port == htons(be.port) && std::memcmp(&a->sin6_addr, be.addr, 16) == 0;
}

void UpstreamPool::Close(UpstreamConn* u) {
  if (u->closed) return;
  u->closed = true;
  // shutdown first: a pending io_uring recv holds a file reference, so close() alone
  // would not end the TCP connection (and the model server would keep generating).
  ::shutdown(u->fd, SHUT_RDWR);
  if (u->pending_ops && ring_) {
    io_uring_sqe* s = io_uring_get_sqe(ring_);
    if (!s) {
      io_uring_submit(ring_);
      s = io_uring_get_sqe(ring_);
    }
    io_uring_prep_cancel_fd(s, u->fd, IORING_ASYNC_CANCEL_ALL);
    io_uring_sqe_set_data64(s, kNoCompletion);
    io_uring_submit(ring_);
  }
  ::close(u->fd);
  // The SSL goes with the socket (a healthy session stays in the thread's cache for the
  // next connection); a send still pending keeps tls_out, which lives with the object.
  u->tls_session.Reset();
}

void UpstreamPool::Recycle(UpstreamConn* u) {
  --live_;
  if (free_.size() < kMaxFree) free_.push_back(u);
  else delete u;
}

size_t UpstreamPool::PruneIdle(const shm::Snapshot& snap) {
  size_t closed = 0;
  for (size_t slot = 0; slot < idle_.size(); ++slot) {
    auto& pool = idle_[slot];
    if (pool.empty()) continue;
    const bool present = slot < snap.num_backends &&
                         snap.backends[slot].state != static_cast<uint8_t>(shm::BackendState::kEmpty);
    const uint64_t key = present ? snap.backends[slot].key : 0;
    // New TLS settings (CA, verification, client certificate) mean new connections.
    const uint64_t tls_fp = present && snap.backends[slot].tls ? snap.upstreams[slot].tls_fingerprint : 0;
    size_t kept = 0;
    for (UpstreamConn* u : pool) {
      if (present && u->backend_key == key && u->tls_fingerprint == tls_fp && SameAddress(*u, snap.backends[slot])) {
        pool[kept++] = u;
        continue;
      }
      Close(u);  // idle: nothing pending on it, so the object goes back at once
      Recycle(u);
      ++closed;
    }
    pool.resize(kept);
  }
  return closed;
}

void UpstreamPool::CloseIdle() {
  for (auto& pool : idle_) {
    for (UpstreamConn* u : pool) {
      Close(u);
      Recycle(u);
    }
    pool.clear();
  }
}

}  // namespace llmgw::dataplane
