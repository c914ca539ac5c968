// The data-plane stat families of llmcd's exposition (AppendStatFamilies: the lists in
// common/shm_layout.h, limiters, cost) and the /load-stats JSON body, with the sample
// helpers of metrics_parts.h. The HTTP side, the controller's own families and the
// dashboard routes are in metrics_exporter.cc.
#include <prometheus/client_metric.h>
#include <prometheus/metric_family.h>
#include <prometheus/metric_type.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <limits>
#include <map>
#include <string>
#include <unordered_map>

#include "common/snapshot_builder.h"
#include "controlplane/admin_convert.h"
#include "controlplane/metrics_exporter.h"
#include "controlplane/metrics_parts.h"

namespace llmgw::cp {

namespace admin = ::llmgw::admin::v1;
using prometheus::ClientMetric;
using prometheus::MetricFamily;
using prometheus::MetricType;

std::string_view StateName(admin::BackendState s) {
  switch (s) {
    case admin::HEALTHY: return "healthy";
    case admin::UNHEALTHY: return "unhealthy";
    case admin::DRAINING: return "draining";
    case admin::CIRCUIT_OPEN: return "circuit_open";
    case admin::HALF_OPEN: return "half_open";
    default: return "unknown";
  }
}

MetricFamily Family(const char* name, const char* help, MetricType type) {
  MetricFamily f;
  f.name = name;
  f.help = help;
  f.type = type;
  return f;
}

ClientMetric Value(MetricType type, double v, std::vector<ClientMetric::Label> labels) {
  ClientMetric m;
  m.label = std::move(labels);
  if (type == MetricType::Counter) m.counter.value = v;
  else m.gauge.value = v;
  return m;
}

ClientMetric Hist(const shm::HistogramTotals& h) {
  ClientMetric m;
  uint64_t cum = 0;
  for (uint32_t i = 0; i < shm::kHistBuckets; ++i) {
    cum += h.buckets[i];
    ClientMetric::Bucket b;
    b.cumulative_count = cum;
    b.upper_bound = i < shm::kHistBuckets - 1 ? shm::kHistBoundsUs[i] / 1e6 : std::numeric_limits<double>::infinity();
    m.histogram.bucket.push_back(b);
  }
  m.histogram.sample_count = h.count;
  m.histogram.sample_sum = h.sum_us / 1e6;
  return m;
}

namespace {

// Families by name in first-seen order, so entries that share a family
// (llm_gateway_tokens_total{kind=...}) land in one.
class FamilySet {
 public:
  explicit FamilySet(std::vector<MetricFamily>* out) : out_(out) {}
  MetricFamily& Get(const shm::StatInfo& s) {
    auto [it, fresh] = index_.try_emplace(s.metric, out_->size());
    if (fresh) {
      MetricType t = s.type == shm::StatType::kHistogram ? MetricType::Histogram
                     : s.type == shm::StatType::kGauge   ? MetricType::Gauge
                                                         : MetricType::Counter;
      out_->push_back(Family(s.metric, s.help, t));
    }
    return (*out_)[it->second];
  }

 private:
  std::vector<MetricFamily>* out_;
  std::map<std::string, size_t> index_;
};

// Exports one totals row (thread, model or backend) entry by entry of its list; scope is
// the model= or id= label (empty for thread stats). Elements of a vector that are still
// 0 are left out, as a never-seen status code is.
struct RowExporter {
  FamilySet* fams;
  std::vector<ClientMetric::Label> scope;

