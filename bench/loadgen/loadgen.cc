// llmgw-bench load generation: the epoll client that runs a workload open or closed loop
// (see loadgen.h; the workload is in workload.cc, the flags in args.cc).
#include "bench/loadgen/loadgen.h"
#include "bench/loadgen/text.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <llhttp.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <memory>

namespace llmgw::bench {

namespace {

double NowS() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}


struct ClientConn {
  int fd = -1;
  int target = 0;  // index into the runner's addresses
  bool connected = false;
  bool busy = false;
  bool want_out = true;  // EPOLLOUT armed: only while connecting or a send is partial
  llhttp_t parser;
  BuiltRequest req;
  size_t sent_off = 0;
  double start_s = 0;
  double last_token_s = 0;
  double max_gap_s = 0;  // the stream's longest wait for a token (a failover shows here)
  bool got_first = false;
  int status = 0;
  int tokens = 0;
  bool complete = false;
  bool stream_error = false;  // the stream carried an error event
  uint64_t answers = 0;       // answers completed on this connection (it is reused when > 0)
  std::string sse;   // undelivered SSE bytes (an event split across reads)
  std::string body;  // non-streaming body (for usage.completion_tokens)
};

class Runner {
 public:
  Runner(const LoadOptions& lo, Workload& w, RunStats* st) : lo_(lo), w_(w), st_(st), rng_(lo.seed ^ 0x5bd1e995) {
    llhttp_settings_init(&settings_);
    settings_.on_status_complete = [](llhttp_t* p) -> int {
      static_cast<ClientConn*>(p->data)->status = p->status_code;
      return 0;
    };
    settings_.on_body = [](llhttp_t* p, const char* at, size_t n) -> int {
      auto* c = static_cast<ClientConn*>(p->data);
      if (c->status != 200) return 0;
      if (!c->req.stream) {
        if (c->body.size() < (1u << 20)) c->body.append(at, n);
        return 0;
      }
      c->sse.append(at, n);
      double now = NowS();
      size_t pos;
      while ((pos = c->sse.find("\n\n")) != std::string::npos) {
        SseEvent kind = ClassifySseEvent(std::string_view(c->sse.data(), pos));
        if (kind == SseEvent::kError) c->stream_error = true;
        if (kind == SseEvent::kToken) {
          if (!c->got_first) {
            c->got_first = true;
            t_runner->st_->ttft_s.Add(now - c->start_s);
            if (t_runner->st_->Steady(c->start_s)) t_runner->st_->ttft_steady_s.Add(now - c->start_s);
          } else {
            t_runner->st_->inter_token_s.Add(now - c->last_token_s);
            if (now - c->last_token_s > c->max_gap_s) c->max_gap_s = now - c->last_token_s;
          }
          c->last_token_s = now;
          ++c->tokens;
        }
        c->sse.erase(0, pos + 2);
      }
      return 0;
    };
    settings_.on_message_complete = [](llhttp_t* p) -> int {
      static_cast<ClientConn*>(p->data)->complete = true;
      return HPE_PAUSED;
    };
  }

  bool Run(std::string* err);
  static thread_local Runner* t_runner;

 private:
  ClientConn* OpenConn(int target);
  // Builds the next request, picks its target and a connection to it (idle or new) and
  // sends it; nullptr if no connection could be had.
  ClientConn* Issue(double start_s);
  int PickTarget(int group) {
    if (addrs_.size() == 1) return 0;
    if (group >= 0) return group % static_cast<int>(addrs_.size());
    return static_cast<int>(rr_++ % addrs_.size());
  }
  void StartRequest(ClientConn* c, double start_s);
  void Fail(ClientConn* c, const std::string& kind);
  void CloseConn(ClientConn* c);
  void OnEvent(ClientConn* c, uint32_t events);
  void Finish(ClientConn* c);
  // Level-triggered EPOLLOUT on an idle writable socket would spin the loop, so it is armed
  // only while there is something to send.
  void SetWantOut(ClientConn* c, bool on) {
    if (c->want_out == on || c->fd < 0) return;
    c->want_out = on;
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLRDHUP | (on ? EPOLLOUT : 0u);
    ev.data.ptr = c;
    epoll_ctl(epfd_, EPOLL_CTL_MOD, c->fd, &ev);
  }
  bool MayIssue() const {
    return issuing_ && (lo_.max_requests <= 0 || st_->sent < static_cast<uint64_t>(lo_.max_requests));
  }
  void Progress(double now, bool final_line);

