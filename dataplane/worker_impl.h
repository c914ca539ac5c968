// Internal to the data plane: the worker's state and the declarations of its parts. The
// member functions live in one file per responsibility (worker.cc: ring, loop, dispatch,
// timers, accept; client_conn.cc; client_parse.cc; endpoints.cc; attempts.cc; upstream.cc;
// relay.cc; stats.cc); this header is the only thing they share.
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
#include "dataplane/client_address_limiter.h"
#include "dataplane/http_text.h"
#include "dataplane/worker.h"
#include "dataplane/worker_internal.h"

// Before the split these member functions were defined inside the class, so implicitly
// inline, and GCC's inliner weighs such functions more generously. The parts are compiled
// as one unit (UNITY_BUILD in dataplane/CMakeLists.txt, which defines LLMGW_WORKER_ONE_UNIT
// there), where they keep that `inline` and the generated code stays what it was; a part
// compiled on its own (an IDE, a non-unity build) gets ordinary out-of-line definitions.
#if defined(LLMGW_WORKER_ONE_UNIT)
#define LLMGW_PART_INLINE inline
#else
#define LLMGW_PART_INLINE
#endif

namespace llmgw::dataplane {

class WorkerImpl {
 public:
  WorkerImpl(const Config& cfg, shm::ShmRegion* region, uint32_t index, std::vector<int> listen_fds)
      : cfg_(cfg), region_(region), index_(index), listen_fds_(std::move(listen_fds)),
        accept_armed_(listen_fds_.size(), 0), reader_(region) {}

  ~WorkerImpl() {
    for (ClientConn* c : free_clients_) delete c;
    for (RequestState* r : free_requests_) delete r;
    if (ring_ok_) io_uring_queue_exit(&ring_);
    std::free(buf_ring_);
    std::free(recv_bufs_);
    if (access_fd_ > 2) ::close(access_fd_);
    if (stats_) shm::ReleaseStatsSlot(stats_);
  }

  Status Init();

  Status SetupRecvBuffers();

  void Run();

 private:
  // ------------------------------------------------------------------ ring helpers
  io_uring_sqe* Sqe();
  static uint64_t Tag(Conn* c, Op op) { return reinterpret_cast<uint64_t>(c) | op; }

  // Listener i's accept; its completions carry i above the op bits.
  void ArmAccept(size_t i);

  void Dispatch(uint64_t ud, int res, uint32_t flags);

  void MaybeFree(Conn* c);

  // ------------------------------------------------------------------ snapshot, tick
  void RefreshSnapshot();

  void Tick(uint64_t now);

  void CheckDeadlines(ClientConn* c, uint64_t now);

  void StartDrain();

  // drain_ms passed: what is still being answered is ended now — a stream with the SSE
  // error event, an answer not begun with 503 — rather than cut without a word.
  void CutAtDrainDeadline();

  // ------------------------------------------------------------------ accept / client io
  void OnAccept(size_t listener, int res, uint32_t flags);

  void NewClient(int fd);

  void ArmClientRecv(ClientConn* c);

  void PauseClientRecv(ClientConn* c);

  char* RecvBuf(uint32_t bid) { return recv_bufs_ + static_cast<size_t>(bid) * kRecvBufSize; }
  void ReturnRecvBuf(uint32_t bid);

  void OnClientRecv(ClientConn* c, int res, uint32_t flags);

  // Parses straight from the ring buffer when nothing is pending; keeps the rest.
  void FeedClient(ClientConn* c, const char* data, size_t n);

  void CloseClient(ClientConn* c);

  void QueueSend(ClientConn* c);

  void OnClientSend(ClientConn* c, int res);

  // Everything queued reached the socket: finish the request, or read more upstream.
  void AfterClientDrained(ClientConn* c);

  void AcquireRequest(ClientConn* c);

  void ReleaseRequest(ClientConn* c);

  void FinishRequest(ClientConn* c);

  // ------------------------------------------------------------------ request parsing
  static ClientConn* Cur(llhttp_t* p);

  // Runs llhttp over [p, p+n); returns how many bytes it consumed. A complete request
  // pauses the parser and is dispatched at once; a broken one is answered and the rest of
  // the connection's input is discarded (the stream cannot be resynchronised).
  size_t ExecuteParser(ClientConn* c, const char* p, size_t n);

  void ParseClient(ClientConn* c);

  static int OnMessageBegin(llhttp_t* p);
  static int HeadLimit(llhttp_t* p, size_t n);
  static int OnUrl(llhttp_t* p, const char* at, size_t n);
  // Header names and values are appended straight to the forwarded lines; a header that
  // must not go upstream is cut off again when its value is complete.
  static int HeaderTooLarge(ClientConn* c);
  static bool AppendCapped(std::string* s, const char* p, size_t n);
  static int OnHeaderField(llhttp_t* p, const char* at, size_t n);
  static int BeginValue(ClientConn* c);
  static int OnHeaderValue(llhttp_t* p, const char* at, size_t n);
  static int OnHeaderValueComplete(llhttp_t* p);
  static int OnHeadersComplete(llhttp_t* p);
  static int OnBody(llhttp_t* p, const char* at, size_t n);
  static int OnMessageComplete(llhttp_t* p);
  static WorkerImpl* self(llhttp_t* p) { return static_cast<WorkerImpl*>(p->data); }

