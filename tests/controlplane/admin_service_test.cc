// In-process tests of every Admin RPC, with auth off and on, server reflection listing
// the service, the loopback-only rule without a token, and operator actions reaching the
// next snapshot.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <thread>

#include "common/shm.h"
#include "controlplane/admin_service.h"
#include "controlplane/controller.h"
#include "llmgw/admin/v1/admin.grpc.pb.h"
#include "reflection_client.h"
#include "test_http_server.h"

namespace llmgw::cp {
namespace {

namespace pb = ::llmgw::admin::v1;
using testing::TestHttpServer;
using testing::TestResponse;

std::string TempPath(const std::string& stem) {
  static int n = 0;
  return "/tmp/llmcd-admin-test-" + std::to_string(getpid()) + "-" + std::to_string(++n) + "-" + stem;
}

void WriteFile(const std::string& path, const std::string& text) {
  std::ofstream f(path, std::ios::trunc);
  f << text;
}

class AdminServiceTest : public ::testing::TestWithParam<bool> {  // param: auth on
 protected:
  void SetUp() override {
    backend_ = std::make_unique<TestHttpServer>([](const std::string&) { return TestResponse{200, "ok"}; });
    instance_ = "cpadmin-" + std::to_string(getpid()) + (GetParam() ? "-auth" : "-open");
    config_path_ = TempPath("llmcd.yaml");
    token_path_ = TempPath("token");
    WriteFile(token_path_, "s3cret-token\n");
    WriteFile(config_path_, ConfigText());
    ConfigResult r = LoadConfigFile(config_path_);
    ASSERT_TRUE(r.ok()) << r.ErrorText();
    admin_cfg_ = r.config.admin;
    ASSERT_TRUE(controller_.StartWithConfig(std::move(r.config)).ok());
    server_ = std::make_unique<AdminServer>(&controller_);
    Status st = server_->Start(admin_cfg_);
    ASSERT_TRUE(st.ok()) << st.error().message();
    channel_ = grpc::CreateChannel("127.0.0.1:" + std::to_string(server_->port()), grpc::InsecureChannelCredentials());
    stub_ = pb::Admin::NewStub(channel_);
  }
  void TearDown() override {
    if (server_) server_->Stop();
    controller_.Shutdown();
    std::remove(config_path_.c_str());
    std::remove(token_path_.c_str());
  }
  std::string ConfigText(const std::string& policy = "least_connections") const {
    return "instance: " + instance_ + "\nadmin:\n  grpc_listen: 127.0.0.1:0\n" +
           (GetParam() ? "  token_file: " + token_path_ + "\n" : "") +
           "models:\n  - name: m\n    policy: " + policy + "\n    backends:\n      - { url: " + backend_->url() +
           ", max_concurrent: 4 }\n";
  }
  // A context carrying the right token when auth is on.
  std::unique_ptr<grpc::ClientContext> Ctx() {
    auto c = std::make_unique<grpc::ClientContext>();
    c->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
    if (GetParam()) c->AddMetadata("authorization", "Bearer s3cret-token");
    return c;
  }
  std::string id() const { return backend_->url(); }

