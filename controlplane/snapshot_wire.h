// The wire form of a published routing snapshot, as the fleet controller streams it to its
// agents (FleetSnapshot.shm_snapshot). Kept apart from the gRPC fleet code so the decoder,
// which reads bytes from the network, can be unit-tested and fuzzed on its own.
#pragma once

#include <string>

#include "common/shm_layout.h"

namespace llmgw::cp {

// Magic, sizeof(Snapshot), the header up to the limits, then the used ranges
// (shm::ForEachUsedRange).
std::string EncodeSnapshot(const shm::Snapshot& s);
// Fills *out (zeroed first); false with *why on a wrong magic, size or length.
bool DecodeSnapshot(const std::string& bytes, shm::Snapshot* out, std::string* why);

}  // namespace llmgw::cp
