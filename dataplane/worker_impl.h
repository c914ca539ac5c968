// Internal to the data plane: the worker, which wires the components together. It is the
// Handler of every connection's ClientSession (client_session.h: parsing, limits,
// pipelining) and UpstreamCodec (upstream_codec.h: request bytes, response parsing). Its
// member functions live in one file per step (worker.cc: ring, loop, dispatch, timers,
// accept; client_conn.cc; endpoints.cc; attempts.cc; upstream.cc; relay.cc; stats.cc).
#pragma once

#include <liburing.h>
#include <llhttp.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/config.h"
#include "common/error.h"
#include "common/routing/admission.h"
#include "common/routing/router.h"
#include "common/shm.h"
#include "common/snapshot_builder.h"
#include "dataplane/access_log.h"
#include "dataplane/client_session.h"
#include "dataplane/client_address_limiter.h"
#include "dataplane/error_reply.h"
#include "dataplane/http_text.h"
#include "dataplane/key_cache.h"
#include "dataplane/loop.h"
#include "dataplane/rng.h"
#include "dataplane/thread_limiter.h"
#include "dataplane/span_recorder.h"
#include "dataplane/thread_stats.h"
#include "dataplane/upstream_codec.h"
#include "dataplane/upstream_pool.h"
#include "dataplane/upstream_tls.h"
#include "dataplane/worker.h"
#include "dataplane/worker_internal.h"

namespace llmgw::dataplane {

// UpstreamCodec::Handler first: its OnResponseBody runs per body piece, and the first
// base's virtual calls need no this-adjusting thunk.
class WorkerImpl final : private UpstreamCodec::Handler, private ClientSession::Handler {
 public:
  WorkerImpl(const Config& cfg, shm::ShmRegion* region, uint32_t index, std::vector<int> listen_fds)
      : cfg_(cfg), region_(region), index_(index), listen_fds_(std::move(listen_fds)),
        accept_armed_(listen_fds_.size(), 0), reader_(region) {}

  ~WorkerImpl() {
    for (ClientConn* c : free_clients_) delete c;
    for (RequestState* r : free_requests_) delete r;
    for (StreamFilter* f : free_filters_) delete f;
    for (providers::AnthropicStreamTranslator* t : free_translators_) delete t;
  }

  Status Init();

  void Run();

 private:
  // ------------------------------------------------------------------ ring helpers
  io_uring_sqe* Sqe() { return loop_.Sqe(); }

  // Listener i's accept; its completions carry i (AcceptUserData).
  void ArmAccept(size_t i);

  // A connection's completion targets name the handlers below (worker_internal.h).
  static void ClientRecvDone(WorkerImpl* w, Conn* c, int res, uint32_t flags) {
    w->OnClientRecv(static_cast<ClientConn*>(c), res, flags);
  }
  static void ClientSendDone(WorkerImpl* w, Conn* c, int res, uint32_t) {
    w->OnClientSend(static_cast<ClientConn*>(c), res);
  }
  static void UpConnectDone(WorkerImpl* w, Conn* c, int res, uint32_t) {
    w->OnUpConnect(static_cast<UpstreamConn*>(c), res);
  }
  static void UpSendDone(WorkerImpl* w, Conn* c, int res, uint32_t) { w->OnUpSend(static_cast<UpstreamConn*>(c), res); }
  static void UpRecvDone(WorkerImpl* w, Conn* c, int res, uint32_t) { w->OnUpRecv(static_cast<UpstreamConn*>(c), res); }
  static void Bind(ClientConn* c) {
    c->recv_done = {&ClientRecvDone, c};
    c->send_done = {&ClientSendDone, c};
  }
  static void Bind(UpstreamConn* u) {
    u->connect_done = {&UpConnectDone, u};
    u->send_done = {&UpSendDone, u};
    u->recv_done = {&UpRecvDone, u};
  }

  void Dispatch(uint64_t ud, int res, uint32_t flags);

  void MaybeFree(Conn* c);

  // ------------------------------------------------------------------ snapshot, tick
  void RefreshSnapshot();

  void Tick(uint64_t now);

  void CheckDeadlines(ClientConn* c, uint64_t now);