  const LoadOptions& lo_;
  Workload& w_;
  RunStats* st_;
  std::mt19937_64 rng_;
  llhttp_settings_t settings_;
  int epfd_ = -1;
  std::vector<sockaddr_in> addrs_;  // one (--target) or the oracle's --affinity-targets
  std::vector<std::unique_ptr<ClientConn>> conns_;
  std::vector<std::vector<ClientConn*>> idle_;  // per target
  std::vector<uint64_t> sent_per_target_;
  BuiltRequest pending_;  // the request being issued, before it has a connection
  size_t rr_ = 0;
  size_t open_ = 0, in_flight_ = 0;
  bool issuing_ = true;
  double t0_ = 0;
};

thread_local Runner* Runner::t_runner = nullptr;

ClientConn* Runner::OpenConn(int target) {
  if (open_ >= static_cast<size_t>(lo_.max_connections)) return nullptr;
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return nullptr;
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  const sockaddr_in& addr = addrs_[static_cast<size_t>(target)];
  int rc = connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr);
  if (rc != 0 && errno != EINPROGRESS) {
    close(fd);
    st_->AddError("connect", NowS());
    return nullptr;
  }
  auto c = std::make_unique<ClientConn>();
  c->fd = fd;
  c->target = target;
  c->connected = rc == 0;
  llhttp_init(&c->parser, HTTP_RESPONSE, &settings_);
  c->parser.data = c.get();
  epoll_event ev{};
  ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP;
  ev.data.ptr = c.get();
  epoll_ctl(epfd_, EPOLL_CTL_ADD, fd, &ev);
  ++open_;
  conns_.push_back(std::move(c));
  return conns_.back().get();
}

ClientConn* Runner::Issue(double start_s) {
  w_.Next(&pending_);
  int t = PickTarget(pending_.group);
  std::vector<ClientConn*>& idle = idle_[static_cast<size_t>(t)];
  ClientConn* c = nullptr;
  while (!idle.empty() && c == nullptr) {
    c = idle.back();
    idle.pop_back();
    if (c->fd < 0) c = nullptr;
  }
  if (!c) c = OpenConn(t);
  if (c) StartRequest(c, start_s);
  return c;
}

void Runner::StartRequest(ClientConn* c, double start_s) {
  std::swap(c->req, pending_);  // keeps both string buffers: no reallocation per request
  ++sent_per_target_[static_cast<size_t>(c->target)];
  c->busy = true;
  c->sent_off = 0;
  c->start_s = start_s;
  c->got_first = false;
  c->status = 0;
  c->tokens = 0;
  c->max_gap_s = 0;
  c->complete = false;
  c->stream_error = false;
  c->sse.clear();
  c->body.clear();
  ++st_->sent;
  ++in_flight_;
  if (c->connected) OnEvent(c, EPOLLOUT);
}

void Runner::CloseConn(ClientConn* c) {
  if (c->fd < 0) return;
  epoll_ctl(epfd_, EPOLL_CTL_DEL, c->fd, nullptr);
  close(c->fd);
  c->fd = -1;
  --open_;
  std::vector<ClientConn*>& idle = idle_[static_cast<size_t>(c->target)];
  for (size_t i = 0; i < idle.size(); ++i)
    if (idle[i] == c) {
      idle[i] = idle.back();
      idle.pop_back();
      break;
    }
}

void Runner::Fail(ClientConn* c, const std::string& kind) {
  if (c->busy) {
    st_->AddError(kind, NowS());
    c->busy = false;
    --in_flight_;
  }
  CloseConn(c);
  if (lo_.concurrency > 0 && MayIssue()) Issue(NowS());  // closed loop keeps N requests busy
}

