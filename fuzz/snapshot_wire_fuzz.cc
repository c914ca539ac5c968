// libFuzzer target for the fleet snapshot wire format (common/snapshot_codec.cc): an
// agent decodes these bytes from the network and publishes them into shm for llmgw. Any
// input must be rejected or decoded without reading or writing out of bounds, and a
// decoded snapshot must re-encode to exactly the same bytes (nothing dropped, nothing
// invented, table sizes within the shm layout's caps).
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "common/shm_layout.h"
#include "common/snapshot_codec.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static auto* snap = new llmgw::shm::Snapshot;  // large: allocate once, reuse
  std::string bytes(reinterpret_cast<const char*>(data), size);
  std::string why;
  if (!llmgw::shm::DecodeSnapshot(bytes, snap, &why)) {
    if (why.empty()) __builtin_trap();  // a rejection always says why
    return 0;
  }
  if (snap->num_backends > llmgw::shm::kMaxBackends || snap->num_models > llmgw::shm::kMaxModels ||
      snap->num_prefix_homes > llmgw::shm::kMaxPrefixHomes)
    __builtin_trap();
  if (llmgw::shm::EncodeSnapshot(*snap) != bytes) __builtin_trap();
  return 0;
}
