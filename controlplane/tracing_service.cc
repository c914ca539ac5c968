// TracingService (tracing_service.h).
#include "controlplane/tracing_service.h"

#include <unistd.h>

#include <chrono>

#include "common/log.h"

namespace llmgw::cp {

Result<std::unique_ptr<TracingService>> TracingService::Start(const TracingConfig& cfg, const std::string& instance,
                                                              shm::ShmRegion* region) {
  if (cfg.otlp_endpoint.empty() || !region) return std::unique_ptr<TracingService>();
  SpanExporterOptions o;
  o.endpoint = cfg.otlp_endpoint;
  o.json = cfg.protocol == "http/json";
  o.max_queue = cfg.max_queue_spans;
  char host[256] = {};
  gethostname(host, sizeof host - 1);
  o.resource.attributes = {{"service.name", cfg.service_name},
                           {"service.version", std::string(LLMGW_VERSION_STRING)},
                           {"service.instance.id", std::string(host) + "/" + instance},
                           {"host.name", std::string(host)}};
  o.resource.scope_version = LLMGW_VERSION_STRING;
  auto x = SpanExporter::Start(std::move(o));
  if (!x.ok()) return x.error();
  std::unique_ptr<TracingService> t(new TracingService());
  t->exporter_ = std::move(x.value());
  t->collector_ = std::make_unique<SpanCollector>(region);
  t->thread_ = std::thread([p = t.get()] {
    while (!p->stop_.load()) {
      uint64_t dropped = 0;
      auto spans = p->collector_->Collect(&dropped);
      if (dropped) p->exporter_->CountDataPlaneDropped(dropped);
      if (!spans.empty()) p->exporter_->Enqueue(std::move(spans));
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    uint64_t dropped = 0;  // what the data plane finished before the stop goes out too
    auto spans = p->collector_->Collect(&dropped);
    if (!spans.empty()) p->exporter_->Enqueue(std::move(spans));
  });
  LOG_INFO("exporting traces", {{"url", t->exporter_->url()}, {"protocol", cfg.protocol}});
  return t;
}

TracingService::~TracingService() {
  stop_ = true;
  if (thread_.joinable()) thread_.join();
  exporter_.reset();  // a last flush of what is queued
}

}  // namespace llmgw::cp
