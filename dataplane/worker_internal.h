// Internal to the data plane: the per-thread loop's constants, its clock, completion
// targets and the connection objects the worker files share. Not an API.
#pragma once

#include <llhttp.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <chrono>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>

#include "common/error.h"
#include "common/providers/anthropic_translate.h"
#include "common/routing/prefix.h"
#include "common/shm_layout.h"
#include "dataplane/access_log.h"
#include "dataplane/attempt.h"
#include "dataplane/client_session.h"
#include "dataplane/request_state.h"
#include "dataplane/response_writer.h"
#include "dataplane/small_str.h"
#include "dataplane/timer_wheel.h"
#include "dataplane/tls_session.h"
#include "dataplane/trace_context.h"
#include "dataplane/upstream_codec.h"
#include "dataplane/sse_relay.h"
#include "dataplane/stream_filter.h"

namespace llmgw::dataplane {

// Client input arrives in buffers the kernel picks from a per-thread ring (multishot recv
// with provided buffers), so an idle connection holds no receive buffer at all.
constexpr uint32_t kRecvBufCount = 1024;  // power of two
constexpr uint32_t kRecvBufSize = 4096;
constexpr uint16_t kRecvBufGroup = 1;
constexpr size_t kUpstreamInCap = 16384; // one upstream read; relayed before the next
constexpr size_t kTlsOutCap = 16384;     // ciphertext of an https upstream, one send
constexpr uint32_t kRingEntries = 4096;
constexpr uint32_t kCqEntries = 16384;
constexpr uint32_t kMaxIdlePerBackend = 64;
constexpr uint32_t kTickMs = 10;
// After SIGTERM, idle keep-alive connections stay open this long (at most drain_ms) so a
// request already on its way on one is answered rather than lost.
constexpr uint64_t kDrainIdleGraceMs = 1000;

inline uint64_t ClockUs() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::microseconds>(
                                   std::chrono::steady_clock::now().time_since_epoch())
                                   .count());
}
// The loop's clock: read once when the loop wakes up and once per turn, not per use
// (clock_gettime was several per cent of the CPU under load). Everything handled in one
// batch of completions sees the same time.
inline thread_local uint64_t t_now_us = 0;  // Run() sets it before the first use
inline void RefreshClock() { t_now_us = ClockUs(); }
inline uint64_t NowUs() { return t_now_us; }
inline uint64_t NowMs() { return t_now_us / 1000; }


class WorkerImpl;
struct Conn;

// Completion targets: a submission's user data is the address of the Completion it
// completes — the connection, and the worker's handler for that operation — so a
// completion is dispatched by one indirect call, without tag bits or a switch. Two user
// data values are not addresses: 0 (fire-and-forget: cancels) and odd ones (an accept:
// the listener's index << 1 | 1).
struct Completion {
  using Fn = void (*)(WorkerImpl* w, Conn* c, int res, uint32_t flags);
  Fn fn = nullptr;
  Conn* conn = nullptr;
  uint64_t user_data() const { return reinterpret_cast<uint64_t>(this); }
};
static_assert(alignof(Completion) >= 2, "bit 0 of a target's address marks accepts");
constexpr uint64_t kNoCompletion = 0;
inline uint64_t AcceptUserData(size_t listener) { return (static_cast<uint64_t>(listener) << 1) | 1; }


struct Conn {
  enum class Kind : uint8_t { kClient, kUpstream } kind;
  int fd = -1;
  uint32_t pending_ops = 0;
  bool closed = false;
  explicit Conn(Kind k) : kind(k) {}
};

struct ClientConn;

struct UpstreamConn : Conn {
  UpstreamConn() : Conn(Kind::kUpstream) {}
  uint16_t slot = 0;
  uint64_t backend_key = 0;
  ClientConn* client = nullptr;  // the request it serves now; null when idle
  UpstreamCodec codec{this};     // the request's bytes out, the response parsed
  Completion connect_done, send_done, recv_done;  // bound by the worker (WorkerImpl::Bind)
  char in[kUpstreamInCap];
  bool connected = false;
  bool reused = false;
  bool recv_armed = false;
  bool send_armed = false;
  msghdr msg{};
  sockaddr_storage addr{};
  socklen_t addr_len = 0;
  // https backends (docs/DATAPLANE.md "Upstream TLS"): the session lives with the pooled
  // connection, so a reused one skips the handshake. The ring moves ciphertext: recvs
  // land in `in` and are fed to the session (then `in` takes the plaintext), sends go out
  // of tls_out, allocated the first time this object serves https and kept with it.
  bool tls = false;
  bool tls_request_waits = false;  // the request is encrypted once the handshake is done
  uint64_t tls_fingerprint = 0;    // the TLS settings the session was made with
  TlsSession tls_session;
  std::unique_ptr<char[]> tls_out;
  size_t tls_out_len = 0, tls_out_off = 0;
  // A recycled object for a new socket: every field as new, the head's capacity kept.
  void ResetForReuse() {
    fd = -1;
    pending_ops = 0;
    closed = false;
    client = nullptr;
    connected = reused = recv_armed = send_armed = false;
    tls = tls_request_waits = false;
    tls_fingerprint = 0;
    tls_session.Reset();
    tls_out_len = tls_out_off = 0;
    codec.Reset();
  }
};