void Runner::Finish(ClientConn* c) {
  double now = NowS();
  c->busy = false;
  ++c->answers;
  --in_flight_;
  if (c->status != 200) {
    st_->AddError("http_" + std::to_string(c->status), now);
  } else if (c->stream_error) {
    // 200 and a clean end of the HTTP message, but the server said the stream failed.
    st_->AddError("stream_error", now);
  } else {
    if (!c->req.stream) {
      size_t p = c->body.find("\"completion_tokens\":");
      if (p != std::string::npos) c->tokens = std::atoi(c->body.c_str() + p + 20);
    }
    ++st_->ok;
    st_->e2e_s.Add(now - c->start_s);
    if (st_->Steady(c->start_s)) st_->e2e_steady_s.Add(now - c->start_s);
    st_->MarkOk(now, now - c->start_s);
    st_->tokens.Add(c->tokens);
    if (c->req.stream && c->tokens > 1) st_->stream_max_gap_s.Add(c->max_gap_s);
  }
  if (!llhttp_should_keep_alive(&c->parser)) {
    CloseConn(c);
  } else {
    llhttp_resume(&c->parser);
    idle_[static_cast<size_t>(c->target)].push_back(c);
  }
  // Closed loop: the next request reuses this connection when it goes to the same target
  // (always, with one target).
  if (lo_.concurrency > 0 && MayIssue()) Issue(now);
}

void Runner::OnEvent(ClientConn* c, uint32_t events) {
  if (c->fd < 0) return;
  if (!c->connected && (events & (EPOLLOUT | EPOLLERR | EPOLLHUP))) {
    int soerr = 0;
    socklen_t sl = sizeof soerr;
    getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &soerr, &sl);
    if (soerr != 0) {
      Fail(c, "connect");
      return;
    }
    c->connected = true;
  }
  if (c->busy && c->sent_off < c->req.raw.size() && c->connected) {
    ssize_t w = send(c->fd, c->req.raw.data() + c->sent_off, c->req.raw.size() - c->sent_off, MSG_NOSIGNAL);
    if (w < 0 && errno != EAGAIN) {
      Fail(c, c->answers > 0 ? "closed_on_reuse" : "reset");
      return;
    }
    if (w > 0) c->sent_off += static_cast<size_t>(w);
  }
  if (c->connected) SetWantOut(c, c->busy && c->sent_off < c->req.raw.size());
  if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) {
    char buf[65536];
    ssize_t n = recv(c->fd, buf, sizeof buf, 0);
    if (n < 0 && errno == EAGAIN) return;
    if (n <= 0) {
      // After the status line a non-streamed answer can only be cut (the server's one
      // way to fail it once its head is out); a stream should have ended with an error
      // event instead. Before it, the connection died with no answer at all.
      if (c->busy)
        Fail(c, c->got_first || (c->status != 0 && c->req.stream) ? "closed_mid_stream"
                : c->status != 0                                   ? "closed_mid_body"
                : c->answers > 0                                   ? "closed_on_reuse"
                                                                   : "reset");
      else CloseConn(c);
      return;
    }
    if (!c->busy) {  // bytes with no request outstanding: the server is confused
      CloseConn(c);
      return;
    }
    const char* p = buf;
    size_t len = static_cast<size_t>(n);
    llhttp_errno_t e = llhttp_execute(&c->parser, p, len);
    if (e == HPE_PAUSED && c->complete) {
      Finish(c);
    } else if (e != HPE_OK) {
      Fail(c, "bad_response");
    }
  }
}

void Runner::Progress(double now, bool final_line) {
  uint64_t errs = 0;
  for (auto& [k, v] : st_->errors) errs += v;
  double el = now - t0_;
  std::fprintf(stderr, "\r[%6.1fs] sent %llu ok %llu err %llu in-flight %zu conns %zu  %.1f req/s   %s",
               el, static_cast<unsigned long long>(st_->sent), static_cast<unsigned long long>(st_->ok),
               static_cast<unsigned long long>(errs), in_flight_, open_,
               el > 0 ? static_cast<double>(st_->ok) / el : 0.0, final_line ? "\n" : "");
  std::fflush(stderr);
}

