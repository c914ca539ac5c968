// Fleet-wide quota leasing (docs/OPERATIONS.md "Keys and limits"). In a fleet every
// gateway host (the controller's own and each agent's) serves the same keys, so each limit
// is split between the hosts: the controller's FleetLeaser gives every host a share of
// each limit by the demand the host reports, and the host's llmcd splits its share among
// its data-plane threads with the ordinary QuotaLeaser (the share is the spec it leases
// from: capacity and refill of a rate, the limit of a concurrency limiter).
//
// Shares are whole units: a rate limiter has kRateUnits of them (a host holding u units
// may refill at refill_per_s * u / kRateUnits up to capacity * u / kRateUnits), a
// concurrency limiter has one per request in flight. The shares of all hosts never add up
// to more than the units of the limit, counting a lowered share at its old value until
// the host acknowledged the lease generation that lowered it (like QuotaLeaser's
// concurrency shares between threads): a share is raised only from units no host may
// still use, so the sum the fleet can use at any moment is within the limit.
//
// Demand is what a host admitted plus what it refused (refusals count as unmet demand,
// scaled by the units an admitted request cost), as an EWMA of the rate between reports.
// The units are split max-min fair by demand; what no host asks for is spread evenly over
// the live hosts, so a quiet host's first request finds a share.
//
// A host that has not reported for `expiry_ms` is lost: its share is reclaimed (its lease
// expired). A host that loses the controller keeps its last lease (fail-static): it never
// spends more than that share, and the others never get it while the host is counted.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "controlplane/quota_leaser.h"

namespace llmgw::cp {

constexpr uint64_t kRateUnits = 10000;  // a rate limiter's shares, in 1/10000 of the limit
// The QuotaLeaser idle floor of a host that holds only part of a limit (see
// QuotaLeaser::set_idle_floor_share).
constexpr double kFleetIdleFloorShare = 0.01;

// What a host reported for one limiter: cumulative sums over its threads (concurrency:
// spent is the number in flight now).
struct HostUse {
  uint32_t limiter = 0;
  uint64_t identity = 0;
  uint64_t spent = 0, denied = 0, checked = 0;
};

// One host's share of one limiter, as the host applies it to its QuotaLeaser spec.
struct HostShare {
  uint32_t limiter = 0;
  uint64_t identity = 0;
  double capacity = 0;      // rates: the host's bucket; concurrency: its in-flight limit
  double refill_per_s = 0;  // rates only
};

// The lease a host holds: its shares of every limit, under one generation.
struct HostLease {
  uint64_t generation = 0;
  std::vector<HostShare> shares;
};

struct FleetLeaserOptions {
  uint64_t expiry_ms = 3000;   // a host silent this long is lost; its share is reclaimed
  double demand_alpha = 0.6;   // EWMA weight of the latest report's demand
};

class FleetLeaser {
 public:
  explicit FleetLeaser(FleetLeaserOptions o = {}) : o_(o) {}

  // A host's report: its cumulative use and the last lease generation it applied. The
  // first report of a host only sets its baseline.
  void Report(const std::string& host, uint64_t now_ms, uint64_t acked_generation, const std::vector<HostUse>& use);
  // The host is gone for good (its process said so): reclaimed at the next tick.
  void Forget(const std::string& host);
  // One rebalancing over the limits now set; hosts silent past expiry are dropped.
  void Tick(uint64_t now_ms, const std::vector<LimiterSpec>& specs);

  // The host's lease as of the last tick (an unknown host: empty shares, generation 0).
  HostLease Lease(const std::string& host) const;
  // Units the host holds of a limiter (tests, views); 0 when none.
  uint64_t Units(const std::string& host, uint32_t limiter) const;
  std::vector<std::string> Hosts() const;
  uint64_t generation() const { return generation_; }
  void set_expiry_ms(uint64_t ms) { o_.expiry_ms = ms; }

 private:
  // A host's demand for one limiter, from the deltas between its reports.
  struct Demand {
    uint64_t spent = 0, denied = 0, checked = 0;  // as last reported (cumulative)
    uint64_t identity = 0;
    double spent_per_s = 0, denied_per_s = 0;      // rates: EWMAs
    double units_per_request = 1;                  // rates: units an admitted request cost
    double in_flight = 0;                          // concurrency: in flight + refused, decaying
    bool seen = false;
  };
  struct HostState {
    uint64_t last_report_ms = 0;
    uint64_t acked = 0;
    bool gone = false;
    std::map<uint32_t, Demand> demand;  // by limiter
  };
  struct Share {
    uint64_t units = 0;       // published share
    uint64_t held = 0;        // share still usable until the lowering is acked
    uint64_t lowered_at = 0;  // generation that lowered it (0: none pending)
  };
  struct LimiterState {
    uint64_t identity = 0;
    std::map<std::string, Share> hosts;
  };
  void Split(const LimiterSpec& spec, LimiterState& st);

  FleetLeaserOptions o_;
  std::map<std::string, HostState> hosts_;
  std::map<uint32_t, LimiterState> limiters_;
  std::map<uint32_t, LimiterSpec> specs_;  // as of the last tick
  uint64_t generation_ = 0;
};

// A host's QuotaLeaser specs under its fleet lease: each limiter's capacity and refill
// replaced by the host's share; a limiter the lease does not cover (or covers for another
// identity: a reload the host has not seen yet) gets nothing.
std::vector<LimiterSpec> ApplyLease(const std::vector<LimiterSpec>& specs, const HostLease& lease);

// A host's use of the limiters in specs, summed over its threads as `io` shows them
// (counters of exited threads included, so the sums only grow; in flight: live ones).
std::vector<HostUse> SumHostUse(const LeaseIo& io, const std::vector<LimiterSpec>& specs);

}  // namespace llmgw::cp
