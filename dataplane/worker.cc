// The data-plane event loop: one io_uring per thread drives client connections (llhttp
// request parsing, pipelining in order), upstream connections (keep-alive pools per
// backend slot, llhttp response parsing) and the relay between them, with retries before
// the first byte and bounded buffers (a slow client stops upstream reads).
#include "dataplane/worker.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <liburing.h>
#include <llhttp.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <string>
#include <vector>

#include "common/log.h"
#include "common/routing/admission.h"
#include "common/routing/prefix.h"
#include "common/routing/router.h"
#include "common/shm.h"
#include "dataplane/request_json.h"

namespace llmgw::dataplane {

std::atomic<bool> g_stop_requested{false};

namespace {

// Client input arrives in buffers the kernel picks from a per-thread ring (multishot recv
// with provided buffers), so an idle connection holds no receive buffer at all.
constexpr uint32_t kRecvBufCount = 1024;  // power of two
constexpr uint32_t kRecvBufSize = 4096;
constexpr uint16_t kRecvBufGroup = 1;
// Unparsed client bytes kept while a request is being answered (pipelining); above this
// the connection stops reading until the answer is out.
constexpr size_t kMaxPendingInput = 65536;
constexpr size_t kUpstreamInCap = 16384; // one upstream read; relayed before the next
constexpr uint32_t kRingEntries = 4096;
constexpr uint32_t kMaxIdlePerBackend = 64;
constexpr uint32_t kTickMs = 10;

uint64_t NowMs() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                   std::chrono::steady_clock::now().time_since_epoch())
                                   .count());
}
uint64_t NowUs() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::microseconds>(
                                   std::chrono::steady_clock::now().time_since_epoch())
                                   .count());
}

// Completion tags: low 3 bits of user_data say which operation finished; the rest is the
// connection object (16-byte aligned), or 0 for the listener and fire-and-forget ops.
enum Op : uint64_t {
  kOpNone = 0,
  kOpAccept = 1,
  kOpClientRecv = 2,
  kOpClientSend = 3,
  kOpUpConnect = 4,
  kOpUpSend = 5,
  kOpUpRecv = 6,
};

bool EqualsNoCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (std::tolower(static_cast<unsigned char>(a[i])) != std::tolower(static_cast<unsigned char>(b[i])))
      return false;
  return true;
}

bool StartsWithNoCase(std::string_view s, std::string_view prefix) {
  return s.size() >= prefix.size() && EqualsNoCase(s.substr(0, prefix.size()), prefix);
}

// Hop-by-hop headers (RFC 9110 7.6.1, plus the historical Keep-Alive and Proxy-*) belong
// to one connection and are never forwarded, in either direction.
bool IsHopByHop(std::string_view name) {
  return EqualsNoCase(name, "connection") || EqualsNoCase(name, "keep-alive") || StartsWithNoCase(name, "proxy-") ||
         EqualsNoCase(name, "te") || EqualsNoCase(name, "trailer") || EqualsNoCase(name, "transfer-encoding") ||
         EqualsNoCase(name, "upgrade");
}

// Removes from `lines` ("Name: value\r\n" each) every header named in a Connection
// header's value (`tokens`, comma-separated): those are hop-by-hop too (RFC 9110 7.6.1).
void RemoveConnectionNamed(std::string* lines, std::string_view tokens) {
  while (!tokens.empty()) {
    size_t comma = tokens.find(',');
    std::string_view tok = tokens.substr(0, comma);
    tokens = comma == std::string_view::npos ? std::string_view() : tokens.substr(comma + 1);
    while (!tok.empty() && (tok.front() == ' ' || tok.front() == '\t')) tok.remove_prefix(1);
    while (!tok.empty() && (tok.back() == ' ' || tok.back() == '\t')) tok.remove_suffix(1);
    if (tok.empty() || EqualsNoCase(tok, "close") || EqualsNoCase(tok, "keep-alive")) continue;
    size_t pos = 0;
    while (pos < lines->size()) {
      size_t eol = lines->find("\r\n", pos);
      if (eol == std::string::npos) break;
      size_t colon = lines->find(':', pos);
      if (colon < eol && EqualsNoCase(std::string_view(*lines).substr(pos, colon - pos), tok)) {
        lines->erase(pos, eol + 2 - pos);  // in place: the capacity stays
      } else {
        pos = eol + 2;
      }
    }
  }
}

std::string_view ReasonPhrase(int status) {
  switch (status) {
    case 100: return "Continue";
    case 200: return "OK";
    case 201: return "Created";
    case 204: return "No Content";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 413: return "Payload Too Large";
    case 422: return "Unprocessable Entity";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    default: return "Unknown";
  }
}

void AppendUint(std::string* s, uint64_t v) {
  char b[24];
  int n = std::snprintf(b, sizeof(b), "%llu", static_cast<unsigned long long>(v));
  s->append(b, static_cast<size_t>(n));
}

void AppendJsonString(std::string* s, std::string_view v) {
  char buf[512];
  size_t n = JsonEscapeInto(buf, 0, sizeof(buf), v);
  s->push_back('"');
  s->append(buf, n);
  s->push_back('"');
}

// Fixed-capacity accumulator for header names/values and the URL (llhttp may deliver
// them in pieces across reads).
template <size_t N>
struct SmallStr {
  char data[N];
  size_t len = 0;
  bool overflow = false;
  void Clear() {
    len = 0;
    overflow = false;
  }
  void Append(const char* p, size_t n) {
    size_t take = std::min(n, N - len);
    std::memcpy(data + len, p, take);
    len += take;
    if (take < n) overflow = true;
  }
  std::string_view View() const { return {data, len}; }
};

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
  llhttp_t parser;
  char in[kUpstreamInCap];
  bool connected = false;
  bool reused = false;
  bool recv_armed = false;
  bool send_armed = false;
  bool saw_response_byte = false;
  bool in_field = false;  // llhttp is delivering a response header name
  std::string head;       // request line and the headers llmgw sets
  iovec iov[8];
  int iov_cnt = 0;
  msghdr msg{};
  sockaddr_storage addr{};
  socklen_t addr_len = 0;
};

// What a request needs while it is read and answered: header fields and the body. Taken
// from a per-thread pool when a request starts and given back when its answer is out, so
// an idle keep-alive connection holds none of it (and no big body's capacity).
struct RequestState {
  SmallStr<1024> url;
  SmallStr<128> request_id;
  SmallStr<256> hash_value;
  // The client's end-to-end headers as "Name: value\r\n" lines, sent upstream as they
  // are. Capacity reserved once (gateway.max_header_bytes and a margin); never grown.
  std::string fwd;
  size_t field_start = 0, value_start = 0;
  SmallStr<256> conn_tokens;  // the client's Connection header: more hop-by-hop names
  bool has_content_type = false;
  // The upstream's end-to-end response headers, relayed to the client; same bound.
  std::string up_head;
  size_t up_field_start = 0, up_value_start = 0;
  SmallStr<256> up_conn_tokens;
  bool up_has_cache_control = false;
  bool up_overflow = false;
  SmallStr<128> user;  // the body's `user`: consistent_hash key when the header is absent
  std::string body;
  std::string out;     // bytes for the client; one send in flight at a time
  char prefix[1024];   // prompt prefix for prefix_affinity, extracted on first need
  int prefix_len = -1; // -1: not extracted yet
  void Reset() {
    url.Clear();
    request_id.Clear();
    hash_value.Clear();
    fwd.clear();
    conn_tokens.Clear();
    has_content_type = false;
    up_head.clear();
    up_conn_tokens.Clear();
    user.Clear();
    body.clear();
    out.clear();
    prefix_len = -1;
  }
};

struct ClientConn : Conn {
  ClientConn() : Conn(Kind::kClient) {}
  llhttp_t parser;
  std::string pending;    // unparsed bytes held while busy (pipelined requests)
  size_t pending_off = 0;
  bool recv_armed = false;    // a multishot recv is active
  bool recv_paused = false;   // stopped on purpose (pending input full)
  bool recv_starved = false;  // the buffer ring ran dry; re-armed by the tick
  bool discard_input = false; // framing broke: ignore whatever else arrives
  bool send_armed = false;
  bool peer_closed = false;
  bool close_after_send = false;
  size_t list_index = 0;  // position in the worker's client list
  size_t out_off = 0;
  uint64_t deadline_ms = 0;  // client-side deadline (header/body/idle)
  int deadline_status = 0;   // 408 for header/body timeouts, 0 for idle close

  // --- current request (parsing) ---
  bool in_message = false;
  RequestState* h = nullptr;  // taken from the thread's pool while a request is around
  bool in_field = false;  // llhttp is delivering a header name
  size_t head_bytes = 0;
  bool has_cl = false, has_te = false, expect_continue = false;
  int parse_error_status = 0;  // 413/431 decided inside a callback
  const char* parse_error_msg = nullptr;
  const char* parse_error_code = nullptr;

  // --- current request (dispatch) ---
  bool busy = false;          // a request is being answered; parsing is paused
  bool response_done = false; // whole response queued in out
  bool streaming = false;
  bool committed = false;     // response head went (or is going) to the client
  bool chunked_out = false;
  bool is_sse = false;
  uint64_t start_us = 0;
  uint64_t first_byte_us = 0;
  uint64_t last_chunk_us = 0;
  uint64_t total_deadline_ms = 0;
  uint64_t up_deadline_ms = 0;  // connect / first byte / idle deadline of the attempt
  uint8_t up_deadline_kind = 0; // 1 connect, 2 first byte, 3 idle
  uint64_t retry_at_ms = 0;     // backoff pending: start the next attempt then
  int status = 0;
  uint16_t model_slot = 0;
  uint16_t orig_model_slot = 0;
  uint8_t fallback_index = 0;
  uint16_t tried[16];
  uint8_t tried_count = 0;
  uint8_t attempts = 0;
  bool rewrite = false;
  bool alias_rewrite = false;  // the client named an alias (kept for re-admission)
  bool queued = false;         // waiting in the admission queue
  int32_t priority = 0;
  uint32_t retry_after_s = 0;  // Retry-After on a 429 from admission
  size_t model_begin = 0, model_end = 0;
  char api_path[32];
  UpstreamConn* up = nullptr;
  int last_error_status = 0;
  const char* last_error_msg = nullptr;
  uint64_t bytes_in = 0, bytes_out = 0;
  uint64_t prompt_tokens = 0, completion_tokens = 0;
  int current_backend = -1;
};

}  // namespace