  // The earliest of the connection's deadlines (0: none), and its timer moved there when
  // that is sooner than where it is (a later deadline lets the timer fire early, find
  // nothing due and move on: no relink per deadline that only moves later).
  uint64_t NextDeadline(const ClientConn* c) const;
  void ScheduleDeadline(ClientConn* c) {
    uint64_t t = NextDeadline(c);
    if (!t) return loop_.timers().Cancel(&c->timer);
    if (!c->timer.linked() || t < c->timer.at_ms) loop_.timers().Schedule(&c->timer, t);
  }

  void StartDrain();

  // drain_ms passed: what is still being answered is ended now — a stream with the SSE
  // error event, an answer not begun with 503 — rather than cut without a word.
  void CutAtDrainDeadline();

  // ------------------------------------------------------------------ accept / client io
  void OnAccept(size_t listener, int res, uint32_t flags);

  void NewClient(int fd);

  void ArmClientRecv(ClientConn* c);

  void PauseClientRecv(ClientConn* c);

  char* RecvBuf(uint32_t bid) { return loop_.RecvBuf(bid); }
  void ReturnRecvBuf(uint32_t bid) { loop_.ReturnRecvBuf(bid); }

  void OnClientRecv(ClientConn* c, int res, uint32_t flags);

  // The session parses straight from the ring buffer when it holds nothing.
  void FeedClient(ClientConn* c, const char* data, size_t n);

  void CloseClient(ClientConn* c);

  void QueueSend(ClientConn* c);

  void OnClientSend(ClientConn* c, int res);

  // Everything queued reached the socket: finish the request, or read more upstream.
  void AfterClientDrained(ClientConn* c);

  void AcquireRequest(ClientConn* c);

  void ReleaseRequest(ClientConn* c);

  void FinishRequest(ClientConn* c);

  // ------------------------------------------------------------------ ClientSession::Handler
  // What a connection's session parsed (client_session.h); owner() is the ClientConn.
  RequestState* AcquireRequest(ClientSession* s) override;
  void OnRequestStarted(ClientSession* s) override;  // the header deadline
  void OnHeadComplete(ClientSession* s, bool sent_continue) override;  // the body deadline
  void OnRequest(ClientSession* s) override;
  void OnBadRequest(ClientSession* s, const Error& e) override;

  // Forwarded header lines take at most a little more than their bytes on the wire ("a:b"
  // becomes "a: b"), which max_header_bytes bounds.
  size_t HeaderCap() const { return cfg_.gateway.max_header_bytes + cfg_.gateway.max_header_bytes / 4 + 64; }


  // ------------------------------------------------------------------ local answers
  void BeginResponse(ClientConn* c);

  // `content_type` empty: none of llmgw's own (a relayed answer brings its own in
  // `relayed`, the upstream's end-to-end header lines).
  void WriteHead(ClientConn* c, int status, std::string_view content_type, int64_t content_length,
                 std::string_view relayed = {});

  void SendLocal(ClientConn* c, int status, std::string_view body, std::string_view ct = "application/json");

  // OpenAI-shaped error. `fatal`: the connection closes after it (broken framing).
  void SendError(ClientConn* c, int status, std::string_view message, std::string_view type,
                 const char* param, std::string_view code, bool fatal = false);
  // The answer to a failure: status, type and code from the one table (error_reply.h).
  void SendFailure(ClientConn* c, const Error& e, bool fatal = false);

  bool AnyEligible();

  void SendModels(ClientConn* c);

  int FindModel(std::string_view name, bool* via_alias);

  // ------------------------------------------------------------------ request handling
  void HandleRequest(ClientConn* c);

  // One pick from the router; on no backend, walk the model's fallbacks.
  void StartAttempt(ClientConn* c);

  void Enqueue(ClientConn* c);

  void RejectOverloaded(ClientConn* c);

  // A backend slot freed up: let the best waiter try again (one per freed slot).
  void AdmitWaiting();

  void SetUpDeadline(ClientConn* c, uint8_t kind, uint32_t ms);

  // The request for backend `be` into u's codec: the provider's path and credentials
  // (common/providers), Anthropic's body translated. An error fails the attempt.
  Status BuildUpstreamRequest(ClientConn* c, UpstreamConn* u, const shm::BackendEntry& be);

  void ArmUpSend(UpstreamConn* u);

  void OnUpConnect(UpstreamConn* u, int res);

  void OnUpSend(UpstreamConn* u, int res);

