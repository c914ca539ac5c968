// Quota leasing: the per-tick rebalancing of the data-plane threads' leases (see
// quota_leaser.h for the guarantees and why they hold).
#include "controlplane/quota_leaser.h"

#include <algorithm>
#include <cmath>
#include <numeric>

namespace llmgw::cp {

std::vector<double> FairSplit(double total, const std::vector<double>& demand) {
  std::vector<double> out(demand.size(), 0);
  std::vector<size_t> open;
  for (size_t i = 0; i < demand.size(); ++i)
    if (demand[i] > 0) open.push_back(i);
  double left = std::max(0.0, total);
  // Water-filling: the smallest demands are met in full while the level allows.
  std::sort(open.begin(), open.end(), [&](size_t a, size_t b) { return demand[a] < demand[b]; });
  for (size_t k = 0; k < open.size(); ++k) {
    double level = left / static_cast<double>(open.size() - k);
    double give = std::min(level, demand[open[k]]);
    out[open[k]] = give;
    left -= give;
  }
  return out;
}

namespace {
uint64_t Delta(uint64_t now, uint64_t before) { return now >= before ? now - before : 0; }
}  // namespace

double QuotaLeaser::Pool(uint32_t index) const {
  auto it = limiters_.find(index);
  return it == limiters_.end() ? 0 : it->second.pool.level();
}

void QuotaLeaser::Tick(uint64_t now_ms, const std::vector<LimiterSpec>& specs, LeaseIo* io) {
  double dt = last_ms_ == 0 || now_ms <= last_ms_ ? 0 : static_cast<double>(now_ms - last_ms_) / 1000.0;
  dt = std::min(dt, 5.0);  // a stalled llmcd does not refill more than a few seconds at once
  last_ms_ = now_ms;
  ++generation_;
  std::map<uint32_t, LimiterState> next;
  for (const auto& spec : specs) {
    LimiterState& st = next[spec.index];
    if (auto it = limiters_.find(spec.index); it != limiters_.end()) st = std::move(it->second);
    if (spec.concurrency) TickConcurrency(spec, st, io);
    else TickRate(now_ms, dt, spec, st, io);
  }
  limiters_.swap(next);
  for (uint32_t t = 0; t < io->Threads(); ++t) io->Publish(t, generation_);
}

void QuotaLeaser::TickRate(uint64_t now_ms, double dt, const LimiterSpec& spec, LimiterState& st, LeaseIo* io) {
  uint32_t n = io->Threads();
  st.threads.resize(n);
  bool reset = st.fresh || st.identity != spec.identity;
  if (reset) {
    // A new limiter (or a slot now limiting something else): what the threads still hold
    // from before counts against the new bucket.
    st = LimiterState();
    st.identity = spec.identity;
    st.fresh = false;
    st.threads.resize(n);
    st.pool = TokenBucket(spec.capacity, spec.refill_per_s, now_ms);
    if (o_.start_empty) st.pool.Charge(st.pool.level());
  }
  st.pool.Reconfigure(spec.capacity, spec.refill_per_s);
  uint64_t sum_dspent = 0, sum_admitted = 0;
  std::vector<double> outstanding(n, 0), demand(n, 0);
  std::vector<bool> live(n, false);
  double held = 0;
  for (uint32_t t = 0; t < n; ++t) {
    ThreadState& th = st.threads[t];
    uint64_t spent = io->Spent(t, spec.index), denied = io->Denied(t, spec.index),
             checked = io->Checked(t, spec.index);
    if (!th.seen) {
      th.seen = true;
      th.last_spent = spent;
      th.last_denied = denied;
      th.last_checked = checked;
      th.grant = static_cast<double>(std::max(io->Grant(t, spec.index), spent));
      if (reset) held += th.grant - static_cast<double>(spent);
    }
    uint64_t ds = Delta(spent, th.last_spent), dd = Delta(denied, th.last_denied), dc = Delta(checked, th.last_checked);
    th.last_spent = spent;
    th.last_denied = denied;
    th.last_checked = checked;
    sum_dspent += ds;
    sum_admitted += dc >= dd ? dc - dd : 0;
    double units = static_cast<double>(ds) + static_cast<double>(dd) * st.units_per_request;
    if (dt > 0) th.demand_per_s = o_.demand_alpha * units / dt + (1 - o_.demand_alpha) * th.demand_per_s;
    live[t] = io->Live(t);
    double s = static_cast<double>(spent);
    if (s > th.grant) {
      // Charged beyond the lease (tokens counted after admission): the bucket pays the debt.
      st.pool.Charge(s - th.grant);
      th.grant = s;
    }
    if (!live[t]) {
      // Nobody can spend this lease any more: back to the pool.
      st.pool.Put(th.grant - s);
      th.grant = s;
      th.demand_per_s = 0;
    }
    outstanding[t] = th.grant - s;
    demand[t] = live[t] ? th.demand_per_s : 0;
  }
  if (reset) st.pool.Charge(std::min(held, spec.capacity));
  if (sum_admitted > 0 && sum_dspent > 0) {
    double upr = static_cast<double>(sum_dspent) / static_cast<double>(sum_admitted);
    st.units_per_request = 0.8 * st.units_per_request + 0.2 * upr;
  }
  double total_out = std::accumulate(outstanding.begin(), outstanding.end(), 0.0);
  st.pool.Advance(now_ms, spec.capacity - total_out);

  auto give = [&](uint32_t t, double amount) {
    double got = st.pool.TakeUpTo(amount);
    st.threads[t].grant += got;
    outstanding[t] += got;
  };
  // 1. Each thread with demand: its fair share of the refill rate, for one horizon.
  std::vector<double> fair = FairSplit(spec.refill_per_s, demand);
  std::vector<double> need(n, 0);
  double need_sum = 0;
  for (uint32_t t = 0; t < n; ++t) {
    need[t] = std::max(0.0, fair[t] * o_.horizon_s - outstanding[t]);
    need_sum += need[t];
  }
  if (need_sum > 0) {
    double scale = st.pool.level() > 0 ? std::min(1.0, st.pool.level() / need_sum) : 0;
    for (uint32_t t = 0; t < n; ++t) give(t, need[t] * scale);
  }
  // 2. What is left of the bucket to unmet demand, in proportion (a burst may take it all).
  need_sum = 0;
  for (uint32_t t = 0; t < n; ++t) {
    need[t] = std::max(0.0, demand[t] * o_.horizon_s - outstanding[t]);
    need_sum += need[t];
  }
  if (need_sum > 0 && st.pool.level() > 0) {
    double scale = std::min(1.0, st.pool.level() / need_sum);
    for (uint32_t t = 0; t < n; ++t) give(t, need[t] * scale);
  }
  // 3. A floor for every live thread, so a quiet key's first request finds a lease.
  uint32_t nlive = static_cast<uint32_t>(std::count(live.begin(), live.end(), true));
  if (nlive > 0) {
    double floor = std::max(spec.capacity * o_.idle_floor_share / nlive,
                            std::min(1.0, spec.capacity / nlive));
    for (uint32_t t = 0; t < n; ++t)
      if (live[t] && outstanding[t] < floor) give(t, floor - outstanding[t]);
  }
  double level = std::max(0.0, st.pool.level());
  for (uint32_t t = 0; t < n; ++t)
    if (live[t]) level += std::max(0.0, outstanding[t]);
  io->SetLevel(spec.index, static_cast<uint64_t>(level));
  for (uint32_t t = 0; t < n; ++t) {
    // Published rounded down (plus a hair against 0.999999 after many additions), so the
    // threads together never hold more than the pool handed out.
    uint64_t g = static_cast<uint64_t>(std::floor(st.threads[t].grant + 1e-9));
    if (g != io->Grant(t, spec.index)) io->SetGrant(t, spec.index, g);
  }
}

void QuotaLeaser::TickConcurrency(const LimiterSpec& spec, LimiterState& st, LeaseIo* io) {
  uint32_t n = io->Threads();
  if (st.fresh || st.identity != spec.identity) {
    st = LimiterState();
    st.identity = spec.identity;
    st.fresh = false;
  }
  st.threads.resize(n);
  uint64_t limit = static_cast<uint64_t>(spec.capacity);
  std::vector<double> demand(n, 0);
  std::vector<bool> live(n, false);
  int64_t used = 0;  // shares and in-flight counts that may be in use now
  for (uint32_t t = 0; t < n; ++t) {
    ThreadState& th = st.threads[t];
    uint64_t in_flight = io->Spent(t, spec.index), denied = io->Denied(t, spec.index);
    if (!th.seen) {
      th.seen = true;
      th.share = th.held_share = io->Grant(t, spec.index);
      th.last_denied = denied;
    }
    uint64_t dd = Delta(denied, th.last_denied);
    th.last_denied = denied;
    if (th.lowered_at && io->Acked(t) >= th.lowered_at) {
      th.held_share = th.share;
      th.lowered_at = 0;
    }
    live[t] = io->Live(t);
    if (!live[t]) {
      th.share = th.held_share = 0;
      th.lowered_at = 0;
      th.demand_per_s = 0;
      if (io->Grant(t, spec.index) != 0) io->SetGrant(t, spec.index, 0);
      continue;
    }
    // Demand: what it holds plus what it was refused, decaying slowly so shares stay put.
    th.demand_per_s = std::max(static_cast<double>(in_flight + dd), 0.5 * th.demand_per_s);
    demand[t] = th.demand_per_s;
    used += static_cast<int64_t>(std::max({th.held_share, th.share, in_flight}));
  }
  int64_t free = static_cast<int64_t>(limit) - used;
  uint64_t in_flight_total = 0;
  for (uint32_t t = 0; t < n; ++t)
    if (live[t]) in_flight_total += io->Spent(t, spec.index);
  io->SetLevel(spec.index, in_flight_total < limit ? limit - in_flight_total : 0);
  // Targets: the fair split by demand, the spare split evenly over live threads.
  std::vector<double> fair = FairSplit(static_cast<double>(limit), demand);
  uint32_t nlive = static_cast<uint32_t>(std::count(live.begin(), live.end(), true));
  std::vector<uint64_t> target(n, 0);
  uint64_t assigned = 0;
  for (uint32_t t = 0; t < n; ++t) {
    target[t] = static_cast<uint64_t>(std::floor(fair[t] + 1e-9));
    assigned += target[t];
  }
  for (uint32_t t = 0, k = 0; nlive && assigned < limit; t = (t + 1) % n) {
    if (live[t]) {
      // Spare goes first to threads with demand, then round the live ones.
      if (k >= nlive || demand[t] > 0) {
        ++target[t];
        ++assigned;
      }
      ++k;
    }
  }
  for (uint32_t t = 0; t < n; ++t) {
    ThreadState& th = st.threads[t];
    if (!live[t]) continue;
    if (target[t] < th.share) {
      if (!th.lowered_at) th.held_share = std::max(th.held_share, th.share);
      th.share = target[t];
      th.lowered_at = generation_;
    } else if (target[t] > th.share) {
      // Up to what it may already use costs nothing; beyond that only free room is given.
      uint64_t usable = std::max(th.held_share, th.share);
      uint64_t room = free > 0 ? static_cast<uint64_t>(free) : 0;
      th.share = std::min(target[t], usable + room);
      if (th.share > usable) free -= static_cast<int64_t>(th.share - usable);
      th.held_share = th.lowered_at ? std::max(th.held_share, th.share) : th.share;
    }
    if (io->Grant(t, spec.index) != th.share) io->SetGrant(t, spec.index, th.share);
  }
}

}  // namespace llmgw::cp