class WorkerImpl {
 public:
  WorkerImpl(const Config& cfg, shm::ShmRegion* region, uint32_t index, int listen_fd)
      : cfg_(cfg), region_(region), index_(index), listen_fd_(listen_fd), reader_(region) {}

  ~WorkerImpl() {
    for (ClientConn* c : free_clients_) delete c;
    for (RequestState* r : free_requests_) delete r;
    if (ring_ok_) io_uring_queue_exit(&ring_);
    std::free(buf_ring_);
    std::free(recv_bufs_);
    if (access_fd_ > 2) ::close(access_fd_);
    if (stats_) shm::ReleaseStatsSlot(stats_);
  }

  Status Init() {
    io_uring_params p{};
    int r = io_uring_queue_init_params(kRingEntries, &ring_, &p);
    if (r < 0) return Error(ErrorKind::kIo, ErrorSide::kInternal, false, "io_uring_queue_init: %s", strerror(-r));
    ring_ok_ = true;
    if (cfg_.gateway.access_log.enabled && !cfg_.gateway.access_log.path.empty()) {
      access_fd_ = ::open(cfg_.gateway.access_log.path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
      if (access_fd_ < 0)
        return Error(ErrorKind::kIo, ErrorSide::kInternal, false, "gateway.access_log.path %s: %s",
                     cfg_.gateway.access_log.path.c_str(), strerror(errno));
    }
    if (!(p.features & IORING_FEAT_EXT_ARG))
      return Error(ErrorKind::kIo, ErrorSide::kInternal, false,
                   "kernel io_uring lacks IORING_FEAT_EXT_ARG (needs Linux >= 5.11)");
    if (Status st = SetupRecvBuffers(); !st.ok()) return st;
    Error err;
    stats_ = shm::ClaimStatsSlot(region_, index_, &err);
    if (!stats_) return err;
    snap_ = std::make_unique<shm::Snapshot>();
    admission_ = std::make_unique<routing::AdmissionQueue>(cfg_.gateway.admission.queue_size,
                                                           cfg_.gateway.admission.queue_timeout_ms);
    local_.assign(shm::kMaxBackends, routing::LocalLoad{});
    idle_.assign(shm::kMaxBackends, {});
    llhttp_settings_init(&client_settings_);
    client_settings_.on_message_begin = &OnMessageBegin;
    client_settings_.on_url = &OnUrl;
    client_settings_.on_header_field = &OnHeaderField;
    client_settings_.on_header_value = &OnHeaderValue;
    client_settings_.on_header_value_complete = &OnHeaderValueComplete;
    client_settings_.on_headers_complete = &OnHeadersComplete;
    client_settings_.on_body = &OnBody;
    client_settings_.on_message_complete = &OnMessageComplete;
    llhttp_settings_init(&up_settings_);
    up_settings_.on_header_field = &OnUpHeaderField;
    up_settings_.on_header_value = &OnUpHeaderValue;
    up_settings_.on_header_value_complete = &OnUpHeaderValueComplete;
    up_settings_.on_headers_complete = &OnUpHeadersComplete;
    up_settings_.on_body = &OnUpBody;
    up_settings_.on_message_complete = &OnUpMessageComplete;
    return Status::Ok();
  }

  Status SetupRecvBuffers() {
    size_t ring_bytes = kRecvBufCount * sizeof(io_uring_buf);
    void* ring_mem = nullptr;
    void* bufs = nullptr;
    if (posix_memalign(&ring_mem, 4096, ring_bytes) != 0 ||
        posix_memalign(&bufs, 4096, static_cast<size_t>(kRecvBufCount) * kRecvBufSize) != 0)
      return Error(ErrorKind::kInternal, ErrorSide::kInternal, false, "out of memory for receive buffers");
    std::memset(ring_mem, 0, ring_bytes);
    buf_ring_ = static_cast<io_uring_buf_ring*>(ring_mem);
    recv_bufs_ = static_cast<char*>(bufs);
    io_uring_buf_reg reg{};
    reg.ring_addr = reinterpret_cast<uint64_t>(buf_ring_);
    reg.ring_entries = kRecvBufCount;
    reg.bgid = kRecvBufGroup;
    int r = io_uring_register_buf_ring(&ring_, &reg, 0);
    if (r < 0) {
      return Error(ErrorKind::kIo, ErrorSide::kInternal, false,
                   "io_uring provided buffer rings unavailable (%s); llmgw needs Linux >= 6.0", strerror(-r));
    }
    io_uring_buf_ring_init(buf_ring_);
    for (uint32_t i = 0; i < kRecvBufCount; ++i)
      io_uring_buf_ring_add(buf_ring_, RecvBuf(i), kRecvBufSize, static_cast<unsigned short>(i),
                            io_uring_buf_ring_mask(kRecvBufCount), static_cast<int>(i));
    io_uring_buf_ring_advance(buf_ring_, kRecvBufCount);
    return Status::Ok();
  }

  void Run() {
    ArmAccept();
    uint64_t next_tick = 0;
    while (true) {
      if (reader_.Changed()) RefreshSnapshot();
      if (!draining_ && g_stop_requested.load(std::memory_order_relaxed)) StartDrain();
      uint64_t now = NowMs();
      if (now >= next_tick) {
        Tick(now);
        next_tick = now + kTickMs;
      }
      if (draining_ && (clients_.empty() || now >= drain_deadline_ms_)) break;
      __kernel_timespec ts{0, static_cast<long long>(kTickMs) * 1000000};
      io_uring_cqe* cqe = nullptr;
      int r = io_uring_submit_and_wait_timeout(&ring_, &cqe, 1, &ts, nullptr);
      if (r < 0 && r != -ETIME && r != -EINTR) {
        LOG_ERROR("io_uring wait failed", {{"error", strerror(-r)}});
        break;
      }
      unsigned head;
      unsigned count = 0;
      io_uring_for_each_cqe(&ring_, head, cqe) {
        ++count;
        Dispatch(cqe->user_data, cqe->res, cqe->flags);
      }
      io_uring_cq_advance(&ring_, count);
      if (admit_credits_) AdmitWaiting();
    }
    // Whatever did not finish within drain_ms is cut off.
    std::vector<ClientConn*> left = clients_;
    for (ClientConn* c : left) CloseClient(c);
    for (auto& pool : idle_) {
      for (UpstreamConn* u : pool) {
        CloseUpstreamFd(u);
        --live_conns_;
        delete u;
      }
      pool.clear();
    }
    // Collect the completions of what was just closed so every object is released.
    uint64_t end = NowMs() + 200;
    while (live_conns_ > 0 && NowMs() < end) {
      __kernel_timespec ts{0, 10 * 1000000};
      io_uring_cqe* cqe = nullptr;
      io_uring_submit_and_wait_timeout(&ring_, &cqe, 1, &ts, nullptr);
      unsigned head;
      unsigned count = 0;
      io_uring_for_each_cqe(&ring_, head, cqe) {
        ++count;
        Dispatch(cqe->user_data, cqe->res, cqe->flags);
      }
      io_uring_cq_advance(&ring_, count);
    }
  }

 private:
  // ------------------------------------------------------------------ ring helpers
  io_uring_sqe* Sqe() {
    io_uring_sqe* s = io_uring_get_sqe(&ring_);
    if (!s) {
      io_uring_submit(&ring_);
      s = io_uring_get_sqe(&ring_);
    }
    return s;
  }
  static uint64_t Tag(Conn* c, Op op) { return reinterpret_cast<uint64_t>(c) | op; }

  void ArmAccept() {
    io_uring_sqe* s = Sqe();
    // Multishot accept: one submission keeps accepting, no re-arm per connection.
    if (multishot_accept_)
      io_uring_prep_multishot_accept(s, listen_fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    else
      io_uring_prep_accept(s, listen_fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    io_uring_sqe_set_data64(s, kOpAccept);
    accept_armed_ = true;
  }

  void Dispatch(uint64_t ud, int res, uint32_t flags) {
    Op op = static_cast<Op>(ud & 7);
    Conn* c = reinterpret_cast<Conn*>(ud & ~uint64_t{7});
    if (op == kOpAccept) return OnAccept(res, flags);
    if (!c) return;
    // The op still counts as pending while its handler runs, so nothing the handler
    // closes can free this object under our feet; it is released just below.
    switch (op) {
      case kOpClientRecv: OnClientRecv(static_cast<ClientConn*>(c), res, flags); break;
      case kOpClientSend: OnClientSend(static_cast<ClientConn*>(c), res); break;
      case kOpUpConnect: OnUpConnect(static_cast<UpstreamConn*>(c), res); break;
      case kOpUpSend: OnUpSend(static_cast<UpstreamConn*>(c), res); break;
      case kOpUpRecv: OnUpRecv(static_cast<UpstreamConn*>(c), res); break;
      default: break;
    }
    // A multishot op stays pending until its last completion (no F_MORE).
    if (!(flags & IORING_CQE_F_MORE)) --c->pending_ops;
    MaybeFree(c);
  }

  void MaybeFree(Conn* c) {
    if (!c->closed || c->pending_ops) return;
    --live_conns_;
    if (c->kind == Conn::Kind::kClient) {
      ClientConn* cc = static_cast<ClientConn*>(c);
      // Keep a few objects for reuse; their buffers are the per-connection arena.
      if (free_clients_.size() < 256) {
        free_clients_.push_back(cc);
      } else {
        delete cc;
      }
    } else {
      delete static_cast<UpstreamConn*>(c);
    }
  }

  // ------------------------------------------------------------------ snapshot, tick
  void RefreshSnapshot() {
    if (!reader_.Refresh(snap_.get())) return;
    has_snapshot_ = true;
    for (auto& l : local_) l.in_flight_at_snapshot = l.in_flight;
    router_.OnSnapshot(*snap_);
    shm::Set(stats_->snapshot_generation, reader_.generation());
  }

  void Tick(uint64_t now) {
    shm::Set(stats_->heartbeat_unix_ms, shm::NowUnixMs());
    uint64_t cookie;
    while (admission_ && admission_->ExpireOne(&cookie)) {
      ClientConn* c = reinterpret_cast<ClientConn*>(cookie);
      c->queued = false;
      RejectOverloaded(c);
    }
    std::vector<ClientConn*>& cs = clients_;
    for (size_t i = 0; i < cs.size();) {
      ClientConn* c = cs[i];
      if (c->recv_starved && !c->recv_armed) ArmClientRecv(c);
      size_t before = cs.size();
      CheckDeadlines(c, now);
      if (cs.size() == before || (i < cs.size() && cs[i] == c)) ++i;
    }
  }

  void CheckDeadlines(ClientConn* c, uint64_t now) {
    if (c->busy) {
      if (c->queued) return;  // the admission queue has its own deadline
      if (c->retry_at_ms && now >= c->retry_at_ms) {
        c->retry_at_ms = 0;
        StartAttempt(c);
        return;
      }
      if (c->total_deadline_ms && now >= c->total_deadline_ms) {
        return UpstreamFailed(c, ErrorKind::kTimeout, "request exceeded the total timeout", false);
      }
      if (c->up && c->up_deadline_ms && now >= c->up_deadline_ms) {
        bool retry = c->up_deadline_kind == 1;  // connect timeouts are safe to retry
        const char* what = c->up_deadline_kind == 1   ? "upstream connect timed out"
                           : c->up_deadline_kind == 2 ? "upstream first byte timed out"
                                                      : "upstream idle timeout";
        return UpstreamFailed(c, ErrorKind::kTimeout, what, retry);
      }
      return;
    }
    if (c->deadline_ms && now >= c->deadline_ms) {
      if (c->deadline_status && c->in_message) {
        SendError(c, 408, "request not received in time", "invalid_request_error", nullptr, "timeout", true);
      } else {
        CloseClient(c);
      }
    }
  }

  void StartDrain() {
    draining_ = true;
    drain_deadline_ms_ = NowMs() + cfg_.gateway.drain_ms;
    LOG_INFO("draining", {{"thread", index_}, {"in_flight", static_cast<uint64_t>(clients_.size())}});
    if (accept_armed_) {
      io_uring_sqe* s = Sqe();
      io_uring_prep_cancel_fd(s, listen_fd_, IORING_ASYNC_CANCEL_ALL);
      io_uring_sqe_set_data64(s, kOpNone);
    }
    ::shutdown(listen_fd_, SHUT_RDWR);
    ::close(listen_fd_);
    listen_fd_ = -1;
    std::vector<ClientConn*> idle;
    for (ClientConn* c : clients_)
      if (!c->busy && !c->send_armed) idle.push_back(c);
    for (ClientConn* c : idle) CloseClient(c);
  }

  // ------------------------------------------------------------------ accept / client io
  void OnAccept(int res, uint32_t flags) {
    if (!(flags & IORING_CQE_F_MORE)) accept_armed_ = false;
    if (res == -EINVAL && multishot_accept_ && !draining_) {
      LOG_WARN("multishot accept unsupported; falling back to one accept per connection");
      multishot_accept_ = false;
    }
    if (res >= 0) {
      if (draining_) {
        ::close(res);
      } else {
        NewClient(res);
      }
    }
    if (!accept_armed_ && !draining_ && listen_fd_ >= 0) ArmAccept();
  }

  void NewClient(int fd) {
    int one = 1;
    // Streamed tokens go out as they come: no Nagle delay on small SSE events.
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    ClientConn* c;
    if (!free_clients_.empty()) {
      c = free_clients_.back();
      free_clients_.pop_back();
      c->~ClientConn();
      new (c) ClientConn();
    } else {
      c = new ClientConn();
    }
    c->fd = fd;
    ++live_conns_;
    llhttp_init(&c->parser, HTTP_REQUEST, &client_settings_);
    c->parser.data = this;
    c->list_index = clients_.size();
    clients_.push_back(c);
    c->deadline_ms = NowMs() + cfg_.gateway.timeouts.client_idle_ms;
    shm::Bump(stats_->connections_total);
    shm::Set(stats_->connections_open, clients_.size());
    ArmClientRecv(c);
  }

  void ArmClientRecv(ClientConn* c) {
    if (c->recv_armed || c->closed || c->peer_closed || c->recv_paused) return;
    io_uring_sqe* s = Sqe();
    // Multishot recv with buffer select: one submission delivers every read, each into a
    // buffer of the ring, so idle connections pin no memory.
    io_uring_prep_recv_multishot(s, c->fd, nullptr, 0, 0);
    s->flags |= IOSQE_BUFFER_SELECT;
    s->buf_group = kRecvBufGroup;
    io_uring_sqe_set_data64(s, Tag(c, kOpClientRecv));
    c->recv_armed = true;
    c->recv_starved = false;
    ++c->pending_ops;
  }

  void PauseClientRecv(ClientConn* c) {
    if (!c->recv_armed || c->recv_paused) return;
    c->recv_paused = true;
    io_uring_sqe* s = Sqe();
    io_uring_prep_cancel64(s, Tag(c, kOpClientRecv), 0);
    io_uring_sqe_set_data64(s, kOpNone);
  }

  char* RecvBuf(uint32_t bid) { return recv_bufs_ + static_cast<size_t>(bid) * kRecvBufSize; }
  void ReturnRecvBuf(uint32_t bid) {
    io_uring_buf_ring_add(buf_ring_, RecvBuf(bid), kRecvBufSize, static_cast<unsigned short>(bid),
                          io_uring_buf_ring_mask(kRecvBufCount), 0);
    io_uring_buf_ring_advance(buf_ring_, 1);
  }

  void OnClientRecv(ClientConn* c, int res, uint32_t flags) {
    if (!(flags & IORING_CQE_F_MORE)) c->recv_armed = false;
    bool has_buf = flags & IORING_CQE_F_BUFFER;
    uint32_t bid = flags >> IORING_CQE_BUFFER_SHIFT;
    if (c->closed) {
      if (has_buf) ReturnRecvBuf(bid);
      return;
    }
    if (res == -ENOBUFS) {
      c->recv_starved = true;  // every ring buffer is in use: the tick re-arms
      return;
    }
    if (res == -ECANCELED) {  // paused on purpose; resumed already if the answer went out
      if (!c->recv_armed && !c->recv_paused) ArmClientRecv(c);
      return;
    }
    if (res <= 0) {
      if (has_buf) ReturnRecvBuf(bid);
      // The client left (or reset). Whatever we do for it stops now, upstream included.
      c->peer_closed = true;
      if (c->busy && !c->response_done) shm::Bump(stats_->errors_by_kind[static_cast<int>(ErrorKind::kClientGone)]);
      CloseClient(c);
      return;
    }
    shm::Bump(stats_->bytes_in, static_cast<uint64_t>(res));
    if (has_buf) {
      FeedClient(c, RecvBuf(bid), static_cast<size_t>(res));
      ReturnRecvBuf(bid);
    }
    if (!c->closed && !c->recv_armed) ArmClientRecv(c);
  }

  // Parses straight from the ring buffer when nothing is pending; keeps the rest.
  void FeedClient(ClientConn* c, const char* data, size_t n) {
    if (c->discard_input) return;
    size_t off = 0;
    if (!c->busy && c->pending_off == c->pending.size()) {
      c->pending.clear();
      c->pending_off = 0;
      while (off < n && !c->busy && !c->closed && !c->discard_input) off += ExecuteParser(c, data + off, n - off);
      if (c->closed || c->discard_input) return;
    }
    if (off < n) c->pending.append(data + off, n - off);
    ParseClient(c);
    if (c->busy && c->pending.size() - c->pending_off > kMaxPendingInput) PauseClientRecv(c);
  }

  void CloseClient(ClientConn* c) {
    if (c->closed) return;
    if (c->up) ReleaseUpstream(c, false);
    if (c->queued) {
      admission_->Remove(reinterpret_cast<uint64_t>(c));
      c->queued = false;
    }
    if (c->busy) EndRequestStats(c, c->response_done ? c->status : 499);
    // A send still in flight reads from the state's buffer: give it back when it completes.
    if (!c->send_armed) ReleaseRequest(c);
    c->closed = true;
    ::shutdown(c->fd, SHUT_RDWR);  // completes our pending recv at once
    ::close(c->fd);
    // Remove from the list by swapping with the last.
    size_t i = c->list_index;
    clients_[i] = clients_.back();
    clients_[i]->list_index = i;
    clients_.pop_back();
    shm::Set(stats_->connections_open, clients_.size());
    MaybeFree(c);
  }

  void QueueSend(ClientConn* c) {
    if (c->send_armed || c->closed || !c->h || c->out_off >= c->h->out.size()) return;
    io_uring_sqe* s = Sqe();
    io_uring_prep_send(s, c->fd, c->h->out.data() + c->out_off, c->h->out.size() - c->out_off, MSG_NOSIGNAL);
    io_uring_sqe_set_data64(s, Tag(c, kOpClientSend));
    c->send_armed = true;
    ++c->pending_ops;
  }

  void OnClientSend(ClientConn* c, int res) {
    c->send_armed = false;
    if (c->closed) {
      ReleaseRequest(c);
      return;
    }
    if (res <= 0) {
      CloseClient(c);
      return;
    }
    c->out_off += static_cast<size_t>(res);
    c->bytes_out += static_cast<uint64_t>(res);
    shm::Bump(stats_->bytes_out, static_cast<uint64_t>(res));
    if (c->out_off < c->h->out.size()) return QueueSend(c);
    c->h->out.clear();
    c->out_off = 0;
    AfterClientDrained(c);
  }

  // Everything queued reached the socket: finish the request, or read more upstream.
  void AfterClientDrained(ClientConn* c) {
    if (c->busy && c->response_done) {
      FinishRequest(c);
      return;
    }
    if (!c->busy && c->close_after_send) {
      CloseClient(c);
      return;
    }
    if (c->busy && c->up && c->up->connected && !c->up->recv_armed) ArmUpRecv(c->up);
  }

  void AcquireRequest(ClientConn* c) {
    if (c->h) return;
    if (!free_requests_.empty()) {
      c->h = free_requests_.back();
      free_requests_.pop_back();
    } else {
      c->h = new RequestState();
      // The only allocations of a request state's header buffers: appends check the cap.
      c->h->fwd.reserve(HeaderCap());
      c->h->up_head.reserve(HeaderCap());
    }
    c->h->Reset();
  }

  void ReleaseRequest(ClientConn* c) {
    RequestState* r = c->h;
    if (!r) return;
    c->h = nullptr;
    // A pooled state keeps its body capacity for the next request, unless it grew huge.
    if (r->body.capacity() > (1u << 20)) std::string().swap(r->body);
    if (r->out.capacity() > (1u << 20)) std::string().swap(r->out);
    if (free_requests_.size() < 256) {
      free_requests_.push_back(r);
    } else {
      delete r;
    }
  }

  void FinishRequest(ClientConn* c) {
    EndRequestStats(c, c->status);
    ReleaseRequest(c);
    c->busy = false;
    if (c->close_after_send || draining_) {
      CloseClient(c);
      return;
    }
    c->deadline_ms = NowMs() + cfg_.gateway.timeouts.client_idle_ms;
    c->deadline_status = 0;
    // Answer the next pipelined request, if its bytes are already here.
    ParseClient(c);
    if (!c->closed && !c->busy && c->recv_paused) {
      c->recv_paused = false;  // the cancel's final completion may still be on its way
    }
    if (!c->closed) ArmClientRecv(c);
  }

  // ------------------------------------------------------------------ request parsing
  static ClientConn* Cur(llhttp_t* p);

  // Runs llhttp over [p, p+n); returns how many bytes it consumed. A complete request
  // pauses the parser and is dispatched at once; a broken one is answered and the rest of
  // the connection's input is discarded (the stream cannot be resynchronised).
  size_t ExecuteParser(ClientConn* c, const char* p, size_t n) {
    current_ = c;
    llhttp_errno_t e = llhttp_execute(&c->parser, p, n);
    current_ = nullptr;
    if (e == HPE_OK) return n;
    if (e == HPE_PAUSED) {
      size_t used = static_cast<size_t>(llhttp_get_error_pos(&c->parser) - p);
      llhttp_resume(&c->parser);
      HandleRequest(c);
      return used;
    }
    c->discard_input = true;
    c->pending.clear();
    c->pending_off = 0;
    if (c->parse_error_status) {
      SendError(c, c->parse_error_status, c->parse_error_msg, "invalid_request_error", nullptr,
                c->parse_error_code, true);
    } else {
      char msg[160];
      std::snprintf(msg, sizeof(msg), "malformed HTTP request: %s", llhttp_get_error_reason(&c->parser));
      SendError(c, 400, msg, "invalid_request_error", nullptr, "bad_request", true);
    }
    return n;
  }

  void ParseClient(ClientConn* c) {
    while (!c->busy && !c->closed && !c->discard_input && c->pending_off < c->pending.size()) {
      c->pending_off += ExecuteParser(c, c->pending.data() + c->pending_off, c->pending.size() - c->pending_off);
    }
    if (c->pending_off >= c->pending.size() && !c->pending.empty()) {
      c->pending.clear();
      c->pending_off = 0;
    }
    if (!c->busy && !c->closed && c->in_message && c->deadline_status == 0) {
      // A request has started arriving: it must complete within the client timeouts.
      c->deadline_ms = NowMs() + cfg_.gateway.timeouts.client_header_ms;
      c->deadline_status = 408;
    }
  }

  static int OnMessageBegin(llhttp_t* p) {
    ClientConn* c = Cur(p);
    self(p)->AcquireRequest(c);
    c->in_message = true;
    c->h->url.Clear();
    c->in_field = false;
    c->head_bytes = 0;
    c->has_cl = c->has_te = c->expect_continue = false;
    c->h->request_id.Clear();
    c->h->hash_value.Clear();
    c->h->fwd.clear();
    c->h->conn_tokens.Clear();
    c->h->has_content_type = false;
    c->h->body.clear();
    c->parse_error_status = 0;
    return 0;
  }
  static int HeadLimit(llhttp_t* p, size_t n) {
    ClientConn* c = Cur(p);
    c->head_bytes += n;
    if (c->head_bytes > self(p)->cfg_.gateway.max_header_bytes) {
      c->parse_error_status = 431;
      c->parse_error_msg = "request headers too large";
      c->parse_error_code = "header_too_large";
      return -1;
    }
    return 0;
  }
  static int OnUrl(llhttp_t* p, const char* at, size_t n) {
    Cur(p)->h->url.Append(at, n);
    return HeadLimit(p, n);
  }
  // Header names and values are appended straight to the forwarded lines; a header that
  // must not go upstream is cut off again when its value is complete.
  static int HeaderTooLarge(ClientConn* c) {
    c->parse_error_status = 431;
    c->parse_error_msg = "request headers too large";
    c->parse_error_code = "header_too_large";
    return -1;
  }
  static bool AppendCapped(std::string* s, const char* p, size_t n) {
    if (s->size() + n > s->capacity()) return false;  // never reallocate on the hot path
    s->append(p, n);
    return true;
  }
  static int OnHeaderField(llhttp_t* p, const char* at, size_t n) {
    ClientConn* c = Cur(p);
    RequestState* h = c->h;
    if (!c->in_field) {
      c->in_field = true;
      h->field_start = h->fwd.size();
    }
    if (!AppendCapped(&h->fwd, at, n)) return HeaderTooLarge(c);
    return HeadLimit(p, n);
  }
  static int BeginValue(ClientConn* c) {
    if (!c->in_field) return 0;
    c->in_field = false;
    if (!AppendCapped(&c->h->fwd, ": ", 2)) return HeaderTooLarge(c);
    c->h->value_start = c->h->fwd.size();
    return 0;
  }
  static int OnHeaderValue(llhttp_t* p, const char* at, size_t n) {
    ClientConn* c = Cur(p);
    if (BeginValue(c) != 0) return -1;
    if (!AppendCapped(&c->h->fwd, at, n)) return HeaderTooLarge(c);
    return HeadLimit(p, n);
  }
  static int OnHeaderValueComplete(llhttp_t* p) {
    ClientConn* c = Cur(p);
    RequestState* h = c->h;
    if (BeginValue(c) != 0) return -1;  // an empty value brings no on_header_value
    std::string_view all(h->fwd);
    std::string_view name = all.substr(h->field_start, h->value_start - 2 - h->field_start);
    std::string_view value = all.substr(h->value_start);
    while (!value.empty() && (value.back() == ' ' || value.back() == '\t')) value.remove_suffix(1);
    bool forward = false;
    if (EqualsNoCase(name, "x-request-id")) {
      h->request_id.Clear();
      // Only a sane id is kept; anything else is replaced by a generated one.
      bool ok = !value.empty() && value.size() <= 128;
      for (char ch : value) ok = ok && ch > 32 && ch < 127 && ch != '"' && ch != '\\';
      if (ok) h->request_id.Append(value.data(), value.size());
    } else if (EqualsNoCase(name, "expect")) {
      c->expect_continue = EqualsNoCase(value, "100-continue");
    } else if (EqualsNoCase(name, "content-length")) {
      c->has_cl = true;
    } else if (EqualsNoCase(name, "transfer-encoding")) {
      c->has_te = true;
    } else if (EqualsNoCase(name, "connection")) {
      if (h->conn_tokens.len) h->conn_tokens.Append(",", 1);
      h->conn_tokens.Append(value.data(), value.size());
    } else if (EqualsNoCase(name, "host") || IsHopByHop(name)) {
      // llmgw sets Host (the backend's) and the framing itself.
    } else {
      forward = true;
      if (EqualsNoCase(name, "content-type")) h->has_content_type = true;
      const char* hh = self(p)->snap_->limits.hash_header;
      if (hh[0] && EqualsNoCase(name, hh)) {
        h->hash_value.Clear();
        h->hash_value.Append(value.data(), value.size());
      }
    }
    if (forward) {
      h->fwd.resize(h->value_start + value.size());
      if (!AppendCapped(&h->fwd, "\r\n", 2)) return HeaderTooLarge(c);
    } else {
      h->fwd.resize(h->field_start);
    }
    return 0;
  }
  static int OnHeadersComplete(llhttp_t* p) {
    ClientConn* c = Cur(p);
    WorkerImpl* w = self(p);
    if (c->h->conn_tokens.len) RemoveConnectionNamed(&c->h->fwd, c->h->conn_tokens.View());
    // Request smuggling defence: both framings at once is refused outright.
    if (c->has_cl && c->has_te) {
      c->parse_error_status = 400;
      c->parse_error_msg = "Content-Length together with Transfer-Encoding is not allowed";
      c->parse_error_code = "bad_request";
      return -1;
    }
    uint64_t max_body = w->MaxBody();
    if ((p->flags & F_CONTENT_LENGTH) && p->content_length > max_body) {
      c->parse_error_status = 413;
      c->parse_error_msg = "request body exceeds max_body_bytes";
      c->parse_error_code = "payload_too_large";
      return -1;
    }
    c->deadline_ms = NowMs() + w->cfg_.gateway.timeouts.client_body_ms;
    c->deadline_status = 408;
    bool has_body = (p->flags & F_CHUNKED) || ((p->flags & F_CONTENT_LENGTH) && p->content_length > 0);
    if (c->expect_continue && has_body) {
      c->h->out.append("HTTP/1.1 100 Continue\r\n\r\n");
      w->QueueSend(c);
    }
    if (p->flags & F_CONTENT_LENGTH) c->h->body.reserve(p->content_length);
    return 0;
  }
  static int OnBody(llhttp_t* p, const char* at, size_t n) {
    ClientConn* c = Cur(p);
    if (c->h->body.size() + n > self(p)->MaxBody()) {
      c->parse_error_status = 413;
      c->parse_error_msg = "request body exceeds max_body_bytes";
      c->parse_error_code = "payload_too_large";
      return -1;
    }
    c->h->body.append(at, n);
    return 0;
  }
  static int OnMessageComplete(llhttp_t* p) {
    Cur(p)->in_message = false;
    // Pause: one request at a time per connection, so pipelined answers stay in order.
    return HPE_PAUSED;
  }
  static WorkerImpl* self(llhttp_t* p) { return static_cast<WorkerImpl*>(p->data); }

  // Forwarded header lines take at most a little more than their bytes on the wire ("a:b"
  // becomes "a: b"), which max_header_bytes bounds.
  size_t HeaderCap() const { return cfg_.gateway.max_header_bytes + cfg_.gateway.max_header_bytes / 4 + 64; }

  uint64_t MaxBody() const {
    return has_snapshot_ && snap_->limits.max_body_bytes ? snap_->limits.max_body_bytes
                                                         : cfg_.gateway.max_body_bytes;
  }

  // ------------------------------------------------------------------ local answers
  void BeginResponse(ClientConn* c) {
    AcquireRequest(c);  // an error may come before any request byte was understood
    c->busy = true;
    c->response_done = false;
    c->committed = false;
    c->streaming = false;
    c->chunked_out = false;
    c->is_sse = false;
    c->status = 0;
    c->start_us = NowUs();
    c->first_byte_us = 0;
    c->last_chunk_us = 0;
    c->up = nullptr;
    c->tried_count = 0;
    c->attempts = 0;
    c->fallback_index = 0;
    c->rewrite = false;
    c->retry_at_ms = 0;
    c->up_deadline_ms = 0;
    c->total_deadline_ms = 0;
    c->last_error_status = 0;
    c->last_error_msg = nullptr;
    c->bytes_in = c->bytes_out = 0;
    c->prompt_tokens = c->completion_tokens = 0;
    c->current_backend = -1;
    c->queued = false;
    c->retry_after_s = 0;
    c->deadline_ms = 0;
    c->deadline_status = 0;
    c->model_slot = UINT16_MAX;
    c->close_after_send = !llhttp_should_keep_alive(&c->parser);
    if (c->h->request_id.len == 0) {
      char id[40];
      uint64_t r = NextRandom();
      int n = std::snprintf(id, sizeof(id), "%016llx%08x", static_cast<unsigned long long>(r),
                            static_cast<unsigned>(NextRandom()));
      c->h->request_id.Append(id, static_cast<size_t>(n));
    }
  }

  // `content_type` empty: none of llmgw's own (a relayed answer brings its own in
  // `relayed`, the upstream's end-to-end header lines).
  void WriteHead(ClientConn* c, int status, std::string_view content_type, int64_t content_length,
                 std::string_view relayed = {}) {
    c->status = status;
    c->committed = true;
    std::string& o = c->h->out;
    o.append("HTTP/1.1 ");
    AppendUint(&o, static_cast<uint64_t>(status));
    o.push_back(' ');
    o.append(ReasonPhrase(status));
    o.append("\r\n");
    if (!content_type.empty()) {
      o.append("Content-Type: ");
      o.append(content_type);
      o.append("\r\n");
    }
    o.append(relayed);
    o.append("X-Request-ID: ");
    o.append(c->h->request_id.View());
    if (content_length >= 0) {
      o.append("\r\nContent-Length: ");
      AppendUint(&o, static_cast<uint64_t>(content_length));
    } else {
      o.append("\r\nTransfer-Encoding: chunked");
    }
    if (c->is_sse && !c->h->up_has_cache_control) o.append("\r\nCache-Control: no-cache");
    if (c->retry_after_s) {
      o.append("\r\nRetry-After: ");
      AppendUint(&o, c->retry_after_s);
    }
    o.append(c->close_after_send || draining_ ? "\r\nConnection: close\r\n\r\n" : "\r\nConnection: keep-alive\r\n\r\n");
  }

  void SendLocal(ClientConn* c, int status, std::string_view body, std::string_view ct = "application/json") {
    WriteHead(c, status, ct, static_cast<int64_t>(body.size()));
    if (c->parser.method != HTTP_HEAD) c->h->out.append(body);  // HEAD: the length, no body
    c->response_done = true;
    QueueSend(c);
  }

  // OpenAI-shaped error. `fatal`: the connection closes after it (broken framing).
  void SendError(ClientConn* c, int status, std::string_view message, std::string_view type,
                 const char* param, const char* code, bool fatal = false) {
    if (!c->busy) BeginResponse(c);
    if (fatal) c->close_after_send = true;
    std::string& b = scratch_;
    b.clear();
    b.append("{\"error\":{\"message\":");
    AppendJsonString(&b, message);
    b.append(",\"type\":");
    AppendJsonString(&b, type);
    b.append(",\"param\":");
    if (param) AppendJsonString(&b, param); else b.append("null");
    b.append(",\"code\":");
    if (code) AppendJsonString(&b, code); else b.append("null");
    b.append("}}");
    SendLocal(c, status, b);
  }

  bool AnyEligible() {
    if (!has_snapshot_) return false;
    for (uint32_t i = 0; i < snap_->num_backends; ++i) {
      const auto& b = snap_->backends[i];
      if (b.state == static_cast<uint8_t>(shm::BackendState::kEmpty)) continue;
      if (router_.Eligible(b, local_[i])) return true;
    }
    return false;
  }

  void SendModels(ClientConn* c) {
    std::string& b = scratch_;
    b.clear();
    b.append("{\"object\":\"list\",\"data\":[");
    bool first = true;
    auto add = [&](const char* name, const char* root) {
      if (!first) b.push_back(',');
      first = false;
      b.append("{\"id\":");
      AppendJsonString(&b, name);
      b.append(",\"object\":\"model\",\"created\":0,\"owned_by\":\"llmgw\",\"root\":");
      AppendJsonString(&b, root);
      b.push_back('}');
    };
    if (has_snapshot_) {
      for (uint32_t m = 0; m < snap_->num_models && m < shm::kMaxModels; ++m) {
        const auto& me = snap_->models[m];
        if (!me.present) continue;
        add(me.name, me.name);
        for (uint32_t a = 0; a < me.num_aliases && a < shm::kMaxAliases; ++a) add(me.aliases[a], me.name);
      }
    }
    b.append("]}");
    SendLocal(c, 200, b);
  }

  int FindModel(std::string_view name, bool* via_alias) {
    *via_alias = false;
    for (uint32_t m = 0; m < snap_->num_models && m < shm::kMaxModels; ++m) {
      const auto& me = snap_->models[m];
      if (!me.present) continue;
      if (name == me.name) return static_cast<int>(m);
    }
    for (uint32_t m = 0; m < snap_->num_models && m < shm::kMaxModels; ++m) {
      const auto& me = snap_->models[m];
      if (!me.present) continue;
      for (uint32_t a = 0; a < me.num_aliases && a < shm::kMaxAliases; ++a)
        if (name == me.aliases[a]) {
          *via_alias = name != me.name;
          return static_cast<int>(m);
        }
    }
    return -1;
  }

  // ------------------------------------------------------------------ request handling
  void HandleRequest(ClientConn* c) {
    BeginResponse(c);
    std::string_view url = c->h->url.View();
    size_t q = url.find('?');
    std::string_view path = q == std::string_view::npos ? url : url.substr(0, q);
    auto method = static_cast<llhttp_method_t>(c->parser.method);
    bool get = method == HTTP_GET || method == HTTP_HEAD;
    bool post = method == HTTP_POST;
    auto wrong_method = [&] {
      SendError(c, 405, "method not allowed on this path", "invalid_request_error", nullptr,
                "method_not_allowed");
    };
    if (path == "/health") {
      if (!get) return wrong_method();
      return SendLocal(c, 200, "{\"status\":\"ok\"}");
    }
    if (path == "/ready") {
      if (!get) return wrong_method();
      if (!has_snapshot_) return SendLocal(c, 503, "{\"status\":\"not ready\",\"reason\":\"no snapshot yet\"}");
      if (!AnyEligible()) return SendLocal(c, 503, "{\"status\":\"not ready\",\"reason\":\"no eligible backend\"}");
      return SendLocal(c, 200, "{\"status\":\"ready\"}");
    }
    if (path == "/v1/models") {
      if (!get) return wrong_method();
      return SendModels(c);
    }
    const char* api = nullptr;
    if (path == "/v1/chat/completions") api = "/v1/chat/completions";
    else if (path == "/v1/completions") api = "/v1/completions";
    else if (path == "/v1/embeddings") api = "/v1/embeddings";
    if (!api) {
      return SendError(c, 404, "unknown path", "invalid_request_error", nullptr, "not_found");
    }
    if (!post) return wrong_method();
    std::snprintf(c->api_path, sizeof(c->api_path), "%s", api);
    if (!has_snapshot_) {
      return SendError(c, 503, "gateway has no routing snapshot yet", "service_unavailable", nullptr,
                       "not_ready");
    }
    RequestFields f;
    ReadRequestFields(c->h->body.data(), c->h->body.size(), cfg_.gateway.admission.priority_field, &f);
    if (!f.valid_json) {
      char msg[160];
      std::snprintf(msg, sizeof(msg), "request body is not valid JSON: %s", f.error);
      return SendError(c, 400, msg, "invalid_request_error", nullptr, "invalid_json");
    }
    if (!f.is_object) {
      return SendError(c, 400, "request body must be a JSON object", "invalid_request_error", nullptr,
                       "invalid_json");
    }
    if (!f.has_model) {
      return SendError(c, 400, "you must provide a model parameter", "invalid_request_error", "model",
                       "missing_model");
    }
    if (!f.model_is_string || f.model_len == 0) {
      return SendError(c, 400, "model must be a non-empty string", "invalid_request_error", "model",
                       "invalid_model");
    }
    bool via_alias = false;
    int m = FindModel(f.Model(), &via_alias);
    if (m < 0) {
      char msg[192];
      std::snprintf(msg, sizeof(msg), "The model `%.*s` does not exist", static_cast<int>(f.model_len), f.model);
      return SendError(c, 404, msg, "invalid_request_error", "model", "model_not_found");
    }
    c->model_slot = c->orig_model_slot = static_cast<uint16_t>(m);
    c->rewrite = c->alias_rewrite = via_alias;
    c->priority = f.has_priority ? static_cast<int32_t>(std::clamp<int64_t>(f.priority, INT32_MIN, INT32_MAX)) : 0;
    c->model_begin = f.model_raw_begin;
    c->model_end = f.model_raw_end;
    c->streaming = f.stream;
    c->h->user.Clear();
    c->h->user.Append(f.user, f.user_len);
    shm::Bump(stats_->models[m].active);
    const auto& lim = snap_->limits;
    if (lim.total_ms) c->total_deadline_ms = NowMs() + lim.total_ms;
    StartAttempt(c);
  }

  // One pick from the router; on no backend, walk the model's fallbacks.
  void StartAttempt(ClientConn* c) {
    int slot = routing::kNoBackend;
    while (true) {
      routing::RequestInfo info;
      info.hash_key = c->h->hash_value.len ? c->h->hash_value.View() : c->h->user.View();
      if (router_.PolicyOf(c->model_slot) == Policy::kPrefixAffinity) {
        RequestState* h = c->h;
        if (h->prefix_len < 0) {
          size_t cap = std::min<size_t>(sizeof(h->prefix), snap_->limits.prefix_bytes ? snap_->limits.prefix_bytes : 256);
          h->prefix_len = static_cast<int>(routing::ExtractPrefix(h->body, h->prefix, cap));
        }
        info.prefix = std::string_view(h->prefix, static_cast<size_t>(h->prefix_len));
      }
      info.random = NextRandom();
      slot = router_.Pick(c->model_slot, info, local_, std::span<const uint16_t>(c->tried, c->tried_count));
      if (slot != routing::kNoBackend) break;
      const auto& me = snap_->models[c->orig_model_slot];
      if (c->fallback_index < me.num_fallbacks && c->fallback_index < shm::kMaxFallbacks) {
        c->model_slot = me.fallbacks[c->fallback_index++];
        c->rewrite = true;  // the fallback model's name goes upstream
        shm::Bump(stats_->models[c->orig_model_slot].fallbacks);
        continue;
      }
      break;
    }
    if (slot == routing::kNoBackend) {
      if (c->last_error_status) {
        return SendError(c, c->last_error_status, c->last_error_msg ? c->last_error_msg : "upstream failed",
                         "upstream_error", nullptr, c->last_error_status == 504 ? "upstream_timeout" : "upstream_error");
      }
      // Every backend is busy (not broken): wait in the admission queue for a free slot.
      if (c->attempts == 0 && admission_ && router_.AllAtCapacity(c->orig_model_slot, local_))
        return Enqueue(c);
      shm::Bump(stats_->models[c->orig_model_slot].rejected);
      return SendError(c, 503, "no eligible backend for this model", "service_unavailable", nullptr,
                       "no_backend");
    }
    if (c->tried_count < 16) c->tried[c->tried_count++] = static_cast<uint16_t>(slot);
    ++c->attempts;
    const shm::BackendEntry& be = snap_->backends[slot];
    c->current_backend = slot;
    ++local_[slot].in_flight;
    auto& bs = stats_->backends[slot];
    if (bs.key.load(std::memory_order_relaxed) != be.key) shm::Set(bs.key, be.key);
    shm::Bump(bs.picks);
    shm::Bump(bs.requests);
    shm::Set(bs.in_flight, local_[slot].in_flight);
    c->first_byte_us = 0;

    UpstreamConn* u = nullptr;
    auto& pool = idle_[slot];
    while (!pool.empty() && !u) {
      UpstreamConn* cand = pool.back();
      pool.pop_back();
      if (cand->backend_key == be.key) {
        u = cand;
      } else {
        CloseUpstreamFd(cand);
        --live_conns_;
        delete cand;
      }
    }
    if (u) {
      u->reused = true;
    } else {
      u = NewUpstream(slot, be);
      if (!u) return UpstreamFailed(c, ErrorKind::kConnectFailed, "cannot create upstream socket", true);
    }
    u->client = c;
    c->up = u;
    BuildUpstreamRequest(c, u, be);
    llhttp_init(&u->parser, HTTP_RESPONSE, &up_settings_);
    u->parser.data = this;
    u->saw_response_byte = false;
    u->in_field = false;
    c->h->up_head.clear();
    c->h->up_conn_tokens.Clear();
    c->h->up_has_cache_control = false;
    c->h->up_overflow = false;
    c->is_sse = false;
    if (u->connected) {
      SetUpDeadline(c, 2, snap_->limits.first_byte_ms);
      ArmUpSend(u);
      // The response read is queued with the request: no loop turn between them.
      ArmUpRecv(u);
    } else {
      SetUpDeadline(c, 1, snap_->limits.connect_ms);
      io_uring_sqe* s = Sqe();
      io_uring_prep_connect(s, u->fd, reinterpret_cast<sockaddr*>(&u->addr), u->addr_len);
      io_uring_sqe_set_data64(s, Tag(u, kOpUpConnect));
      ++u->pending_ops;
    }
  }

  void Enqueue(ClientConn* c) {
    uint64_t evicted = 0;
    auto r = admission_->Push(reinterpret_cast<uint64_t>(c), c->priority, &evicted);
    if (r == routing::AdmissionQueue::PushResult::kFull) return RejectOverloaded(c);
    c->queued = true;
    c->model_slot = c->orig_model_slot;
    c->fallback_index = 0;
    c->rewrite = c->alias_rewrite;
    shm::Bump(stats_->admission_queued);
    if (r == routing::AdmissionQueue::PushResult::kQueuedEvicted) {
      ClientConn* e = reinterpret_cast<ClientConn*>(evicted);
      e->queued = false;
      RejectOverloaded(e);
    }
  }

  void RejectOverloaded(ClientConn* c) {
    shm::Bump(stats_->admission_rejected);
    shm::Bump(stats_->models[c->orig_model_slot].rejected);
    c->retry_after_s = admission_->RetryAfterSeconds();
    SendError(c, 429, "every backend of this model is at capacity; retry later", "rate_limit_error", nullptr,
              "overloaded");
  }

  // A backend slot freed up: let the best waiter try again (one per freed slot).
  void AdmitWaiting() {
    while (admit_credits_ > 0 && admission_ && !admission_->empty()) {
      --admit_credits_;
      uint64_t cookie;
      if (!admission_->Pop(&cookie)) break;
      ClientConn* c = reinterpret_cast<ClientConn*>(cookie);
      c->queued = false;
      StartAttempt(c);
    }
    admit_credits_ = 0;
  }

  void SetUpDeadline(ClientConn* c, uint8_t kind, uint32_t ms) {
    c->up_deadline_kind = kind;
    c->up_deadline_ms = ms ? NowMs() + ms : 0;
  }

  UpstreamConn* NewUpstream(int slot, const shm::BackendEntry& be) {
    int fam = be.family == AF_INET6 ? AF_INET6 : AF_INET;
    int fd = ::socket(fam, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return nullptr;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    auto* u = new UpstreamConn();
    u->head.reserve(1024);  // request line and llmgw's own headers; kept while pooled
    ++live_conns_;
    u->fd = fd;
    u->slot = static_cast<uint16_t>(slot);
    u->backend_key = be.key;
    if (fam == AF_INET) {
      auto* a = reinterpret_cast<sockaddr_in*>(&u->addr);
      a->sin_family = AF_INET;
      a->sin_port = htons(be.port);
      std::memcpy(&a->sin_addr, be.addr, 4);
      u->addr_len = sizeof(sockaddr_in);
    } else {
      auto* a = reinterpret_cast<sockaddr_in6*>(&u->addr);
      a->sin6_family = AF_INET6;
      a->sin6_port = htons(be.port);
      std::memcpy(&a->sin6_addr, be.addr, 16);
      u->addr_len = sizeof(sockaddr_in6);
    }
    shm::Bump(stats_->backends[slot].upstream_connects);
    return u;
  }

  void BuildUpstreamRequest(ClientConn* c, UpstreamConn* u, const shm::BackendEntry& be) {
    const auto& me = snap_->models[c->model_slot];
    std::string_view new_model = me.name;
    size_t body_len = c->h->body.size();
    if (c->rewrite) body_len = c->model_begin + (new_model.size() + 2) + (c->h->body.size() - c->model_end);
    std::string& h = u->head;
    h.clear();
    h.append("POST ");
    h.append(be.base_path);
    h.append(c->api_path);
    h.append(" HTTP/1.1\r\nHost: ");
    h.append(be.host_header);
    h.append("\r\nContent-Length: ");
    AppendUint(&h, body_len);
    h.append("\r\nX-Request-ID: ");
    h.append(c->h->request_id.View());
    if (!c->h->has_content_type) h.append("\r\nContent-Type: application/json");
    h.append("\r\nConnection: keep-alive\r\n");
    // The client's own end-to-end headers follow from the request state, uncopied.
    size_t head_len = h.size();
    u->iov_cnt = 0;
    u->iov[u->iov_cnt++] = {h.data(), head_len};
    if (!c->h->fwd.empty()) u->iov[u->iov_cnt++] = {c->h->fwd.data(), c->h->fwd.size()};
    static const char kEndOfHead[] = "\r\n";
    u->iov[u->iov_cnt++] = {const_cast<char*>(kEndOfHead), 2};
    if (c->rewrite) {
      // Scatter-gather: the prompt is sent from the client buffer, only the model changes.
      // The quoted new name lives in the head buffer's tail, after the head proper.
      h.push_back('"');
      h.append(new_model);
      h.push_back('"');
      u->iov[0] = {h.data(), head_len};
      u->iov[u->iov_cnt++] = {c->h->body.data(), c->model_begin};
      u->iov[u->iov_cnt++] = {h.data() + head_len, h.size() - head_len};
      u->iov[u->iov_cnt++] = {c->h->body.data() + c->model_end, c->h->body.size() - c->model_end};
    } else if (!c->h->body.empty()) {
      u->iov[u->iov_cnt++] = {c->h->body.data(), c->h->body.size()};
    }
  }

  void ArmUpSend(UpstreamConn* u) {
    u->msg = msghdr{};
    u->msg.msg_iov = u->iov;
    u->msg.msg_iovlen = static_cast<size_t>(u->iov_cnt);
    io_uring_sqe* s = Sqe();
    io_uring_prep_sendmsg(s, u->fd, &u->msg, MSG_NOSIGNAL);
    io_uring_sqe_set_data64(s, Tag(u, kOpUpSend));
    u->send_armed = true;
    ++u->pending_ops;
  }

  void OnUpConnect(UpstreamConn* u, int res) {
    if (u->closed || !u->client) return;
    ClientConn* c = u->client;
    if (res < 0) {
      LOG_DEBUG("upstream connect failed", {{"backend", std::string_view(snap_->backends[u->slot].id)},
                                            {"error", strerror(-res)}});
      CountUpErr(u->slot, shm::UpstreamErr::kConnect);
      return UpstreamFailed(c, ErrorKind::kConnectFailed, "upstream connect failed", true);
    }
    u->connected = true;
    SetUpDeadline(c, 2, snap_->limits.first_byte_ms);
    ArmUpSend(u);
    ArmUpRecv(u);
  }

  void OnUpSend(UpstreamConn* u, int res) {
    u->send_armed = false;
    if (u->closed || !u->client) return;
    ClientConn* c = u->client;
    if (res < 0) {
      if (u->reused) return RetryStale(c);
      CountUpErr(u->slot, shm::UpstreamErr::kReset);
      return UpstreamFailed(c, ErrorKind::kConnectionReset, "upstream reset while sending", true);
    }
    size_t n = static_cast<size_t>(res);
    shm::Bump(stats_->backends[u->slot].bytes_out, n);
    // Advance over what was sent; resubmit the rest.
    int i = 0;
    while (i < u->iov_cnt && n >= u->iov[i].iov_len) n -= u->iov[i++].iov_len;
    if (i < u->iov_cnt) {
      u->iov[i].iov_base = static_cast<char*>(u->iov[i].iov_base) + n;
      u->iov[i].iov_len -= n;
      std::memmove(u->iov, u->iov + i, sizeof(iovec) * static_cast<size_t>(u->iov_cnt - i));
      u->iov_cnt -= i;
      return ArmUpSend(u);
    }
    u->iov_cnt = 0;
    if (!u->recv_armed) ArmUpRecv(u);
  }

  // A pooled connection the server had closed meanwhile: not the backend's fault, so try
  // again at once (the next pooled or a new connection), without spending a retry.
  void RetryStale(ClientConn* c) {
    --c->attempts;
    if (c->tried_count) --c->tried_count;
    ReleaseUpstream(c, false);
    StartAttempt(c);
  }

  void ArmUpRecv(UpstreamConn* u) {
    if (u->recv_armed || u->closed) return;
    // The idle clock runs only while we wait for the upstream, not while a slow client
    // is still taking the previous read (backpressure is not an upstream failure).
    if (u->client && u->client->committed) SetUpDeadline(u->client, 3, snap_->limits.idle_ms);
    io_uring_sqe* s = Sqe();
    io_uring_prep_recv(s, u->fd, u->in, kUpstreamInCap, 0);
    io_uring_sqe_set_data64(s, Tag(u, kOpUpRecv));
    u->recv_armed = true;
    ++u->pending_ops;
  }

  void OnUpRecv(UpstreamConn* u, int res) {
    u->recv_armed = false;
    if (u->closed || !u->client) return;
    ClientConn* c = u->client;
    if (res <= 0) {
      current_up_ = u;
      bool finished = res == 0 && u->saw_response_byte && llhttp_finish(&u->parser) == HPE_OK && c->response_done;
      current_up_ = nullptr;
      if (finished) {
        // Body delimited by the upstream closing: complete.
        u->reused = false;
        ReleaseUpstream(c, false);
        QueueSend(c);
        return;
      }
      if (u->reused && !u->saw_response_byte) return RetryStale(c);
      CountUpErr(u->slot, shm::UpstreamErr::kReset);
      return UpstreamFailed(c, ErrorKind::kConnectionReset, "upstream closed the connection", true);
    }
    u->saw_response_byte = true;
    shm::Bump(stats_->backends[u->slot].bytes_in, static_cast<uint64_t>(res));
    if (!c->committed) SetUpDeadline(c, 3, snap_->limits.idle_ms);
    else SetUpDeadline(c, 3, snap_->limits.idle_ms);
    current_up_ = u;
    up_fail_ = false;
    llhttp_errno_t e = llhttp_execute(&u->parser, u->in, static_cast<size_t>(res));
    current_up_ = nullptr;
    if (up_fail_) {
      // 5xx / 429 before anything reached the client: try elsewhere.
      return UpstreamFailed(c, ErrorKind::kUpstreamStatus, up_fail_msg_, true);
    }
    if (e != HPE_OK && e != HPE_PAUSED) {
      CountUpErr(u->slot, shm::UpstreamErr::kProtocol);
      return UpstreamFailed(c, ErrorKind::kUpstreamProtocol,
                            c->h->up_overflow ? "upstream response headers too large" : "upstream sent invalid HTTP",
                            false);
    }
    if (c->response_done) {
      bool keep = llhttp_should_keep_alive(&u->parser);
      ReleaseUpstream(c, keep);
    }
    if (c->out_off < c->h->out.size()) {
      c->up_deadline_ms = 0;  // now waiting on the client, see ArmUpRecv
      QueueSend(c);  // next upstream read waits until this is on the wire: backpressure
    } else if (!c->response_done) {
      ArmUpRecv(u);
    } else {
      AfterClientDrained(c);
    }
  }

  static UpstreamConn* CurUp(llhttp_t* p) { return self(p)->current_up_; }

  // The upstream's end-to-end headers are collected as lines for the client; framing
  // (Content-Length / Transfer-Encoding) is redone by llmgw, hop-by-hop headers stay here.
  static int UpHeadTooLarge(UpstreamConn* u) {
    u->client->h->up_overflow = true;
    return -1;
  }
  static int OnUpHeaderField(llhttp_t* p, const char* at, size_t n) {
    UpstreamConn* u = CurUp(p);
    RequestState* h = u->client->h;
    if (!u->in_field) {
      u->in_field = true;
      h->up_field_start = h->up_head.size();
    }
    if (!AppendCapped(&h->up_head, at, n)) return UpHeadTooLarge(u);
    return 0;
  }
  static int BeginUpValue(UpstreamConn* u) {
    if (!u->in_field) return 0;
    u->in_field = false;
    RequestState* h = u->client->h;
    if (!AppendCapped(&h->up_head, ": ", 2)) return UpHeadTooLarge(u);
    h->up_value_start = h->up_head.size();
    return 0;
  }
  static int OnUpHeaderValue(llhttp_t* p, const char* at, size_t n) {
    UpstreamConn* u = CurUp(p);
    if (BeginUpValue(u) != 0) return -1;
    if (!AppendCapped(&u->client->h->up_head, at, n)) return UpHeadTooLarge(u);
    return 0;
  }
  static int OnUpHeaderValueComplete(llhttp_t* p) {
    UpstreamConn* u = CurUp(p);
    ClientConn* c = u->client;
    RequestState* h = c->h;
    if (BeginUpValue(u) != 0) return -1;
    std::string_view all(h->up_head);
    std::string_view name = all.substr(h->up_field_start, h->up_value_start - 2 - h->up_field_start);
    std::string_view value = all.substr(h->up_value_start);
    while (!value.empty() && (value.back() == ' ' || value.back() == '\t')) value.remove_suffix(1);
    bool forward = false;
    if (EqualsNoCase(name, "connection")) {
      if (h->up_conn_tokens.len) h->up_conn_tokens.Append(",", 1);
      h->up_conn_tokens.Append(value.data(), value.size());
    } else if (IsHopByHop(name) || EqualsNoCase(name, "content-length") || EqualsNoCase(name, "x-request-id")) {
      // Framing is redone for the client; the request id is llmgw's (sent upstream too).
    } else {
      forward = true;
      if (EqualsNoCase(name, "content-type")) c->is_sse = StartsWithNoCase(value, "text/event-stream");
      else if (EqualsNoCase(name, "cache-control")) h->up_has_cache_control = true;
    }
    if (forward) {
      h->up_head.resize(h->up_value_start + value.size());
      if (!AppendCapped(&h->up_head, "\r\n", 2)) return UpHeadTooLarge(u);
    } else {
      h->up_head.resize(h->up_field_start);
    }
    return 0;
  }

  static int OnUpHeadersComplete(llhttp_t* p) {
    WorkerImpl* w = self(p);
    UpstreamConn* u = CurUp(p);
    ClientConn* c = u->client;
    int status = p->status_code;
    if ((status >= 500 || status == 429) && !c->committed) {
      w->CountUpErr(u->slot, status == 429 ? shm::UpstreamErr::kStatus429 : shm::UpstreamErr::kStatus5xx);
      std::snprintf(w->up_fail_msg_, sizeof(w->up_fail_msg_), "upstream answered %d", status);
      w->up_fail_status_ = status;
      w->up_fail_ = true;
      return -1;
    }
    bool chunked = p->flags & F_CHUNKED;
    bool has_len = (p->flags & F_CONTENT_LENGTH) && !chunked;
    if (c->h->up_conn_tokens.len) RemoveConnectionNamed(&c->h->up_head, c->h->up_conn_tokens.View());
    c->chunked_out = !has_len;
    c->first_byte_us = NowUs();
    w->ObserveTtftOnce(c);
    w->WriteHead(c, status, {}, has_len ? static_cast<int64_t>(p->content_length) : -1, c->h->up_head);
    c->status = status;
    return 0;
  }

  static int OnUpBody(llhttp_t* p, const char* at, size_t n) {
    WorkerImpl* w = self(p);
    ClientConn* c = CurUp(p)->client;
    uint64_t now = NowUs();
    if (c->is_sse && c->last_chunk_us) shm::Observe(w->stats_->inter_token, now - c->last_chunk_us);
    c->last_chunk_us = now;
    if (c->chunked_out) {
      char hex[20];
      int k = std::snprintf(hex, sizeof(hex), "%zx\r\n", n);
      c->h->out.append(hex, static_cast<size_t>(k));
      c->h->out.append(at, n);
      c->h->out.append("\r\n");
    } else {
      c->h->out.append(at, n);
    }
    w->ScanUsage(c, std::string_view(at, n));
    return 0;
  }

  static int OnUpMessageComplete(llhttp_t* p) {
    ClientConn* c = CurUp(p)->client;
    if (c->chunked_out) c->h->out.append("0\r\n\r\n");
    c->response_done = true;
    return HPE_PAUSED;
  }

  // Tokens from `usage` (the whole body, or the final stream chunk). Cheap substring scan.
  void ScanUsage(ClientConn* c, std::string_view data) {
    auto grab = [&](std::string_view key, uint64_t* out) {
      size_t pos = data.find(key);
      if (pos == std::string_view::npos) return;
      pos += key.size();
      while (pos < data.size() && data[pos] == ' ') ++pos;
      uint64_t v = 0;
      bool any = false;
      while (pos < data.size() && data[pos] >= '0' && data[pos] <= '9') {
        v = v * 10 + static_cast<uint64_t>(data[pos++] - '0');
        any = true;
      }
      if (any) *out = v;
    };
    if (data.find("\"usage\"") == std::string_view::npos) return;
    grab("\"prompt_tokens\":", &c->prompt_tokens);
    grab("\"completion_tokens\":", &c->completion_tokens);
  }

  void ObserveTtftOnce(ClientConn* c) {
    if (c->current_backend < 0) return;
    uint64_t us = c->first_byte_us - c->start_us;
    shm::Observe(stats_->ttft, us);
    shm::Observe(stats_->backends[c->current_backend].ttft, us);
  }

  void CountUpErr(uint16_t slot, shm::UpstreamErr e) {
    shm::Bump(stats_->backends[slot].errors[static_cast<size_t>(e)]);
  }

  void CloseUpstreamFd(UpstreamConn* u) {
    if (u->closed) return;
    u->closed = true;
    // shutdown first: a pending io_uring recv holds a file reference, so close() alone
    // would not end the TCP connection (and the model server would keep generating).
    ::shutdown(u->fd, SHUT_RDWR);
    if (u->pending_ops) {
      io_uring_sqe* s = Sqe();
      io_uring_prep_cancel_fd(s, u->fd, IORING_ASYNC_CANCEL_ALL);
      io_uring_sqe_set_data64(s, kOpNone);
      io_uring_submit(&ring_);
    }
    ::close(u->fd);
  }

  // Detaches the client's upstream: back to the pool when reusable, else closed.
  void ReleaseUpstream(ClientConn* c, bool keep) {
    UpstreamConn* u = c->up;
    if (!u) return;
    c->up = nullptr;
    c->up_deadline_ms = 0;
    u->client = nullptr;
    int slot = u->slot;
    if (local_[slot].in_flight) --local_[slot].in_flight;
    ++admit_credits_;
    shm::Set(stats_->backends[slot].in_flight, local_[slot].in_flight);
    if (keep && !u->recv_armed && !u->send_armed && !draining_ && idle_[slot].size() < kMaxIdlePerBackend) {
      u->reused = false;
      idle_[slot].push_back(u);
      return;
    }
    CloseUpstreamFd(u);
    MaybeFree(u);
  }

  void UpstreamFailed(ClientConn* c, ErrorKind kind, const char* msg, bool retryable) {
    shm::Bump(stats_->errors_by_kind[static_cast<int>(kind)]);
    if (c->up) ReleaseUpstream(c, false);
    c->up_deadline_ms = 0;
    if (!c->committed) {
      c->last_error_status = kind == ErrorKind::kTimeout ? 504
                             : (kind == ErrorKind::kUpstreamStatus && up_fail_status_ == 429) ? 429
                                                                                                : 502;
      c->last_error_msg = msg;
      if (!c->send_armed) {  // only a 100 Continue can be queued before the commit
        c->h->out.clear();
        c->out_off = 0;
      }
      uint32_t retries_max = snap_->limits.retries_max;
      if (retryable && c->attempts <= retries_max && !draining_) {
        shm::Bump(stats_->retries);
        shm::Bump(stats_->models[c->orig_model_slot].retries);
        uint32_t backoff = snap_->limits.retries_backoff_ms << (c->attempts > 0 ? c->attempts - 1 : 0);
        backoff += static_cast<uint32_t>(NextRandom() % (backoff / 2 + 1));  // jitter
        if (backoff == 0) return StartAttempt(c);
        c->retry_at_ms = NowMs() + backoff;
        return;
      }
      return SendError(c, c->last_error_status, msg, "upstream_error", nullptr,
                       c->last_error_status == 504 ? "upstream_timeout" : "upstream_error");
    }
    // Bytes already went to the client: end the stream with an error event, then close.
    c->close_after_send = true;
    if (c->is_sse && c->chunked_out) {
      char ev[256];
      int n = std::snprintf(ev, sizeof(ev),
                            "event: error\ndata: {\"error\":{\"message\":\"%s\",\"type\":\"upstream_error\",\"param\":null,\"code\":\"%s\"}}\n\n",
                            msg, kind == ErrorKind::kTimeout ? "upstream_timeout" : "upstream_error");
      char hex[20];
      int k = std::snprintf(hex, sizeof(hex), "%x\r\n", n);
      c->h->out.append(hex, static_cast<size_t>(k));
      c->h->out.append(ev, static_cast<size_t>(n));
      c->h->out.append("\r\n0\r\n\r\n");
      c->response_done = true;
      QueueSend(c);
    } else {
      c->response_done = true;
      c->status = 502;
      if (c->out_off >= c->h->out.size()) CloseClient(c);
      else QueueSend(c);
    }
  }

  void EndRequestStats(ClientConn* c, int status) {
    if (status == 0) status = 499;
    uint64_t us = NowUs() - c->start_us;
    shm::Bump(stats_->requests_total);
    shm::Observe(stats_->latency, us);
    if (c->model_slot != UINT16_MAX) {
      auto& ms = stats_->models[c->orig_model_slot];
      shm::Bump(ms.requests_by_code[shm::StatusCodeIndex(static_cast<uint16_t>(status))]);
      uint64_t a = ms.active.load(std::memory_order_relaxed);
      if (a) shm::Set(ms.active, a - 1);
      shm::Bump(ms.prompt_tokens, c->prompt_tokens);
      shm::Bump(ms.completion_tokens, c->completion_tokens);
      if (c->current_backend >= 0) {
        auto& bs = stats_->backends[c->current_backend];
        shm::Observe(bs.latency, us);
        if (status < 500 && status != 429 && status != 499) shm::Bump(bs.successes);
        shm::Bump(bs.prompt_tokens, c->prompt_tokens);
        shm::Bump(bs.completion_tokens, c->completion_tokens);
        if (us / 1000 > cfg_.circuit_breaker.slow_call_ms) shm::Bump(bs.slow_calls);
      }
    }
    if (cfg_.gateway.access_log.enabled) AccessLog(c, status, us);
    c->model_slot = UINT16_MAX;
  }

  void AccessLog(ClientConn* c, int status, uint64_t us) {
    double sample = cfg_.gateway.access_log.sample;
    if (sample < 1.0 && static_cast<double>(NextRandom() % 1000000) / 1e6 >= sample) return;
    char line[2048];
    std::string_view model = c->model_slot != UINT16_MAX ? std::string_view(snap_->models[c->orig_model_slot].name) : "";
    std::string_view backend = c->current_backend >= 0 ? std::string_view(snap_->backends[c->current_backend].id) : "";
    size_t n = FormatLogLine(line, sizeof(line), LogLevel::kInfo, "access",
        {{"method", llhttp_method_name(static_cast<llhttp_method_t>(c->parser.method))},
         {"path", c->h->url.View()},
         {"status", status},
         {"model", model},
         {"backend", backend},
         {"stream", c->streaming},
         {"attempts", static_cast<unsigned>(c->attempts)},
         {"duration_us", static_cast<unsigned long long>(us)},
         {"ttft_us", static_cast<unsigned long long>(c->first_byte_us ? c->first_byte_us - c->start_us : 0)},
         {"bytes_out", static_cast<unsigned long long>(c->bytes_out)},
         {"prompt_tokens", static_cast<unsigned long long>(c->prompt_tokens)},
         {"completion_tokens", static_cast<unsigned long long>(c->completion_tokens)}},
        c->h->request_id.View());
    // One write per line (O_APPEND), so threads' lines never interleave.
    ssize_t w = ::write(access_fd_, line, n);
    (void)w;
  }

  uint64_t NextRandom() {
    // xorshift64*: per-thread, no syscalls, good enough for ids, jitter and tie breaks.
    rng_ ^= rng_ >> 12;
    rng_ ^= rng_ << 25;
    rng_ ^= rng_ >> 27;
    return rng_ * 2685821657736338717ull;
  }

  const Config& cfg_;
  shm::ShmRegion* region_;
  uint32_t index_;
  int listen_fd_;
  io_uring ring_{};
  bool ring_ok_ = false;
  bool multishot_accept_ = true;
  bool accept_armed_ = false;
  bool draining_ = false;
  uint64_t drain_deadline_ms_ = 0;
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
  uint64_t rng_ = 0x9e3779b97f4a7c15ull ^ (static_cast<uint64_t>(::getpid()) << 16) ^ NowUs();
};

ClientConn* WorkerImpl::Cur(llhttp_t* p) { return self(p)->current_; }

// ------------------------------------------------------------------ public wrappers

Result<int> OpenListener(const std::string& host, uint16_t port) {
  sockaddr_storage ss{};
  socklen_t len = 0;
  int fam = AF_INET;
  std::string h = host;
  if (!h.empty() && h.front() == '[') h = h.substr(1, h.size() - 2);
  if (h.find(':') != std::string::npos) {
    fam = AF_INET6;
    auto* a = reinterpret_cast<sockaddr_in6*>(&ss);
    a->sin6_family = AF_INET6;
    a->sin6_port = htons(port);
    if (inet_pton(AF_INET6, h.c_str(), &a->sin6_addr) != 1)
      return Error(ErrorKind::kConfig, ErrorSide::kInternal, false, "bad listen address %s", host.c_str());
    len = sizeof(*a);
  } else {
    auto* a = reinterpret_cast<sockaddr_in*>(&ss);
    a->sin_family = AF_INET;
    a->sin_port = htons(port);
    if (h.empty() || h == "*" || h == "0.0.0.0") {
      a->sin_addr.s_addr = htonl(INADDR_ANY);
    } else if (h == "localhost") {
      a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    } else if (inet_pton(AF_INET, h.c_str(), &a->sin_addr) != 1) {
      return Error(ErrorKind::kConfig, ErrorSide::kInternal, false, "bad listen address %s", host.c_str());
    }
    len = sizeof(*a);
  }
  int fd = ::socket(fam, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return Error(ErrorKind::kIo, ErrorSide::kInternal, false, "socket: %s", strerror(errno));
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  // One listener per thread on the same port: the kernel spreads connections over them.
  setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
  if (::bind(fd, reinterpret_cast<sockaddr*>(&ss), len) < 0) {
    int e = errno;
    ::close(fd);
    return Error(ErrorKind::kIo, ErrorSide::kInternal, false, "bind %s:%u: %s", host.c_str(), port, strerror(e));
  }
  if (::listen(fd, 4096) < 0) {
    int e = errno;
    ::close(fd);
    return Error(ErrorKind::kIo, ErrorSide::kInternal, false, "listen: %s", strerror(e));
  }
  return fd;
}

Status ProbeIoUring() {
  io_uring_probe* probe = io_uring_get_probe();
  if (!probe) {
    return Error(ErrorKind::kIo, ErrorSide::kInternal, false,
                 "io_uring is not available (kernel too old, or disabled by sysctl/seccomp)");
  }
  const struct {
    int op;
    const char* name;
  } needed[] = {{IORING_OP_ACCEPT, "ACCEPT"},     {IORING_OP_RECV, "RECV"},
                {IORING_OP_SEND, "SEND"},         {IORING_OP_SENDMSG, "SENDMSG"},
                {IORING_OP_CONNECT, "CONNECT"},   {IORING_OP_ASYNC_CANCEL, "ASYNC_CANCEL"}};
  for (const auto& n : needed) {
    if (!io_uring_opcode_supported(probe, n.op)) {
      io_uring_free_probe(probe);
      return Error(ErrorKind::kIo, ErrorSide::kInternal, false,
                   "io_uring lacks IORING_OP_%s; llmgw needs Linux >= 6.0", n.name);
    }
  }
  io_uring_free_probe(probe);
  // Multishot recv (and provided buffer rings) cannot be probed by opcode: they are flags
  // of RECV. Linux 6.0 has both; refuse older kernels instead of failing every read.
  utsname u{};
  int major = 0, minor = 0;
  if (::uname(&u) == 0 && std::sscanf(u.release, "%d.%d", &major, &minor) == 2 &&
      (major < 6)) {
    return Error(ErrorKind::kIo, ErrorSide::kInternal, false,
                 "kernel %s lacks io_uring multishot recv with provided buffers; llmgw needs Linux >= 6.0",
                 u.release);
  }
  return Status::Ok();
}

Worker::Worker(const Config& cfg, shm::ShmRegion* region, uint32_t index, int listen_fd)
    : impl_(std::make_unique<WorkerImpl>(cfg, region, index, listen_fd)) {}
Worker::~Worker() = default;
Status Worker::Init() { return impl_->Init(); }
void Worker::Run() { impl_->Run(); }

}  // namespace llmgw::dataplane