  // A pooled connection the server had closed meanwhile: not the backend's fault, so try
  // again at once (the next pooled or a new connection), without spending a retry.
  void RetryStale(ClientConn* c);

  void ArmUpRecv(UpstreamConn* u);

  void OnUpRecv(UpstreamConn* u, int res);
  // The upstream closed (res 0) or its read failed: a close-delimited end, a stale pooled
  // connection, or a failure.
  void OnUpClosed(UpstreamConn* u, ClientConn* c, int res);
  // Answer bytes through the codec; false when that ended the attempt.
  bool ParseUp(UpstreamConn* u, ClientConn* c, const char* p, size_t n);
  // After a read: release when complete, relay to the client, or read on.
  void AfterUpParse(UpstreamConn* u, ClientConn* c);

  // ------------------------------------------------------------------ https upstreams (upstream.cc)
  // A new connection to https backend `slot` gets its TlsSession (SNI, verification,
  // resumption from the thread's cache).
  Status StartTls(UpstreamConn* u, int slot, const shm::BackendEntry& be);
  // Handshake step; when done, the waiting request is encrypted and sent.
  void TlsAdvance(UpstreamConn* u);
  Status TlsWriteRequest(UpstreamConn* u);
  // Sends the session's pending ciphertext (one send at a time).
  void TlsFlush(UpstreamConn* u);
  // A TLS failure: a refused certificate or failed handshake is a connect failure.
  void TlsFailed(UpstreamConn* u, const Error& e);
  void OnUpTlsRecv(UpstreamConn* u, ClientConn* c, size_t n);

  // ------------------------------------------------------------------ UpstreamCodec::Handler
  // What a connection's codec parsed (upstream_codec.h); owner() is the UpstreamConn.
  // The final head: a 5xx / 429 not yet committed is refused (retry), else written out.
  bool OnResponseHead(UpstreamCodec* codec, int status, int64_t content_length) override;
  void OnResponseBody(UpstreamCodec* codec, const char* at, size_t n) override;
  void OnResponseComplete(UpstreamCodec* codec) override;
  // The answer ended cleanly but its stream did not (an error event, no [DONE]).
  void StreamBroke(ClientConn* c, UpstreamConn* u);
  // A body piece on its way to the client (SSE accounting, StreamFilter, framing).
  void RelayBody(ClientConn* c, const char* at, size_t n);
  // Anthropic (providers that translate): a streamed answer through a translator from the
  // stock, a whole one collected and translated at its end (errors in OpenAI's shape).
  static constexpr size_t kMaxTranslatedAnswer = 8u << 20;
  static constexpr size_t kTranslatedSliceOut = 64 * 1024;
  void BeginTranslatedStream(ClientConn* c);
  void TranslateBody(ClientConn* c, const char* at, size_t n);
  void FinishTranslatedAnswer(ClientConn* c);
  void ReleaseTranslation(ClientConn* c);


  // Detaches the client's upstream: back to the pool when reusable, else closed.
  void ReleaseUpstream(ClientConn* c, bool keep);

  // The one place a failed attempt is judged: retry, fallback, or the client's answer.
  void UpstreamFailed(ClientConn* c, const Error& e);

  // A stream's backend failed after bytes went to the client: continue it on another
  // backend when that is possible (true), else record why not (false).
  bool TryResume(ClientConn* c, const Error& e);
  // The stream cannot go on: `why` is logged and counted, the client gets `e`'s SSE error.
  void ResumeImpossible(ClientConn* c, ResumeOutcome why, const Error& e);
  // Gives back what the request held for StreamFilter.
  void ReleaseStreamBuffers(ClientConn* c);

  // Bytes already went to the client: a stream ends with the SSE error event `reply` (on
  // a line of its own), anything else is cut; the connection closes after it.
  void EndCommittedWithError(ClientConn* c, const ErrorReply& reply, std::string_view message);

  void EndRequestStats(ClientConn* c, int status);
  // ------------------------------------------------------------------ keys and limits (keys.cc)
  // Who the request is (401 when it may not come in); false when it was answered.
  bool AuthenticateClient(ClientConn* c);
  // The key may use model m, and every limit (global, model, key) admits the request
  // (403 / 429 otherwise); false when it was answered.
  bool AdmitLimits(ClientConn* c, int m);
  // The request is over: its key's concurrency slot back, its tokens charged, counted.
  void EndKeyRequest(ClientConn* c, int status);
  void ChargeStreamedTokens(ClientConn* c, std::string_view piece);
  // x-ratelimit-{limit,remaining,reset}-{requests,tokens} for the request's key.
  void FormatRateLimitHeaders(ClientConn* c);
  // Tracing (tracing.otlp_endpoint): the request's trace context from its traceparent,
  // then one span per finished attempt (status 0: no answer) and one for the request.
  void BeginTrace(ClientConn* c);
  void EndAttempt(ClientConn* c, uint16_t status, ErrorKind kind);