#include <sys/types.h>

#include "common/shm.h"

namespace llmgw::cp {

bool ShmLeaseIo::Live(uint32_t t) const {
  uint64_t owner = Ld(r_->slots[t].owner);
  return owner != 0 && shm::PidAlive(static_cast<pid_t>(owner >> 32));
}

std::vector<LimiterSpec> LimiterSpecs(const shm::Snapshot& s) {
  using shm::LimitKind;
  using shm::LimiterIndex;
  std::vector<LimiterSpec> out;
  const shm::Limits& l = s.limits;
  if (l.global_rps)
    out.push_back({LimiterIndex(LimitKind::kGlobalRps, 0), 1, static_cast<double>(l.global_burst ? l.global_burst : l.global_rps),
                   static_cast<double>(l.global_rps), false});
  for (uint32_t m = 0; m < s.num_models && m < shm::kMaxModels; ++m) {
    const shm::ModelEntry& e = s.models[m];
    if (e.present && e.rps)
      out.push_back({LimiterIndex(LimitKind::kModelRps, m), shm::Fnv1a(e.name, sizeof(e.name)),
                     static_cast<double>(e.rps), static_cast<double>(e.rps), false});
  }
  for (uint32_t b = 0; b < s.num_backends && b < shm::kMaxBackends; ++b) {
    const shm::BackendEntry& e = s.backends[b];
    if (e.state != static_cast<uint8_t>(shm::BackendState::kEmpty) && e.rps)
      out.push_back({LimiterIndex(LimitKind::kBackendRps, b), e.key, static_cast<double>(e.rps),
                     static_cast<double>(e.rps), false});
  }
  for (uint32_t k = 0; k < s.num_keys && k < shm::kMaxKeys; ++k) {
    const shm::KeyEntry& e = s.keys[k];
    if (!e.present) continue;
    if (e.rpm)
      out.push_back({LimiterIndex(LimitKind::kKeyRpm, k), e.id_hash, static_cast<double>(e.rpm), e.rpm / 60.0, false});
    if (e.tpm)
      out.push_back({LimiterIndex(LimitKind::kKeyTpm, k), e.id_hash, static_cast<double>(e.tpm), e.tpm / 60.0, false});
    if (e.max_concurrent)
      out.push_back({LimiterIndex(LimitKind::kKeyConcurrency, k), e.id_hash, static_cast<double>(e.max_concurrent), 0, true});
  }
  return out;
}

}  // namespace llmgw::cp
