// Fleet-wide quota leasing: the controller's split of every limit between the gateway
// hosts (see fleet_leaser.h for the guarantees and why they hold).
#include "controlplane/fleet_leaser.h"

#include <algorithm>
#include <cmath>

namespace llmgw::cp {

namespace {
uint64_t Delta(uint64_t now, uint64_t before) { return now >= before ? now - before : 0; }
}  // namespace

void FleetLeaser::Report(const std::string& host, uint64_t now_ms, uint64_t acked_generation,
                         const std::vector<HostUse>& use) {
  HostState& h = hosts_[host];
  double dt = h.last_report_ms && now_ms > h.last_report_ms ? static_cast<double>(now_ms - h.last_report_ms) / 1000.0 : 0;
  for (const HostUse& u : use) {
    Demand& d = h.demand[u.limiter];
    if (!d.seen || d.identity != u.identity) {  // a baseline: cumulative counters start here
      d = Demand();
      d.seen = true;
      d.identity = u.identity;
      d.spent = u.spent;
      d.denied = u.denied;
      d.checked = u.checked;
      d.in_flight = static_cast<double>(u.spent);
      continue;
    }
    uint64_t ds = Delta(u.spent, d.spent), dd = Delta(u.denied, d.denied), dc = Delta(u.checked, d.checked);
    d.spent = u.spent;
    d.denied = u.denied;
    d.checked = u.checked;
    if (dt > 0) {
      double a = o_.demand_alpha;
      d.spent_per_s = a * static_cast<double>(ds) / dt + (1 - a) * d.spent_per_s;
      d.denied_per_s = a * static_cast<double>(dd) / dt + (1 - a) * d.denied_per_s;
    }
    uint64_t admitted = dc >= dd ? dc - dd : 0;
    if (admitted > 0 && ds > 0)
      d.units_per_request = 0.8 * d.units_per_request + 0.2 * static_cast<double>(ds) / static_cast<double>(admitted);
    // Concurrency: what it holds plus what it was refused, decaying so shares stay put.
    d.in_flight = std::max(static_cast<double>(u.spent + dd), 0.5 * d.in_flight);
  }
  h.last_report_ms = now_ms;
  // A generation this leaser never published is another controller's (the agent came
  // over from a leader that failed): it acknowledges nothing here.
  if (acked_generation <= generation_) h.acked = std::max(h.acked, acked_generation);
  h.gone = false;
}

void FleetLeaser::Forget(const std::string& host) {
  auto it = hosts_.find(host);
  if (it != hosts_.end()) it->second.gone = true;
}

void FleetLeaser::Tick(uint64_t now_ms, const std::vector<LimiterSpec>& specs) {
  ++generation_;
  for (auto it = hosts_.begin(); it != hosts_.end();) {
    bool expired = now_ms > it->second.last_report_ms && now_ms - it->second.last_report_ms > o_.expiry_ms;
    if (it->second.gone || expired) it = hosts_.erase(it);  // its lease expired: reclaimed below
    else ++it;
  }
  std::map<uint32_t, LimiterState> next;
  specs_.clear();
  for (const LimiterSpec& spec : specs) {
    specs_[spec.index] = spec;
    LimiterState& st = next[spec.index];
    if (auto it = limiters_.find(spec.index); it != limiters_.end() && it->second.identity == spec.identity)
      st = std::move(it->second);
    st.identity = spec.identity;
    Split(spec, st);
  }
  limiters_.swap(next);
}

void FleetLeaser::Split(const LimiterSpec& spec, LimiterState& st) {
  uint64_t total = spec.concurrency ? static_cast<uint64_t>(std::max(0.0, std::floor(spec.capacity))) : kRateUnits;
  // Reclaim the shares of hosts that are gone.
  for (auto it = st.hosts.begin(); it != st.hosts.end();) {
    if (!hosts_.count(it->first)) it = st.hosts.erase(it);
    else ++it;
  }
  std::vector<const std::string*> names;
  std::vector<double> demand;
  std::vector<uint64_t> holding;  // units the host may be using now (share, held, in flight)
  int64_t used = 0;
  for (auto& [name, h] : hosts_) {
    Share& sh = st.hosts[name];
    if (sh.lowered_at && h.acked >= sh.lowered_at) {
      sh.held = sh.units;
      sh.lowered_at = 0;
    }
    double d = 0;
    uint64_t in_flight = 0;
    if (auto it = h.demand.find(spec.index); it != h.demand.end() && it->second.identity == spec.identity) {
      const Demand& dm = it->second;
      if (spec.concurrency) {
        d = dm.in_flight;
        in_flight = dm.spent;
      } else if (spec.refill_per_s > 0) {
        d = (dm.spent_per_s + dm.denied_per_s * dm.units_per_request) / spec.refill_per_s * static_cast<double>(total);
      }
    }
    names.push_back(&name);
    demand.push_back(d);
    holding.push_back(std::max({sh.held, sh.units, in_flight}));
    used += static_cast<int64_t>(holding.back());
  }
  size_t n = names.size();
  if (n == 0) return;
  int64_t free = static_cast<int64_t>(total) - used;
  // Targets: max-min fair by demand, what nobody asks for spread evenly.
  std::vector<double> fair = FairSplit(static_cast<double>(total), demand);
  std::vector<uint64_t> target(n, 0);
  uint64_t assigned = 0;
  for (size_t i = 0; i < n; ++i) {
    target[i] = static_cast<uint64_t>(std::floor(fair[i] + 1e-9));
    assigned += target[i];
  }
  uint64_t spare = total > assigned ? total - assigned : 0;
  for (size_t i = 0; i < n; ++i) target[i] += spare / n;
  spare %= n;
  // The rounding remainder: hosts with demand first, in order.
  for (int pass = 0; pass < 2 && spare > 0; ++pass)
    for (size_t i = 0; i < n && spare > 0; ++i)
      if ((pass == 0) == (demand[i] > 0)) {
        ++target[i];
        --spare;
      }
  // Lower at once (held until acked), raise only from units no host may still use.
  for (size_t i = 0; i < n; ++i) {
    Share& sh = st.hosts[*names[i]];
    if (target[i] < sh.units) {
      if (!sh.lowered_at) sh.held = std::max(sh.held, sh.units);
      sh.units = target[i];
      sh.lowered_at = generation_;
    }
  }
  for (size_t i = 0; i < n; ++i) {
    Share& sh = st.hosts[*names[i]];
    if (target[i] > sh.units) {
      uint64_t usable = std::max(sh.held, holding[i]);
      uint64_t room = free > 0 ? static_cast<uint64_t>(free) : 0;
      sh.units = std::min(target[i], usable + room);
      if (sh.units > usable) free -= static_cast<int64_t>(sh.units - usable);
      sh.held = sh.lowered_at ? std::max(sh.held, sh.units) : sh.units;
    }
  }
}

HostLease FleetLeaser::Lease(const std::string& host) const {
  HostLease l;
  if (!hosts_.count(host)) return l;
  l.generation = generation_;
  for (const auto& [index, spec] : specs_) {
    auto st = limiters_.find(index);
    if (st == limiters_.end()) continue;
    auto sh = st->second.hosts.find(host);
    uint64_t units = sh == st->second.hosts.end() ? 0 : sh->second.units;
    HostShare s;
    s.limiter = index;
    s.identity = spec.identity;
    if (spec.concurrency) {
      s.capacity = static_cast<double>(units);
    } else {
      double f = static_cast<double>(units) / static_cast<double>(kRateUnits);
      s.capacity = spec.capacity * f;
      s.refill_per_s = spec.refill_per_s * f;
    }
    l.shares.push_back(s);
  }
  return l;
}

uint64_t FleetLeaser::Units(const std::string& host, uint32_t limiter) const {
  auto st = limiters_.find(limiter);
  if (st == limiters_.end()) return 0;
  auto sh = st->second.hosts.find(host);
  return sh == st->second.hosts.end() ? 0 : sh->second.units;
}

std::vector<std::string> FleetLeaser::Hosts() const {
  std::vector<std::string> out;
  for (const auto& [name, h] : hosts_) out.push_back(name);
  return out;
}

std::vector<LimiterSpec> ApplyLease(const std::vector<LimiterSpec>& specs, const HostLease& lease) {
  std::map<uint32_t, const HostShare*> by;
  for (const HostShare& s : lease.shares) by[s.limiter] = &s;
  std::vector<LimiterSpec> out = specs;
  for (LimiterSpec& s : out) {
    auto it = by.find(s.index);
    bool ok = it != by.end() && it->second->identity == s.identity;
    s.capacity = ok ? it->second->capacity : 0;
    s.refill_per_s = ok ? it->second->refill_per_s : 0;
  }
  return out;
}

std::vector<HostUse> SumHostUse(const LeaseIo& io, const std::vector<LimiterSpec>& specs) {
  std::vector<HostUse> out;
  out.reserve(specs.size());
  for (const LimiterSpec& s : specs) {
    HostUse u;
    u.limiter = s.index;
    u.identity = s.identity;
    for (uint32_t t = 0; t < io.Threads(); ++t) {
      if (s.concurrency) {
        if (io.Live(t)) u.spent += io.Spent(t, s.index);
      } else {
        u.spent += io.Spent(t, s.index);
      }
      u.denied += io.Denied(t, s.index);
      u.checked += io.Checked(t, s.index);
    }
    out.push_back(u);
  }
  return out;
}

}  // namespace llmgw::cp
