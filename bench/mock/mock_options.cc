// llmgw-mock's command line: --help text and the parser that fills MockOptions.
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "bench/mock/mock_server.h"

namespace llmgw::mock {

namespace {

bool ParseInt(const std::string& s, int64_t lo, int64_t hi, int64_t* out) {
  char* end = nullptr;
  errno = 0;
  long long v = std::strtoll(s.c_str(), &end, 10);
  if (errno || end == s.c_str() || *end || v < lo || v > hi) return false;
  *out = v;
  return true;
}

bool ParseDouble(const std::string& s, double lo, double hi, double* out) {
  char* end = nullptr;
  double v = std::strtod(s.c_str(), &end);
  if (end == s.c_str() || *end || !(v >= lo && v <= hi)) return false;
  *out = v;
  return true;
}

}  // namespace

const char* MockUsage() {
  return "usage: llmgw-mock --listen HOST:PORT --model NAME [options]\n"
         "  --listen HOST:PORT          address (PORT 0 = any; prints 'listening HOST:PORT')\n"
         "  --model NAME                served model name (default mock-model)\n"
         "  --engine vllm|sglang|tgi|llamacpp   metric names on /metrics (default vllm)\n"
         "  --threads N                 event loops sharing the port via SO_REUSEPORT (default 1)\n"
         "model:\n"
         "  --max-num-seqs N            requests running at once (default 64)\n"
         "  --kv-capacity-tokens N      KV cache size in tokens (default 131072)\n"
         "  --block-size N              prefix-cache block in tokens (default 16)\n"
         "  --prefix-cache-blocks N     prefix-cache LRU capacity in blocks (default 8192, 0 = off)\n"
         "  --token-interval-ms X       decode step with one sequence (default 25; 0 = as fast as possible)\n"
         "  --decode-batch-factor X     step slowdown per extra running sequence (default 0.02)\n"
         "  --prefill-us-per-token X    prefill cost per uncached prompt token (default 40)\n"
         "  --speed X                   divides all durations (default 1.0)\n"
         "  --output-tokens N           tokens before EOS when max_tokens allows (default 64)\n"
         "  --max-model-len N           context length; longer prompts get 400 (default 32768)\n"
         "  --embedding-dim N           /v1/embeddings vector size (default 16)\n"
         "  --seed N                    generated text and fault dice (default 1)\n"
         "  --tls CERT KEY              serve HTTPS with this certificate chain and key (PEM)\n"
         "  --provider openai|azure|anthropic|gemini   speak a hosted provider's API (headers,\n"
         "                              paths, request and answer shapes); default: vLLM's\n"
         "  --api-key KEY               key a provider flavour accepts (default mock-key)\n"
         "  --deployment NAME           azure flavour's deployment (default mock-deployment)\n"
         "  --organization ORG          openai flavour: requests must name it in OpenAI-Organization\n"
         "faults (also at runtime: POST /mock/faults):\n"
         "  --error-rate X --error-status N --hang-first-byte --slow-first-byte-ms N\n"
         "  --close-mid-stream-after N (alias --die-after-chunks N) --refuse-connections --die-after N\n"
         "  --reset-after-chunks N --stall-after-chunks N --error-event-after-chunks N\n"
         "  --garbage-event-after-chunks N   (streams)\n";
}

bool ParseMockArgs(int argc, char** argv, MockOptions* o, std::string* err, bool* help) {
  *help = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i], v;
    size_t eq = a.find('=');
    bool has_inline = a.rfind("--", 0) == 0 && eq != std::string::npos;
    if (has_inline) {
      v = a.substr(eq + 1);
      a = a.substr(0, eq);
    }
    auto flag_only = [&](bool* dst) {
      if (has_inline) return false;
      *dst = true;
      return true;
    };
    auto value = [&]() -> bool {
      if (has_inline) return true;
      if (i + 1 >= argc) return false;
      v = argv[++i];
      return true;
    };
    int64_t n = 0;
    double x = 0;
    bool ok = true;
    if (a == "-h" || a == "--help") {
      *help = true;
      return true;
    } else if (a == "--hang-first-byte") {
      ok = flag_only(&o->faults.hang_first_byte);
    } else if (a == "--refuse-connections") {
      ok = flag_only(&o->faults.refuse_connections);
    } else if (a == "--tls") {
      if (has_inline || i + 2 >= argc) {
        *err = "--tls: expects CERT KEY";
        return false;
      }
      o->tls_cert = argv[++i];
      o->tls_key = argv[++i];
    } else if (!value()) {
      *err = a + ": missing value";
      return false;
    } else if (a == "--provider") {
      if (v == "openai") o->provider = MockProvider::kOpenAi;
      else if (v == "azure") o->provider = MockProvider::kAzure;
      else if (v == "anthropic") o->provider = MockProvider::kAnthropic;
      else if (v == "gemini") o->provider = MockProvider::kGemini;
      else ok = false;
    } else if (a == "--api-key") {
      ok = !v.empty();
      o->api_key = v;
    } else if (a == "--deployment") {
      ok = !v.empty();
      o->deployment = v;
    } else if (a == "--organization") {
      ok = !v.empty();
      o->organization = v;
    } else if (a == "--listen") {
      o->listen = v;
    } else if (a == "--model") {
      ok = !v.empty();
      o->model = v;
    } else if (a == "--engine") {
      ok = ParseEngineFlavor(v, &o->engine);
    } else if (a == "--threads") {
      ok = ParseInt(v, 1, 64, &n);
      o->threads = static_cast<int>(n);
    } else if (a == "--max-num-seqs") {
      ok = ParseInt(v, 1, 1 << 20, &n);
      o->params.max_num_seqs = static_cast<int>(n);
    } else if (a == "--kv-capacity-tokens") {
      ok = ParseInt(v, 1, int64_t{1} << 40, &n);
      o->params.kv_capacity_tokens = n;
    } else if (a == "--block-size") {
      ok = ParseInt(v, 1, 4096, &n);
      o->params.block_size_tokens = static_cast<int>(n);
    } else if (a == "--prefix-cache-blocks") {
      ok = ParseInt(v, 0, int64_t{1} << 30, &n);
      o->params.prefix_cache_blocks = static_cast<size_t>(n);
    } else if (a == "--token-interval-ms") {
      ok = ParseDouble(v, 0, 1e6, &o->params.token_interval_ms);
    } else if (a == "--decode-batch-factor") {
      ok = ParseDouble(v, 0, 1e3, &o->params.decode_batch_factor);
    } else if (a == "--prefill-us-per-token") {
      ok = ParseDouble(v, 0, 1e6, &o->params.prefill_us_per_token);
    } else if (a == "--speed") {
      ok = ParseDouble(v, 1e-3, 1e3, &o->params.speed);
    } else if (a == "--output-tokens") {
      ok = ParseInt(v, 1, 1 << 20, &n);
      o->output_tokens = static_cast<int>(n);
    } else if (a == "--max-model-len") {
      ok = ParseInt(v, 1, 1 << 24, &n);
      o->max_model_len = static_cast<int>(n);
    } else if (a == "--embedding-dim") {
      ok = ParseInt(v, 1, 65536, &n);
      o->embedding_dim = static_cast<int>(n);
    } else if (a == "--seed") {
      ok = ParseInt(v, 0, INT64_MAX, &n);
      o->seed = static_cast<uint64_t>(n);
    } else if (a == "--error-rate") {
      ok = ParseDouble(v, 0, 1, &x);
      o->faults.error_rate = x;
    } else if (a == "--error-status") {
      ok = ParseInt(v, 400, 599, &n);
      o->faults.error_status = static_cast<int>(n);
    } else if (a == "--slow-first-byte-ms") {
      ok = ParseInt(v, 0, 1 << 30, &n);
      o->faults.slow_first_byte_ms = static_cast<int>(n);
    } else if (a == "--close-mid-stream-after" || a == "--die-after-chunks") {
      ok = ParseInt(v, 0, 1 << 30, &n);
      o->faults.close_mid_stream_after = static_cast<int>(n);
    } else if (a == "--reset-after-chunks") {
      ok = ParseInt(v, 0, 1 << 30, &n);
      o->faults.reset_mid_stream_after = static_cast<int>(n);
    } else if (a == "--stall-after-chunks") {
      ok = ParseInt(v, 0, 1 << 30, &n);
      o->faults.stall_mid_stream_after = static_cast<int>(n);
    } else if (a == "--error-event-after-chunks") {
      ok = ParseInt(v, 0, 1 << 30, &n);
      o->faults.error_event_mid_stream_after = static_cast<int>(n);
    } else if (a == "--garbage-event-after-chunks") {
      ok = ParseInt(v, 0, 1 << 30, &n);
      o->faults.garbage_event_mid_stream_after = static_cast<int>(n);
    } else if (a == "--die-after") {
      ok = ParseInt(v, 0, INT64_MAX, &n);
      o->faults.die_after = n;
    } else {
      *err = "unknown option " + a;
      return false;
    }
    if (!ok) {
      *err = a + ": invalid value '" + v + "'";
      return false;
    }
  }
  size_t colon = o->listen.rfind(':');
  int64_t port = 0;
  if (colon == std::string::npos || !ParseInt(o->listen.substr(colon + 1), 0, 65535, &port)) {
    *err = "--listen: expected HOST:PORT, got '" + o->listen + "'";
    return false;
  }
  return true;
}

}  // namespace llmgw::mock
