// PrefixPlacer: llmcd's gateway-wide placement of prompt prefixes on backends (see the
// header and docs/ROUTING.md "Gateway-wide prefix homes").
#include "common/routing/prefix_placer.h"

#include <algorithm>
#include <cmath>

namespace llmgw::routing {
namespace {

// Below this share of its max_concurrent a backend is never "overloaded" by in-flight (the
// data plane's kAffinitySlack): on a quiet fleet the mean is ~0.
constexpr double kSlack = 0.25;
// Prefixes placed by the count term: how much an even number of prefixes per KV cache
// weighs against an even share of traffic per weight (the Router's kCountWeight).
constexpr double kCountWeight = 2.0;
// Forget a prefix whose traffic decayed below this (about five half-lives of silence after
// a single request).
constexpr double kForgetRate = 0.03;
// Prefixes tracked at most; beyond it the quietest are forgotten first.
constexpr size_t kMaxTracked = 4 * shm::kMaxPrefixHomes;

double WeightOf(const PlacerBackend& b) { return b.weight > 1e-6 && std::isfinite(b.weight) ? b.weight : 1e-6; }

}  // namespace

PrefixPlacer::PrefixPlacer(double bounded_load, bool shares_as_weights)
    : c_(bounded_load >= 1.0 ? bounded_load : 1.25), shares_as_weights_(shares_as_weights) {}

void PrefixPlacer::Observe(uint64_t tag, double picks) {
  if (tag == 0 || !(picks > 0)) return;
  prefixes_[tag].rate += picks;
}

int PrefixPlacer::HomeOf(uint64_t tag) const {
  auto it = prefixes_.find(tag);
  return it == prefixes_.end() ? -1 : it->second.slot;
}

PrefixPlacer::Totals PrefixPlacer::TotalsOf(const std::vector<PlacerBackend>& el) const {
  Totals t;
  for (const auto& e : el) {
    auto it = load_.find(e.slot);
    if (it != load_.end()) t.rate += it->second.rate, t.count += it->second.count;
    t.weight += WeightOf(e);
  }
  t.n = static_cast<double>(el.size());
  return t;
}

double PrefixPlacer::Score(const PlacerBackend& b, const Totals& t, double extra) const {
  // Same rule as Router::PlaceHome: traffic of the prefixes homed there per unit of weight,
  // relative to the fleet's (1.0 = exactly its share), plus kCountWeight x prefixes homed
  // there relative to the mean, so each backend's prefixes bring traffic in proportion to
  // its weight and every KV cache holds a similar number of distinct prefixes.
  double rpw = (t.rate + extra + t.weight) / t.weight;
  auto it = load_.find(b.slot);
  double rate = it != load_.end() ? it->second.rate : 0;
  double count_here = it != load_.end() ? it->second.count : 0;
  double w = WeightOf(b);
  double traffic = (rate + extra + w) / w / rpw;
  double count = (count_here + 1.0) / (t.count / t.n + 1.0);
  if (shares_as_weights_) count /= std::max(1e-3, std::min(1.0, w * t.n / t.weight));
  return traffic + kCountWeight * count;
}

void PrefixPlacer::Tick(std::span<const PlacerBackend> backends, uint64_t elapsed_ms) {
  // Age the traffic and forget what went quiet.
  double decay = std::exp2(-static_cast<double>(elapsed_ms) / kHalfLifeMs);
  for (auto it = prefixes_.begin(); it != prefixes_.end();) {
    it->second.rate *= decay;
    if (it->second.rate < kForgetRate) it = prefixes_.erase(it);
    else ++it;
  }
  // Only the busiest kMaxPrefixHomes are placed (and published); the rest stay with the
  // threads' own placement. Beyond kMaxTracked the quietest are forgotten.
  std::vector<std::pair<double, uint64_t>> order;
  order.reserve(prefixes_.size());
  for (const auto& [tag, p] : prefixes_) order.emplace_back(p.rate, tag);
  std::sort(order.begin(), order.end(), [](const auto& a, const auto& b) {
    return a.first != b.first ? a.first > b.first : a.second < b.second;
  });
  for (size_t i = kMaxTracked; i < order.size(); ++i) prefixes_.erase(order[i].second);
  if (order.size() > kMaxTracked) order.resize(kMaxTracked);

  std::vector<PlacerBackend> el;
  for (const auto& b : backends)
    if (b.eligible) el.push_back(b);
  // Recompute each backend's homed traffic and count; drop homes that left the model, went
  // ineligible (placed again below) or fell out of the top kMaxPrefixHomes.
  std::unordered_map<uint16_t, Load> load;
  for (const auto& b : el) {
    auto it = load_.find(b.slot);
    load[b.slot].over_ms = it != load_.end() ? it->second.over_ms : 0;
  }
  for (size_t i = 0; i < order.size(); ++i) {
    Prefix& p = prefixes_[order[i].second];
    if (p.slot < 0) continue;
    auto it = load.find(static_cast<uint16_t>(p.slot));
    bool ok = i < shm::kMaxPrefixHomes && it != load.end();
    if (ok) {
      for (const auto& b : el)
        if (b.slot == p.slot) ok = b.key == p.backend_key;
    }
    if (!ok) {
      p.slot = -1;
      continue;
    }
    it->second.rate += p.rate;
    it->second.count += 1;
  }
  load_ = std::move(load);
  if (el.empty()) return;

  double n = static_cast<double>(el.size());
  uint64_t total_in_flight = 0;
  for (const auto& b : el) total_in_flight += b.in_flight;
  double bound = std::ceil(c_ * static_cast<double>(total_in_flight + 1) / n - 1e-9);
  auto in_flight_ok = [&](const PlacerBackend& b) {
    return b.in_flight + 1.0 <= std::max(bound, std::ceil(kSlack * b.max_concurrent));
  };
  auto place = [&](double rate, int skip) -> int {
    // Best score among backends under the in-flight bound; if none is, among all.
    int best = -1;
    double best_score = 0;
    Totals totals = TotalsOf(el);
    for (int pass = 0; pass < 2 && best < 0; ++pass) {
      for (const auto& b : el) {
        if (b.slot == skip || (pass == 0 && !in_flight_ok(b))) continue;
        double s = Score(b, totals, rate);
        if (best < 0 || s < best_score - 1e-12) best = b.slot, best_score = s;
      }
    }
    return best;
  };
  auto home = [&](Prefix& p, int slot) {
    if (p.slot >= 0) {
      Load& from = load_[static_cast<uint16_t>(p.slot)];
      from.rate = std::max(0.0, from.rate - p.rate);
      from.count = std::max(0.0, from.count - 1);
    }
    p.slot = slot;
    for (const auto& b : el)
      if (b.slot == slot) p.backend_key = b.key;
    Load& to = load_[static_cast<uint16_t>(slot)];
    to.rate += p.rate;
    to.count += 1;
  };

  // Place prefixes without a home, busiest first (the popular ones get the best spots).
  for (size_t i = 0; i < order.size() && i < shm::kMaxPrefixHomes; ++i) {
    Prefix& p = prefixes_[order[i].second];
    if (p.slot >= 0) continue;
    int s = place(p.rate, -1);
    if (s >= 0) home(p, s);
  }

  // Move one prefix off each backend that has carried more than its share for a while:
  // traffic above c x its weight's share while another backend is well under its own, or
  // in-flight above c x the mean (the weights do not match the speeds). One prefix per
  // kMoveAfterMs per backend: each move costs a cold prefill, and the next look sees the
  // effect of the last.
  double rate_sum = 0, weight_sum = 0;
  for (const auto& b : el) rate_sum += load_[b.slot].rate, weight_sum += WeightOf(b);
  double rpw = (rate_sum + weight_sum) / weight_sum;
  auto share = [&](const PlacerBackend& b, double extra) {
    return (load_[b.slot].rate + extra + WeightOf(b)) / WeightOf(b) / rpw;
  };
  double min_share = INFINITY;
  for (const auto& b : el) min_share = std::min(min_share, share(b, 0));
  for (const auto& b : el) {
    Load& l = load_[b.slot];
    double mine = share(b, 0);
    bool over_traffic = mine > c_ && c_ * min_share < mine;
    bool over_in_flight = !in_flight_ok(b) && b.in_flight > 0 && n > 1;
    if (!over_traffic && !over_in_flight) {
      l.over_ms = 0;
      continue;
    }
    l.over_ms += elapsed_ms;
    // The further over, the sooner: kMoveAfterMs at the threshold, a quarter of it at twice
    // the threshold (a popular prompt placed on a slow backend before its popularity was
    // known must not queue there for seconds), never under kMinMoveMs.
    double severity = 1.0;
    if (over_traffic) severity = std::max(severity, mine / c_);
    if (over_in_flight) {
      double limit = std::max(bound, std::ceil(kSlack * b.max_concurrent));
      severity = std::max(severity, (b.in_flight + 1.0) / std::max(1.0, limit));
    }
    double wait = std::max(static_cast<double>(kMinMoveMs), static_cast<double>(kMoveAfterMs) / (severity * severity));
    if (static_cast<double>(l.over_ms) < wait || l.count < 1) continue;
    // Busiest prefix first whose move helps: the target, with it, stays under what this
    // backend carries now (over_traffic: so a prompt that is most of the traffic by
    // itself, over any backend's share, stays put), or is under the in-flight bound.
    for (const auto& [rate, tag] : order) {
      Prefix& p = prefixes_[tag];
      if (p.slot != b.slot) continue;
      int t = place(rate, b.slot);
      if (t < 0) break;
      const PlacerBackend* tb = nullptr;
      for (const auto& e : el)
        if (e.slot == t) tb = &e;
      bool helps = over_traffic ? c_ * share(*tb, rate) < mine : in_flight_ok(*tb);
      if (!helps) continue;
      home(p, t);
      ++moves_;
      l.over_ms = 0;
      break;
    }
  }
}

void PrefixPlacer::Homes(size_t max, std::vector<PlacedHome>* out) const {
  out->clear();
  for (const auto& [tag, p] : prefixes_)
    if (p.slot >= 0) out->push_back({tag, static_cast<uint16_t>(p.slot), p.backend_key, p.rate});
  std::sort(out->begin(), out->end(), [](const PlacedHome& a, const PlacedHome& b) {
    return a.rate != b.rate ? a.rate > b.rate : a.tag < b.tag;
  });
  if (out->size() > max) out->resize(max);
}

}  // namespace llmgw::routing
