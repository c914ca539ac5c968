// SpanCollector: turns the data plane's finished span records (common/span_ring.h, one
// ring per data-plane thread in shared memory) into OTLP spans for SpanExporter, naming
// models and backends from the current snapshot and adding the GenAI semantic-convention
// attributes (docs/OPERATIONS.md, "Tracing"). llmcd runs Collect every ~100 ms.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "common/shm.h"
#include "controlplane/otlp.h"

namespace llmgw::cp {

// One record as an OTLP span; `snap` (may be null) names the slots it refers to.
OtlpSpan SpanFromRecord(const shm::SpanRecord& r, const shm::Snapshot* snap);

class SpanCollector {
 public:
  explicit SpanCollector(shm::ShmRegion* region);
  // Drains every ring (at most max_spans); *dropped gets the records the data plane
  // dropped since the last call (its rings were full).
  std::vector<OtlpSpan> Collect(uint64_t* dropped, size_t max_spans = 8192);

 private:
  shm::ShmRegion* region_;
  shm::SnapshotReader reader_;
  std::unique_ptr<shm::Snapshot> snap_;
  bool have_snap_ = false;
  uint64_t dropped_seen_[shm::kMaxStatsSlots] = {};
};

}  // namespace llmgw::cp
