// Unit tests for the descriptor budget llmgw computes from its config (dataplane/fd_limit.h).
#include "dataplane/fd_limit.h"

#include <gtest/gtest.h>

namespace llmgw::dataplane {
namespace {

Config TwoBackends(uint32_t max_connections, uint32_t max_concurrent) {
  Config cfg;
  cfg.gateway.max_connections = max_connections;
  ModelConfig m;
  m.name = "m";
  for (int i = 0; i < 2; ++i) {
    BackendConfig b;
    b.url = "http://127.0.0.1:" + std::to_string(9000 + i);
    b.max_concurrent = max_concurrent;
    m.backends.push_back(b);
  }
  cfg.models.push_back(m);
  return cfg;
}

TEST(FdLimitTest, CountsClientsUpstreamsIdlePoolsAndReserve) {
  Config cfg = TwoBackends(10000, 100);
  // 10000 clients + 200 in flight upstream + 2 threads x 2 backends x 64 idle + 64 + 2 x 4.
  EXPECT_EQ(FdsNeeded(cfg, 2), 10000u + 200u + 256u + 64u + 8u);
}

TEST(FdLimitTest, UpstreamsInFlightNeverExceedClients) {
  Config cfg = TwoBackends(100, 100000);
  EXPECT_EQ(FdsNeeded(cfg, 1), 100u + 100u + 128u + 64u + 4u);
}

TEST(FdLimitTest, RaiseLeavesSoftAtHard) {
  FdLimit l = RaiseFdLimit();
  EXPECT_EQ(l.soft, l.hard);
  EXPECT_LE(l.soft_before, l.soft);
}

}  // namespace
}  // namespace llmgw::dataplane
