// Round-trips the admin and fleet messages through the wire format and JSON, so the
// field names llmctl prints and the generated code agree.
#include <google/protobuf/util/json_util.h>
#include <gtest/gtest.h>

#include "llmgw/admin/v1/admin.grpc.pb.h"
#include "llmgw/admin/v1/admin.pb.h"

namespace v1 = llmgw::admin::v1;

TEST(ProtoTest, BackendRoundTripsThroughWireFormat) {
  v1::ListBackendsResponse r;
  auto* b = r.add_backends();
  b->set_id("gpu-1");
  b->set_url("http://10.0.0.1:8000");
  b->set_state(v1::CIRCUIT_OPEN);
  b->set_kv_cache_usage(0.62);
  b->set_requests_total(1240);
  std::string wire;
  ASSERT_TRUE(r.SerializeToString(&wire));
  v1::ListBackendsResponse back;
  ASSERT_TRUE(back.ParseFromString(wire));
  ASSERT_EQ(back.backends_size(), 1);
  EXPECT_EQ(back.backends(0).id(), "gpu-1");
  EXPECT_EQ(back.backends(0).state(), v1::CIRCUIT_OPEN);
  EXPECT_DOUBLE_EQ(back.backends(0).kv_cache_usage(), 0.62);
  EXPECT_EQ(back.backends(0).requests_total(), 1240u);
}

TEST(ProtoTest, FleetSnapshotRoundTrips) {
  v1::FleetSnapshot s;
  s.set_generation(42);
  auto* m = s.add_models();
  m->set_name("llama");
  m->add_aliases("default");
  m->set_policy("p2c_kv");
  auto* b = s.add_backends();
  b->set_slot(3);
  b->mutable_backend()->set_id("x");
  std::string wire = s.SerializeAsString();
  v1::FleetSnapshot back;
  ASSERT_TRUE(back.ParseFromString(wire));
  EXPECT_EQ(back.generation(), 42u);
  EXPECT_EQ(back.models(0).aliases(0), "default");
  EXPECT_EQ(back.backends(0).slot(), 3u);
  EXPECT_EQ(back.backends(0).backend().id(), "x");
}

TEST(ProtoTest, JsonUsesProtoFieldNames) {
  v1::GetStatusResponse st;
  st.set_backends_healthy(2);
  st.set_snapshot_generation(7);
  std::string json;
  google::protobuf::util::JsonPrintOptions opts;
  opts.preserve_proto_field_names = true;
  ASSERT_TRUE(google::protobuf::util::MessageToJsonString(st, &json, opts).ok());
  EXPECT_NE(json.find("\"backends_healthy\":2"), std::string::npos) << json;
  v1::GetStatusResponse back;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(json, &back).ok());
  EXPECT_EQ(back.snapshot_generation(), 7u);
}

TEST(ProtoTest, ServicesHaveTheDesignedMethods) {
  const auto* pool = google::protobuf::DescriptorPool::generated_pool();
  const auto* admin = pool->FindServiceByName(v1::Admin::service_full_name());
  ASSERT_NE(admin, nullptr);
  for (const char* m : {"GetStatus", "ListBackends", "DrainBackend", "UndrainBackend", "ResetCircuit",
                        "GetConfig", "ReloadConfig", "ValidateConfig", "GetRoutingStats", "WatchStatus"})
    EXPECT_NE(admin->FindMethodByName(m), nullptr) << m;
  EXPECT_TRUE(admin->FindMethodByName("WatchStatus")->server_streaming());
  const auto* fleet = pool->FindServiceByName(v1::Fleet::service_full_name());
  ASSERT_NE(fleet, nullptr);
  EXPECT_NE(fleet->FindMethodByName("Sync"), nullptr);
}
