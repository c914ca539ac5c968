// llmcd's trace export path against a real OTLP/HTTP receiver (tests/controlplane/
// otlp_receiver.py, decoding with the protobuf runtime or as OTLP/JSON): span records
// written into a shared-memory ring as the data plane writes them, collected
// (SpanCollector) and exported (SpanExporter, http/protobuf and http/json); the receiver's
// view is checked for ids, parentage, GenAI attributes, the TTFT event and the resource.
// Also: retries with backoff on 503, an unreachable collector and a full queue dropping
// and counting, and spans the data plane dropped being counted.
#include <gtest/gtest.h>
#include <rapidjson/document.h>

#include <cstdio>
#include <memory>
#include <sstream>

#include "common/shm.h"
#include "common/snapshot_builder.h"
#include "controlplane/span_collector.h"
#include "controlplane/span_exporter.h"
#include "e2e_process.h"

namespace llmgw::e2e {
namespace {

using cp::SpanCollector;
using cp::SpanExporter;
using cp::SpanExporterOptions;
using shm::SpanRecord;

void Fill(uint8_t* p, size_t n, uint8_t v) {
  for (size_t i = 0; i < n; ++i) p[i] = static_cast<uint8_t>(v + i);
}
std::string Hex(const uint8_t* p, size_t n) {
  char b[3];
  std::string s;
  for (size_t i = 0; i < n; ++i) {
    std::snprintf(b, sizeof b, "%02x", p[i]);
    s += b;
  }
  return s;
}

class OtlpExportTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/llmgw-otlp-XXXXXX";
    dir_ = mkdtemp(tmpl);
    name_ = "/llmgw-otlp-" + std::to_string(getpid());
    auto obj = shm::ShmObject::Open(name_);
    ASSERT_TRUE(obj.ok());
    shm_ = std::move(obj.value());
    // The snapshot the records' slots refer to.
    auto s = std::make_unique<shm::Snapshot>();
    std::snprintf(s->models[0].name, shm::kNameLen, "%s", "llama");
    s->models[0].present = 1;
    s->num_models = 1;
    const char* ids[] = {"gpu-0", "gpu-1"};
    const char* urls[] = {"http://10.0.0.1:8000", "http://10.0.0.2:8001"};
    for (int i = 0; i < 2; ++i) {
      std::snprintf(s->backends[i].id, shm::kUrlLen, "%s", ids[i]);
      std::snprintf(s->backends[i].url, shm::kUrlLen, "%s", urls[i]);
      s->backends[i].key = BackendKey(ids[i]);
      s->backends[i].state = static_cast<uint8_t>(shm::BackendState::kHealthy);
    }
    s->num_backends = 2;
    shm::SnapshotWriter(shm_->region()).Publish(s.get());
  }
  void TearDown() override {
    receiver_.reset();
    shm_.reset();
    shm::Unlink(name_);
    for (const char* f : {"/spans.jsonl", "/spans.jsonl.errors", "/receiver.log"}) std::remove((dir_ + f).c_str());
    rmdir(dir_.c_str());
  }
  void StartReceiver(int fail_first = 0) {
    std::vector<std::string> argv{"/usr/bin/python3", OTLP_RECEIVER, dir_ + "/spans.jsonl"};
    if (fail_first) argv.insert(argv.end(), {"--fail-first", std::to_string(fail_first)});
    receiver_ = std::make_unique<Proc>(argv, dir_ + "/receiver.log", true);
    ASSERT_GT(receiver_->port(), 0) << ReadFile(dir_ + "/receiver.log");
  }
  std::vector<std::string> Lines() {
    std::vector<std::string> out;
    std::istringstream in(ReadFile(dir_ + "/spans.jsonl"));
    for (std::string l; std::getline(in, l);)
      if (!l.empty()) out.push_back(l);
    return out;
  }
  // A request as the data plane records it: the server span and two attempts (503, then
  // a streamed 200 on another backend after a retry).
  void WriteRequest(shm::SpanRing* ring) {
    SpanRecord server{}, a1{}, a2{};
    Fill(server.trace_id, 16, 0x10);
    Fill(server.parent_span_id, 8, 0xc0);  // the client's span
    Fill(server.span_id, 8, 0xa0);
    server.kind = static_cast<uint8_t>(shm::SpanKind::kServer);
    server.start_unix_ns = 1'700'000'000'000'000'000ull;
    server.end_unix_ns = server.start_unix_ns + 900'000'000;
    server.first_token_unix_ns = server.start_unix_ns + 48'000'000;
    server.status_code = 200;
    server.model_slot = 0;
    server.backend_slot = 1;
    server.backend_key = BackendKey("gpu-1");
    server.prompt_tokens = 12;
    server.completion_tokens = 34;
    server.attempt = 2;
    server.stream = 1;
    server.operation = static_cast<uint8_t>(shm::SpanOperation::kChat);
    shm::CopySpanText(server.request_model, sizeof server.request_model, "default");
    shm::CopySpanText(server.request_id, sizeof server.request_id, "req-77");
    shm::CopySpanText(server.trace_state, sizeof server.trace_state, "vendor=abc");
    a1 = server;
    Fill(a1.span_id, 8, 0xb0);
    std::memcpy(a1.parent_span_id, server.span_id, 8);
    a1.kind = static_cast<uint8_t>(shm::SpanKind::kClient);
    a1.status_code = 503;
    a1.error_kind = static_cast<uint8_t>(ErrorKind::kUpstreamStatus);
    a1.backend_slot = 0;
    a1.backend_key = BackendKey("gpu-0");
    a1.attempt = 1;
    a1.reason = static_cast<uint8_t>(shm::AttemptReason::kFirst);
    a1.first_token_unix_ns = 0;
    a1.prompt_tokens = a1.completion_tokens = 0;
    a1.end_unix_ns = a1.start_unix_ns + 5'000'000;
    a2 = server;
    Fill(a2.span_id, 8, 0xd0);
    std::memcpy(a2.parent_span_id, server.span_id, 8);
    a2.kind = static_cast<uint8_t>(shm::SpanKind::kClient);
    a2.attempt = 2;
    a2.reason = static_cast<uint8_t>(shm::AttemptReason::kRetry);
    a2.start_unix_ns = server.start_unix_ns + 60'000'000;
    shm::SpanRingWriter w(ring);
    ASSERT_TRUE(w.Push(a1));
    ASSERT_TRUE(w.Push(a2));
    ASSERT_TRUE(w.Push(server));
    expect_trace_ = Hex(server.trace_id, 16);
    expect_server_ = Hex(server.span_id, 8);
    expect_client_parent_ = Hex(server.parent_span_id, 8);
  }
  SpanExporterOptions Options(bool json) {
    SpanExporterOptions o;
    o.endpoint = "http://127.0.0.1:" + std::to_string(receiver_ ? receiver_->port() : 1);
    o.json = json;
    o.flush_ms = 50;
    o.backoff_ms = 20;
    o.resource.attributes = {{"service.name", std::string("llmgw-test")}};
    return o;
  }
  void ExportAndCheck(bool json) {
    StartReceiver();
    WriteRequest(&shm_->region()->span_rings[3]);
    SpanCollector col(shm_->region());
    uint64_t dropped = 0;
    auto spans = col.Collect(&dropped);
    ASSERT_EQ(spans.size(), 3u);
    EXPECT_EQ(dropped, 0u);
    auto x = SpanExporter::Start(Options(json));
    ASSERT_TRUE(x.ok());
    EXPECT_EQ(x.value()->Enqueue(std::move(spans)), 3u);
    ASSERT_TRUE(WaitFor([&] { return Lines().size() >= 3; }, 10000))
        << ReadFile(dir_ + "/receiver.log") << ReadFile(dir_ + "/spans.jsonl.errors");
    EXPECT_TRUE(WaitFor([&] { return x.value()->counters().exported == 3; }, 5000));
    auto lines = Lines();
    ASSERT_EQ(lines.size(), 3u);
    int servers = 0, clients = 0;
    for (const auto& l : lines) {
      rapidjson::Document d;
      d.Parse(l.c_str());
      ASSERT_TRUE(d.IsObject()) << l;
      EXPECT_EQ(std::string(d["encoding"].GetString()), json ? "json" : "protobuf");
      EXPECT_EQ(std::string(d["trace_id"].GetString()), expect_trace_) << "one trace";
      EXPECT_EQ(std::string(d["resource"]["service.name"].GetString()), "llmgw-test");
      EXPECT_EQ(std::string(d["trace_state"].GetString()), "vendor=abc");
      const auto& a = d["attributes"];
      EXPECT_EQ(std::string(a["gen_ai.operation.name"].GetString()), "chat") << l;
      if (d["kind"].GetInt() == 2) {  // SERVER: the request
        ++servers;
        EXPECT_EQ(std::string(d["span_id"].GetString()), expect_server_);
        EXPECT_EQ(std::string(d["parent_span_id"].GetString()), expect_client_parent_) << "continues the client's";
        EXPECT_EQ(std::string(d["name"].GetString()), "chat default");
        EXPECT_EQ(std::string(a["gen_ai.request.model"].GetString()), "default") << "as the client named it";
        EXPECT_EQ(std::string(a["gen_ai.response.model"].GetString()), "llama");
        EXPECT_EQ(a["gen_ai.usage.input_tokens"].GetInt64(), 12);
        EXPECT_EQ(a["gen_ai.usage.output_tokens"].GetInt64(), 34);
        EXPECT_EQ(a["http.response.status_code"].GetInt64(), 200);
        EXPECT_EQ(std::string(a["llmgw.backend.id"].GetString()), "gpu-1");
        EXPECT_EQ(a["llmgw.attempts"].GetInt64(), 2);
        EXPECT_EQ(std::string(a["llmgw.request_id"].GetString()), "req-77");
        ASSERT_EQ(d["events"].Size(), 1u);
        EXPECT_EQ(std::string(d["events"][0]["name"].GetString()), "gen_ai.first_token");
        EXPECT_NEAR(d["events"][0]["attributes"]["gen_ai.server.time_to_first_token"].GetDouble(), 0.048, 1e-6);
        EXPECT_EQ(d["end"].GetUint64() - d["start"].GetUint64(), 900'000'000u);
        EXPECT_EQ(d["status"]["code"].GetInt(), 0);
      } else {  // CLIENT: an attempt, child of the request's span
        ++clients;
        EXPECT_EQ(d["kind"].GetInt(), 3);
        EXPECT_EQ(std::string(d["parent_span_id"].GetString()), expect_server_);
        EXPECT_EQ(std::string(a["gen_ai.request.model"].GetString()), "llama");
        if (a["llmgw.attempt"].GetInt64() == 1) {
          EXPECT_EQ(std::string(a["llmgw.attempt.reason"].GetString()), "first");
          EXPECT_EQ(std::string(a["llmgw.backend.id"].GetString()), "gpu-0");
          EXPECT_EQ(std::string(a["server.address"].GetString()), "10.0.0.1");
          EXPECT_EQ(a["server.port"].GetInt64(), 8000);
          EXPECT_EQ(a["http.response.status_code"].GetInt64(), 503);
          EXPECT_EQ(std::string(a["error.type"].GetString()), "upstream_status");
          EXPECT_EQ(d["status"]["code"].GetInt(), 2) << "ERROR";
          EXPECT_FALSE(a.HasMember("gen_ai.response.model"));
        } else {
          EXPECT_EQ(std::string(a["llmgw.attempt.reason"].GetString()), "retry");
          EXPECT_EQ(std::string(a["llmgw.backend.id"].GetString()), "gpu-1");
          EXPECT_EQ(a["server.port"].GetInt64(), 8001);
          EXPECT_EQ(d["events"].Size(), 1u) << "TTFT as an event";
          EXPECT_EQ(d["status"]["code"].GetInt(), 0);
        }
      }
    }
    EXPECT_EQ(servers, 1);
    EXPECT_EQ(clients, 2);
  }

