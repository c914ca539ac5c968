// The Prometheus exposition of the data-plane stats is generated from the stat lists of
// common/shm_layout.h: every listed entry (each vector element, each histogram) appears
// under its metric name with its labels and value, the names operators and dashboards
// rely on are unchanged, and entries sharing a family are exported as one family.
#include <gtest/gtest.h>

#include <cstring>
#include <memory>
#include <prometheus/text_serializer.h>

#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "common/shm.h"
#include "common/snapshot_builder.h"
#include "controlplane/metrics_exporter.h"

namespace llmgw::cp {
namespace {

using shm::StatInfo;

// Fills every listed field of a totals row with a distinct value (histograms: one sample).
struct Fill {
  uint64_t* seq;
  void operator()(const StatInfo&, uint64_t& v) const { v = ++*seq; }
  template <size_t N>
  void operator()(const StatInfo&, uint64_t (&v)[N]) const {
    for (auto& e : v) e = ++*seq;
  }
  void operator()(const StatInfo&, shm::HistogramTotals& h) const {
    ++*seq;
    h.buckets[0] = 1;
    h.count = 1;
    h.sum_us = *seq * 1000000;  // whole seconds, so the text is exact
  }
};

std::string LabelText(std::vector<std::pair<std::string, std::string>> l) {
  if (l.empty()) return "";
  std::string s = "{";
  for (size_t i = 0; i < l.size(); ++i) s += (i ? "," : "") + l[i].first + "=\"" + l[i].second + "\"";
  return s + "}";
}

// Expects the line "<metric><labels> <value>" for every entry, in the same order as Fill.
struct Expect {
  const std::string* text;
  uint64_t* seq;
  std::vector<std::pair<std::string, std::string>> scope;
  int* seen;