  std::unique_ptr<TestHttpServer> backend_;
  std::string instance_, config_path_, token_path_;
  AdminConfig admin_cfg_;
  Controller controller_;
  std::unique_ptr<AdminServer> server_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<pb::Admin::Stub> stub_;
};

TEST_P(AdminServiceTest, GetStatus) {
  pb::GetStatusResponse r;
  ASSERT_TRUE(stub_->GetStatus(Ctx().get(), {}, &r).ok());
  EXPECT_EQ(r.instance(), instance_);
  EXPECT_EQ(r.backends_total(), 1u);
  EXPECT_EQ(r.role(), "controller");
  EXPECT_EQ(r.config_file(), config_path_);
  EXPECT_EQ(r.models(), 1u);
  EXPECT_GE(r.snapshot_generation(), 1u);
  EXPECT_FALSE(r.version().empty());
}

TEST_P(AdminServiceTest, ListBackendsWithAndWithoutFilter) {
  pb::ListBackendsResponse r;
  ASSERT_TRUE(stub_->ListBackends(Ctx().get(), {}, &r).ok());
  ASSERT_EQ(r.backends_size(), 1);
  EXPECT_EQ(r.backends(0).id(), id());
  EXPECT_EQ(r.backends(0).url(), id());
  EXPECT_EQ(r.backends(0).model(), "m");
  EXPECT_EQ(r.backends(0).max_concurrent(), 4u);
  EXPECT_EQ(r.backends(0).state(), pb::HEALTHY);
  pb::ListBackendsRequest q;
  q.set_model("other");
  ASSERT_TRUE(stub_->ListBackends(Ctx().get(), q, &r).ok());
  EXPECT_EQ(r.backends_size(), 0);
}

TEST_P(AdminServiceTest, DrainUndrainResetCircuitChangeTheNextSnapshot) {
  auto obj = shm::ShmObject::Open("/llmgw-" + instance_);
  ASSERT_TRUE(obj.ok());
  shm::SnapshotReader reader(obj.value()->region());
  auto snap = std::make_unique<shm::Snapshot>();
  pb::BackendRequest q;
  q.set_id(id());
  pb::BackendResponse r;
  ASSERT_TRUE(stub_->DrainBackend(Ctx().get(), q, &r).ok());
  EXPECT_EQ(r.backend().state(), pb::DRAINING);
  controller_.Tick();
  ASSERT_TRUE(reader.Refresh(snap.get()));
  EXPECT_EQ(snap->backends[0].state, static_cast<uint8_t>(shm::BackendState::kDraining));
  ASSERT_TRUE(stub_->UndrainBackend(Ctx().get(), q, &r).ok());
  EXPECT_EQ(r.backend().state(), pb::HEALTHY);
  controller_.Tick();
  ASSERT_TRUE(reader.Refresh(snap.get()));
  EXPECT_EQ(snap->backends[0].state, static_cast<uint8_t>(shm::BackendState::kHealthy));
  ASSERT_TRUE(stub_->ResetCircuit(Ctx().get(), q, &r).ok());
  EXPECT_EQ(r.backend().id(), id());
  q.set_id("http://unknown:1");
  for (auto call : {&pb::Admin::Stub::DrainBackend, &pb::Admin::Stub::UndrainBackend, &pb::Admin::Stub::ResetCircuit}) {
    grpc::Status st = ((*stub_).*call)(Ctx().get(), q, &r);
    EXPECT_EQ(st.error_code(), grpc::StatusCode::NOT_FOUND);
    EXPECT_NE(st.error_message().find("unknown"), std::string::npos);
  }
  obj.value()->Close();
}

TEST_P(AdminServiceTest, GetConfigReloadConfigAndValidateConfig) {
  pb::GetConfigResponse gc;
  ASSERT_TRUE(stub_->GetConfig(Ctx().get(), {}, &gc).ok());
  EXPECT_EQ(gc.path(), config_path_);
  EXPECT_EQ(gc.version(), 1u);
  EXPECT_NE(gc.yaml().find("instance: " + instance_), std::string::npos);

  WriteFile(config_path_, ConfigText("round_robin"));
  pb::ReloadConfigResponse rc;
  ASSERT_TRUE(stub_->ReloadConfig(Ctx().get(), {}, &rc).ok());
  EXPECT_TRUE(rc.ok());
  EXPECT_EQ(rc.version(), 2u);
  EXPECT_NE(rc.summary().find("policy least_connections -> round_robin"), std::string::npos) << rc.summary();

  WriteFile(config_path_, "instance: " + instance_ + "\ngateway: { threads: many }\nmodels: []\n");
  ASSERT_TRUE(stub_->ReloadConfig(Ctx().get(), {}, &rc).ok());
  EXPECT_FALSE(rc.ok());
  ASSERT_GT(rc.errors_size(), 0);
  EXPECT_NE(rc.errors(0).find(config_path_ + ":"), std::string::npos) << rc.errors(0);
  EXPECT_EQ(rc.version(), 2u);  // the old config keeps serving
  pb::GetStatusResponse st;
  ASSERT_TRUE(stub_->GetStatus(Ctx().get(), {}, &st).ok());
  EXPECT_EQ(st.config_reload_failures(), 1u);
  EXPECT_EQ(st.backends_total(), 1u);

  pb::ValidateConfigRequest vq;
  vq.set_yaml("models:\n  - name: x\n    policy: bogus\n");
  vq.set_filename("candidate.yaml");
  pb::ValidateConfigResponse vr;
  ASSERT_TRUE(stub_->ValidateConfig(Ctx().get(), vq, &vr).ok());
  EXPECT_FALSE(vr.ok());
  ASSERT_GT(vr.errors_size(), 0);
  EXPECT_NE(vr.errors(0).find("candidate.yaml:"), std::string::npos);
  vq.set_yaml(ConfigText());
  ASSERT_TRUE(stub_->ValidateConfig(Ctx().get(), vq, &vr).ok());
  EXPECT_TRUE(vr.ok());
  EXPECT_EQ(controller_.config_version(), 2u);  // validation applied nothing
}

TEST_P(AdminServiceTest, GetRoutingStats) {
  pb::GetRoutingStatsResponse r;
  ASSERT_TRUE(stub_->GetRoutingStats(Ctx().get(), {}, &r).ok());
  ASSERT_EQ(r.models_size(), 1);
  EXPECT_EQ(r.models(0).model(), "m");
  EXPECT_EQ(r.models(0).policy(), "least_connections");
  ASSERT_EQ(r.models(0).picks_size(), 1);
  EXPECT_EQ(r.models(0).picks(0).id(), id());
}

TEST_P(AdminServiceTest, WatchStatusStreamsUpdates) {
  auto ctx = Ctx();
  pb::WatchStatusRequest q;
  q.set_interval_ms(100);
  auto reader = stub_->WatchStatus(ctx.get(), q);
  pb::StatusUpdate u;
  int n = 0;
  while (n < 3 && reader->Read(&u)) {
    EXPECT_EQ(u.status().instance(), instance_);
    EXPECT_EQ(u.backends_size(), 1);
    ++n;
  }
  EXPECT_EQ(n, 3);
  ctx->TryCancel();
  reader->Finish();
}

TEST_P(AdminServiceTest, ReflectionListsTheService) {
  auto listing = testing::ListServices(channel_, GetParam() ? "s3cret-token" : "");
  EXPECT_TRUE(listing.status.ok()) << listing.status.error_message();
  EXPECT_NE(std::find(listing.services.begin(), listing.services.end(), "llmgw.admin.v1.Admin"),
            listing.services.end());
  EXPECT_NE(std::find(listing.services.begin(), listing.services.end(), "grpc.reflection.v1alpha.ServerReflection"),
            listing.services.end());
}

// Runs with auth on only.
class AdminAuthTest : public AdminServiceTest {};

TEST_P(AdminAuthTest, CallsWithoutOrWithWrongTokenAreRejected) {
  for (const char* header : {"", "Bearer wrong", "s3cret-token", "Basic s3cret-token"}) {
    SCOPED_TRACE(header);
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
    if (*header) ctx.AddMetadata("authorization", header);
    pb::GetStatusResponse r;
    grpc::Status st = stub_->GetStatus(&ctx, {}, &r);
    EXPECT_EQ(st.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  }
  grpc::ClientContext ctx;
  pb::BackendRequest q;
  q.set_id(id());
  pb::BackendResponse r;
  EXPECT_EQ(stub_->DrainBackend(&ctx, q, &r).error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(controller_.Backends()[0].state(), pb::HEALTHY);  // nothing was drained
  auto listing = testing::ListServices(channel_, "wrong");
  EXPECT_EQ(listing.status.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_TRUE(listing.services.empty());
  listing = testing::ListServices(channel_);
  EXPECT_EQ(listing.status.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_TRUE(listing.services.empty());
}

INSTANTIATE_TEST_SUITE_P(Auth, AdminServiceTest, ::testing::Values(false, true),
                         [](const ::testing::TestParamInfo<bool>& i) { return i.param ? "TokenOn" : "TokenOff"; });

INSTANTIATE_TEST_SUITE_P(AuthOn, AdminAuthTest, ::testing::Values(true),
                         [](const ::testing::TestParamInfo<bool>&) { return "TokenOn"; });

TEST(AdminServerTest, RefusesNonLoopbackWithoutToken) {
  Controller c;
  AdminServer s(&c);
  AdminConfig cfg;
  cfg.grpc_listen = "0.0.0.0:0";
  Status st = s.Start(cfg);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(std::string(st.error().message()).find("not loopback"), std::string::npos) << st.error().message();
  cfg.grpc_listen = "127.0.0.1:0";
  cfg.token_file = "/nonexistent/token";
  st = s.Start(cfg);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(std::string(st.error().message()).find("token_file"), std::string::npos);
}

TEST(AdminServerTest, LoopbackHosts) {
  EXPECT_TRUE(IsLoopbackHost("127.0.0.1"));
  EXPECT_TRUE(IsLoopbackHost("127.1.2.3"));
  EXPECT_TRUE(IsLoopbackHost("localhost"));
  EXPECT_TRUE(IsLoopbackHost("::1"));
  EXPECT_TRUE(IsLoopbackHost("[::1]"));
  EXPECT_FALSE(IsLoopbackHost("0.0.0.0"));
  EXPECT_FALSE(IsLoopbackHost("::"));
  EXPECT_FALSE(IsLoopbackHost("10.0.0.1"));
  EXPECT_FALSE(IsLoopbackHost("example.com"));
}

}  // namespace
}  // namespace llmgw::cp