  std::string dir_, name_, expect_trace_, expect_server_, expect_client_parent_;
  std::unique_ptr<shm::ShmObject> shm_;
  std::unique_ptr<Proc> receiver_;
};

TEST_F(OtlpExportTest, HttpProtobufCarriesIdsParentageAndGenAiAttributes) { ExportAndCheck(false); }

TEST_F(OtlpExportTest, HttpJsonCarriesIdsParentageAndGenAiAttributes) { ExportAndCheck(true); }

TEST_F(OtlpExportTest, RetriesWithBackoffWhenTheCollectorIsUnavailable) {
  StartReceiver(/*fail_first=*/2);
  WriteRequest(&shm_->region()->span_rings[0]);
  SpanCollector col(shm_->region());
  uint64_t dropped;
  auto x = SpanExporter::Start(Options(false));
  ASSERT_TRUE(x.ok());
  x.value()->Enqueue(col.Collect(&dropped));
  ASSERT_TRUE(WaitFor([&] { return x.value()->counters().exported == 3; }, 10000));
  auto c = x.value()->counters();
  EXPECT_EQ(c.request_failures, 2u) << "two 503s, then accepted";
  EXPECT_EQ(c.dropped_export_failed, 0u);
  EXPECT_EQ(Lines().size(), 3u) << "no duplicate after the retries";
}

