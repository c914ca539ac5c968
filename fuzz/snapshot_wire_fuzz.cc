// libFuzzer target for the fleet snapshot wire format (common/snapshot_codec.cc): an
// agent decodes these bytes from the network and publishes them into shm for llmgw. Any
// input must be rejected or decoded without reading or writing out of bounds, a decoded
// snapshot never holds a provider key (keys do not travel: the agent reads its own), and
// it re-encodes to the same bytes but for the key fields, which come back zero (nothing
// else dropped, nothing invented, table sizes within the shm layout's caps).
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
  using llmgw::shm::BackendUpstream;
  for (uint32_t i = 0; i < snap->num_backends; ++i)
    for (char c : snap->upstreams[i].api_key)
      if (c) __builtin_trap();  // a key taken from the wire
  std::string again = llmgw::shm::EncodeSnapshot(*snap);
  if (again.size() != bytes.size()) __builtin_trap();
  // Where the upstream rows sit in the stream: after the preamble and header, in the
  // order ForEachUsedRange gives the ranges.
  size_t pos = 12 + offsetof(llmgw::shm::Snapshot, limits);  // magic, ABI, size; the header
  size_t up_at = 0, up_len = 0;
  llmgw::shm::ForEachUsedRange(*snap, [&](size_t off, size_t len) {
    if (off == offsetof(llmgw::shm::Snapshot, upstreams)) up_at = pos, up_len = len;
    pos += len;
  });
  for (size_t i = 0; i < bytes.size(); ++i) {
    if (again[i] == bytes[i]) continue;
    // Only a key byte may differ, and only to zero.
    bool in_key = i >= up_at && i < up_at + up_len &&
                  (i - up_at) % sizeof(BackendUpstream) >= offsetof(BackendUpstream, api_key) &&
                  (i - up_at) % sizeof(BackendUpstream) < offsetof(BackendUpstream, api_key) + sizeof(BackendUpstream::api_key);
    if (!in_key || again[i] != 0) __builtin_trap();
  }
  return 0;
}
