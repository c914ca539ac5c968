// Prometheus exposition of llmcd on admin.metrics_listen (prometheus-cpp's civetweb
// Exposer): the DESIGN.md metric names computed at scrape time from the summed
// data-plane stats and the controller's state, plus GET /load-stats in the vLLM Router
// JSON shape, GET /healthz and the live dashboard (GET /dashboard, /dashboard/events:
// controlplane/dashboard.h).
#pragma once

#include <prometheus/metric_family.h>

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "common/error.h"
#include "controlplane/controller.h"
#include "controlplane/span_exporter.h"

namespace prometheus {
class Exposer;
}

namespace llmgw::cp {

// Builds the /load-stats JSON body (also used by tests without HTTP).
std::string LoadStatsJson(const Controller& c);

// A client API key as the exposition labels it: key="id". slot is its key slot (-1 for
// "anonymous"); the limits say which llm_rate_limiter_* series it has.
struct KeyLabel {
  std::string id;
  int slot = -1;
  uint32_t rpm = 0, tpm = 0, max_concurrent = 0;
};

// Appends a family for every data-plane stat (the lists in common/shm_layout.h): thread
// stats without labels, model stats per (name, model slot) with model=, backend stats per
// (id, BackendKey(id)) with id=, key-model stats per (key, model) with key= and model=,
// and the limiters' llm_rate_limiter_{requests,rejected}_total{limit=...} with key=,
// model= or id= (the global limit with none), and llm_gateway_cost_usd_total{key,model}
// from each priced model's (key, model) tokens. The exporter's scrape and tests use it.
void AppendStatFamilies(const shm::StatsTotals& st, const std::vector<std::pair<std::string, int>>& models,
                        const std::vector<std::pair<std::string, uint64_t>>& backends,
                        std::vector<prometheus::MetricFamily>* out, const std::vector<KeyLabel>& keys = {},
                        const shm::Snapshot* limits = nullptr, const std::map<std::string, ModelPrice>& prices = {});

class MetricsExporter {
 public:
  explicit MetricsExporter(Controller* c);
  ~MetricsExporter();
  // Counters of llmcd's trace export (llmcd_spans_*); call before Start.
  void SetSpanCounters(std::function<SpanExporterCounters()> f) { span_counters_ = std::move(f); }
  // The admin token guarding /dashboard (empty: none). Call before Start.
  void SetDashboardToken(std::string token) { dashboard_token_ = std::move(token); }
  // Listens on HOST:PORT (port 0 allowed). Only one exporter per process serves
  // /load-stats, /healthz and /dashboard.
  Status Start(const std::string& listen);
  int port() const { return port_; }
  // Stops listening. Idempotent; also done by the destructor.
  void Stop();

 private:
  class Collector;
  Controller* c_;
  std::shared_ptr<Collector> collector_;
  std::unique_ptr<prometheus::Exposer> exposer_;
  std::string host_;
  std::string dashboard_token_;
  std::function<SpanExporterCounters()> span_counters_;
  int port_ = 0;
};

}  // namespace llmgw::cp
