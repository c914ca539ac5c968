// llmgw-bench: load generator for OpenAI-style servers, streaming-aware (docs/MOCK.md).
#include <cstdio>
#include <string>

#include "bench/loadgen/loadgen.h"

int main(int argc, char** argv) {
  llmgw::bench::BenchArgs a;
  std::string err;
  if (!llmgw::bench::ParseBenchArgs(argc, argv, &a, &err)) {
    std::fprintf(stderr, "llmgw-bench: %s\n%s", err.c_str(), llmgw::bench::BenchUsage());
    return 2;
  }
  if (a.help) {
    std::fputs(llmgw::bench::BenchUsage(), stdout);
    return 0;
  }
  llmgw::bench::Workload w(a.work, a.load.seed);
  if (!w.Init(&err)) {
    std::fprintf(stderr, "llmgw-bench: %s\n", err.c_str());
    return 2;
  }
  llmgw::bench::RunStats st;
  if (!llmgw::bench::RunLoad(a.load, w, &st, &err)) {
    std::fprintf(stderr, "llmgw-bench: %s\n", err.c_str());
    return 2;
  }
  std::string json = llmgw::bench::RunStatsJson(st, llmgw::bench::ConfigJson(a));
  std::printf("%s\n", json.c_str());
  if (!a.out_path.empty()) {
    FILE* f = std::fopen(a.out_path.c_str(), "w");
    if (!f) {
      std::fprintf(stderr, "llmgw-bench: cannot write %s\n", a.out_path.c_str());
      return 1;
    }
    std::fprintf(f, "%s\n", json.c_str());
    std::fclose(f);
  }
  return 0;
}
