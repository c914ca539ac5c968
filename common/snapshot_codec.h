// The fleet wire form of a published snapshot (FleetSnapshot.shm_snapshot): what the
// controller llmcd sends and an agent llmcd writes into its local shm. In common/ because
// the controller encodes it and the fleet agent decodes it; neither owns the other.
//
// Layout: magic "LGSN", the shm ABI version (kShmAbiVersion, u32), sizeof(Snapshot)
// (u32), the Snapshot header up to the limits, then the used ranges
// (shm::ForEachUsedRange), all in the host's byte order (the fleet is one architecture).
#pragma once

#include <string>

#include "common/shm_layout.h"

namespace llmgw::shm {

std::string EncodeSnapshot(const Snapshot& s);

// Fills *out (zeroed first); false with *why on a wrong magic, ABI version, size or
// length. A peer built with another shm ABI version is refused with a message naming
// both versions: its snapshot would be misread field by field.
bool DecodeSnapshot(const std::string& bytes, Snapshot* out, std::string* why);

}  // namespace llmgw::shm
