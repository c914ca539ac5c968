// The fleet's stats: a gateway's data-plane totals (shm::StatsTotals) on the agent <->
// controller link, and the controller's record of every gateway's totals, summed into its
// own view. The wire form is driven by the stat lists of common/shm_layout.h, so a stat
// added there travels, sums and exports without touching this file.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "common/config.h"
#include "common/shm.h"
#include "llmgw/admin/v1/admin.pb.h"

namespace llmgw::cp {

// A prompt prefix a gateway's threads routed, with the picks since its last report.
struct PrefixPick {
  uint16_t model_slot = 0;
  uint64_t tag = 0;
  uint64_t picks = 0;
};

// Bumped when the agent <-> controller link changes meaning (fields are only added).
constexpr uint32_t kFleetLinkVersion = 3;  // 3: fleet-wide leases (limiter_use up, lease down)

// A gateway's name in the fleet: fleet.agent_id, by default HOSTNAME/INSTANCE (several
// gateways may share a host; the instance tells them apart).
std::string GatewayName(const Config& cfg);

// Fingerprint of the three stat lists (names, kinds, sizes, histogram buckets): a peer
// built from other lists sends rows this one cannot read.
uint64_t StatsSchemaFingerprint();

// Encodes every non-zero row of t.
void EncodeTotals(const shm::StatsTotals& t, admin::v1::GatewayTotals* out);
// Decodes into *out (models sized kMaxModels, one backend row per key, in message order).
// False with *why when the schema differs or a row has the wrong length.
bool DecodeTotals(const admin::v1::GatewayTotals& in, shm::StatsTotals* out, std::string* why);

// Adds the thread-level entries of in to out (model and backend rows are not touched).
void AddThreadTotals(const shm::StatsTotals& in, shm::StatsTotals* out);
// Sets every gauge of t (thread, model and backend rows) to 0: what a gone gateway has.
void ZeroGauges(shm::StatsTotals* t);
// Answered requests (the sum of the models' requests by status code).
uint64_t AnsweredRequests(const shm::StatsTotals& t);

// The controller's record of the fleet's gateways (not its own data plane), by gateway
// name. A gateway's counters stay counted after its link closes (totals are monotonic, as
// Prometheus expects); its gauges stop counting. A gateway whose counters went backwards
// (its shm was recreated) keeps what it had counted before as a base.
class FleetStats {
 public:
  struct Gateway {
    shm::StatsTotals base;  // earlier incarnations, gauges 0
    shm::StatsTotals last;  // the latest report
    bool connected = false;
    uint64_t reported_ms = 0;  // clock of the last report
  };
  void Report(const std::string& gateway, shm::StatsTotals t, uint64_t now_ms);
  void Disconnected(const std::string& gateway);
  // Adds every gateway's totals (base + last) into *into: thread entries and models by
  // slot directly, backend rows onto the row whose key matches (key_to_row: backend key
  // -> index into into->backends; rows of unknown keys are dropped: a backend the
  // controller no longer has). live_threads adds the connected gateways' threads.
  void AddTo(const std::map<uint64_t, size_t>& key_to_row, shm::StatsTotals* into) const;
  // In-flight attempts per backend key over the connected gateways.
  std::map<uint64_t, uint64_t> InFlightByKey() const;
  const std::map<std::string, Gateway>& gateways() const { return gw_; }

 private:
  std::map<std::string, Gateway> gw_;
};

}  // namespace llmgw::cp