  std::vector<ClientMetric::Label> Labels(const shm::StatInfo& s) const {
    std::vector<ClientMetric::Label> l;
    std::string_view fixed = s.label;
    if (!fixed.empty()) {
      size_t eq = fixed.find('=');
      l.push_back({std::string(fixed.substr(0, eq)), std::string(fixed.substr(eq + 1))});
    }
    return l;
  }
  void Add(MetricFamily& f, ClientMetric m, std::vector<ClientMetric::Label> l) const {
    l.insert(l.end(), scope.begin(), scope.end());
    m.label = std::move(l);
    f.metric.push_back(std::move(m));
  }
  void operator()(const shm::StatInfo& s, const uint64_t& v) const {
    MetricFamily& f = fams->Get(s);
    Add(f, Value(f.type, static_cast<double>(v)), Labels(s));
  }
  template <size_t N>
  void operator()(const shm::StatInfo& s, const uint64_t (&v)[N]) const {
    MetricFamily& f = fams->Get(s);
    for (uint32_t i = 0; i < N; ++i) {
      if (v[i] == 0) continue;
      auto l = Labels(s);
      l.push_back({s.vec_label, std::string(s.vec_name(i))});
      Add(f, Value(f.type, static_cast<double>(v[i])), std::move(l));
    }
  }
  void operator()(const shm::StatInfo& s, const shm::HistogramTotals& h) const {
    Add(fams->Get(s), Hist(h), Labels(s));
  }
};

}  // namespace

void AppendStatFamilies(const shm::StatsTotals& st, const std::vector<std::pair<std::string, int>>& models,
                        const std::vector<std::pair<std::string, uint64_t>>& backends,
                        std::vector<MetricFamily>* out, const std::vector<KeyLabel>& keys,
                        const shm::Snapshot* limits, const std::map<std::string, ModelPrice>& prices) {
  FamilySet fams(out);
  shm::VisitThreadStats(st, RowExporter{&fams, {}});
  // Every model entry's family exists even before the first model is configured.
  shm::ModelTotals none;
  shm::BackendTotals none_b;
  shm::VisitModelStats(none, [&](const shm::StatInfo& s, const auto&) { fams.Get(s); });
  shm::VisitBackendStats(none_b, [&](const shm::StatInfo& s, const auto&) { fams.Get(s); });
  for (const auto& [name, slot] : models) {
    if (slot < 0 || static_cast<size_t>(slot) >= st.models.size()) continue;
    shm::VisitModelStats(st.models[slot], RowExporter{&fams, {{"model", name}}});
  }
  // A backend's rows are the slots whose key is its key (a slot keeps its backend across
  // reloads; a reused slot's row names its new backend once a thread has counted for it).
  std::unordered_map<uint64_t, shm::BackendTotals> by_key;
  for (const auto& row : st.backends)
    if (row.key != 0) AddTotals(row, &by_key[row.key]);
  for (const auto& [id, key] : backends) {
    auto it = by_key.find(key);
    if (it != by_key.end()) shm::VisitBackendStats(it->second, RowExporter{&fams, {{"id", id}}});
  }

  // Per client key and model.
  shm::KeyModelTotals none_k;
  shm::VisitKeyModelStats(none_k, [&](const shm::StatInfo& s, const auto&) { fams.Get(s); });
  std::unordered_map<uint64_t, const std::string*> key_ids;
  for (const auto& k : keys) key_ids[BackendKey(k.id)] = &k.id;
  std::map<int, const std::string*> model_names;
  for (const auto& m : models) model_names[m.second] = &m.first;
  for (const auto& [who, row] : st.key_models) {
    auto k = key_ids.find(who.first);
    auto m = model_names.find(static_cast<int>(who.second));
    if (k == key_ids.end() || m == model_names.end()) continue;  // a key or model no longer configured
    shm::VisitKeyModelStats(row, RowExporter{&fams, {{"key", *k->second}, {"model", *m->second}}});
  }

  // Cost: the data plane counts tokens per (key, model); money is computed here, at scrape
  // time, from the running price table, so the hot path never does floating point. A
  // model without a price has no series (its cost is unknown, not zero).
  auto cost = Family("llm_gateway_cost_usd_total",
                     "Cost in USD of the tokens answered, by client API key and model (models[].price).",
                     MetricType::Counter);
  for (const auto& [who, row] : st.key_models) {
    auto k = key_ids.find(who.first);
    auto m = model_names.find(static_cast<int>(who.second));
    if (k == key_ids.end() || m == model_names.end()) continue;
    auto p = prices.find(*m->second);
    if (p == prices.end() || !p->second.priced()) continue;
    double usd = static_cast<double>(row.prompt_tokens) * p->second.input_per_mtok / 1e6 +
                 static_cast<double>(row.completion_tokens) * p->second.output_per_mtok / 1e6;
    cost.metric.push_back(Value(MetricType::Counter, usd, {{"key", *k->second}, {"model", *m->second}}));
  }
  out->push_back(std::move(cost));

  // The limiters that are set: requests checked against each and refused by it.
  if (st.limiters.size() != shm::kNumLimiters) return;
  const shm::StatInfo* checked_info = nullptr;
  const shm::StatInfo* rejected_info = nullptr;
  for (const auto& i : shm::kThreadStatInfo) {
    if (std::string_view(i.field) == "requests_total") checked_info = &i;
    if (std::string_view(i.field) == "admission_rejected") rejected_info = &i;
  }
  auto limiter = [&](shm::LimitKind kind, uint32_t slot, std::vector<ClientMetric::Label> scope) {
    const auto& l = st.limiters[shm::LimiterIndex(kind, slot)];
    scope.push_back({"limit", std::string(shm::LimitKindLabel(static_cast<uint32_t>(kind)))});
    RowExporter row{&fams, {}};
    row.Add(fams.Get(*checked_info), Value(MetricType::Counter, static_cast<double>(l.checked)), scope);
    row.Add(fams.Get(*rejected_info), Value(MetricType::Counter, static_cast<double>(l.denied)), scope);
  };
  for (const auto& k : keys) {
    if (k.slot < 0 || static_cast<uint32_t>(k.slot) >= shm::kMaxKeys) continue;
    uint32_t slot = static_cast<uint32_t>(k.slot);
    if (k.rpm) limiter(shm::LimitKind::kKeyRpm, slot, {{"key", k.id}});
    if (k.tpm) limiter(shm::LimitKind::kKeyTpm, slot, {{"key", k.id}});
    if (k.max_concurrent) limiter(shm::LimitKind::kKeyConcurrency, slot, {{"key", k.id}});
  }
  if (!limits) return;
  if (limits->limits.global_rps) limiter(shm::LimitKind::kGlobalRps, 0, {});
  for (const auto& [name, slot] : models)
    if (slot >= 0 && static_cast<uint32_t>(slot) < limits->num_models && limits->models[slot].rps)
      limiter(shm::LimitKind::kModelRps, static_cast<uint32_t>(slot), {{"model", name}});
  for (uint32_t b = 0; b < limits->num_backends; ++b) {
    const shm::BackendEntry& e = limits->backends[b];
    if (e.state != static_cast<uint8_t>(shm::BackendState::kEmpty) && e.rps)
      limiter(shm::LimitKind::kBackendRps, b, {{"id", e.id}});
  }
}

std::string LoadStatsJson(const Controller& c) {
  auto backends = ToProto(c.Backends());
  rapidjson::StringBuffer sb;
  rapidjson::Writer<rapidjson::StringBuffer> w(sb);
  w.StartObject();
  w.Key("servers");
  w.StartArray();
  uint64_t total_load = 0, total_cap = 0, healthy = 0;
  for (const auto& b : backends) {
    uint64_t load = b.in_flight();
    uint64_t cap = b.max_concurrent();
    bool ok = b.state() == admin::HEALTHY;
    healthy += ok ? 1 : 0;
    total_load += load;
    total_cap += cap;
    w.StartObject();
    w.Key("url");
    w.String(b.url().c_str());
    w.Key("current_load");
    w.Uint64(load);
    w.Key("max_capacity");
    w.Uint64(cap);
    w.Key("available_capacity");
    w.Uint64(cap > load ? cap - load : 0);
    w.Key("utilization_percent");
    w.Double(cap ? 100.0 * static_cast<double>(load) / static_cast<double>(cap) : 0.0);
    w.Key("status");
    w.String(ok ? "healthy" : std::string(StateName(b.state())).c_str());
    w.Key("detailed_metrics");
    w.StartObject();
    w.Key("id"); w.String(b.id().c_str());
    w.Key("model"); w.String(b.model().c_str());
    w.Key("engine"); w.String(b.engine().c_str());
    w.Key("in_flight"); w.Uint64(b.in_flight());
    w.Key("running"); w.Double(b.running());
    w.Key("waiting"); w.Double(b.waiting());
    w.Key("kv_cache_usage"); w.Double(b.kv_cache_usage());
    w.Key("metrics_stale"); w.Bool(b.metrics_stale());
    w.Key("ewma_latency_ms"); w.Double(b.ewma_latency_ms());
    w.Key("ewma_ttft_ms"); w.Double(b.ewma_ttft_ms());
    w.Key("ttft_p50_ms"); w.Double(b.ttft_p50_ms());
    w.Key("ttft_p99_ms"); w.Double(b.ttft_p99_ms());
    w.Key("error_rate"); w.Double(b.error_rate());
    w.Key("requests_total"); w.Uint64(b.requests_total());
    w.Key("weight"); w.Double(b.weight());
    w.Key("adaptive_weight"); w.Double(b.adaptive_weight());
    w.EndObject();
    w.EndObject();
  }
  w.EndArray();
  w.Key("summary");
  w.StartObject();
  w.Key("total_servers"); w.Uint64(backends.size());
  w.Key("healthy_servers"); w.Uint64(healthy);
  w.Key("total_current_load"); w.Uint64(total_load);
  w.Key("total_max_capacity"); w.Uint64(total_cap);
  w.Key("total_available_capacity"); w.Uint64(total_cap > total_load ? total_cap - total_load : 0);
  w.Key("overall_utilization_percent");
  w.Double(total_cap ? 100.0 * static_cast<double>(total_load) / static_cast<double>(total_cap) : 0.0);
  w.EndObject();
  w.EndObject();
  return sb.GetString();
}

}  // namespace llmgw::cp