  // Forwarded header lines take at most a little more than their bytes on the wire ("a:b"
  // becomes "a: b"), which max_header_bytes bounds.
  size_t HeaderCap() const { return cfg_.gateway.max_header_bytes + cfg_.gateway.max_header_bytes / 4 + 64; }

  uint64_t MaxBody() const;

  // ------------------------------------------------------------------ local answers
  void BeginResponse(ClientConn* c);

  // `content_type` empty: none of llmgw's own (a relayed answer brings its own in
  // `relayed`, the upstream's end-to-end header lines).
  void WriteHead(ClientConn* c, int status, std::string_view content_type, int64_t content_length,
                 std::string_view relayed = {});

  void SendLocal(ClientConn* c, int status, std::string_view body, std::string_view ct = "application/json");

  // OpenAI-shaped error. `fatal`: the connection closes after it (broken framing).
  void SendError(ClientConn* c, int status, std::string_view message, std::string_view type,
                 const char* param, const char* code, bool fatal = false);

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

  UpstreamConn* NewUpstream(int slot, const shm::BackendEntry& be);

  void BuildUpstreamRequest(ClientConn* c, UpstreamConn* u, const shm::BackendEntry& be);

  void ArmUpSend(UpstreamConn* u);

  void OnUpConnect(UpstreamConn* u, int res);

  void OnUpSend(UpstreamConn* u, int res);

  // A pooled connection the server had closed meanwhile: not the backend's fault, so try
  // again at once (the next pooled or a new connection), without spending a retry.
  void RetryStale(ClientConn* c);

  void ArmUpRecv(UpstreamConn* u);

  void OnUpRecv(UpstreamConn* u, int res);

  static UpstreamConn* CurUp(llhttp_t* p) { return self(p)->current_up_; }

  // The upstream's end-to-end headers are collected as lines for the client; framing
  // (Content-Length / Transfer-Encoding) is redone by llmgw, hop-by-hop headers stay here.
  static int UpHeadTooLarge(UpstreamConn* u);
  static int OnUpHeaderField(llhttp_t* p, const char* at, size_t n);
  static int BeginUpValue(UpstreamConn* u);
  static int OnUpHeaderValue(llhttp_t* p, const char* at, size_t n);
  static int OnUpHeaderValueComplete(llhttp_t* p);

  static int OnUpHeadersComplete(llhttp_t* p);

  static int OnUpBody(llhttp_t* p, const char* at, size_t n);

  static int OnUpMessageComplete(llhttp_t* p);

  // Tokens from `usage` (the whole body, or the final stream chunk). Cheap substring scan.
  void ScanUsage(ClientConn* c, std::string_view data);

  void ObserveTtftOnce(ClientConn* c);

  void CountUpErr(uint16_t slot, shm::UpstreamErr e);

  void CloseUpstreamFd(UpstreamConn* u);

  // Detaches the client's upstream: back to the pool when reusable, else closed.
  void ReleaseUpstream(ClientConn* c, bool keep);

  void UpstreamFailed(ClientConn* c, ErrorKind kind, const char* msg, bool retryable);

  // Bytes already went to the client: a stream ends with the SSE error event (on a line
  // of its own), anything else is cut; the connection closes after it.
  void EndCommittedWithError(ClientConn* c, const char* msg, const char* type, const char* code);

  void EndRequestStats(ClientConn* c, int status);

  void AccessLog(ClientConn* c, int status, uint64_t us);

  uint64_t NextRandom();

  const Config& cfg_;
  shm::ShmRegion* region_;
  uint32_t index_;
  std::vector<int> listen_fds_;
  std::vector<uint8_t> accept_armed_;  // per listener
  io_uring ring_{};
  bool ring_ok_ = false;
  bool ring_disabled_ = false;         // created with R_DISABLED; enabled by Run()'s thread
  const char* ring_mode_ = "plain";
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
  shm::StatsSlot* stats_ = nullptr;
  shm::SnapshotReader reader_;
  std::unique_ptr<shm::Snapshot> snap_;
  bool has_snapshot_ = false;
  routing::Router router_;
  std::vector<routing::LocalLoad> local_;
  std::vector<std::vector<UpstreamConn*>> idle_;
  std::vector<ClientConn*> clients_;
  std::vector<ClientConn*> free_clients_;
  std::vector<RequestState*> free_requests_;
  int64_t live_conns_ = 0;
  std::unique_ptr<routing::AdmissionQueue> admission_;
  uint32_t admit_credits_ = 0;  // backend slots freed since the last admission pass  // connection objects not yet released (exit waits for them)
  llhttp_settings_t client_settings_{};
  llhttp_settings_t up_settings_{};
  ClientConn* current_ = nullptr;
  UpstreamConn* current_up_ = nullptr;
  bool up_fail_ = false;
  int up_fail_status_ = 0;
  char up_fail_msg_[64] = {};
  std::string scratch_;
  int access_fd_ = 2;
  io_uring_buf_ring* buf_ring_ = nullptr;
  char* recv_bufs_ = nullptr;  // stderr unless gateway.access_log.path names a file
  uint64_t rng_ = 0x9e3779b97f4a7c15ull ^ (static_cast<uint64_t>(::getpid()) << 16) ^ ClockUs();
};

inline ClientConn* WorkerImpl::Cur(llhttp_t* p) { return self(p)->current_; }

}  // namespace llmgw::dataplane
