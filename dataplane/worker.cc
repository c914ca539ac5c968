// The data-plane event loop of one thread: the io_uring (setup, provided receive buffers,
// the wait/dispatch loop), timers and deadlines, snapshot refresh, drain, accept; plus the
// public Worker wrapper, OpenListener and ProbeIoUring. The rest of the worker lives in
// the files named in worker_impl.h.
#include "dataplane/worker.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <liburing.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <string>

#include "common/log.h"
#include "dataplane/signals.h"
#include "dataplane/worker_impl.h"

namespace llmgw::dataplane {

std::atomic<bool> g_stop_requested{false};

Status WorkerImpl::Init() {
  Loop::Options lo;
  lo.entries = kRingEntries;
  lo.cq_entries = kCqEntries;
  lo.recv_buf_count = kRecvBufCount;
  lo.recv_buf_size = kRecvBufSize;
  lo.recv_buf_group = kRecvBufGroup;
  if (Status st = loop_.Init(lo); !st.ok()) return st;
  if (Status st = access_log_.Open(cfg_.gateway.access_log); !st.ok()) return st;
  if (Status st = stats_.Claim(region_, index_, cfg_.circuit_breaker.slow_call_ms); !st.ok()) return st;
  router_.SetPrefixReport(stats_.slot()->prefix_report, shm::kPrefixReportEntries);
  // The leases of stats slot i are leases[i] (shm_layout.h).
  limiter_.Attach(stats_.slot()->limiter_use, &region_->leases[stats_.slot() - region_->slots],
                  &stats_.slot()->lease_seen, region_->limiter_level);
  // models[].backends[].rps: the router skips a backend whose rate lease is used up.
  constexpr uint32_t kBackendRates = shm::LimiterBase(shm::LimitKind::kBackendRps);
  router_.SetBackendRates(limiter_.grants() + kBackendRates, limiter_.spents() + kBackendRates);
  // The span ring beside this thread's stats slot (same index).
  spans_.Attach(&region_->span_rings[stats_.slot() - region_->slots], !cfg_.tracing.otlp_endpoint.empty(),
                cfg_.tracing.sample);
  snap_ = std::make_unique<shm::Snapshot>();
  admission_ = std::make_unique<routing::AdmissionQueue>(cfg_.gateway.admission.queue_size,
                                                         cfg_.gateway.admission.queue_timeout_ms);
  local_.assign(shm::kMaxBackends, routing::LocalLoad{});
  pool_.Init(loop_.ring());
  session_limits_.max_header_bytes = cfg_.gateway.max_header_bytes;
  session_limits_.max_body_bytes = cfg_.gateway.max_body_bytes;
  session_limits_.hash_header = snap_->limits.hash_header;
  return Status::Ok();
}

void WorkerImpl::Run() {
  if (Status st = loop_.EnableOnThisThread(); !st.ok()) {
    LOG_ERROR("enabling the io_uring failed", {{"thread", index_}, {"error", st.error().message()}});
    return;
  }
  LOG_DEBUG("worker running", {{"thread", index_}, {"io_uring", std::string_view(loop_.mode())}});
  for (size_t i = 0; i < listen_fds_.size(); ++i) ArmAccept(i);
  RefreshClock();
  loop_.timers().Start(NowMs());
  auto dispatch = [this](uint64_t ud, int res, uint32_t flags) { Dispatch(ud, res, flags); };
  uint64_t next_tick = 0;
  while (true) {
    RefreshClock();
    if (reader_.Changed()) RefreshSnapshot();
    limiter_.Refresh();  // one acquire load unless llmcd published new leases
    if (!draining_ && g_stop_requested.load(std::memory_order_relaxed)) StartDrain();
    uint64_t now = NowMs();
    if (now >= next_tick) {
      Tick(now);
      next_tick = now + kTickMs;
    }
    // Done when nothing is left — and no accept is still pending: a connection the
    // kernel handed to our accept before its cancel landed completes after it, and must
    // be served, not closed at exit.
    if (draining_ && clients_.empty() &&
        std::none_of(accept_armed_.begin(), accept_armed_.end(), [](uint8_t a) { return a != 0; }))
      break;
    if (draining_ && now >= drain_deadline_ms_) {
      if (drain_cut_) break;  // the error events had their chance to go out
      CutAtDrainDeadline();
      drain_cut_ = true;
      drain_deadline_ms_ = now + 200;
      continue;
    }
    int err = 0;
    if (!loop_.Wait(kTickMs, [] { RefreshClock(); }, dispatch, &err)) {
      LOG_ERROR("io_uring wait failed", {{"error", strerror(err)}});
      break;
    }
    if (admit_credits_) AdmitWaiting();
  }
  // Whatever did not finish within drain_ms is cut off.
  std::vector<ClientConn*> left = clients_;
  for (ClientConn* c : left) CloseClient(c);
  pool_.CloseIdle();
  // Collect the completions of what was just closed so every object is released.
  uint64_t end = ClockUs() / 1000 + 200;
  while (live_conns_ + pool_.live() > 0 && ClockUs() / 1000 < end) {
    loop_.Wait(10, [] {}, dispatch);
  }
  // How close this run came to the ring's limits (the 10,000-stream measurement reads it).
  LOG_INFO("worker stopped", {{"thread", index_}, {"cq_overflow", loop_.cq_overflow()},
                              {"recv_no_buffers", recv_no_buffers_}, {"accept_emfile", accept_emfile_}});
}

void WorkerImpl::ArmAccept(size_t i) {
  io_uring_sqe* s = Sqe();
  // Multishot accept: one submission keeps accepting, no re-arm per connection.
  if (multishot_accept_)
    io_uring_prep_multishot_accept(s, listen_fds_[i], nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
  else
    io_uring_prep_accept(s, listen_fds_[i], nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
  io_uring_sqe_set_data64(s, AcceptUserData(i));
  accept_armed_[i] = 1;
}

void WorkerImpl::Dispatch(uint64_t ud, int res, uint32_t flags) {
  if (ud & 1) return OnAccept(static_cast<size_t>(ud >> 1), res, flags);
  if (ud == kNoCompletion) return;
  // The user data is the completion target: the connection and its handler.
  const Completion* t = reinterpret_cast<const Completion*>(ud);
  Conn* c = t->conn;
  // The op still counts as pending while its handler runs, so nothing the handler
  // closes can free this object under our feet; it is released just below.
  t->fn(this, c, res, flags);
  // A multishot op stays pending until its last completion (no F_MORE).
  if (!(flags & IORING_CQE_F_MORE)) --c->pending_ops;
  MaybeFree(c);
}

void WorkerImpl::MaybeFree(Conn* c) {
  if (!c->closed || c->pending_ops) return;
  if (c->kind == Conn::Kind::kClient) {
    --live_conns_;  // client objects; the pool counts its own
    ClientConn* cc = static_cast<ClientConn*>(c);
    // Keep a few objects for reuse; their buffers are the per-connection arena.
    if (free_clients_.size() < 256) {
      free_clients_.push_back(cc);
    } else {
      delete cc;
    }
  } else {
    pool_.Recycle(static_cast<UpstreamConn*>(c));
  }
}

void WorkerImpl::RefreshSnapshot() {
  if (!reader_.Refresh(snap_.get())) return;
  has_snapshot_ = true;
  key_cache_.Clear();  // a revoked or replaced key must not outlive the snapshot that had it
  session_limits_.forward_credentials = snap_->num_keys == 0 && !snap_->limits.auth_required;
  for (auto& l : local_) l.in_flight_at_snapshot = l.in_flight;
  // The snapshot's body limit, when it sets one, wins over the config's.
  session_limits_.max_body_bytes = snap_->limits.max_body_bytes ? snap_->limits.max_body_bytes
                                                                : cfg_.gateway.max_body_bytes;
  router_.OnSnapshot(*snap_);
  tls_ctx_.Sync(*snap_);  // new TLS settings: a new context (the old one lives on in its SSLs)
  pool_.PruneIdle(*snap_);
  stats_.SnapshotCopied(reader_.generation());
}

void WorkerImpl::Tick(uint64_t now) {
  stats_.Heartbeat(shm::NowUnixMs());
  // SIGUSR1 (dataplane/signals.h): reopen the access log after a logrotate move.
  if (uint64_t g = g_reopen_logs.load(std::memory_order_relaxed); g != reopen_seen_) {
    reopen_seen_ = g;
    if (Status st = access_log_.Reopen(); !st.ok())
      LOG_WARN("access log reopen failed; still writing to the old file", {{"thread", index_}, {"error", st.error().message()}});
  }
  if (accept_backoff_) {
    accept_backoff_ = false;
    for (size_t i = 0; i < listen_fds_.size(); ++i)
      if (!accept_armed_[i] && !draining_ && listen_fds_[i] >= 0) ArmAccept(i);
  }
  if (draining_ && now >= drain_idle_close_ms_) {
    // The grace is over: idle keep-alive connections close (each answer given during the
    // drain said `Connection: close` already).
    std::vector<ClientConn*> idle;
    for (ClientConn* c : clients_)
      if (!c->session.busy() && !c->send_armed && !c->session.in_message()) idle.push_back(c);
    for (ClientConn* c : idle) CloseClient(c);
  }
  uint64_t cookie;
  while (admission_ && admission_->ExpireOne(&cookie)) {
    ClientConn* c = reinterpret_cast<ClientConn*>(cookie);
    c->queued = false;
    RejectOverloaded(c);
  }
  // Only the connections whose earliest deadline passed, not every connection.
  loop_.timers().Advance(now, [&](TimerNode* n) {
    ClientConn* c = static_cast<ClientConn*>(n->owner);
    ++c->pending_ops;  // keeps the object while CheckDeadlines may close it
    if (c->recv_starved && !c->recv_armed) ArmClientRecv(c);
    CheckDeadlines(c, now);
    --c->pending_ops;
    if (c->closed) MaybeFree(c);
    else ScheduleDeadline(c);
  });
}

uint64_t WorkerImpl::NextDeadline(const ClientConn* c) const {
  uint64_t t = 0;
  auto take = [&t](uint64_t x) {
    if (x && (!t || x < t)) t = x;
  };
  take(c->send_deadline_ms);
  if (c->recv_starved) take(NowMs() + kTickMs);
  if (c->session.busy()) {
    if (c->queued) return t;  // the admission queue has its own deadline
    take(c->attempt.retry_at_ms());
    take(c->total_deadline_ms);
    if (c->up) take(c->up_deadline_ms);
  } else {
    take(c->deadline_ms);
  }
  return t;
}

void WorkerImpl::CheckDeadlines(ClientConn* c, uint64_t now) {
  if (c->send_deadline_ms && now >= c->send_deadline_ms) {
    // The client stopped (or nearly stopped) reading: drop it, which frees its backend
    // slot, rather than let it hold the slot until total_ms.
    stats_.CountError(ErrorKind::kClientTooSlow);
    LOG_DEBUG("client too slow to read; closing", {{"thread", index_}, {"client_send_ms", cfg_.gateway.timeouts.client_send_ms}});
    CloseClient(c);
    return;
  }
  if (c->session.busy()) {
    if (c->queued) return;  // the admission queue has its own deadline
    if (c->attempt.RetryDue(now)) {
      StartAttempt(c);
      return;
    }
    if (c->total_deadline_ms && now >= c->total_deadline_ms) {
      return UpstreamFailed(c, Error(ErrorKind::kTimeout, ErrorSide::kUpstream, false,
                                     "request exceeded the total timeout"));
    }
    if (c->up && c->up_deadline_ms && now >= c->up_deadline_ms) {
      bool retry = c->up_deadline_kind == 1;  // connect timeouts are safe to retry
      const char* what = c->up_deadline_kind == 1   ? "upstream connect timed out"
                         : c->up_deadline_kind == 2 ? "upstream first byte timed out"
                                                    : "upstream idle timeout";
      return UpstreamFailed(c, Error(ErrorKind::kTimeout, ErrorSide::kUpstream, retry, "%s", what));
    }
    return;
  }
  if (c->deadline_ms && now >= c->deadline_ms) {
    if (c->deadline_status && c->session.in_message()) {
      SendFailure(c, Error(ErrorKind::kTimeout, ErrorSide::kDownstream, false, "request not received in time"), true);
    } else {
      CloseClient(c);
    }
  }
}

void WorkerImpl::StartDrain() {
  draining_ = true;
  drain_deadline_ms_ = NowMs() + cfg_.gateway.drain_ms;
  // Idle keep-alive connections stay open for a short grace: a client that sends its next
  // request meanwhile is answered (with `Connection: close`) instead of finding its
  // connection closed under the request it just sent — what failed requests in upgrades.
  drain_idle_close_ms_ = NowMs() + std::min<uint64_t>(kDrainIdleGraceMs, cfg_.gateway.drain_ms);
  LOG_INFO("draining", {{"thread", index_}, {"in_flight", static_cast<uint64_t>(clients_.size())}});
  // Stop accepting, and close our descriptors without shutdown(): a successor that took
  // these sockets over (ListenerHandover) accepts on from the same queues; shutdown()
  // would end the listening socket for it too. Connections our pending accept still
  // takes before the cancel lands are served (OnAccept).
  for (size_t i = 0; i < listen_fds_.size(); ++i) {
    if (listen_fds_[i] < 0) continue;
    if (accept_armed_[i]) {
      io_uring_sqe* s = Sqe();
      io_uring_prep_cancel_fd(s, listen_fds_[i], IORING_ASYNC_CANCEL_ALL);
      io_uring_sqe_set_data64(s, kNoCompletion);
    }
    loop_.Submit();  // the cancel holds no reference: submit it before the close
    ::close(listen_fds_[i]);
    listen_fds_[i] = -1;
  }
}

void WorkerImpl::CutAtDrainDeadline() {
  uint64_t cut = 0;
  std::vector<ClientConn*> cs = clients_;
  for (ClientConn* c : cs) {
    if (c->closed) continue;
    if (!c->session.busy() || c->response_done) {
      if (!c->send_armed) CloseClient(c);
      continue;
    }
    ++cut;
    if (c->queued) {
      admission_->Remove(reinterpret_cast<uint64_t>(c));
      c->queued = false;
    }
    c->attempt.CancelRetry();
    if (c->rw.committed()) {
      EndCommittedWithError(c, kShuttingDownReply, "the gateway is shutting down (drain_ms passed)");
    } else {
      if (c->up) ReleaseUpstream(c, false);
      if (!c->send_armed) {
        c->h->out.clear();
        c->out_off = 0;
      }
      const ErrorReply& r = kShuttingDownReply;
      SendError(c, r.status, "the gateway is shutting down; retry the request", r.type, nullptr, r.code, true);
    }
  }
  if (cut)
    LOG_WARN("drain_ms passed with requests in flight: ended them with an error",
             {{"thread", index_}, {"cut", cut}, {"drain_ms", cfg_.gateway.drain_ms}});
}

void WorkerImpl::OnAccept(size_t listener, int res, uint32_t flags) {
  if (listener >= listen_fds_.size()) {  // cannot happen: we tag every accept
    if (res >= 0) ::close(res);
    return;
  }
  if (!(flags & IORING_CQE_F_MORE)) accept_armed_[listener] = 0;
  if (res == -EINVAL && multishot_accept_ && !draining_) {
    LOG_WARN("multishot accept unsupported; falling back to one accept per connection");
    multishot_accept_ = false;
  }
  if (res == -EMFILE || res == -ENFILE) {
    // Out of descriptors: an accept re-armed now would fail again at once, and the loop
    // would spin on it. Pending connections wait in the listen backlog; the next tick
    // re-arms (by then a connection may have closed).
    accept_backoff_ = true;
    ++accept_emfile_;
    if (NowMs() >= next_emfile_log_ms_) {
      LOG_WARN("accept: out of file descriptors; accepting again in 10 ms (raise RLIMIT_NOFILE)",
               {{"thread", index_}, {"error", strerror(-res)}, {"times", accept_emfile_}});
      next_emfile_log_ms_ = NowMs() + 1000;
    }
  }
  if (res >= 0) {
    // Accepted while draining (before the cancel landed): served, its answer says
    // `Connection: close` — closing it would drop a client that did nothing wrong.
    if (clients_.size() >= max_clients_) {
      // gateway.max_connections, split evenly over the threads: beyond it a new
      // connection is closed at once rather than starving the ones already served.
      ::close(res);
      ++rejected_conns_;
      if (NowMs() >= next_reject_log_ms_) {
        LOG_WARN("connection limit reached; closing new connections",
                 {{"thread", index_}, {"limit", static_cast<unsigned long long>(max_clients_)},
                  {"rejected", rejected_conns_}});
        next_reject_log_ms_ = NowMs() + 1000;
      }
    } else {
      NewClient(res);
    }
  }
  if (!accept_armed_[listener] && !accept_backoff_ && !draining_ && listen_fds_[listener] >= 0)
    ArmAccept(listener);
}

void WorkerImpl::NewClient(int fd) {
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
  Bind(c);
  if (addr_limiter_.enabled() || access_log_.enabled()) {  // one getpeername per connection, only when needed
    sockaddr_storage ss{};
    socklen_t len = sizeof(ss);
    if (::getpeername(fd, reinterpret_cast<sockaddr*>(&ss), &len) == 0) {
      if (addr_limiter_.enabled()) c->addr_key = ClientAddressLimiter::KeyOf(ss);
      if (access_log_.enabled()) FormatPeer(ss, c->client_addr, sizeof(c->client_addr));
    }
  }
  ++live_conns_;
  c->session.Start(this, &session_limits_, c);
  c->list_index = clients_.size();
  clients_.push_back(c);
  c->deadline_ms = NowMs() + cfg_.gateway.timeouts.client_idle_ms;
  c->timer.owner = c;
  ScheduleDeadline(c);
  stats_.ConnectionOpened(clients_.size());
  ArmClientRecv(c);
}

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

Worker::Worker(const Config& cfg, shm::ShmRegion* region, uint32_t index, std::vector<int> listen_fds)
    : impl_(std::make_unique<WorkerImpl>(cfg, region, index, std::move(listen_fds))) {}
Worker::~Worker() = default;
Status Worker::Init() { return impl_->Init(); }
void Worker::Run() { impl_->Run(); }

}  // namespace llmgw::dataplane