struct ClientConn : Conn {
  ClientConn() : Conn(Kind::kClient) {}
  ClientSession session;  // parsing, limits, pipelining order, keep-alive
  Completion recv_done, send_done;  // bound by the worker (WorkerImpl::Bind)
  bool recv_armed = false;    // a multishot recv is active
  bool recv_paused = false;   // stopped on purpose (pending input full)
  bool recv_starved = false;  // the buffer ring ran dry; re-armed by the tick
  bool send_armed = false;
  bool peer_closed = false;
  size_t list_index = 0;  // position in the worker's client list
  size_t out_off = 0;
  TimerNode timer;           // in the loop's TimerWheel at the earliest deadline below
  uint64_t deadline_ms = 0;  // client-side deadline (header/body/idle)
  uint64_t send_deadline_ms = 0;  // what we queued must be taken by then (client_send_ms)
  uint64_t addr_key = 0;          // ClientAddressLimiter key of the peer (0: not tracked)
  bool addr_counted = false;      // the current request counts against its address
  int deadline_status = 0;   // 408 for header/body timeouts, 0 for idle close

  RequestState* h = nullptr;  // taken from the thread's pool while a request is around

  // --- current request (dispatch; session.busy() while it is answered) ---
  bool response_done = false; // whole response queued in out
  bool streaming = false;
  ResponseWriter rw;  // the answer's framing toward the client
  SseRelay relay;     // what is read from the answer on the way (SSE, usage)
  uint64_t start_us = 0;
  uint64_t first_byte_us = 0;
  uint64_t first_token_us = 0;  // first piece of a streamed (SSE) answer; 0: none yet
  uint64_t attempt_start_us = 0;  // when the current attempt picked its backend
  uint64_t total_deadline_ms = 0;
  uint64_t up_deadline_ms = 0;  // connect / first byte / idle deadline of the attempt
  uint8_t up_deadline_kind = 0; // 1 connect, 2 first byte, 3 idle
  int status = 0;
  bool has_model = false;      // the request named a known model (counted per model)
  Attempt attempt;             // backends tried, fallbacks, retries, the last error
  bool queued = false;         // waiting in the admission queue
  int32_t priority = 0;
  uint32_t retry_after_s = 0;  // Retry-After on a 429 from admission
  size_t model_begin = 0, model_end = 0;
  char api_path[32];
  UpstreamConn* up = nullptr;
  uint64_t bytes_in = 0, bytes_out = 0;
  // --- the request's client API key and limits (keys.cc) ---
  int32_t key_slot = -1;            // -1: anonymous (or not yet known)
  int32_t key_model = -1;           // model slot the key's counters are kept under
  uint64_t key_hash = 0;            // KeyEntry::id_hash, or the anonymous hash
  bool key_conc_held = false;       // holds one of the key's max_concurrent slots
  bool tpm_live = false;            // the key has a tpm limit: streamed tokens are charged as they come
  uint32_t tpm_events = 0;          // SSE events relayed on the byte path (about one token each)
  uint64_t tpm_charged = 0;         // tokens charged while streaming (EndKeyRequest settles the rest)
  SmallStr<384> rl_headers;         // x-ratelimit-* lines, on every answer of a limited key

  // --- stream resume and usage stripping (docs/DATAPLANE.md, "Streams that survive
  // their backend"); buffers from the worker's BufferPool while a request holds them ---
  bool chat = false;             // /v1/chat/completions (else completions)
  bool filter_wanted = false;    // a stream that needs StreamFilter (resume on, or usage to strip)
  bool filtering = false;        // ... and the answer is SSE: bytes go through `filter`
  bool add_usage = false;        // the client streams without include_usage: asked anyway
  bool continuing = false;       // the current attempt is a continuation
  bool resumed = false;          // a continuation got a backend at least once
  uint8_t stream_error = 0;      // this attempt's stream broke: 1 an error event, 2 no [DONE],
                                 // 3 not translatable (an Anthropic stream that is not its shape)
  uint64_t commit_us = 0;        // when the answer's head was written (the client's TTFB)
  ResumeOutcome resume_outcome = ResumeOutcome::kCount;  // kCount: the stream never broke
  // Taken from the worker's stock while a stream needs it: an idle connection holds none.
  StreamFilter* filter = nullptr;
  std::string* up_body = nullptr;  // the body sent upstream when it is not the client's

  // --- a backend whose provider translates (Anthropic, docs/DATAPLANE.md "Hosted
  // providers"): the request body in its shape, the answer translated back; pooled
  // buffers and a translator from the worker's stock while the request holds them ---
  bool xlate = false;             // this attempt's backend translates
  // this attempt's provider rewrites its error answers into OpenAI's shape (Gemini's);
  // null: they pass as they are
  const providers::Provider* reshape_errors = nullptr;
  bool xlate_stream = false;      // ... and the answer is streamed
  bool xlate_buffering = false;   // a whole (non-streamed) answer is collected in xlate_answer
  int xlate_status = 0;           // its status
  std::string* xlate_body = nullptr;    // the translated request
  std::string* xlate_answer = nullptr;  // the collected answer
  providers::AnthropicStreamTranslator* translator = nullptr;

  // --- tracing and the access log's per-attempt notes (span_recorder.h, access_log.h) ---
  TraceContext trace;             // begun for API requests when tracing is on
  bool trace_begun = false;
  uint64_t start_unix_ns = 0;     // wall clock at start_us (sampled traces only)
  bool attempt_open = false;      // an attempt span started and not yet recorded
  char traceparent_out[kTraceparentLen];  // what the current attempt sends upstream
  AttemptNote notes[kMaxAttemptNotes];
  unsigned n_notes = 0;
  uint32_t log_flags = 0;         // AccessFlag bits
  char client_addr[56] = {};      // "ip:port", filled at accept when the access log is on
};

}  // namespace llmgw::dataplane
