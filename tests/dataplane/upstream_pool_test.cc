// Unit tests of UpstreamPool: take/give in one component, keep-alive reuse per backend
// key, the idle cap, and object reuse from the free list. Sockets are created but never
// connected (no other process, no traffic).
#include "dataplane/upstream_pool.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>

#include <memory>

namespace llmgw::dataplane {
namespace {

shm::BackendEntry Backend(uint64_t key) {
  shm::BackendEntry be{};
  be.family = AF_INET;
  be.port = 9;
  uint8_t lo[4] = {127, 0, 0, 1};
  std::memcpy(be.addr, lo, 4);
  be.key = key;
  return be;
}

TEST(UpstreamPoolTest, KeepAliveReuseAndClose) {
  UpstreamPool pool;
  pool.Init(nullptr);
  shm::BackendEntry be = Backend(11);
  bool reused = true;
  UpstreamConn* u = pool.Take(3, be, &reused);
  ASSERT_NE(u, nullptr);
  EXPECT_FALSE(reused);
  EXPECT_GE(u->fd, 0);
  EXPECT_EQ(u->slot, 3);
  EXPECT_EQ(pool.live(), 1);
  EXPECT_TRUE(pool.Give(u, /*keep=*/true));
  EXPECT_EQ(pool.idle(3), 1u);
  UpstreamConn* again = pool.Take(3, be, &reused);
  EXPECT_EQ(again, u);
  EXPECT_TRUE(reused);
  EXPECT_TRUE(u->reused);
  EXPECT_EQ(pool.idle(3), 0u);
  // Not reusable (the answer did not end cleanly): closed, recycled by the caller.
  EXPECT_FALSE(pool.Give(u, /*keep=*/false));
  EXPECT_TRUE(u->closed);
  pool.Recycle(u);
  EXPECT_EQ(pool.live(), 0);
}

TEST(UpstreamPoolTest, InFlightOperationsPreventPooling) {
  UpstreamPool pool;
  pool.Init(nullptr);
  bool reused;
  UpstreamConn* u = pool.Take(0, Backend(1), &reused);
  u->recv_armed = true;  // a read is still pending: the connection cannot be reused
  EXPECT_FALSE(pool.Give(u, true));
  EXPECT_EQ(pool.idle(0), 0u);
  pool.Recycle(u);
}

TEST(UpstreamPoolTest, SlotNamingAnotherBackendClosesTheOldConnection) {
  UpstreamPool pool;
  pool.Init(nullptr);
  bool reused;
  UpstreamConn* old = pool.Take(5, Backend(1), &reused);
  ASSERT_TRUE(pool.Give(old, true));
  // The snapshot now puts another backend (key 2) in slot 5.
  UpstreamConn* u = pool.Take(5, Backend(2), &reused);
  EXPECT_FALSE(reused);
  EXPECT_EQ(u->backend_key, 2u);
  EXPECT_EQ(pool.live(), 1);  // the old one was closed and recycled...
  EXPECT_EQ(u, old);          // ...and its object serves the new connection
  EXPECT_FALSE(u->closed);
  EXPECT_FALSE(u->connected);
  pool.Give(u, false);
  pool.Recycle(u);
}

TEST(UpstreamPoolTest, IdleCapAndShutdown) {
  UpstreamPool pool;
  pool.Init(nullptr, /*max_idle_per_backend=*/2);
  bool reused;
  UpstreamConn* a = pool.Take(1, Backend(7), &reused);
  UpstreamConn* b = pool.Take(1, Backend(7), &reused);
  UpstreamConn* c = pool.Take(1, Backend(7), &reused);
  EXPECT_TRUE(pool.Give(a, true));
  EXPECT_TRUE(pool.Give(b, true));
  EXPECT_FALSE(pool.Give(c, true));  // over the cap: closed
  pool.Recycle(c);
  EXPECT_EQ(pool.idle(1), 2u);
  pool.CloseIdle();
  EXPECT_EQ(pool.idle(1), 0u);
  EXPECT_EQ(pool.live(), 0);
}

// A reload removed a backend (or gave its slot to another): its idle keep-alive
// connections are closed when the snapshot arrives, not kept open forever.
TEST(UpstreamPoolTest, IdleConnectionsOfARemovedBackendCloseWithTheSnapshot) {
  UpstreamPool pool;
  pool.Init(nullptr);
  bool reused;
  UpstreamConn* stays = pool.Take(0, Backend(1), &reused);
  UpstreamConn* removed = pool.Take(1, Backend(2), &reused);
  UpstreamConn* replaced = pool.Take(2, Backend(3), &reused);
  ASSERT_TRUE(pool.Give(stays, true));
  ASSERT_TRUE(pool.Give(removed, true));
  ASSERT_TRUE(pool.Give(replaced, true));
  auto snap = std::make_unique<shm::Snapshot>();
  snap->num_backends = 3;
  snap->backends[0] = Backend(1);
  snap->backends[0].state = static_cast<uint8_t>(shm::BackendState::kHealthy);
  snap->backends[1].state = static_cast<uint8_t>(shm::BackendState::kEmpty);  // removed
  snap->backends[2] = Backend(4);  // the slot now names another backend
  snap->backends[2].state = static_cast<uint8_t>(shm::BackendState::kHealthy);
  EXPECT_EQ(pool.PruneIdle(*snap), 2u);
  EXPECT_EQ(pool.idle(0), 1u);
  EXPECT_EQ(pool.idle(1), 0u);
  EXPECT_EQ(pool.idle(2), 0u);
  EXPECT_EQ(pool.live(), 1);
  snap->num_backends = 0;  // everything gone
  EXPECT_EQ(pool.PruneIdle(*snap), 1u);
  EXPECT_EQ(pool.live(), 0);
}

// llmcd re-resolved a backend's name to another address (control.resolve_interval_ms):
// its idle connections to the old address close with the snapshot, and one still pooled
// when the request comes is not reused — new connections go to the new address.
TEST(UpstreamPoolTest, ConnectionsToAnAddressTheBackendLeftAreNotReused) {
  UpstreamPool pool;
  pool.Init(nullptr);
  bool reused;
  UpstreamConn* a = pool.Take(0, Backend(1), &reused);
  UpstreamConn* b = pool.Take(1, Backend(2), &reused);
  ASSERT_TRUE(pool.Give(a, true));
  ASSERT_TRUE(pool.Give(b, true));
  auto snap = std::make_unique<shm::Snapshot>();
  snap->num_backends = 2;
  snap->backends[0] = Backend(1);
  snap->backends[0].addr[3] = 2;  // 127.0.0.2: the same backend, moved
  snap->backends[1] = Backend(2);
  snap->backends[1].port = 10;    // the same host, another port
  for (int i = 0; i < 2; ++i) snap->backends[i].state = static_cast<uint8_t>(shm::BackendState::kHealthy);
  EXPECT_EQ(pool.PruneIdle(*snap), 2u);
  EXPECT_EQ(pool.live(), 0);

  UpstreamConn* c = pool.Take(0, Backend(1), &reused);
  ASSERT_TRUE(pool.Give(c, true));
  shm::BackendEntry moved = Backend(1);
  moved.addr[3] = 3;
  UpstreamConn* d = pool.Take(0, moved, &reused);
  ASSERT_NE(d, nullptr);
  EXPECT_FALSE(reused) << "a connection to the old address must not serve the moved backend";
  const auto* sa = reinterpret_cast<const sockaddr_in*>(&d->addr);
  EXPECT_EQ(reinterpret_cast<const uint8_t*>(&sa->sin_addr)[3], 3);
  EXPECT_EQ(pool.live(), 1);
  pool.Give(d, false);
  pool.Recycle(d);
}

}  // namespace
}  // namespace llmgw::dataplane
