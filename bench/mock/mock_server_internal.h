// Internals of llmgw-mock shared by its source files: the Conn/Req/Server declarations and
// the small formatting helpers. mock_server.cc holds the event loop, connection I/O, HTTP
// parsing and dispatch; mock_inference.cc the OpenAI endpoints and token emission;
// mock_admin.cc /v1/models, /mock/stats and /mock/faults; mock_options.cc the command line.
#pragma once

#include <llhttp.h>
#include <time.h>

#include <charconv>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <queue>
#include <random>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include <rapidjson/document.h>

#include "bench/mock/mock_server.h"

// A named namespace, not an anonymous one: Server's members are defined in several files.
namespace llmgw::mock::internal {

using JsonValue = rapidjson::GenericValue<rapidjson::UTF8<>, rapidjson::MemoryPoolAllocator<>>;
// Checks an Anthropic Messages request the way the API does (roles, content blocks,
// system, stop_sequences, tools, temperature) and collects its text as the prompt.
bool ExtractAnthropicPrompt(const JsonValue& d, std::string* prompt, std::string* err, std::string* param);
const char* AnthropicErrorTypeFor(int status);
const char* GoogleStatusFor(int status);  // the gemini flavour's error status names

constexpr size_t kMaxBodyBytes = 16u << 20;
constexpr size_t kMaxUrlBytes = 8192;

inline int64_t NowUs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000000 + ts.tv_nsec / 1000;
}

// FNV-1a, continued from `h` (the mock's context hash).
inline uint64_t Fnv1a(uint64_t h, std::string_view s) {
  for (char ch : s) h = (h ^ static_cast<unsigned char>(ch)) * 1099511628211ull;
  return h;
}
constexpr uint64_t kFnvBasis = 1469598103934665603ull;

inline uint64_t SplitMix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

inline void AppendJsonString(std::string* out, std::string_view s) {
  out->push_back('"');
  for (char ch : s) {
    unsigned char c = static_cast<unsigned char>(ch);
    if (c == '"' || c == '\\') {
      out->push_back('\\');
      out->push_back(ch);
    } else if (c < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", c);
      out->append(buf);
    } else {
      out->push_back(ch);
    }
  }
  out->push_back('"');
}

// to_chars, not snprintf: formatting showed up at ~6% of CPU in the fast path.
inline void AppendInt(std::string* out, int64_t v) {
  char buf[24];
  auto res = std::to_chars(buf, buf + sizeof buf, v);
  out->append(buf, static_cast<size_t>(res.ptr - buf));
}

using JsonAlloc = rapidjson::MemoryPoolAllocator<>;
using JsonDoc = rapidjson::GenericDocument<rapidjson::UTF8<>, JsonAlloc, JsonAlloc>;

enum class Api : uint8_t { kChat, kCompletion, kAnthropic /* POST /v1/messages */ };

struct Conn;

struct Req {
  uint64_t id = 0;
  Conn* conn = nullptr;
  Api api = Api::kChat;
  bool stream = false;
  bool include_usage = false;
  bool length_limited = false;  // finish_reason "length" rather than "stop"
  bool stalled = false;         // stall fault: nothing more is sent; waits for the client to go
  // The generated text is a function of the context before each word (prompt, then the
  // words so far), like greedy decoding: a continuation request (chat with
  // continue_final_message, completions with the text appended to the prompt) goes on
  // with exactly the words an unbroken request would have produced.
  uint64_t ctx_hash = 0;
  int prompt_tokens = 0;
  int output_tokens = 0;
  int sent = 0;
  int64_t arrival_us = 0;
  int64_t last_token_us = 0;
  int64_t created = 0;
  std::string prompt;  // kept only while the request waits for a slow-first-byte timer
};