TEST_F(OtlpExportTest, UnreachableCollectorDropsAndCounts) {
  SpanExporterOptions o = Options(false);
  o.endpoint = "http://127.0.0.1:" + std::to_string(FreePort());  // nobody listens
  o.max_attempts = 2;
  auto x = SpanExporter::Start(o);
  ASSERT_TRUE(x.ok());
  WriteRequest(&shm_->region()->span_rings[0]);
  SpanCollector col(shm_->region());
  uint64_t dropped;
  x.value()->Enqueue(col.Collect(&dropped));
  ASSERT_TRUE(WaitFor([&] { return x.value()->counters().dropped_export_failed == 3; }, 10000));
  EXPECT_EQ(x.value()->counters().exported, 0u);
  EXPECT_EQ(x.value()->counters().request_failures, 2u);
}

TEST_F(OtlpExportTest, BoundedQueueDropsTheOverflow) {
  SpanExporterOptions o = Options(false);
  o.endpoint = "http://127.0.0.1:" + std::to_string(FreePort());
  o.max_queue = 4;
  o.flush_ms = 60000;  // nothing leaves the queue during the test
  o.batch = 1000;
  o.max_attempts = 1;
  o.timeout_ms = 200;
  auto x = SpanExporter::Start(o);
  ASSERT_TRUE(x.ok());
  std::vector<cp::OtlpSpan> ten(10);
  EXPECT_EQ(x.value()->Enqueue(std::move(ten)), 4u);
  EXPECT_EQ(x.value()->counters().dropped_queue_full, 6u);
  EXPECT_EQ(x.value()->counters().queued, 4u);
}

TEST_F(OtlpExportTest, DataPlaneDropsAreCounted) {
  shm::SpanRingWriter w(&shm_->region()->span_rings[5]);
  SpanCollector col(shm_->region());  // counts from here on
  SpanRecord r{};
  r.kind = static_cast<uint8_t>(shm::SpanKind::kServer);
  for (uint32_t i = 0; i < shm::kSpanRingEntries + 7; ++i) w.Push(r);
  uint64_t dropped = 0;
  EXPECT_EQ(col.Collect(&dropped).size(), shm::kSpanRingEntries);
  EXPECT_EQ(dropped, 7u);
  col.Collect(&dropped);
  EXPECT_EQ(dropped, 0u) << "counted once";
}

TEST(OtlpExporterConfigTest, RefusesAnEndpointThatIsNotHttp) {
  SpanExporterOptions o;
  o.endpoint = "127.0.0.1:4318";
  auto x = SpanExporter::Start(o);
  ASSERT_FALSE(x.ok());
  EXPECT_NE(std::string(x.error().message()).find("tracing.otlp_endpoint"), std::string::npos);
}

}  // namespace
}  // namespace llmgw::e2e
