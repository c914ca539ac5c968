// The snapshot wire form (see snapshot_wire.h): bounds-checked decoding of bytes that
// arrive from the network.
#include "controlplane/snapshot_wire.h"

#include <cstring>

namespace llmgw::cp {

namespace {

constexpr char kMagic[4] = {'L', 'G', 'S', 'N'};
constexpr size_t kHeaderBytes = offsetof(shm::Snapshot, limits);

}  // namespace

std::string EncodeSnapshot(const shm::Snapshot& s) {
  std::string out(kMagic, 4);
  uint32_t size = sizeof(shm::Snapshot);
  out.append(reinterpret_cast<const char*>(&size), 4);
  out.append(reinterpret_cast<const char*>(&s), kHeaderBytes);
  shm::ForEachUsedRange(s.num_models, s.num_backends, s.num_prefix_homes, [&](size_t off, size_t len) {
    out.append(reinterpret_cast<const char*>(&s) + off, len);
  });
  return out;
}

bool DecodeSnapshot(const std::string& bytes, shm::Snapshot* out, std::string* why) {
  std::memset(static_cast<void*>(out), 0, sizeof(shm::Snapshot));
  if (bytes.size() < 8 + kHeaderBytes || std::memcmp(bytes.data(), kMagic, 4) != 0) {
    *why = "not a snapshot";
    return false;
  }
  uint32_t size = 0;
  std::memcpy(&size, bytes.data() + 4, 4);
  if (size != sizeof(shm::Snapshot)) {
    *why = "snapshot layout differs (controller and agent run different llmgw versions)";
    return false;
  }
  std::memcpy(static_cast<void*>(out), bytes.data() + 8, kHeaderBytes);
  if (out->num_backends > shm::kMaxBackends || out->num_models > shm::kMaxModels ||
      out->num_prefix_homes > shm::kMaxPrefixHomes) {
    *why = "snapshot table sizes out of range";
    return false;
  }
  size_t pos = 8 + kHeaderBytes;
  bool ok = true;
  shm::ForEachUsedRange(out->num_models, out->num_backends, out->num_prefix_homes, [&](size_t off, size_t len) {
    if (!ok || pos + len > bytes.size()) {
      ok = false;
      return;
    }
    std::memcpy(reinterpret_cast<char*>(out) + off, bytes.data() + pos, len);
    pos += len;
  });
  if (!ok || pos != bytes.size()) {
    *why = "snapshot length does not match its tables";
    return false;
  }
  return true;
}

}  // namespace llmgw::cp
