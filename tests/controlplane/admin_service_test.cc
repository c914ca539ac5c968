// In-process tests of every Admin RPC, with auth off and on, server reflection listing
// the service, the loopback-only rule without a token, and operator actions reaching the
// next snapshot.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <sstream>
#include <sys/stat.h>
#include <thread>

#include <google/protobuf/descriptor.h>
#include <google/protobuf/descriptor.pb.h>
#include <google/protobuf/dynamic_message.h>
#include <grpcpp/impl/client_unary_call.h>

#include "common/shm.h"
#include "controlplane/admin_service.h"
#include "controlplane/controller.h"
#include "tests/controlplane/grpc_health_client.h"
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
    shm::Unlink("/llmgw-" + instance_);  // in case a failed assertion left it attached
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

// What `grpcurl ADDR list`, `grpcurl ADDR llmgw.admin.v1.Admin/ListBackends` and
// `.../DrainBackend -d '{"id":...}'` do, knowing only the address: descriptors come from
// reflection, messages are built dynamically, calls go out as raw bytes.
TEST_P(AdminServiceTest, GrpcurlStyleClientKnowingOnlyTheAddress) {
  namespace gp = google::protobuf;
  std::string token = GetParam() ? "s3cret-token" : "";
  std::vector<std::string> files;
  ASSERT_TRUE(testing::FileContainingSymbol(channel_, "llmgw.admin.v1.Admin", token, &files).ok());
  ASSERT_FALSE(files.empty());
  gp::DescriptorPool pool;
  for (const auto& f : files) {
    gp::FileDescriptorProto fdp;
    ASSERT_TRUE(fdp.ParseFromString(f));
    ASSERT_NE(pool.BuildFile(fdp), nullptr);
  }
  const gp::ServiceDescriptor* svc = pool.FindServiceByName("llmgw.admin.v1.Admin");
  ASSERT_NE(svc, nullptr);
  gp::DynamicMessageFactory factory(&pool);
  auto call = [&](const std::string& method_name, const std::function<void(gp::Message*)>& fill,
                  std::unique_ptr<gp::Message>* out) {
    const gp::MethodDescriptor* m = svc->FindMethodByName(method_name);
    ASSERT_NE(m, nullptr) << method_name;
    std::unique_ptr<gp::Message> req(factory.GetPrototype(m->input_type())->New());
    fill(req.get());
    grpc::ByteBuffer in, resp;
    std::string bytes = req->SerializeAsString();
    grpc::Slice slice(bytes);
    in = grpc::ByteBuffer(&slice, 1);
    std::string path = "/llmgw.admin.v1.Admin/" + method_name;  // RpcMethod keeps the pointer
    grpc::internal::RpcMethod rpc(path.c_str(), grpc::internal::RpcMethod::NORMAL_RPC);
    auto ctx = Ctx();
    grpc::Status st = grpc::internal::BlockingUnaryCall<grpc::ByteBuffer, grpc::ByteBuffer>(channel_.get(), rpc,
                                                                                          ctx.get(), in, &resp);
    ASSERT_TRUE(st.ok()) << st.error_message();
    std::vector<grpc::Slice> slices;
    (void)resp.Dump(&slices);
    std::string out_bytes;
    for (auto& sl : slices) out_bytes.append(reinterpret_cast<const char*>(sl.begin()), sl.size());
    out->reset(factory.GetPrototype(m->output_type())->New());
    ASSERT_TRUE((*out)->ParseFromString(out_bytes));
  };
  std::unique_ptr<gp::Message> list;
  ASSERT_NO_FATAL_FAILURE(call("ListBackends", [](gp::Message*) {}, &list));
  const gp::FieldDescriptor* backends = list->GetDescriptor()->FindFieldByName("backends");
  ASSERT_EQ(list->GetReflection()->FieldSize(*list, backends), 1);
  const gp::Message& b0 = list->GetReflection()->GetRepeatedMessage(*list, backends, 0);
  std::string listed_id = b0.GetReflection()->GetString(b0, b0.GetDescriptor()->FindFieldByName("id"));
  EXPECT_EQ(listed_id, id());

  std::unique_ptr<gp::Message> drained;
  ASSERT_NO_FATAL_FAILURE(call("DrainBackend", [&](gp::Message* m) {
    m->GetReflection()->SetString(m, m->GetDescriptor()->FindFieldByName("id"), listed_id);
  }, &drained));
  const gp::Message& b = drained->GetReflection()->GetMessage(*drained, drained->GetDescriptor()->FindFieldByName("backend"));
  EXPECT_EQ(b.GetReflection()->GetEnum(b, b.GetDescriptor()->FindFieldByName("state"))->name(), "DRAINING");
  EXPECT_EQ(controller_.Backends()[0].state, shm::BackendState::kDraining);
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
  EXPECT_EQ(controller_.Backends()[0].state, shm::BackendState::kHealthy);  // nothing was drained
  auto listing = testing::ListServices(channel_, "wrong");
  EXPECT_EQ(listing.status.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_TRUE(listing.services.empty());
  listing = testing::ListServices(channel_);
  EXPECT_EQ(listing.status.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_TRUE(listing.services.empty());
  std::vector<std::string> files;
  EXPECT_EQ(testing::FileContainingSymbol(channel_, "llmgw.admin.v1.Admin", "", &files).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_TRUE(files.empty());  // no descriptors leak without the token
}

INSTANTIATE_TEST_SUITE_P(Auth, AdminServiceTest, ::testing::Values(false, true),
                         [](const ::testing::TestParamInfo<bool>& i) { return i.param ? "TokenOn" : "TokenOff"; });

INSTANTIATE_TEST_SUITE_P(AuthOn, AdminAuthTest, ::testing::Values(true),
                         [](const ::testing::TestParamInfo<bool>&) { return "TokenOn"; });

// The health service follows what main's loop reports of the publish loop (issue 15:
// it stayed SERVING while /healthz said 503).
TEST_P(AdminServiceTest, GrpcHealthFollowsSetServing) {
  EXPECT_EQ(llmgw::testing::GrpcHealthStatus(server_->port()), 1);
  server_->SetServing(false);
  EXPECT_EQ(llmgw::testing::GrpcHealthStatus(server_->port()), 2);
  server_->SetServing(true);
  EXPECT_EQ(llmgw::testing::GrpcHealthStatus(server_->port()), 1);
}

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

namespace llmgw::cp {
namespace {

// TLS from cert/key files: a TLS client with the cert as root gets answers, a plaintext
// client does not. The self-signed pair is made by the openssl CLI for this test only.
TEST(AdminServerTlsTest, ServesOverTlsFromFiles) {
  std::string dir = TempPath("tls");
  ASSERT_EQ(mkdir(dir.c_str(), 0700), 0);
  std::string cert = dir + "/cert.pem", key = dir + "/key.pem";
  std::string cmd = "timeout 20 openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=localhost "
                    "-addext subjectAltName=DNS:localhost -keyout " + key + " -out " + cert + " >/dev/null 2>&1";
  ASSERT_EQ(std::system(cmd.c_str()), 0) << "openssl failed";
  Config cfg;
  cfg.instance = "cptls-" + std::to_string(getpid());
  Controller c;
  ConfigResult r = ParseConfig("instance: " + cfg.instance +
                                   "\nmodels:\n  - name: m\n    backends:\n      - { url: http://127.0.0.1:9 }\n",
                               "tls.yaml");
  ASSERT_TRUE(r.ok()) << r.ErrorText();
  ASSERT_TRUE(c.StartWithConfig(std::move(r.config)).ok());
  AdminServer s(&c);
  AdminConfig admin;
  admin.grpc_listen = "127.0.0.1:0";
  admin.tls_cert_file = cert;
  admin.tls_key_file = key;
  Status st = s.Start(admin);
  ASSERT_TRUE(st.ok()) << st.error().message();
  std::string target = "127.0.0.1:" + std::to_string(s.port());

  grpc::SslCredentialsOptions opts;
  std::ifstream f(cert);
  std::stringstream ss;
  ss << f.rdbuf();
  opts.pem_root_certs = ss.str();
  grpc::ChannelArguments args;
  args.SetSslTargetNameOverride("localhost");
  auto tls = pb::Admin::NewStub(grpc::CreateCustomChannel(target, grpc::SslCredentials(opts), args));
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
  pb::GetStatusResponse resp;
  grpc::Status call = tls->GetStatus(&ctx, {}, &resp);
  EXPECT_TRUE(call.ok()) << call.error_message();
  EXPECT_EQ(resp.instance(), cfg.instance);

  auto plain = pb::Admin::NewStub(grpc::CreateChannel(target, grpc::InsecureChannelCredentials()));
  grpc::ClientContext ctx2;
  ctx2.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(2));
  EXPECT_FALSE(plain->GetStatus(&ctx2, {}, &resp).ok());
  s.Stop();
  c.Shutdown();
  std::remove(cert.c_str());
  std::remove(key.c_str());
  rmdir(dir.c_str());
}

}  // namespace
}  // namespace llmgw::cp
