// llmgw-bench's load generator: workloads (prompt-length distributions, shared-prefix
// groups, stream/non-stream mix, several models) and an epoll client that drives them
// open-loop (Poisson arrivals at a rate) or closed-loop (N connections back to back),
// timing TTFT, inter-token gaps and end-to-end latency of OpenAI-style requests.
#pragma once

#include <cstdint>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "bench/loadgen/stats.h"

namespace llmgw::bench {

struct WorkloadOptions {
  std::string endpoint = "chat";  // chat -> /v1/chat/completions, completions -> /v1/completions
  std::vector<std::string> models{"mock-model"};
  std::string prompt_dist = "fixed:64";  // tokens: fixed:N | uniform:MIN:MAX | lognormal:MEDIAN:SIGMA
  int prefix_groups = 0;                 // >0: each prompt starts with one of G shared prefixes
  int prefix_tokens = 0;                 // length of each shared prefix, in tokens
  double prefix_zipf = 0;                // >0: group g drawn with weight 1/(g+1)^S (0 = uniform)
  double stream_ratio = 1.0;             // fraction of requests with "stream": true
  int max_tokens = 0;                    // 0 = not sent (the server decides)
  bool ignore_eos = false;
};

struct BuiltRequest {
  std::string raw;  // full HTTP/1.1 request
  bool stream = false;
  int prompt_tokens = 0;
  int group = -1;  // shared-prefix group, -1 = none
};

// Prompt bytes count as tokens at 4 bytes each, matching llmgw-mock's tokenizer.
class Workload {
 public:
  Workload(const WorkloadOptions& o, uint64_t seed) : o_(o), rng_(seed) {}
  bool Init(std::string* err);  // validates the distribution spec
  void Next(BuiltRequest* out);
  int SamplePromptTokens();
  // A prefix group (0 = most popular under --prefix-zipf); needs prefix_groups > 0.
  int SampleGroup();

 private:
  WorkloadOptions o_;
  std::mt19937_64 rng_;
  enum class Dist { kFixed, kUniform, kLognormal } dist_ = Dist::kFixed;
  double a_ = 64, b_ = 0;
  std::vector<double> zipf_cdf_;  // cumulative group weights, normalised to 1 (zipf only)
};

// What one SSE event (the text between blank lines, without them) means to the client.
// kError: the server ended the stream with an error (`event: error`, as llmgw sends when
// an upstream fails mid-stream, or a `data: {"error": ...}` payload, as vLLM sends); the
// request is a failure even though the HTTP status was 200.
enum class SseEvent { kOther, kToken, kError };
SseEvent ClassifySseEvent(std::string_view ev);

struct Target {
  std::string host;
  int port = 0;
};

struct LoadOptions {
  std::string host = "127.0.0.1";
  int port = 8000;
  // Oracle mode (non-empty): no gateway; a request of prefix group g goes straight to
  // affinity_targets[g % N] (perfect affinity, load ignored), one without a group round robin.
  std::vector<Target> affinity_targets;
  double rate = 0;        // >0: open loop, Poisson arrivals per second
  int concurrency = 0;    // >0: closed loop with this many connections
  double duration_s = 10;
  double warmup_s = 0;    // >0: steady-state figures over requests sent after this
  int64_t max_requests = 0;  // stop issuing after this many (0 = no limit)
  int timeout_ms = 60000;
  int max_connections = 20000;
  bool progress = false;  // live line on stderr
  uint64_t seed = 1;
};

// Runs the load; returns false with *err if it could not start.
bool RunLoad(const LoadOptions& lo, Workload& w, RunStats* out, std::string* err);

// Parses llmgw-bench's command line. Returns false with *err on a bad flag.
struct BenchArgs {
  LoadOptions load;
  WorkloadOptions work;
  std::string out_path;  // JSON results file ("" = stdout only)
  bool help = false;
  bool target_given = false;
};
bool ParseBenchArgs(int argc, char** argv, BenchArgs* a, std::string* err);
const char* BenchUsage();
std::string ConfigJson(const BenchArgs& a);

}  // namespace llmgw::bench
