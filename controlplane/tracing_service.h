// TracingService: llmcd's side of tracing (docs/OPERATIONS.md, "Tracing"), wired by main:
// every 100 ms a SpanCollector drains the data plane's span rings of the local shared
// memory into a SpanExporter, which batches them to the OTLP/HTTP collector. Both roles
// run it (the controller and each agent export the spans of their own gateway).
#pragma once

#include <atomic>
#include <memory>
#include <string>
#include <thread>

#include "common/config.h"
#include "common/shm.h"
#include "controlplane/span_collector.h"
#include "controlplane/span_exporter.h"

namespace llmgw::cp {

class TracingService {
 public:
  // Null (and Ok) when tracing.otlp_endpoint is empty.
  static Result<std::unique_ptr<TracingService>> Start(const TracingConfig& cfg, const std::string& instance,
                                                       shm::ShmRegion* region);
  ~TracingService();
  SpanExporterCounters counters() const { return exporter_->counters(); }

 private:
  TracingService() = default;
  std::unique_ptr<SpanCollector> collector_;
  std::unique_ptr<SpanExporter> exporter_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

}  // namespace llmgw::cp
