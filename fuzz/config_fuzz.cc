// libFuzzer target for the config loader (common/config.cc) from YAML text: whatever an
// operator (or a config manager gone wrong) writes, ParseConfig must return errors or a
// config, never crash, hang or leak an exception. An accepted config must satisfy what
// the rest of the system assumes (at least one model, each with a backend and a parsed
// URL); when its backends are IP literals it is also turned into a snapshot (names are
// never resolved here: a fuzzer must not send DNS queries).
#include <arpa/inet.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "common/config.h"
#include "common/shm_layout.h"
#include "common/snapshot_builder.h"

namespace {
bool IsIpLiteral(const std::string& host) {
  unsigned char buf[16];
  return ::inet_pton(AF_INET, host.c_str(), buf) == 1 || ::inet_pton(AF_INET6, host.c_str(), buf) == 1;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  llmgw::ConfigResult r = llmgw::ParseConfig(text, "fuzz.yaml");
  if (!r.ok()) {
    for (const auto& e : r.errors)
      if (e.message.empty() || e.line < 0) __builtin_trap();
    if (r.ErrorText().empty()) __builtin_trap();
    return 0;
  }
  const llmgw::Config& c = r.config;
  if (c.models.empty()) __builtin_trap();
  bool numeric = true;
  for (const auto& m : c.models) {
    if (m.name.empty() || m.backends.empty()) __builtin_trap();
    if (c.FindModel(m.name) == nullptr) __builtin_trap();
    for (const auto& b : m.backends) {
      if (b.parsed.host.empty() || b.parsed.port == 0) __builtin_trap();
      numeric = numeric && IsIpLiteral(b.parsed.host);
    }
  }
  if (numeric) {
    static auto* snap = new llmgw::shm::Snapshot;
    llmgw::SlotAssigner slots;
    llmgw::Status st = llmgw::BuildSnapshot(c, &slots, snap);
    (void)st;
  }
  return 0;
}
