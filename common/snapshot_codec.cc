// The fleet wire form of a snapshot (see snapshot_codec.h).
#include "common/snapshot_codec.h"

#include <cstddef>
#include <cstring>

#include "common/shm.h"

namespace llmgw::shm {
namespace {

constexpr char kMagic[4] = {'L', 'G', 'S', 'N'};
constexpr size_t kPreamble = 12;  // magic, ABI version, sizeof(Snapshot)
constexpr size_t kHeaderBytes = offsetof(Snapshot, limits);

}  // namespace

std::string EncodeSnapshot(const Snapshot& s) {
  std::string out(kMagic, 4);
  uint32_t abi = kShmAbiVersion;
  out.append(reinterpret_cast<const char*>(&abi), 4);
  uint32_t size = sizeof(Snapshot);
  out.append(reinterpret_cast<const char*>(&size), 4);
  out.append(reinterpret_cast<const char*>(&s), kHeaderBytes);
  ForEachUsedRange(s, [&](size_t off, size_t len) {
    size_t at = out.size();
    out.append(reinterpret_cast<const char*>(&s) + off, len);
    // Provider keys never travel on the fleet link: the snapshot keeps where each key
    // comes from (api_key_file / api_key_env) and every agent reads it on its own host.
    if (off == offsetof(Snapshot, upstreams))
      for (size_t i = 0; i * sizeof(BackendUpstream) < len; ++i)
        std::memset(out.data() + at + i * sizeof(BackendUpstream) + offsetof(BackendUpstream, api_key), 0,
                    sizeof(BackendUpstream::api_key));
  });
  return out;
}

bool DecodeSnapshot(const std::string& bytes, Snapshot* out, std::string* why) {
  std::memset(static_cast<void*>(out), 0, sizeof(Snapshot));
  if (bytes.size() < 8 || std::memcmp(bytes.data(), kMagic, 4) != 0) {
    *why = "not a snapshot";
    return false;
  }
  uint32_t abi = 0;
  std::memcpy(&abi, bytes.data() + 4, 4);
  if (abi != kShmAbiVersion) {
    *why = "snapshot has shm ABI version " + std::to_string(abi) + ", this llmcd speaks version " +
           std::to_string(kShmAbiVersion) + ": the controller and this agent run different llmgw versions; upgrade them to the same release";
    return false;
  }
  if (bytes.size() < kPreamble + kHeaderBytes) {
    *why = "snapshot shorter than its header";
    return false;
  }
  uint32_t size = 0;
  std::memcpy(&size, bytes.data() + 8, 4);
  if (size != sizeof(Snapshot)) {
    *why = "snapshot layout differs (" + std::to_string(size) + " bytes, here " + std::to_string(sizeof(Snapshot)) +
           "): the controller and this agent run different llmgw builds";
    return false;
  }
  std::memcpy(static_cast<void*>(out), bytes.data() + kPreamble, kHeaderBytes);
  if (out->num_backends > kMaxBackends || out->num_models > kMaxModels || out->num_prefix_homes > kMaxPrefixHomes ||
      out->num_keys > kMaxKeys) {
    *why = "snapshot table sizes out of range";
    return false;
  }
  size_t pos = kPreamble + kHeaderBytes;
  bool ok = true;
  ForEachUsedRange(*out, [&](size_t off, size_t len) {
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
  // A key never comes over the wire (EncodeSnapshot leaves it out): bytes there from a
  // peer of another build, or a forged stream, must not become a key this host's llmgw
  // sends. The agent fills its own host's keys (controlplane/host_credentials.h).
  for (uint32_t i = 0; i < out->num_backends; ++i)
    std::memset(out->upstreams[i].api_key, 0, sizeof(BackendUpstream::api_key));
  return true;
}

}  // namespace llmgw::shm
