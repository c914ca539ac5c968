// Fleet stats: the wire form of a gateway's totals and the controller's per-gateway record.
#include "controlplane/fleet_stats.h"

#include <unistd.h>

#include <cstring>

namespace llmgw::cp {

namespace admin = ::llmgw::admin::v1;

namespace {

// Appends a row's entries, in list order, to a flat vector.
struct Flatten {
  std::vector<uint64_t>* v;
  void operator()(const shm::StatInfo&, const uint64_t& x) const { v->push_back(x); }
  template <size_t N>
  void operator()(const shm::StatInfo&, const uint64_t (&a)[N]) const {
    v->insert(v->end(), a, a + N);
  }
  void operator()(const shm::StatInfo&, const shm::HistogramTotals& h) const {
    v->insert(v->end(), h.buckets, h.buckets + shm::kHistBuckets);
    v->push_back(h.sum_us);
    v->push_back(h.count);
  }
};

// Adds a flat vector back onto a row, entry by entry (the inverse of Flatten).
struct AddFlat {
  const uint64_t* p;
  void operator()(const shm::StatInfo&, uint64_t& x) { x += *p++; }
  template <size_t N>
  void operator()(const shm::StatInfo&, uint64_t (&a)[N]) {
    for (size_t i = 0; i < N; ++i) a[i] += *p++;
  }
  void operator()(const shm::StatInfo&, shm::HistogramTotals& h) {
    for (uint32_t i = 0; i < shm::kHistBuckets; ++i) h.buckets[i] += *p++;
    h.sum_us += *p++;
    h.count += *p++;
  }
};

struct ZeroGauge {
  void operator()(const shm::StatInfo& s, uint64_t& x) const {
    if (s.type == shm::StatType::kGauge) x = 0;
  }
  template <size_t N>
  void operator()(const shm::StatInfo&, uint64_t (&)[N]) const {}
  void operator()(const shm::StatInfo&, shm::HistogramTotals&) const {}
};

template <typename Row, typename Visit>
std::vector<uint64_t> Flat(const Row& r, Visit visit) {
  std::vector<uint64_t> v;
  visit(r, Flatten{&v});
  return v;
}

bool AllZero(const std::vector<uint64_t>& v) {
  for (uint64_t x : v)
    if (x) return false;
  return true;
}

void ThreadVisit(const shm::StatsTotals& t, Flatten f) { shm::VisitThreadStats(t, f); }
void ModelVisit(const shm::ModelTotals& t, Flatten f) { shm::VisitModelStats(t, f); }
void BackendVisit(const shm::BackendTotals& t, Flatten f) { shm::VisitBackendStats(t, f); }

// Reads a row of the expected length onto r.
template <typename Row, typename Visit>
bool ReadRow(const admin::StatsRow& in, size_t want, Row* r, Visit visit, const char* what, std::string* why) {
  if (static_cast<size_t>(in.values_size()) != want) {
    *why = std::string(what) + " row has " + std::to_string(in.values_size()) + " values, expected " +
           std::to_string(want);
    return false;
  }
  visit(*r, AddFlat{in.values().data()});
  return true;
}

void FillRow(const std::vector<uint64_t>& v, admin::StatsRow* r) { r->mutable_values()->Add(v.begin(), v.end()); }

void AddBackendRow(const shm::BackendTotals& in, std::vector<shm::BackendTotals>* rows) {
  for (auto& r : *rows)
    if (r.key == in.key) {
      shm::AddTotals(in, &r);
      return;
    }
  rows->push_back(in);
}

// Counters went backwards: the gateway's shm (and its counting) started over.
bool Restarted(const shm::StatsTotals& before, const shm::StatsTotals& now) {
  return now.requests_total < before.requests_total || now.connections_total < before.connections_total ||
         AnsweredRequests(now) < AnsweredRequests(before);
}

void Fold(const shm::StatsTotals& in, shm::StatsTotals* base) {
  AddThreadTotals(in, base);
  if (base->models.size() < shm::kMaxModels) base->models.resize(shm::kMaxModels);
  for (size_t m = 0; m < in.models.size() && m < base->models.size(); ++m) shm::AddTotals(in.models[m], &base->models[m]);
  for (const auto& b : in.backends)
    if (b.key != 0) AddBackendRow(b, &base->backends);
}

}  // namespace

std::string GatewayName(const Config& cfg) {
  if (!cfg.fleet.agent_id.empty()) return cfg.fleet.agent_id;
  char host[256] = {};
  gethostname(host, sizeof(host) - 1);
  return std::string(host) + "/" + cfg.instance;
}

uint64_t StatsSchemaFingerprint() {
  static const uint64_t fp = [] {
    uint64_t h = shm::Fnv1a("llmgw-stats", 11);
    auto mix = [&](const shm::StatInfo* infos, size_t n) {
      for (size_t i = 0; i < n; ++i) {
        const shm::StatInfo& s = infos[i];
        h = shm::Fnv1a(s.field, std::strlen(s.field), h);
        h = shm::Fnv1a(s.metric, std::strlen(s.metric), h);
        uint32_t k[2] = {static_cast<uint32_t>(s.type), s.size};
        h = shm::Fnv1a(k, sizeof(k), h);
      }
      h = shm::Fnv1a("|", 1, h);
    };
    mix(shm::kThreadStatInfo, std::size(shm::kThreadStatInfo));
    mix(shm::kModelStatInfo, std::size(shm::kModelStatInfo));
    mix(shm::kBackendStatInfo, std::size(shm::kBackendStatInfo));
    uint32_t b = shm::kHistBuckets;
    return shm::Fnv1a(&b, sizeof(b), h);
  }();
  return fp;
}

void EncodeTotals(const shm::StatsTotals& t, admin::GatewayTotals* out) {
  out->set_schema(StatsSchemaFingerprint());
  out->set_live_threads(t.live_threads);
  FillRow(Flat(t, ThreadVisit), out->mutable_thread());
  for (size_t m = 0; m < t.models.size(); ++m) {
    auto v = Flat(t.models[m], ModelVisit);
    if (AllZero(v)) continue;
    auto* r = out->add_models();
    r->set_slot(static_cast<uint32_t>(m));
    FillRow(v, r);
  }
  for (const auto& b : t.backends) {
    if (b.key == 0) continue;
    auto v = Flat(b, BackendVisit);
    if (AllZero(v)) continue;
    auto* r = out->add_backends();
    r->set_key(b.key);
    FillRow(v, r);
  }
}

bool DecodeTotals(const admin::GatewayTotals& in, shm::StatsTotals* out, std::string* why) {
  *out = shm::StatsTotals();
  out->models.resize(shm::kMaxModels);
  if (in.schema() != StatsSchemaFingerprint()) {
    *why = "stats schema differs (a gateway of another llmgw version)";
    return false;
  }
  static const size_t thread_len = Flat(shm::StatsTotals(), ThreadVisit).size();
  static const size_t model_len = Flat(shm::ModelTotals(), ModelVisit).size();
  static const size_t backend_len = Flat(shm::BackendTotals(), BackendVisit).size();
  auto tv = [](shm::StatsTotals& r, AddFlat f) { shm::VisitThreadStats(r, f); };
  auto mv = [](shm::ModelTotals& r, AddFlat f) { shm::VisitModelStats(r, f); };
  auto bv = [](shm::BackendTotals& r, AddFlat f) { shm::VisitBackendStats(r, f); };
  if (!ReadRow(in.thread(), thread_len, out, tv, "thread", why)) return false;
  out->live_threads = in.live_threads();
  for (const auto& r : in.models()) {
    if (r.slot() >= shm::kMaxModels) {
      *why = "model slot " + std::to_string(r.slot()) + " out of range";
      return false;
    }
    if (!ReadRow(r, model_len, &out->models[r.slot()], mv, "model", why)) return false;
  }
  for (const auto& r : in.backends()) {
    shm::BackendTotals b;
    b.key = r.key();
    if (b.key == 0) continue;
    if (!ReadRow(r, backend_len, &b, bv, "backend", why)) return false;
    AddBackendRow(b, &out->backends);
  }
  return true;
}

void AddThreadTotals(const shm::StatsTotals& in, shm::StatsTotals* out) {
  auto v = Flat(in, ThreadVisit);
  shm::VisitThreadStats(*out, AddFlat{v.data()});
}

void ZeroGauges(shm::StatsTotals* t) {
  shm::VisitThreadStats(*t, ZeroGauge{});
  for (auto& m : t->models) shm::VisitModelStats(m, ZeroGauge{});
  for (auto& b : t->backends) shm::VisitBackendStats(b, ZeroGauge{});
  t->live_threads = 0;
}

uint64_t AnsweredRequests(const shm::StatsTotals& t) {
  uint64_t n = 0;
  for (const auto& m : t.models) n += m.RequestsTotal();
  return n;
}

void FleetStats::Report(const std::string& gateway, shm::StatsTotals t, uint64_t now_ms) {
  auto [it, fresh] = gw_.try_emplace(gateway);
  Gateway& g = it->second;
  if (!fresh && Restarted(g.last, t)) {
    ZeroGauges(&g.last);
    Fold(g.last, &g.base);
  }
  g.last = std::move(t);
  g.connected = true;
  g.reported_ms = now_ms;
}

void FleetStats::Disconnected(const std::string& gateway) {
  auto it = gw_.find(gateway);
  if (it == gw_.end()) return;
  it->second.connected = false;
  ZeroGauges(&it->second.last);
}

void FleetStats::AddTo(const std::map<uint64_t, size_t>& key_to_row, shm::StatsTotals* into) const {
  if (into->models.size() < shm::kMaxModels) into->models.resize(shm::kMaxModels);
  auto add = [&](const shm::StatsTotals& t) {
    AddThreadTotals(t, into);
    for (size_t m = 0; m < t.models.size() && m < into->models.size(); ++m) shm::AddTotals(t.models[m], &into->models[m]);
    for (const auto& b : t.backends) {
      auto k = key_to_row.find(b.key);
      if (k == key_to_row.end() || k->second >= into->backends.size()) continue;
      shm::BackendTotals& row = into->backends[k->second];
      uint64_t key = row.key;
      shm::AddTotals(b, &row);
      row.key = key ? key : b.key;
    }
  };
  for (const auto& [name, g] : gw_) {
    add(g.base);
    add(g.last);
    if (g.connected) into->live_threads += g.last.live_threads;
  }
}

std::map<uint64_t, uint64_t> FleetStats::InFlightByKey() const {
  std::map<uint64_t, uint64_t> m;
  for (const auto& [name, g] : gw_)
    if (g.connected)
      for (const auto& b : g.last.backends) m[b.key] += b.in_flight;
  return m;
}

}  // namespace llmgw::cp