struct Conn {
  int fd = -1;
  llhttp_t parser;
  std::string url;
  std::string body;
  bool body_too_large = false;
  bool url_too_long = false;
  bool keep_alive = true;
  uint8_t method = 0;
  std::string pending_in;  // bytes after a request whose answer is still in progress
  std::string out;
  size_t out_off = 0;
  bool want_write = false;
  bool close_after_flush = false;
  bool dead = false;
  uint64_t active_req = 0;  // 0 = none; the parser is paused while a request runs
  // The request headers a provider flavour checks (mock_providers.cc), and llhttp's
  // pieces of the header being read.
  std::string hdr_name, hdr_value;
  std::string h_authorization, h_api_key, h_x_api_key, h_anthropic_version, h_openai_organization;
  void KeepHeader();  // files hdr_name/hdr_value under one of the h_ fields, then clears them
};


class Server {
 public:
  Server(const MockOptions& o, int listen_fd, int loop_index)
      : opts_(o), faults_(o.faults), engine_(o.params), rng_(o.seed + static_cast<uint64_t>(loop_index)),
        listen_fd_(listen_fd) {
    // Response ids stay unique across --threads loops.
    next_req_id_ = 1 + (static_cast<uint64_t>(loop_index) << 40);
    immediate_ = o.params.token_interval_ms <= 0;
    if (faults_.die_after > 0) die_at_ = faults_.die_after;
    llhttp_settings_init(&settings_);
    settings_.on_message_begin = [](llhttp_t* p) -> int {
      Conn* c = static_cast<Conn*>(p->data);
      c->url.clear();
      c->body.clear();
      c->body_too_large = c->url_too_long = false;
      c->hdr_name.clear();
      c->hdr_value.clear();
      c->h_authorization.clear();
      c->h_api_key.clear();
      c->h_x_api_key.clear();
      c->h_anthropic_version.clear();
      c->h_openai_organization.clear();
      return 0;
    };
    settings_.on_header_field = [](llhttp_t* p, const char* at, size_t n) -> int {
      Conn* c = static_cast<Conn*>(p->data);
      if (c->hdr_name.size() + n <= 256) c->hdr_name.append(at, n);
      return 0;
    };
    settings_.on_header_value = [](llhttp_t* p, const char* at, size_t n) -> int {
      Conn* c = static_cast<Conn*>(p->data);
      if (c->hdr_value.size() + n <= 4096) c->hdr_value.append(at, n);
      return 0;
    };
    settings_.on_header_value_complete = [](llhttp_t* p) -> int {
      static_cast<Conn*>(p->data)->KeepHeader();
      return 0;
    };
    settings_.on_url = [](llhttp_t* p, const char* at, size_t n) -> int {
      Conn* c = static_cast<Conn*>(p->data);
      if (c->url.size() + n > kMaxUrlBytes) {
        c->url_too_long = true;
        return HPE_USER;
      }
      c->url.append(at, n);
      return 0;
    };
    settings_.on_body = [](llhttp_t* p, const char* at, size_t n) -> int {
      Conn* c = static_cast<Conn*>(p->data);
      if (c->body.size() + n > kMaxBodyBytes) {
        c->body_too_large = true;
        return HPE_USER;
      }
      c->body.append(at, n);
      return 0;
    };
    settings_.on_message_complete = [](llhttp_t* p) -> int {
      Conn* c = static_cast<Conn*>(p->data);
      c->keep_alive = llhttp_should_keep_alive(p) != 0;
      c->method = llhttp_get_method(p);
      return HPE_PAUSED;  // answer this request before parsing the next (pipelining)
    };
    scratch_.reserve(1 << 16);
  }

  // announce: print "listening 127.0.0.1:PORT" (shown_port when non-zero: the TLS front's).
  int Run(bool announce, uint16_t shown_port = 0);

 private:
  // --- connections and I/O ---
  void OnAccept();
  void OnReadable(Conn* c);
  void OnWritable(Conn* c);
  void ProcessBytes(Conn* c, const char* data, size_t len);
  void Send(Conn* c, std::string_view d);
  void SetWantWrite(Conn* c, bool on);
  void CloseConn(Conn* c);
  void FinishExchange(Conn* c);

