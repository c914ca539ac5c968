// llmgw-mock's server: options, the single-threaded epoll event loop, HTTP/1.1 via llhttp,
// the OpenAI/vLLM endpoints, the /mock admin paths and fault injection.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "bench/mock/engine_model.h"
#include "bench/mock/mock_metrics.h"

namespace llmgw::mock {

struct Faults {
  double error_rate = 0;         // fraction of inference requests answered with error_status
  int error_status = 500;        // 500, 429 or 503 (any 4xx/5xx accepted)
  bool hang_first_byte = false;  // accept the request, never answer
  int slow_first_byte_ms = 0;    // delay before the request enters the engine
  int close_mid_stream_after = 0;  // close the connection after this many tokens (0 = off)
  // Streams only (what a gateway's stream resume must survive), after this many tokens:
  int reset_mid_stream_after = 0;        // reset the connection (RST)
  int stall_mid_stream_after = 0;        // send nothing more, keep the connection open
  int error_event_mid_stream_after = 0;  // an `error` event, then [DONE] (as vLLM does)
  // An event whose data is cut JSON (not the provider's stream), then the HTTP answer ends
  // cleanly: what a gateway that parses or translates the stream must not pass off as done.
  int garbage_event_mid_stream_after = 0;
  bool refuse_connections = false; // reset every new connection right after accept
  int64_t die_after = 0;           // exit after this many inference requests (0 = never)
};

// Which API the mock speaks (--provider): plain vLLM/OpenAI-compatible, or a hosted
// provider's flavour that checks that provider's headers, paths and request shape and
// answers in its shape (docs/MOCK.md "Provider flavours").
enum class MockProvider : uint8_t { kNone = 0, kOpenAi, kAzure, kAnthropic, kGemini };

struct MockOptions {
  std::string listen = "127.0.0.1:8000";
  std::string model = "mock-model";
  EngineFlavor engine = EngineFlavor::kVllm;
  EngineParams params;
  int output_tokens = 64;
  int max_model_len = 32768;
  int embedding_dim = 16;
  uint64_t seed = 1;
  int threads = 1;
  Faults faults;
  MockProvider provider = MockProvider::kNone;
  std::string api_key = "mock-key";   // the key a provider flavour accepts
  std::string deployment = "mock-deployment";  // azure flavour
  std::string organization;           // openai flavour: when set, OpenAI-Organization must name it
  std::string tls_cert, tls_key;      // --tls CERT KEY: serve HTTPS
};

// Parses argv; on error writes a message to *err and returns false. --help sets *help.
bool ParseMockArgs(int argc, char** argv, MockOptions* out, std::string* err, bool* help);
const char* MockUsage();

// Runs the server until the process is killed (or die_after fires). Prints
// "listening 127.0.0.1:PORT" on stdout once it accepts. Returns a process exit code.
int RunMockServer(const MockOptions& opts);

}  // namespace llmgw::mock
