// The per-request routing policies. OnSnapshot precomputes everything a policy needs
// (per-model backend lists, smooth-WRR weights, hash rings, scratch space); Pick then only
// reads the snapshot and the thread's LocalLoad, so it never allocates or throws.
#include "common/routing/router.h"

#include <algorithm>
#include <cmath>

namespace llmgw::routing {
namespace {

using shm::BackendEntry;
using shm::BackendState;

// splitmix64's finaliser: spreads FNV's weak low bits so ring points and key hashes are
// uniform on the 64-bit circle.
inline uint64_t Mix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

const LocalLoad kNoLoad{};
inline const LocalLoad& LoadAt(std::span<const LocalLoad> local, uint16_t s) {
  return s < local.size() ? local[s] : kNoLoad;
}

inline bool Excluded(std::span<const uint16_t> exclude, uint16_t s) {
  for (uint16_t e : exclude)
    if (e == s) return true;
  return false;
}

// Requests this thread sent (positive) or finished (negative) since the snapshot's scrape:
// the scraped running/waiting do not know about them yet.
inline double LocalDelta(const LocalLoad& l) {
  return static_cast<double>(l.in_flight) - static_cast<double>(l.in_flight_at_snapshot);
}

// A backend's weight on the hash ring (its share of virtual nodes): the
// configured weight, 1 when unset or nonsense, capped so one entry cannot bloat the ring.
inline double RingWeight(const BackendEntry& b) {
  float w = b.weight;
  return w > 0 && std::isfinite(w) ? std::min<double>(w, 64.0) : 1.0;
}

enum LeastBy { kByConnections = 0, kByQueue = 1, kByCapacity = 2 };

constexpr uint32_t kDefaultVirtualNodes = 160;
constexpr double kDefaultBoundedLoad = 1.25;
// Bounded load on an idle fleet would move a hot key after its first request (the mean is
// ~0). A backend using at most this fraction of its max_concurrent is never "saturated"
// for the bound; once the fleet carries real load, c x mean is the binding limit.
constexpr double kAffinitySlack = 0.25;
// prefix_affinity and adaptive: net strikes (a pick that finds the prefix's home above its
// share is +1, one that finds it fine is -1) before the prefix moves for good. High enough
// that a short burst does not move a prefix (each move costs a cold prefill), low enough
// that a backend carrying too much sheds prefixes within a few seconds of traffic.
constexpr uint16_t kRehomeStrikes = 32;
// Adaptive: share of the traffic spread evenly whatever the learnt weights say, so the
// data plane itself keeps exploring even when llmcd publishes a near-0 weight.
constexpr double kAdaptiveFloor = 0.05;
// Prefix traffic counts halve every this many prefix picks (all models of the thread), so
// a prefix's count is its recent share of the traffic. Long enough that a rare prefix
// (1% of traffic) has a count of ~10, short enough to follow popularity that shifts.
constexpr uint32_t kRateHalfLifePicks = 1024;
// Prefix placement: how much an even number of prefixes per KV cache weighs against an
// even share of traffic per weight (see PlaceHome).
constexpr double kCountWeight = 2.0;
// Adaptive: this thread's requests still waiting for their first token at a prefix's home
// before a request for that prefix goes to an idle backend instead (see PickAdaptive).
constexpr uint32_t kAwaitingSpill = 2;

}  // namespace

Router::Router()
    : prefix_home_(kPrefixHomes), homed_(shm::kMaxBackends, 0), homed_rate_(shm::kMaxBackends, 0.0) {}

void Router::AgeHome(PrefixHome& e) const {
  uint32_t age = rate_epoch_ - e.epoch;
  e.rate = age >= 64 ? 0.0f : std::ldexp(e.rate, -static_cast<int>(age));
  e.epoch = rate_epoch_;
}

void Router::SetHome(PrefixHome& e, uint64_t tag, int slot) {
  AgeHome(e);
  if (e.key_hash != 0) {
    if (homed_[e.slot] > 0) --homed_[e.slot];
    homed_rate_[e.slot] = std::max(0.0, homed_rate_[e.slot] - e.rate);
  }
  if (e.key_hash != tag) {  // a different prefix took the entry over
    e.rate = 0;
    e.pinned = 0;
  }
  ++homed_[slot];
  homed_rate_[slot] += e.rate;
  e.key_hash = tag;
  e.slot = static_cast<uint16_t>(slot);
  e.backend_key = snap_->backends[slot].key;
  e.strikes = 0;
}

void Router::CountHomePick(PrefixHome& e) {
  AgeHome(e);
  e.rate += 1.0f;
  homed_rate_[e.slot] += 1.0;
  if (++rate_picks_ >= kRateHalfLifePicks) {
    // Halve every prefix's traffic count: backends' sums now, entries when next touched.
    rate_picks_ = 0;
    ++rate_epoch_;
    for (double& r : homed_rate_) r *= 0.5;
  }
}

void Router::SetPrefixReport(shm::PrefixReport* table, size_t entries) {
  report_ = entries && (entries & (entries - 1)) == 0 ? table : nullptr;
  report_mask_ = report_ ? entries - 1 : 0;
}

void Router::ReportPick(uint64_t tag, uint16_t model_slot) {
  if (!report_) return;
  shm::PrefixReport& r = report_[tag & report_mask_];
  if (r.tag.load(std::memory_order_relaxed) != tag) {
    // Count and model first, tag last (release): see shm::PrefixReport.
    shm::Set(r.picks, 0);
    shm::Set(r.model_slot, model_slot);
    r.tag.store(tag, std::memory_order_release);
  }
  shm::Bump(r.picks);
}

uint64_t Router::PrefixTag(uint64_t key_hash, uint16_t model_slot) {
  return Mix(key_hash ^ (static_cast<uint64_t>(model_slot) << 40)) | 1u;
}

int Router::PrefixHomeOf(uint64_t key_hash, uint16_t model_slot, bool* pinned) const {
  uint64_t tag = PrefixTag(key_hash, model_slot);
  const PrefixHome& e = prefix_home_[tag & (kPrefixHomes - 1)];
  bool found = e.key_hash == tag && HomeExists(e, model_slot);
  if (pinned) *pinned = found && e.pinned == pin_epoch_;
  return found ? e.slot : -1;
}

double Router::AdaptiveShare(double learnt_share, size_t eligible) {
  return (1.0 - kAdaptiveFloor) * learnt_share + kAdaptiveFloor / static_cast<double>(std::max<size_t>(eligible, 1));
}

uint64_t Router::HashKey(std::string_view key) { return Mix(shm::Fnv1a(key.data(), key.size())); }

Policy Router::PolicyOf(uint16_t model_slot) const {
  if (!snap_ || model_slot >= shm::kMaxModels) return Policy::kRoundRobin;
  uint8_t p = snap_->models[model_slot].policy;
  return p < static_cast<uint8_t>(Policy::kCount) ? static_cast<Policy>(p) : Policy::kRoundRobin;
}

void Router::OnSnapshot(const shm::Snapshot& snap) {
  snap_ = &snap;
  std::vector<std::vector<uint16_t>> lists(shm::kMaxModels);
  uint32_t nb = std::min(snap.num_backends, shm::kMaxBackends);
  for (uint32_t i = 0; i < nb; ++i) {
    const auto& b = snap.backends[i];
    if (b.state == static_cast<uint8_t>(BackendState::kEmpty)) continue;
    if (b.model_slot < shm::kMaxModels) lists[b.model_slot].push_back(static_cast<uint16_t>(i));
  }
  uint32_t vnodes = snap.limits.virtual_nodes ? snap.limits.virtual_nodes : kDefaultVirtualNodes;

  rr_cursor_.resize(shm::kMaxModels, 0);
  wrr_weight_.resize(shm::kMaxModels);
  wrr_current_.resize(shm::kMaxModels);
  ring_.resize(shm::kMaxModels);
  ring_sig_.resize(shm::kMaxModels, 0);
  model_backends_.resize(shm::kMaxModels);
  size_t widest = 0;
  for (uint32_t m = 0; m < shm::kMaxModels; ++m) {
    auto& list = lists[m];
    widest = std::max(widest, list.size());
    bool same_members = list == model_backends_[m];
    // Keep the rotation and the smooth-WRR state across ticks when membership is unchanged,
    // so proportions stay exact across snapshot boundaries.
    if (!same_members) {
      rr_cursor_[m] = 0;
      wrr_current_[m].assign(list.size(), 0);
    }
    wrr_weight_[m].resize(list.size());
    for (size_t k = 0; k < list.size(); ++k) {
      float w = snap.backends[list[k]].weight;
      wrr_weight_[m][k] = w > 0 && std::isfinite(w) ? std::llround(static_cast<double>(w) * 1000.0) : 0;
    }
    // Ring points depend on the backends' stable keys and weights, not their slots or
    // states; rebuild only when those change (snapshots arrive every tick, and a ring of a
    // thousand backends is 160k points to hash and sort).
    uint64_t sig = Mix(vnodes + (list.empty() ? 0 : 1));
    for (uint16_t s : list) {
      const auto& b = snap.backends[s];
      sig = Mix(sig ^ b.key ^ (static_cast<uint64_t>(s) << 48));
      sig = Mix(sig ^ static_cast<uint64_t>(std::llround(RingWeight(b) * 1000.0)));
    }
    if (sig != ring_sig_[m]) {
      ring_sig_[m] = sig;
      auto& ring = ring_[m];
      ring.clear();
      if (!list.empty()) {
        // Virtual nodes in proportion to the configured weight, so a backend weighted for a
        // bigger GPU also owns a bigger share of the keys (weight 1 = `virtual_nodes`).
        for (uint16_t s : list) {
          uint64_t key = snap.backends[s].key;
          double scale = RingWeight(snap.backends[s]);
          uint32_t count = std::max<uint32_t>(1, static_cast<uint32_t>(std::lround(vnodes * scale)));
          for (uint32_t v = 0; v < count; ++v) ring.emplace_back(Mix(key ^ Mix(v + 1)), s);
        }
        std::sort(ring.begin(), ring.end());
      }
    }
    model_backends_[m] = std::move(list);
  }
  cand_.resize(std::max<size_t>(widest, 1));
  cand_of_slot_.assign(shm::kMaxBackends, -1);

  // Gateway-wide prefix homes from llmcd: authoritative for the prefixes they name (this
  // thread still spills a request when the home is full, but does not move the prefix).
  // Entries that do not match the snapshot (a reused slot, another model) are ignored.
  if (++pin_epoch_ == 0) ++pin_epoch_;
  uint32_t np = std::min(snap.num_prefix_homes, shm::kMaxPrefixHomes);
  for (uint32_t i = 0; i < np; ++i) {
    const shm::PrefixHomeEntry& h = snap.prefix_homes[i];
    if (h.tag == 0 || h.backend_slot >= nb || h.model_slot >= shm::kMaxModels) continue;
    const auto& b = snap.backends[h.backend_slot];
    if (b.key != h.backend_key || b.model_slot != h.model_slot ||
        b.state == static_cast<uint8_t>(BackendState::kEmpty))
      continue;
    PrefixHome& e = prefix_home_[h.tag & (kPrefixHomes - 1)];
    if (e.key_hash != h.tag || e.slot != h.backend_slot || e.backend_key != h.backend_key) SetHome(e, h.tag, h.backend_slot);
    e.pinned = pin_epoch_;
  }
}

uint32_t Router::EstimatedInFlight(const shm::BackendEntry& b, const LocalLoad& l) {
  int64_t others = static_cast<int64_t>(b.fleet_in_flight) - static_cast<int64_t>(l.in_flight_at_snapshot);
  if (others < 0) others = 0;
  return static_cast<uint32_t>(others) + l.in_flight;
}

bool Router::Eligible(const shm::BackendEntry& b, const LocalLoad& l) const {
  auto st = static_cast<BackendState>(b.state);
  if (st == BackendState::kHalfOpen) {
    // Half-open: only this thread's own trial budget counts; the fleet estimate may include
    // other threads' trials, which have their own budgets.
    return l.in_flight < b.half_open_budget && EstimatedInFlight(b, l) < b.max_concurrent;
  }
  if (st != BackendState::kHealthy) return false;
  return EstimatedInFlight(b, l) < b.max_concurrent;
}

bool Router::AllAtCapacity(uint16_t model_slot, std::span<const LocalLoad> local) const {
  if (!snap_ || model_slot >= model_backends_.size()) return false;
  bool any_healthy = false;
  for (uint16_t s : model_backends_[model_slot]) {
    const auto& b = snap_->backends[s];
    auto st = static_cast<BackendState>(b.state);
    if (st != BackendState::kHealthy && st != BackendState::kHalfOpen) continue;
    const auto& l = LoadAt(local, s);
    if (st == BackendState::kHalfOpen && l.in_flight >= b.half_open_budget) continue;
    any_healthy = true;
    if (EstimatedInFlight(b, l) < b.max_concurrent) return false;
  }
  return any_healthy;
}

size_t Router::CollectEligible(uint16_t model_slot, std::span<const LocalLoad> local,
                               std::span<const uint16_t> exclude) {
  const auto& list = model_backends_[model_slot];
  size_t n = 0;
  for (size_t k = 0; k < list.size(); ++k) {
    uint16_t s = list[k];
    if (Excluded(exclude, s)) continue;
    const auto& b = snap_->backends[s];
    const auto& l = LoadAt(local, s);
    if (!Eligible(b, l)) continue;
    cand_[n] = Candidate{s, static_cast<uint16_t>(k), EstimatedInFlight(b, l)};
    ++n;
  }
  return n;
}

int Router::Pick(uint16_t model_slot, const RequestInfo& req, std::span<const LocalLoad> local,
                 std::span<const uint16_t> exclude) {
  if (!snap_ || model_slot >= model_backends_.size()) return kNoBackend;
  size_t n = CollectEligible(model_slot, local, exclude);
  if (n == 0) return kNoBackend;
  if (n == 1) {
    // Every policy agrees when there is one choice, but WRR still has to account for it.
    if (PolicyOf(model_slot) != Policy::kWeightedRoundRobin) return cand_[0].slot;
  }
  switch (PolicyOf(model_slot)) {
    case Policy::kRoundRobin: return PickRoundRobin(model_slot, n);
    case Policy::kWeightedRoundRobin: return PickWeighted(model_slot, n);
    case Policy::kLeastConnections: return PickLeastBy(model_slot, n, req.random, kByConnections, local);
    case Policy::kLeastQueue: return PickLeastBy(model_slot, n, req.random, kByQueue, local);
    case Policy::kCapacity: return PickLeastBy(model_slot, n, req.random, kByCapacity, local);
    case Policy::kP2cKv: return PickP2c(n, req.random, local);
    case Policy::kConsistentHash: {
      // No key: spread by the request's random bits (still bounded-load).
      uint64_t h = req.hash_key.empty() ? Mix(req.random) : HashKey(req.hash_key);
      int s = PickRing(model_slot, n, h);
      return s != kNoBackend ? s : PickLeastBy(model_slot, n, req.random, kByConnections, local);
    }
    case Policy::kPrefixAffinity: {
      std::string_view p = req.prefix;
      uint32_t cap = snap_->limits.prefix_bytes;
      if (cap && p.size() > cap) p = p.substr(0, cap);
      int s = p.empty() ? kNoBackend : PickPrefix(model_slot, n, HashKey(p));
      // No prefix, or every ring candidate is above the bound: least load.
      return s != kNoBackend ? s : PickLeastBy(model_slot, n, req.random, kByQueue, local);
    }
    case Policy::kAdaptive: {
      std::string_view p = req.prefix;
      uint32_t cap = snap_->limits.prefix_bytes;
      if (cap && p.size() > cap) p = p.substr(0, cap);
      return PickAdaptive(model_slot, n, req.random, p.empty() ? 0 : HashKey(p), local);
    }
    case Policy::kCount: break;
  }
  return PickRoundRobin(model_slot, n);
}

int Router::PickRoundRobin(uint16_t model_slot, size_t n) {
  // The cursor walks the model's full list so a backend that is skipped once does not shift
  // everyone else's turn; the first eligible one at or after the cursor wins.
  size_t len = model_backends_[model_slot].size();
  uint32_t cur = static_cast<uint32_t>(rr_cursor_[model_slot] % len);
  size_t chosen = 0;
  for (size_t i = 0; i < n; ++i) {
    if (cand_[i].index >= cur) {
      chosen = i;
      break;
    }
  }
  rr_cursor_[model_slot] = cand_[chosen].index + 1u;
  return cand_[chosen].slot;
}

int Router::PickWeighted(uint16_t model_slot, size_t n) {
  // nginx's smooth weighted round robin: every candidate gains its weight, the richest is
  // chosen and pays the total back. Over sum(weights) picks each backend gets exactly its
  // weight, interleaved rather than in bursts.
  auto& w = wrr_weight_[model_slot];
  auto& cur = wrr_current_[model_slot];
  int64_t total = 0;
  for (size_t i = 0; i < n; ++i) total += w[cand_[i].index];
  if (total == 0) return PickRoundRobin(model_slot, n);  // every weight 0: plain rotation
  size_t best = n;
  for (size_t i = 0; i < n; ++i) {
    uint16_t k = cand_[i].index;
    if (w[k] == 0) continue;
    cur[k] += w[k];
    if (best == n || cur[k] > cur[cand_[best].index]) best = i;
  }
  cur[cand_[best].index] -= total;
  return cand_[best].slot;
}

int Router::PickLeastBy(uint16_t /*model_slot*/, size_t n, uint64_t random, int what,
                        std::span<const LocalLoad> local) {
  // Start the scan at a random offset so ties spread over the tied backends.
  size_t start = static_cast<size_t>(random % n);
  int best = kNoBackend;
  double best_score = 0;
  for (size_t k = 0; k < n; ++k) {
    const Candidate& c = cand_[(start + k) % n];
    const auto& b = snap_->backends[c.slot];
    double score = c.load;
    if (what == kByQueue) {
      if (b.metrics_fresh) score += b.waiting;
    } else if (what == kByCapacity) {
      double mc = b.max_concurrent ? b.max_concurrent : 1;
      if (b.metrics_fresh) {
        double running = std::max(0.0, b.running + LocalDelta(LoadAt(local, c.slot)));
        score = (running * 3 + b.waiting) / mc;
      } else {
        score = c.load * 3.0 / mc;
      }
    }
    if (best == kNoBackend || score < best_score) {
      best = c.slot;
      best_score = score;
    }
  }
  return best;
}

int Router::PickP2c(size_t n, uint64_t random, std::span<const LocalLoad> local) {
  size_t i = static_cast<size_t>(random % n);
  size_t j = static_cast<size_t>((random >> 32) % (n - 1));
  if (j >= i) ++j;
  const Candidate& a = cand_[i];
  const Candidate& c = cand_[j];
  const auto& ba = snap_->backends[a.slot];
  const auto& bc = snap_->backends[c.slot];
  if (!ba.metrics_fresh || !bc.metrics_fresh) {
    // Scraped numbers are stale for one of them: compare what we know for sure.
    return a.load <= c.load ? a.slot : c.slot;
  }
  const auto& lim = snap_->limits;
  auto score = [&](const shm::BackendEntry& b, uint16_t slot) {
    // Our own requests since the scrape are not in `waiting` yet: count them as waiting.
    double waiting = std::max(0.0, b.waiting + LocalDelta(LoadAt(local, slot)));
    return lim.w_waiting * waiting + lim.w_running * b.running + lim.w_kv * b.kv_usage +
           lim.w_latency * b.ewma_latency_ms + lim.w_error * b.error_rate;
  };
  return score(ba, a.slot) <= score(bc, c.slot) ? a.slot : c.slot;
}

bool Router::HomeExists(const PrefixHome& e, uint16_t model_slot) const {
  if (e.slot >= shm::kMaxBackends) return false;
  const auto& b = snap_->backends[e.slot];
  return b.key == e.backend_key && b.state != static_cast<uint8_t>(BackendState::kEmpty) &&
         b.model_slot == model_slot;
}

double Router::BoundedLoadFactor() const {
  double c = std::round(static_cast<double>(snap_->limits.bounded_load) * 1e4) / 1e4;
  return c >= 1.0 ? c : kDefaultBoundedLoad;
}

uint64_t Router::RingBound(size_t n) const {
  // Bounded load (Mirrokni et al.): no backend may exceed ceil(c * (total + 1) / n) after
  // taking this request, counting only backends that may take requests now (or the slack
  // floor, see kAffinitySlack).
  // The float from the snapshot is rounded back to the decimal the operator wrote (1.1f is
  // 1.10000002), so a load exactly at c x mean does not round up to one more request.
  double c = BoundedLoadFactor();
  // The bound is on in-flight counts and is the same for every backend, whatever its
  // weight: a faster backend finishes sooner, so equal in-flight already gives it more
  // throughput (weighting the bound too was measured worse for TTFT p99 in routing_sim).
  uint64_t total = 0;
  for (size_t i = 0; i < n; ++i) total += cand_[i].load;
  return static_cast<uint64_t>(std::ceil(c * static_cast<double>(total + 1) / static_cast<double>(n) - 1e-9));
}

namespace {
inline uint64_t SlotLimit(uint64_t bound, const BackendEntry& b) {
  return std::max<uint64_t>(bound, static_cast<uint64_t>(std::ceil(kAffinitySlack * b.max_concurrent)));
}
}  // namespace

int Router::PickRing(uint16_t model_slot, size_t n, uint64_t key_hash, int skip_slot) {
  const auto& ring = ring_[model_slot];
  if (ring.empty()) return kNoBackend;
  // Walking the ring past a full backend gives each key a consistent second choice, which
  // keeps its overflow warm too.
  uint64_t bound = RingBound(n);
  for (size_t i = 0; i < n; ++i) cand_of_slot_[cand_[i].slot] = static_cast<int32_t>(i);
  if (skip_slot >= 0) cand_of_slot_[skip_slot] = -1;
  auto it = std::lower_bound(ring.begin(), ring.end(), key_hash,
                             [](const std::pair<uint64_t, uint16_t>& e, uint64_t h) { return e.first < h; });
  size_t pos = static_cast<size_t>(it - ring.begin());
  int chosen = kNoBackend;
  size_t checked = 0;
  for (size_t step = 0; step < ring.size() && checked < n; ++step) {
    uint16_t s = ring[(pos + step) % ring.size()].second;
    int32_t ci = cand_of_slot_[s];
    if (ci < 0) continue;  // ineligible, excluded, skipped, or already found full
    ++checked;
    if (cand_[ci].load + 1u <= SlotLimit(bound, snap_->backends[s])) {
      chosen = s;
      break;
    }
    cand_of_slot_[s] = -1;
  }
  for (size_t i = 0; i < n; ++i) cand_of_slot_[cand_[i].slot] = -1;
  return chosen;
}

double Router::PlaceWeight(const shm::BackendEntry& b, size_t n) const {
  if (!place_by_adaptive_) return RingWeight(b);
  // Adaptive: the learnt share, with the same exploration floor as the plain pick; no
  // weights yet (all 0) means even.
  float w = b.adaptive_weight;
  double share = w > 0 && std::isfinite(w) ? std::min<double>(w, 1.0) : 0.0;
  return AdaptiveShare(share, n);
}

double Router::RatePerWeight(size_t n, double extra) const {
  double rate_sum = 0, weight_sum = 0;
  for (size_t i = 0; i < n; ++i) {
    rate_sum += homed_rate_[cand_[i].slot];
    weight_sum += PlaceWeight(snap_->backends[cand_[i].slot], n);
  }
  // Smoothed by one pick per unit of weight, so an idle fleet reads as balanced (1.0
  // everywhere) rather than dividing by nothing.
  return (rate_sum + extra + weight_sum) / weight_sum;
}

double Router::TrafficShare(uint16_t slot, size_t n, double extra, double rate_per_weight) const {
  double w = PlaceWeight(snap_->backends[slot], n);
  return (homed_rate_[slot] + extra + w) / w / rate_per_weight;
}

bool Router::HomeOverShare(const PrefixHome& e, size_t n) const {
  // The second reason to strike: home's prefixes bring more than c x the traffic its
  // weight (or learnt share) asks for, and this prefix would fit better elsewhere. This is
  // what corrects placements made before the traffic was known (first sight counts 0) and
  // follows a learner whose shares moved, even when nothing is queueing. (Comparing with
  // the other backends rather than with 1.0 keeps a prefix that is most of the traffic by
  // itself from wandering: it is over any backend's share.)
  double rpw = RatePerWeight(n, 0.0);
  double home = TrafficShare(e.slot, n, 0.0, rpw);
  double c = BoundedLoadFactor();
  if (home <= c) return false;
  for (size_t i = 0; i < n; ++i) {
    uint16_t s = cand_[i].slot;
    if (s != e.slot && c * TrafficShare(s, n, e.rate, rpw) < home) return true;
  }
  return false;
}

int Router::PlaceHome(size_t n, uint64_t key_hash, uint64_t bound, bool with_slack, int skip_slot, double rate) {
  // Where a prefix should live: among backends under the bound, the lowest
  //   traffic term: (traffic of the prefixes homed there + this one's) / weight, relative
  //                 to the fleet's (1.0 = exactly its share), and
  //   count term:   kCountWeight x (prefixes homed there + 1) / mean, relative to the mean,
  // so each backend's prefixes bring traffic in proportion to its weight (its speed) and
  // every KV cache holds a similar number of distinct prefixes. Ties (an idle fleet) go to
  // the least in-flight, then to an offset derived from the prefix's hash, so threads that
  // see the same state place a prefix alike.
  //
  // Measured in routing_sim: placing by in-flight alone starved the 0.25-speed backend of
  // prefixes (a slow backend always has more in flight per unit of traffic) and piled 11-15
  // prefixes onto one 6-prefix cache; the hit rate was 84-98% of the oracle. Traffic per
  // weight plus count: 90-99%. The count term's weight matters little between 1.5 and 3.
  size_t start = static_cast<size_t>(Mix(key_hash ^ 0x5bd1e995u) % n);
  double homed_sum = 0, weight_sum = 0;
  for (size_t i = 0; i < n; ++i) {
    homed_sum += homed_[cand_[i].slot];
    weight_sum += PlaceWeight(snap_->backends[cand_[i].slot], n);
  }
  double homed_mean = homed_sum / static_cast<double>(n) + 1.0;
  double rate_per_weight = RatePerWeight(n, 0.0);  // `rate` is in the sums already, or 0
  int best = kNoBackend;
  double best_score = 0;
  uint32_t best_load = 0;
  for (size_t k = 0; k < n; ++k) {
    const Candidate& c = cand_[(start + k) % n];
    if (c.slot == skip_slot) continue;
    uint64_t limit = with_slack ? SlotLimit(bound, snap_->backends[c.slot]) : bound;
    if (c.load + 1u > limit) continue;
    double count = (homed_[c.slot] + 1.0) / homed_mean;
    if (place_by_adaptive_) {
      // Adaptive: a backend the learner gives less than an even share is expected to hold
      // proportionally fewer prefixes (a near-zero share should not keep a quarter of them).
      double even = PlaceWeight(snap_->backends[c.slot], n) * static_cast<double>(n) / weight_sum;
      count /= std::max(1e-3, std::min(1.0, even));
    }
    double score = TrafficShare(c.slot, n, rate, rate_per_weight) + kCountWeight * count;
    bool better = best == kNoBackend || score < best_score - 1e-9 ||
                  (score <= best_score + 1e-9 && c.load < best_load);
    if (better) {
      best = c.slot;
      best_score = score;
      best_load = c.load;
    }
  }
  return best;
}

int Router::PickPrefix(uint16_t model_slot, size_t n, uint64_t key_hash) {
  // Each prefix has a home remembered by this thread, placed by PlaceHome when the prefix
  // is first seen rather than where its hash falls on the ring (with a few dozen hot
  // prefixes the ring's luck decides which backends are hot). While home is under the
  // hard bound the prefix goes there; above it, this request spills to the best other
  // placement (a backend with traffic headroom and few prefixes, so the cold prefill does
  // not land on a slow or crowded cache; the prefix's ring successor if none is under the
  // bound), and the prefix comes back home when home drains.
  //
  // Balance over time comes from moving whole prefixes, not single requests: every pick
  // that finds home above c x mean in-flight (the bound without the idle slack) is a
  // strike, and so is a pick that finds home's prefixes bringing more than c x the traffic
  // its weight asks for (HomeOverShare); every other pick takes one back. At kRehomeStrikes the prefix moves for good
  // to the best placement. A backend that is only briefly busy keeps its prefixes (the
  // counter leaks back), one that carries more than its share sheds its busiest prefixes
  // first (they are picked, and so strike, most often), and each move costs one cold
  // prefill instead of a cache split forever.
  uint64_t tag = PrefixTag(key_hash, model_slot);
  PrefixHome& e = prefix_home_[tag & (kPrefixHomes - 1)];
  uint64_t bound = RingBound(n);
  int chosen = kNoBackend;
  if (e.key_hash == tag && HomeExists(e, model_slot)) {
    // A home llmcd placed for the whole gateway is served and spilled from like any other,
    // but only llmcd moves it: no strikes here.
    bool pinned = e.pinned == pin_epoch_;
    AgeHome(e);
    const auto& hb = snap_->backends[e.slot];
    bool served_home = false;
    for (size_t i = 0; i < n; ++i) {
      if (cand_[i].slot != e.slot) continue;
      uint32_t load = cand_[i].load;
      if (load + 1u > SlotLimit(bound, hb)) break;  // above the hard bound: spill
      served_home = true;
      chosen = e.slot;
      if (pinned) break;
      bool over = load + 1u > bound;
      if (!over) over = HomeOverShare(e, n);
      if (!over) {
        if (e.strikes > 0) --e.strikes;
      } else if (++e.strikes >= kRehomeStrikes) {
        int better = PlaceHome(n, key_hash, bound, false, e.slot, e.rate);
        if (better != kNoBackend) {
          SetHome(e, tag, better);
          chosen = better;
        } else {
          e.strikes = 0;
        }
      }
      break;
    }
    if (!served_home) {
      // Home is above the hard bound, or ineligible right now (down, draining, excluded).
      chosen = PlaceHome(n, key_hash, bound, true, e.slot, e.rate);
      if (chosen == kNoBackend) chosen = PickRing(model_slot, n, key_hash, e.slot);
      if (!pinned && chosen != kNoBackend && ++e.strikes >= kRehomeStrikes) SetHome(e, tag, chosen);
    }
  } else {
    // First sight (or the home left the model).
    chosen = PlaceHome(n, key_hash, bound, true, -1, 0.0);
    if (chosen != kNoBackend) SetHome(e, tag, chosen);
  }
  if (chosen != kNoBackend) {
    CountHomePick(e);
    ReportPick(tag, model_slot);
  }
  return chosen;
}

int Router::PickAdaptive(uint16_t model_slot, size_t n, uint64_t random, uint64_t prefix_hash,
                         std::span<const LocalLoad> local) {
  // Weighted least connections on the learnt weights: the backend with the least in-flight
  // per unit of weight wins, so in-flight shares follow the weights while a backend that
  // fills up stops attracting traffic before llmcd's next tick. A floor keeps every
  // eligible backend in play (exploration); all-zero weights mean "not learnt yet": even.
  double sum = 0;
  for (size_t i = 0; i < n; ++i) {
    float w = snap_->backends[cand_[i].slot].adaptive_weight;
    if (w > 0 && std::isfinite(w)) sum += w;
  }
  size_t start = static_cast<size_t>(random % n);
  int best = kNoBackend, best_idle = kNoBackend;  // best_idle: best with no request awaiting a first token
  double best_score = 0, best_idle_score = 0;
  for (size_t k = 0; k < n; ++k) {
    size_t i = (start + k) % n;
    const Candidate& c = cand_[i];
    float w = snap_->backends[c.slot].adaptive_weight;
    double share = sum > 0 ? (w > 0 && std::isfinite(w) ? w / sum : 0.0) : 1.0 / static_cast<double>(n);
    share = AdaptiveShare(share, n);
    // Requests queued at the backend for a batch slot are what TTFT waits on: count them
    // twice (they are in `load` too), corrected by this thread's requests since the scrape.
    const auto& b = snap_->backends[c.slot];
    double queued = b.metrics_fresh ? std::max(0.0, b.waiting + LocalDelta(LoadAt(local, c.slot))) : 0.0;
    double score = (static_cast<double>(c.load) + queued + 1.0) / share;
    if (best == kNoBackend || score < best_score) {
      best = c.slot;
      best_score = score;
    }
    if (LoadAt(local, c.slot).awaiting == 0 && (best_idle == kNoBackend || score < best_idle_score)) {
      best_idle = c.slot;
      best_idle_score = score;
    }
  }
  if (prefix_hash == 0) return best;
  // With a prompt prefix (the data plane extracts one for adaptive models too), requests
  // that share it keep reusing one KV cache: prefix homes as in prefix_affinity, with the
  // learnt shares in place of the configured weights, so prefixes (and the traffic they
  // bring) are placed where the learner says requests are served well, and move when a
  // home's share collapses. (Without homes adaptive scattered shared prefixes over every
  // cache and its p99 TTFT was ~2x prefix_affinity's; with homes placed by the plain
  // weighted least-load score it still lost 1.3-1.5x at 80-90% load in routing_sim, the
  // learner favouring warm caches until they queued.)
  place_by_adaptive_ = true;
  int s = PickPrefix(model_slot, n, prefix_hash);
  place_by_adaptive_ = false;
  if (s == kNoBackend) return best;
  // Latency before affinity: when this thread already has kAwaitingSpill requests at the
  // prefix's home that have not seen their first token (queued for a batch slot or in a
  // prefill) and another backend has none, this request goes to the best such backend. A
  // warm cache saves one prefill; a backend that is not answering first tokens costs more.
  // It needs no learning, so it also covers the cold start, before llmcd has any evidence
  // about which backends are slow. (The prefix stays home; its demand was counted.)
  if (best_idle != kNoBackend && best_idle != s &&
      LoadAt(local, static_cast<uint16_t>(s)).awaiting >= kAwaitingSpill)
    return best_idle;
  return s;
}

}  // namespace llmgw::routing
