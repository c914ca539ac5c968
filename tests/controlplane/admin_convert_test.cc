// The Controller's plain views to admin API messages (controlplane/admin_convert.h): every
// field lands in its proto field, every state in its enum value.
#include "controlplane/admin_convert.h"

#include <gtest/gtest.h>

namespace llmgw::cp {
namespace {

namespace pb = ::llmgw::admin::v1;

TEST(AdminConvertTest, BackendEveryField) {
  BackendView v{.id = "b", .url = "http://h:1", .model = "m", .state = shm::BackendState::kHalfOpen,
                .weight = 2.5, .in_flight = 7, .running = 3, .waiting = 4, .kv_cache_usage = 0.5,
                .metrics_stale = false, .ewma_latency_ms = 11, .ewma_ttft_ms = 12, .ttft_p50_ms = 13,
                .ttft_p99_ms = 14, .error_rate = 0.25, .requests_total = 99, .max_concurrent = 8,
                .engine = "sglang", .adaptive_weight = 0.75, .last_error = "probe: boom"};
  pb::Backend b = ToProto(v);
  EXPECT_EQ(b.id(), "b");
  EXPECT_EQ(b.url(), "http://h:1");
  EXPECT_EQ(b.model(), "m");
  EXPECT_EQ(b.state(), pb::HALF_OPEN);
  EXPECT_DOUBLE_EQ(b.weight(), 2.5);
  EXPECT_EQ(b.in_flight(), 7u);
  EXPECT_DOUBLE_EQ(b.running(), 3);
  EXPECT_DOUBLE_EQ(b.waiting(), 4);
  EXPECT_DOUBLE_EQ(b.kv_cache_usage(), 0.5);
  EXPECT_FALSE(b.metrics_stale());
  EXPECT_DOUBLE_EQ(b.ewma_latency_ms(), 11);
  EXPECT_DOUBLE_EQ(b.ewma_ttft_ms(), 12);
  EXPECT_DOUBLE_EQ(b.ttft_p50_ms(), 13);
  EXPECT_DOUBLE_EQ(b.ttft_p99_ms(), 14);
  EXPECT_DOUBLE_EQ(b.error_rate(), 0.25);
  EXPECT_EQ(b.requests_total(), 99u);
  EXPECT_EQ(b.max_concurrent(), 8u);
  EXPECT_EQ(b.engine(), "sglang");
  EXPECT_DOUBLE_EQ(b.adaptive_weight(), 0.75);
  EXPECT_EQ(b.last_error(), "probe: boom");
}

TEST(AdminConvertTest, EveryStateHasItsEnumValue) {
  EXPECT_EQ(ToProto(shm::BackendState::kHealthy), pb::HEALTHY);
  EXPECT_EQ(ToProto(shm::BackendState::kUnhealthy), pb::UNHEALTHY);
  EXPECT_EQ(ToProto(shm::BackendState::kDraining), pb::DRAINING);
  EXPECT_EQ(ToProto(shm::BackendState::kCircuitOpen), pb::CIRCUIT_OPEN);
  EXPECT_EQ(ToProto(shm::BackendState::kHalfOpen), pb::HALF_OPEN);
  EXPECT_EQ(ToProto(shm::BackendState::kEmpty), pb::BACKEND_STATE_UNSPECIFIED);
}

TEST(AdminConvertTest, StatusConfigAndRoutingStats) {
  StatusView s{.version = "0.1.0", .uptime_seconds = 1.5, .snapshot_generation = 3, .backends_healthy = 1,
               .backends_total = 2, .requests_per_second = 4, .errors_per_second = 0.5, .requests_total = 10,
               .active_requests = 2, .dataplane_threads = 4, .dataplane_alive = true, .instance = "i",
               .role = "controller", .config_file = "/c.yaml", .config_reloads = 5, .config_reload_failures = 1,
               .models = 2};
  pb::GetStatusResponse p = ToProto(s);
  EXPECT_EQ(p.version(), "0.1.0");
  EXPECT_DOUBLE_EQ(p.uptime_seconds(), 1.5);
  EXPECT_EQ(p.snapshot_generation(), 3u);
  EXPECT_EQ(p.backends_healthy(), 1u);
  EXPECT_EQ(p.backends_total(), 2u);
  EXPECT_DOUBLE_EQ(p.requests_per_second(), 4);
  EXPECT_DOUBLE_EQ(p.errors_per_second(), 0.5);
  EXPECT_EQ(p.requests_total(), 10u);
  EXPECT_EQ(p.active_requests(), 2u);
  EXPECT_EQ(p.dataplane_threads(), 4u);
  EXPECT_TRUE(p.dataplane_alive());
  EXPECT_EQ(p.instance(), "i");
  EXPECT_EQ(p.role(), "controller");
  EXPECT_EQ(p.config_file(), "/c.yaml");
  EXPECT_EQ(p.config_reloads(), 5u);
  EXPECT_EQ(p.config_reload_failures(), 1u);
  EXPECT_EQ(p.models(), 2u);

  pb::GetConfigResponse c = ToProto(ConfigText{"models: []\n", "/c.yaml", 4});
  EXPECT_EQ(c.yaml(), "models: []\n");
  EXPECT_EQ(c.path(), "/c.yaml");
  EXPECT_EQ(c.version(), 4u);

  RoutingStatsView r;
  r.models.push_back({.model = "m", .policy = "adaptive", .picks = {{"a", 3}, {"b", 4}}, .retries = 1,
                      .fallbacks = 2, .requests = 7, .rejected = 1});
  pb::GetRoutingStatsResponse rp = ToProto(r);
  ASSERT_EQ(rp.models_size(), 1);
  EXPECT_EQ(rp.models(0).model(), "m");
  EXPECT_EQ(rp.models(0).policy(), "adaptive");
  ASSERT_EQ(rp.models(0).picks_size(), 2);
  EXPECT_EQ(rp.models(0).picks(1).id(), "b");
  EXPECT_EQ(rp.models(0).picks(1).picks(), 4u);
  EXPECT_EQ(rp.models(0).retries(), 1u);
  EXPECT_EQ(rp.models(0).fallbacks(), 2u);
  EXPECT_EQ(rp.models(0).requests(), 7u);
  EXPECT_EQ(rp.models(0).rejected(), 1u);
}

}  // namespace
}  // namespace llmgw::cp
