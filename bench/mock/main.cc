// llmgw-mock: a simulated vLLM server for tests, demos and benchmarks (docs/MOCK.md).
#include <cstdio>
#include <string>

#include "bench/mock/mock_server.h"

int main(int argc, char** argv) {
  llmgw::mock::MockOptions opts;
  std::string err;
  bool help = false;
  if (!llmgw::mock::ParseMockArgs(argc, argv, &opts, &err, &help)) {
    std::fprintf(stderr, "llmgw-mock: %s\n%s", err.c_str(), llmgw::mock::MockUsage());
    return 2;
  }
  if (help) {
    std::fputs(llmgw::mock::MockUsage(), stdout);
    return 0;
  }
  return llmgw::mock::RunMockServer(opts);
}