  std::vector<std::pair<std::string, std::string>> Own(const StatInfo& s) const {
    std::vector<std::pair<std::string, std::string>> l;
    std::string fixed = s.label;
    if (!fixed.empty()) l.emplace_back(fixed.substr(0, fixed.find('=')), fixed.substr(fixed.find('=') + 1));
    return l;
  }
  void Line(const std::string& line) const {
    EXPECT_NE(text->find("\n" + line + "\n"), std::string::npos) << "missing: " << line;
  }
  template <typename T>
  void operator()(const StatInfo& s, const T&) const {
    ++*seen;
    EXPECT_NE(text->find("# TYPE " + std::string(s.metric) + " "), std::string::npos) << s.metric;
    if constexpr (std::is_same_v<T, shm::HistogramTotals>) {
      ++*seq;
      auto l = Own(s);
      l.insert(l.end(), scope.begin(), scope.end());
      Line(std::string(s.metric) + "_count" + LabelText(l) + " 1");
      Line(std::string(s.metric) + "_sum" + LabelText(l) + " " + std::to_string(*seq));
    } else if constexpr (std::is_array_v<T>) {
      for (uint32_t i = 0; i < s.size; ++i) {
        auto l = Own(s);
        l.emplace_back(s.vec_label, std::string(s.vec_name(i)));
        l.insert(l.end(), scope.begin(), scope.end());
        Line(std::string(s.metric) + LabelText(l) + " " + std::to_string(++*seq));
      }
    } else {
      auto l = Own(s);
      l.insert(l.end(), scope.begin(), scope.end());
      Line(std::string(s.metric) + LabelText(l) + " " + std::to_string(++*seq));
    }
  }
};

std::string Render(const std::vector<prometheus::MetricFamily>& f) {
  // Built by appends: `"\n" + string` trips GCC 12's false -Wrestrict at -O3 (Release CI).
  std::string out = "\n";
  out += prometheus::TextSerializer().Serialize(f);
  return out;
}

TEST(StatsExpositionTest, EveryListedStatIsExportedWithItsLabels) {
  shm::StatsTotals st;
  st.models.resize(shm::kMaxModels);
  st.backends.resize(3);
  uint64_t seq = 0;
  shm::VisitThreadStats(st, Fill{&seq});
  shm::VisitModelStats(st.models[4], Fill{&seq});
  shm::VisitBackendStats(st.backends[2], Fill{&seq});
  st.backends[2].key = BackendKey("gpu-1");
  shm::KeyModelTotals& km = st.key_models[{BackendKey("team-a"), 4}];
  shm::VisitKeyModelStats(km, Fill{&seq});

  std::vector<prometheus::MetricFamily> fams;
  AppendStatFamilies(st, {{"llama", 4}}, {{"gpu-1", BackendKey("gpu-1")}}, &fams,
                     {{"team-a", 0, 0, 0, 0}});
  std::string text = Render(fams);

  uint64_t expect_seq = 0;
  int seen = 0;
  shm::VisitThreadStats(st, Expect{&text, &expect_seq, {}, &seen});
  shm::VisitModelStats(st.models[4], Expect{&text, &expect_seq, {{"model", "llama"}}, &seen});
  shm::VisitBackendStats(st.backends[2], Expect{&text, &expect_seq, {{"id", "gpu-1"}}, &seen});
  shm::VisitKeyModelStats(km, Expect{&text, &expect_seq, {{"key", "team-a"}, {"model", "llama"}}, &seen});
  EXPECT_EQ(static_cast<size_t>(seen), std::size(shm::kThreadStatInfo) + std::size(shm::kModelStatInfo) +
                                           std::size(shm::kBackendStatInfo) + std::size(shm::kKeyModelStatInfo));

  // One family per metric name, even where two entries share it.
  for (const auto& f : fams) {
    size_t n = 0;
    for (size_t p = text.find("# TYPE " + f.name + " "); p != std::string::npos;
         p = text.find("# TYPE " + f.name + " ", p + 1))
      ++n;
    EXPECT_EQ(n, 1u) << f.name;
  }
}

// llm_gateway_cost_usd_total{key,model} = prompt tokens x input price + completion tokens x
// output price (per million), only for priced models.
TEST(StatsExpositionTest, CostIsTokensTimesThePriceOfPricedModels) {
  shm::StatsTotals st;
  st.models.resize(shm::kMaxModels);
  auto& a = st.key_models[{BackendKey("team-a"), 1}];
  a.prompt_tokens = 400000;
  a.completion_tokens = 250000;
  auto& anon = st.key_models[{BackendKey("anonymous"), 1}];
  anon.prompt_tokens = 1000000;
  anon.completion_tokens = 0;
  auto& unpriced = st.key_models[{BackendKey("team-a"), 2}];
  unpriced.prompt_tokens = 7;
  std::vector<prometheus::MetricFamily> fams;
  AppendStatFamilies(st, {{"llama", 1}, {"free", 2}}, {}, &fams, {{"anonymous", -1, 0, 0, 0}, {"team-a", 3, 0, 0, 0}},
                     nullptr, {{"llama", ModelPrice{2.5, 10}}});
  std::string text = Render(fams);
  EXPECT_NE(text.find("\nllm_gateway_cost_usd_total{key=\"team-a\",model=\"llama\"} 3.5\n"), std::string::npos)
      << text;
  EXPECT_NE(text.find("\nllm_gateway_cost_usd_total{key=\"anonymous\",model=\"llama\"} 2.5\n"), std::string::npos)
      << text;
  EXPECT_EQ(text.find("llm_gateway_cost_usd_total{key=\"team-a\",model=\"free\"}"), std::string::npos)
      << "a model without a price has no cost series\n" << text;
  EXPECT_NE(text.find("# TYPE llm_gateway_cost_usd_total counter"), std::string::npos) << text;
}

TEST(StatsExpositionTest, KeepsTheDesignMetricNamesAndLabels) {
  shm::StatsTotals st;
  st.models.resize(shm::kMaxModels);
  st.requests_total = 11;
  st.admission_rejected = 2;
  st.active_requests = 3;
  st.latency.count = 1;
  st.models[1].requests_by_code[shm::StatusCodeIndex(200)] = 7;
  st.models[1].requests_by_code[shm::StatusCodeIndex(302)] = 1;
  st.models[1].prompt_tokens = 5;
  st.models[1].completion_tokens = 9;
  st.models[1].ttft.count = 2;
  st.unrouted_by_code[shm::StatusCodeIndex(404)] = 3;  // unknown model: no model label
  std::vector<prometheus::MetricFamily> fams;
  AppendStatFamilies(st, {{"m", 1}}, {}, &fams);
  std::string text = Render(fams);
  for (const char* line : {"llm_rate_limiter_requests_total{limit=\"admission\"} 11", "llm_rate_limiter_rejected_total{limit=\"admission\"} 2",
                           "llm_gateway_active_requests 3", "llm_gateway_request_latency_seconds_count 1",
                           "llm_gateway_ttft_seconds_count 0", "llm_gateway_inter_token_seconds_count 0",
                           "llm_gateway_requests_total{code=\"200\",model=\"m\"} 7",
                           "llm_gateway_requests_total{code=\"other\",model=\"m\"} 1",
                           "llm_gateway_requests_total{code=\"404\"} 3",
                           "llm_gateway_model_ttft_seconds_count{model=\"m\"} 2",
                           "llm_gateway_tokens_total{kind=\"prompt\",model=\"m\"} 5",
                           "llm_gateway_tokens_total{kind=\"completion\",model=\"m\"} 9",
                           "# TYPE llm_gateway_active_requests gauge",
                           "# TYPE llm_gateway_request_latency_seconds histogram"})
    EXPECT_NE(text.find(std::string("\n") + line + "\n"), std::string::npos) << line << "\n" << text;
  // A status code never seen has no series (as before the lists).
  EXPECT_EQ(text.find("code=\"503\""), std::string::npos);
}

TEST(StatsExpositionTest, BackendRowsAreFoundByKeyNotBySlotOrder) {
  shm::StatsTotals st;
  st.models.resize(shm::kMaxModels);
  st.backends.resize(4);
  st.backends[3].key = BackendKey("b");
  st.backends[3].picks = 4;
  st.backends[1].key = BackendKey("old");  // a slot's previous backend: not b's
  st.backends[1].picks = 100;
  std::vector<prometheus::MetricFamily> fams;
  AppendStatFamilies(st, {}, {{"b", BackendKey("b")}, {"never-counted", BackendKey("c")}}, &fams);
  std::string text = Render(fams);
  EXPECT_NE(text.find("\nllm_worker_picks_total{id=\"b\"} 4\n"), std::string::npos) << text;
  EXPECT_EQ(text.find(" 100\n"), std::string::npos) << text;
  EXPECT_EQ(text.find("never-counted"), std::string::npos) << text;
}

// docs/CONTROLPLANE.md's metric table names every family the lists export (tests run from
// the source root).
TEST(StatsExpositionTest, EveryListedMetricIsDocumented) {
  std::ifstream in("docs/CONTROLPLANE.md");
  ASSERT_TRUE(in) << "run from the source root";
  std::stringstream ss;
  ss << in.rdbuf();
  std::string doc = ss.str();
  auto check = [&](const auto& list) {
    for (const StatInfo& s : list) {
      std::string quoted = "`";  // appends, not "`" + string: GCC 12's false -Wrestrict at -O3
      quoted += s.metric;
      quoted += "`";
      EXPECT_NE(doc.find(quoted), std::string::npos) << s.metric;
    }
  };
  check(shm::kThreadStatInfo);
  check(shm::kModelStatInfo);
  check(shm::kBackendStatInfo);
  check(shm::kKeyModelStatInfo);
}

// The contract's limiter series: llm_rate_limiter_{requests,rejected}_total{key,limit} for
// each limit a key has (and none for limits it has not), next to the admission series,
// plus the global, per-model and per-backend rates with their own labels.
TEST(StatsExpositionTest, LimiterSeriesCarryKeyAndLimit) {
  shm::StatsTotals st;
  st.models.resize(shm::kMaxModels);
  st.limiters.resize(shm::kNumLimiters);
  st.requests_total = 100;
  auto set = [&](shm::LimitKind k, uint32_t slot, uint64_t checked, uint64_t denied) {
    st.limiters[shm::LimiterIndex(k, slot)].checked = checked;
    st.limiters[shm::LimiterIndex(k, slot)].denied = denied;
  };
  set(shm::LimitKind::kKeyRpm, 3, 40, 5);
  set(shm::LimitKind::kKeyTpm, 3, 40, 1);
  set(shm::LimitKind::kKeyConcurrency, 3, 40, 2);
  set(shm::LimitKind::kGlobalRps, 0, 90, 9);
  set(shm::LimitKind::kModelRps, 1, 30, 3);
  set(shm::LimitKind::kBackendRps, 0, 20, 4);
  auto snap = std::make_unique<shm::Snapshot>();
  snap->limits.global_rps = 10;
  snap->num_models = 2;
  snap->models[1].rps = 5;
  snap->num_backends = 1;
  snap->backends[0].state = static_cast<uint8_t>(shm::BackendState::kHealthy);
  snap->backends[0].rps = 2;
  std::strcpy(snap->backends[0].id, "gpu-1");
  std::vector<prometheus::MetricFamily> fams;
  AppendStatFamilies(st, {{"llama", 1}}, {}, &fams, {{"anonymous", -1, 0, 0, 0}, {"team-a", 3, 600, 0, 16}},
                     snap.get());
  std::string text = Render(fams);
  for (const char* line : {"llm_rate_limiter_requests_total{limit=\"admission\"} 100",
                           "llm_rate_limiter_requests_total{key=\"team-a\",limit=\"rpm\"} 40",
                           "llm_rate_limiter_rejected_total{key=\"team-a\",limit=\"rpm\"} 5",
                           "llm_rate_limiter_rejected_total{key=\"team-a\",limit=\"max_concurrent\"} 2",
                           "llm_rate_limiter_rejected_total{limit=\"global_rps\"} 9",
                           "llm_rate_limiter_requests_total{model=\"llama\",limit=\"model_rps\"} 30",
                           "llm_rate_limiter_rejected_total{id=\"gpu-1\",limit=\"backend_rps\"} 4"})
    EXPECT_NE(text.find(std::string("\n") + line + "\n"), std::string::npos) << line << "\n" << text;
  EXPECT_EQ(text.find("limit=\"tpm\""), std::string::npos) << "team-a has no tpm limit";
}

}  // namespace
}  // namespace llmgw::cp