bool Runner::Run(std::string* err) {
  t_runner = this;
  std::vector<Target> targets = lo_.affinity_targets;
  if (targets.empty()) targets.push_back(Target{lo_.host, lo_.port});
  for (const Target& t : targets) {
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<uint16_t>(t.port));
    if (inet_pton(AF_INET, t.host.c_str(), &a.sin_addr) != 1) {
      *err = std::string(lo_.affinity_targets.empty() ? "--target" : "--affinity-targets") +
             ": host must be an IPv4 address, got '" + t.host + "'";
      return false;
    }
    addrs_.push_back(a);
  }
  idle_.resize(addrs_.size());
  sent_per_target_.assign(addrs_.size(), 0);
  epfd_ = epoll_create1(EPOLL_CLOEXEC);
  t0_ = NowS();
  st_->timeline_t0 = t0_;
  st_->warmup_s = lo_.warmup_s;
  const double end_issue = t0_ + lo_.duration_s;
  double next_arrival = t0_;
  std::exponential_distribution<double> gap(lo_.rate > 0 ? lo_.rate : 1.0);
  if (lo_.concurrency > 0) {
    for (int i = 0; i < lo_.concurrency && MayIssue(); ++i) Issue(NowS());
  }
  double last_progress = t0_, last_timeout_scan = t0_;
  epoll_event evs[512];
  for (;;) {
    double now = NowS();
    if (now >= end_issue) issuing_ = false;
    if (!MayIssue() && in_flight_ == 0) break;
    if (!issuing_ && now > end_issue + lo_.timeout_ms / 1000.0 + 1) break;  // drain bound
    // Open loop: issue every arrival that is due; latency counts from the scheduled time,
    // so a slow client or server cannot hide queueing (no coordinated omission).
    while (lo_.rate > 0 && MayIssue() && next_arrival <= now) {
      if (!Issue(next_arrival)) st_->AddError("client_no_connection", now);
      next_arrival += gap(rng_);
    }
    int wait_ms = 100;
    if (lo_.rate > 0 && MayIssue()) {
      double d = (next_arrival - NowS()) * 1000.0;
      wait_ms = d <= 0 ? 0 : std::min(100, static_cast<int>(std::ceil(d)));
    }
    int n = epoll_wait(epfd_, evs, 512, wait_ms);
    for (int i = 0; i < n; ++i) OnEvent(static_cast<ClientConn*>(evs[i].data.ptr), evs[i].events);
    now = NowS();
    if (now - last_timeout_scan > 0.05) {
      last_timeout_scan = now;
      for (auto& c : conns_)
        if (c->fd >= 0 && c->busy && now - c->start_s > lo_.timeout_ms / 1000.0) Fail(c.get(), "timeout");
      // Drop closed connections so long runs do not grow the table.
      size_t k = 0;
      for (auto& c : conns_)
        if (c->fd >= 0) conns_[k++] = std::move(c);
      conns_.resize(k);
    }
    if (lo_.progress && now - last_progress >= 1.0) {
      last_progress = now;
      Progress(now, false);
    }
  }
  st_->elapsed_s = NowS() - t0_;
  if (!lo_.affinity_targets.empty()) st_->sent_per_target = sent_per_target_;
  if (lo_.progress) Progress(NowS(), true);
  for (auto& c : conns_) CloseConn(c.get());
  close(epfd_);
  return true;
}

}  // namespace

bool RunLoad(const LoadOptions& lo, Workload& w, RunStats* out, std::string* err) {
  if (lo.rate <= 0 && lo.concurrency <= 0) {
    *err = "give --rate R (open loop) or --concurrency N (closed loop)";
    return false;
  }
  Runner r(lo, w, out);
  return r.Run(err);
}

}  // namespace llmgw::bench