  // --- requests ---
  // Returns true when the answer was written completely (parsing may go on).
  bool Dispatch(Conn* c);
  void SendSimple(Conn* c, int status, std::string_view content_type, std::string_view body,
                  std::string_view extra_headers = {});
  void SendError(Conn* c, int status, std::string_view message, std::string_view param = {});
  bool HandleInference(Conn* c, Api api);
  // Provider flavours (mock_providers.cc). ProviderRoute checks the flavour's headers and
  // path and maps it to the mock's own path; false after answering with the provider's error.
  bool ProviderRoute(Conn* c, std::string_view path, std::string* routed);
  void SendProviderError(Conn* c, int status, std::string_view type, std::string_view message);
  // The OpenAI-shaped flavours (openai, azure, gemini) refuse request fields their API does
  // not know, as the real ones do (vLLM's extras such as ignore_eos among them): false after
  // answering 400 in the provider's error shape.
  bool ProviderAcceptsFields(Conn* c, const JsonValue& body, Api api);
  void HandleAnthropicModels(Conn* c);
  void AppendAnthropicEvents(std::string* out, Req* r, int first_index, int count, bool finished);
  void AppendAnthropicMessage(std::string* out, Req* r);
  bool HandleEmbeddings(Conn* c);
  bool HandleResponses(Conn* c);  // POST /v1/responses (mock_responses.cc)
  void HandleModels(Conn* c);
  void HandleStats(Conn* c);
  void HandleFaultsGet(Conn* c);
  bool HandleFaultsPost(Conn* c);
  void StartRequest(Req* r, std::string_view prompt);
  void EmitTokens(Req* r, int first_index, int count, bool finished, int64_t now);
  void CompleteRequest(Req* r);
  void AppendWord(std::string* out, Req* r);
  void AppendChunkEvent(std::string* out, Req* r, int index, bool finished);
  void EndExchange(Req* r);
  void AppendUsage(std::string* out, const Req* r) const;
  void RunTimers();
  void RearmTimer();
  void CountRequestDone();
  // Inference requests finished in any way die_after counts: answered, failed, or cut.
  uint64_t DoneCount() const {
    return completed_total_ + errors_injected_ + closed_mid_stream_ + reset_mid_stream_ + stalled_mid_stream_ +
           error_events_mid_stream_;
  }

  const MockOptions& opts_;
  Faults faults_;
  EngineModel engine_;
  std::mt19937_64 rng_;
  bool immediate_ = false;
  int64_t die_at_ = 0;  // inference requests done at which the process exits (0 = never)
  int listen_fd_;
  int epfd_ = -1;
  int timer_fd_ = -1;
  int64_t armed_deadline_ = -1;
  llhttp_settings_t settings_;
  std::string scratch_;       // whole responses on their way to Send
  std::string body_scratch_;  // non-streaming response bodies
  std::string prompt_scratch_;
  std::vector<TokenEvent> events_;
  std::vector<Conn*> graveyard_;
  std::unordered_map<uint64_t, Req> reqs_;
  std::priority_queue<std::pair<int64_t, uint64_t>, std::vector<std::pair<int64_t, uint64_t>>,
                      std::greater<>>
      delayed_;  // (start time, request id) for slow-first-byte
  uint64_t next_req_id_ = 1;

  MockMetrics metrics_;
  uint64_t connections_total_ = 0, connections_open_ = 0, connections_refused_ = 0;
  const int64_t started_us_ = NowUs();  // /mock/stats uptime_seconds (utilisation windows)
  uint64_t http_requests_total_ = 0, requests_total_ = 0, completed_total_ = 0;
  uint64_t cancelled_total_ = 0, errors_injected_ = 0, closed_mid_stream_ = 0, bad_requests_ = 0;
  uint64_t provider_auth_failures_ = 0;  // requests a provider flavour refused for their key
  uint64_t reset_mid_stream_ = 0, stalled_mid_stream_ = 0, error_events_mid_stream_ = 0, garbage_events_mid_stream_ = 0;
};

}  // namespace llmgw::mock::internal
