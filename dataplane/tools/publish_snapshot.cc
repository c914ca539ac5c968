// llmgw-dev-publish: builds the snapshot from a config and publishes it into the
// instance's shm object once, as llmcd would, then exits. For profiling and benchmarking
// llmgw alone (the snapshot outlives the publisher: llmgw is fail-static). Run it after
// llmgw started: the last process to close the shm object unlinks it.
#include <cstdio>
#include <memory>
#include <string>

#include "common/config.h"
#include "common/shm.h"
#include "common/snapshot_builder.h"

int main(int argc, char** argv) {
  using namespace llmgw;
  if (argc != 3 || std::string(argv[1]) != "--config") {
    std::fprintf(stderr, "usage: llmgw-dev-publish --config FILE\n");
    return 2;
  }
  ConfigResult cr = LoadConfigFile(argv[2]);
  if (!cr.ok()) {
    std::fprintf(stderr, "%s\n", cr.ErrorText().c_str());
    return 1;
  }
  auto obj = shm::ShmObject::Open(cr.config.ShmName());
  if (!obj.ok()) {
    std::fprintf(stderr, "shm: %s\n", obj.error().message());
    return 1;
  }
  auto snap = std::make_unique<shm::Snapshot>();
  SlotAssigner slots;
  if (Status st = BuildSnapshot(cr.config, &slots, snap.get()); !st.ok()) {
    std::fprintf(stderr, "snapshot: %s\n", st.error().message());
    return 1;
  }
  shm::SnapshotWriter w(obj.value()->region());
  std::printf("published generation %llu to %s\n", static_cast<unsigned long long>(w.Publish(snap.get())),
              cr.config.ShmName().c_str());
  return 0;
}