  uint64_t NextRandom() { return rng_.Next(); }

  const Config& cfg_;
  shm::ShmRegion* region_;
  uint32_t index_;
  std::vector<int> listen_fds_;
  std::vector<uint8_t> accept_armed_;  // per listener
  Loop loop_;  // the ring, the receive buffers, the timer wheel (declared before the pool)
  bool multishot_accept_ = true;
  bool accept_backoff_ = false;     // accept hit EMFILE/ENFILE; the next tick re-arms it
  uint64_t accept_emfile_ = 0;      // how often (logged at most once a second)
  uint64_t next_emfile_log_ms_ = 0;
  // This thread's share of gateway.max_connections (at least 1).
  size_t max_clients_ = std::max<size_t>(1, cfg_.gateway.max_connections / cfg_.gateway.EffectiveThreads());
  uint64_t rejected_conns_ = 0;     // connections closed at accept over that share
  // gateway.max_requests_per_client, this thread's share (rounded up).
  ClientAddressLimiter addr_limiter_{
      (cfg_.gateway.max_requests_per_client + cfg_.gateway.EffectiveThreads() - 1) / cfg_.gateway.EffectiveThreads(),
      static_cast<uint32_t>(std::min<size_t>(max_clients_, 1u << 20))};
  uint64_t next_reject_log_ms_ = 0;
  uint64_t recv_no_buffers_ = 0;    // client recvs that found the buffer ring empty (ENOBUFS)
  bool draining_ = false;
  uint64_t drain_deadline_ms_ = 0;
  uint64_t drain_idle_close_ms_ = 0;  // idle keep-alive connections close from then on
  bool drain_cut_ = false;            // CutAtDrainDeadline ran; now only flushing
  ThreadStats stats_;
  ThreadLimiter limiter_;  // this thread's leases of every limit (thread_limiter.h)
  KeyCache key_cache_;     // secrets this thread verified in this snapshot (key_cache.h)
  const uint64_t anonymous_hash_ = BackendKey(kAnonymousKeyId);  // key="anonymous" rows
  AccessLog access_log_;
  SpanRecorder spans_;
  uint64_t reopen_seen_ = 0;  // the g_reopen_logs generation the access log was opened at
  shm::SnapshotReader reader_;
  std::unique_ptr<shm::Snapshot> snap_;
  bool has_snapshot_ = false;
  routing::Router router_;
  std::vector<routing::LocalLoad> local_;
  UpstreamPool pool_;
  UpstreamTlsContexts tls_ctx_;  // per https backend slot; synced with each snapshot
  std::string tls_gather_;       // a request's pieces gathered into one TLS record
  std::vector<ClientConn*> clients_;
  std::vector<ClientConn*> free_clients_;
  std::vector<RequestState*> free_requests_;
  int64_t live_conns_ = 0;
  std::unique_ptr<routing::AdmissionQueue> admission_;
  uint32_t admit_credits_ = 0;  // backend slots freed since the last admission pass  // connection objects not yet released (exit waits for them)
  ClientSession::Limits session_limits_;  // every session reads them (worker.cc updates)
  std::string scratch_;
  BufferPool stream_pool_;      // StreamFilter's and the upstream bodies' buffers
  std::vector<StreamFilter*> free_filters_;  // StreamFilters between streams
  std::string filter_scratch_;  // rewritten events on their way to the client
  // Anthropic translation: stream translators between streams, and grow-only buffers
  // (translated answers, RapidJSON's parse memory).
  std::vector<providers::AnthropicStreamTranslator*> free_translators_;
  std::string xlate_out_;
  std::string xlate_scratch_;
  Rng rng_{0x9e3779b97f4a7c15ull ^ (static_cast<uint64_t>(::getpid()) << 16) ^ ClockUs()};
};


}  // namespace llmgw::dataplane
