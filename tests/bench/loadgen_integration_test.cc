// Integration test: llmgw-bench against a real llmgw-mock counts tokens, requests and
// errors by kind the way the mock reports them.
#include <gtest/gtest.h>

#include <cstdio>

#include "tests/bench/mock_process.h"

namespace llmgw::testing {
namespace {

std::string RunBench(const std::string& args) {
  std::string cmd = std::string("timeout 20 ") + LLMGW_BENCH_BIN + " --no-progress " + args + " 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  pclose(p);
  return out;
}

double Num(const std::string& j, const std::string& key) {
  size_t p = j.find("\"" + key + "\":");
  return p == std::string::npos ? -1 : std::atof(j.c_str() + p + key.size() + 3);
}

TEST(LoadgenIntegrationTest, ClosedLoopCountsTokensAndRequests) {
  MockProcess m({"--listen", "127.0.0.1:0", "--model", "m", "--output-tokens", "6", "--token-interval-ms", "20"});
  ASSERT_GT(m.port(), 0);
  std::string j = RunBench("--target 127.0.0.1:" + std::to_string(m.port()) +
                           " --concurrency 3 --requests 30 --duration 10 --model m --stream-ratio 0.5");
  EXPECT_EQ(Num(j, "sent"), 30) << j;
  EXPECT_EQ(Num(j, "ok"), 30) << j;
  EXPECT_EQ(Num(j, "errors_total"), 0) << j;
  size_t tpr = j.find("\"tokens_per_request\":");
  ASSERT_NE(tpr, std::string::npos);
  EXPECT_EQ(Num(j.substr(tpr), "min"), 6);
  EXPECT_EQ(Num(j.substr(tpr), "max"), 6);
  size_t itl = j.find("\"inter_token_ms\":");
  EXPECT_GT(Num(j.substr(itl), "p50"), 10.0);  // tokens really were spaced by the step time
}

TEST(LoadgenIntegrationTest, OpenLoopReportsErrorsByKind) {
  MockProcess m({"--listen", "127.0.0.1:0", "--model", "m", "--token-interval-ms", "0", "--error-rate", "1",
                 "--error-status", "503"});
  ASSERT_GT(m.port(), 0);
  std::string j = RunBench("--target 127.0.0.1:" + std::to_string(m.port()) + " --rate 200 --duration 0.5 --model m");
  EXPECT_GT(Num(j, "sent"), 20) << j;
  EXPECT_EQ(Num(j, "ok"), 0) << j;
  EXPECT_EQ(Num(j, "http_503"), Num(j, "sent")) << j;
}

}  // namespace
}  // namespace llmgw::testing
