// Writes the seed corpus of snapshot_wire_fuzz: the wire form (EncodeSnapshot) of
// snapshots built from small configs, so the fuzzer starts from valid frames of several
// table sizes. Usage: make_snapshot_seeds DIR, e.g. build-fuzz/bin/make_snapshot_seeds fuzz/corpus/snapshot_wire
// after a layout change (the old seeds would then only exercise the rejection path).
#include <cstdio>
#include <fstream>
#include <string>

#include "common/config.h"
#include "common/shm_layout.h"
#include "common/snapshot_builder.h"
#include "common/snapshot_codec.h"

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s DIR\n", argv[0]);
    return 2;
  }
  const char* configs[] = {
      "models:\n  - name: m\n    backends:\n      - { url: http://127.0.0.1:8000 }\n",
      "models:\n  - name: a\n    aliases: [x]\n    policy: p2c_kv\n    backends:\n"
      "      - { url: http://10.0.0.1:8000, max_concurrent: 8 }\n"
      "      - { url: http://10.0.0.2:8000, weight: 2 }\n"
      "  - name: b\n    policy: prefix_affinity\n    fallbacks: [a]\n    backends:\n"
      "      - { url: \"http://[::1]:9000/v1\" }\n",
      "gateway: { max_body_bytes: 1024 }\nmodels:\n  - name: c\n    policy: adaptive\n    backends:\n"
      "      - { url: http://192.168.1.1:1 }\n      - { url: http://192.168.1.2:2 }\n"
      "      - { url: http://192.168.1.3:3 }\n",
  };
  int n = 0;
  for (const char* yaml : configs) {
    llmgw::ConfigResult r = llmgw::ParseConfig(yaml, "seed.yaml");
    if (!r.ok()) {
      std::fprintf(stderr, "seed config %d: %s", n, r.ErrorText().c_str());
      return 1;
    }
    auto* snap = new llmgw::shm::Snapshot{};
    llmgw::SlotAssigner slots;
    llmgw::Status st = llmgw::BuildSnapshot(r.config, &slots, snap);
    if (!st.ok()) {
      std::fprintf(stderr, "seed config %d: %s\n", n, st.error().message());
      return 1;
    }
    std::ofstream(std::string(argv[1]) + "/seed" + std::to_string(n++) + ".bin", std::ios::binary)
        << llmgw::shm::EncodeSnapshot(*snap);
    delete snap;
  }
  return 0;
}
