// llmgw-mock server core: one epoll loop per thread, HTTP/1.1 keep-alive parsed by llhttp,
// connection I/O, dispatch of each request to its endpoint, the engine timer, and the
// listeners. Endpoints live in mock_inference.cc (OpenAI) and mock_admin.cc (/mock, models).
#include "bench/mock/mock_server_internal.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <thread>

#include "bench/mock/mock_tls.h"
#include "common/log.h"

namespace llmgw::mock {

namespace internal {

namespace {

const char* StatusText(int status) {
  switch (status) {
    case 200: return "OK";
    case 400: return "Bad Request";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 413: return "Payload Too Large";
    case 429: return "Too Many Requests";
    case 500: return "Internal Server Error";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    default: return "Error";
  }
}

const char* ErrorType(int status) {
  switch (status) {
    case 400: return "invalid_request_error";
    case 404: return "not_found_error";
    case 405: return "invalid_request_error";
    case 413: return "invalid_request_error";
    case 429: return "rate_limit_error";
    case 503: return "service_unavailable";
    default: return status >= 500 ? "server_error" : "invalid_request_error";
  }
}

}  // namespace

int Server::Run(bool announce, uint16_t shown_port) {
  epfd_ = epoll_create1(EPOLL_CLOEXEC);
  timer_fd_ = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
  if (epfd_ < 0 || timer_fd_ < 0) return 1;
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.ptr = &listen_fd_;
  epoll_ctl(epfd_, EPOLL_CTL_ADD, listen_fd_, &ev);
  ev.data.ptr = &timer_fd_;
  epoll_ctl(epfd_, EPOLL_CTL_ADD, timer_fd_, &ev);
  if (announce) {
    sockaddr_in sa{};
    socklen_t sl = sizeof sa;
    getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&sa), &sl);
    std::printf("listening 127.0.0.1:%u\n", shown_port ? shown_port : ntohs(sa.sin_port));
    std::fflush(stdout);
  }
  epoll_event evs[256];
  for (;;) {
    int n = epoll_wait(epfd_, evs, 256, -1);
    if (n < 0) {
      if (errno == EINTR) continue;
      return 1;
    }
    for (int i = 0; i < n; ++i) {
      void* p = evs[i].data.ptr;
      if (p == &listen_fd_) {
        OnAccept();
      } else if (p == &timer_fd_) {
        uint64_t expirations;
        ssize_t r = read(timer_fd_, &expirations, sizeof expirations);
        (void)r;
        armed_deadline_ = -1;
        RunTimers();
      } else {
        Conn* c = static_cast<Conn*>(p);
        if (c->dead) continue;
        if (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR | EPOLLRDHUP)) OnReadable(c);
        if (!c->dead && (evs[i].events & EPOLLOUT)) OnWritable(c);
      }
    }
    for (Conn* c : graveyard_) delete c;
    graveyard_.clear();
  }
}

void Server::OnAccept() {
  for (;;) {
    int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) return;  // EAGAIN, or EMFILE: try again on the next readiness event
    ++connections_total_;
    if (faults_.refuse_connections) {
      // A reset right after accept is what a client sees from a server that is going down.
      linger lg{1, 0};
      setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
      close(fd);
      ++connections_refused_;
      continue;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);  // one token = one packet
    Conn* c = new Conn;
    c->fd = fd;
    llhttp_init(&c->parser, HTTP_REQUEST, &settings_);
    c->parser.data = c;
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLRDHUP;
    ev.data.ptr = c;
    epoll_ctl(epfd_, EPOLL_CTL_ADD, fd, &ev);
    ++connections_open_;
  }
}

void Server::OnReadable(Conn* c) {
  char buf[65536];
  ssize_t n = recv(c->fd, buf, sizeof buf, 0);
  if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
    CloseConn(c);  // a client leaving mid-request cancels it (CloseConn counts that)
    return;
  }
  if (n < 0) return;
  if (c->active_req != 0 || c->close_after_flush) {
    if (c->pending_in.size() < kMaxBodyBytes) c->pending_in.append(buf, static_cast<size_t>(n));
    return;
  }
  ProcessBytes(c, buf, static_cast<size_t>(n));
}

void Server::ProcessBytes(Conn* c, const char* data, size_t len) {
  for (;;) {
    llhttp_errno_t e = llhttp_execute(&c->parser, data, len);
    if (e == HPE_OK) return;
    if (e == HPE_PAUSED) {
      const char* pos = llhttp_get_error_pos(&c->parser);
      size_t rest = len - static_cast<size_t>(pos - data);
      llhttp_resume(&c->parser);
      bool done = Dispatch(c);
      if (c->dead) return;
      if (!done || c->close_after_flush) {
        c->pending_in.assign(pos, rest);
        return;
      }
      data = pos;
      len = rest;
      continue;
    }
    ++bad_requests_;
    c->keep_alive = false;
    if (c->body_too_large) {
      SendError(c, 413, "request body too large");
    } else if (c->url_too_long) {
      SendError(c, 400, "request line too long");
    } else {
      char msg[160];
      std::snprintf(msg, sizeof msg, "malformed HTTP request: %s", llhttp_get_error_reason(&c->parser));
      SendError(c, 400, msg);
    }
    if (!c->dead) FinishExchange(c);
    return;
  }
}

// After a response is fully queued: close if the client asked for it, else parse on.
void Server::FinishExchange(Conn* c) {
  c->active_req = 0;
  if (!c->keep_alive) {
    c->close_after_flush = true;
    if (c->out.size() == c->out_off) CloseConn(c);
  }
}

void Server::Send(Conn* c, std::string_view d) {
  if (c->dead) return;
  if (c->out.size() == c->out_off) {
    c->out.clear();
    c->out_off = 0;
    ssize_t w = send(c->fd, d.data(), d.size(), MSG_NOSIGNAL);
    if (w == static_cast<ssize_t>(d.size())) return;
    if (w < 0) {
      if (errno != EAGAIN && errno != EINTR) {
        CloseConn(c);
        return;
      }
      w = 0;
    }
    d.remove_prefix(static_cast<size_t>(w));
  }
  c->out.append(d);
  SetWantWrite(c, true);
}

void Server::SetWantWrite(Conn* c, bool on) {
  if (c->want_write == on) return;
  c->want_write = on;
  epoll_event ev{};
  ev.events = EPOLLIN | EPOLLRDHUP | (on ? EPOLLOUT : 0u);
  ev.data.ptr = c;
  epoll_ctl(epfd_, EPOLL_CTL_MOD, c->fd, &ev);
}

void Server::OnWritable(Conn* c) {
  while (c->out_off < c->out.size()) {
    ssize_t w = send(c->fd, c->out.data() + c->out_off, c->out.size() - c->out_off, MSG_NOSIGNAL);
    if (w < 0) {
      if (errno == EAGAIN) return;
      CloseConn(c);
      return;
    }
    c->out_off += static_cast<size_t>(w);
  }
  c->out.clear();
  c->out_off = 0;
  SetWantWrite(c, false);
  if (c->close_after_flush) CloseConn(c);
}

void Server::CloseConn(Conn* c) {
  if (c->dead) return;
  c->dead = true;
  epoll_ctl(epfd_, EPOLL_CTL_DEL, c->fd, nullptr);
  close(c->fd);
  --connections_open_;
  if (c->active_req != 0) {
    auto it = reqs_.find(c->active_req);
    if (it != reqs_.end()) {
      engine_.Cancel(it->first, NowUs());
      ++cancelled_total_;
      ++metrics_.success_abort;
      reqs_.erase(it);
      RearmTimer();
    }
    c->active_req = 0;
  }
  graveyard_.push_back(c);
}

void Server::SendSimple(Conn* c, int status, std::string_view content_type, std::string_view body,
                        std::string_view extra_headers) {
  std::string& s = scratch_;
  s.clear();
  s.append("HTTP/1.1 ");
  AppendInt(&s, status);
  s.append(" ").append(StatusText(status)).append("\r\ncontent-type: ").append(content_type);
  s.append("\r\ncontent-length: ");
  AppendInt(&s, static_cast<int64_t>(body.size()));
  s.append("\r\n");
  if (!c->keep_alive) s.append("connection: close\r\n");
  s.append(extra_headers);
  s.append("\r\n").append(body);
  Send(c, s);
}

void Server::SendError(Conn* c, int status, std::string_view message, std::string_view param) {
  if (opts_.provider == MockProvider::kAnthropic) return SendProviderError(c, status, AnthropicErrorTypeFor(status), message);
  if (opts_.provider == MockProvider::kGemini) return SendProviderError(c, status, GoogleStatusFor(status), message);
  std::string body;
  body.reserve(160 + message.size());
  body.append("{\"error\":{\"message\":");
  AppendJsonString(&body, message);
  body.append(",\"type\":\"").append(ErrorType(status)).append("\",\"param\":");
  if (param.empty()) body.append("null");
  else AppendJsonString(&body, param);
  body.append(",\"code\":");
  AppendInt(&body, status);
  body.append("}}");
  SendSimple(c, status, "application/json", body, status == 429 ? "retry-after: 1\r\n" : "");
}

bool Server::Dispatch(Conn* c) {
  ++http_requests_total_;
  std::string_view path = c->url;
  size_t q = path.find('?');
  if (q != std::string_view::npos) path = path.substr(0, q);
  const bool get = c->method == HTTP_GET, post = c->method == HTTP_POST;
  bool done = true;
  auto wrong_method = [&] { SendError(c, 405, "method not allowed"); };
  std::string routed;
  if (opts_.provider != MockProvider::kNone) {
    if (!ProviderRoute(c, path, &routed)) {
      if (c->dead) return false;
      FinishExchange(c);
      return !c->dead;
    }
    path = routed;
  }
  if (opts_.provider == MockProvider::kAnthropic && path == "/v1/messages") {
    if (!post) wrong_method();
    else done = HandleInference(c, Api::kAnthropic);
  } else if (opts_.provider == MockProvider::kAnthropic && path == "/v1/models") {
    if (!get) wrong_method();
    else HandleAnthropicModels(c);
  } else if (path == "/v1/chat/completions" || path == "/v1/completions") {
    if (!post) wrong_method();
    else done = HandleInference(c, path == "/v1/chat/completions" ? Api::kChat : Api::kCompletion);
  } else if (path == "/v1/embeddings") {
    if (!post) wrong_method();
    else done = HandleEmbeddings(c);
  } else if (path == "/v1/responses" && opts_.provider != MockProvider::kAnthropic) {
    if (!post) wrong_method();
    else done = HandleResponses(c);
  } else if (path == "/health") {
    if (!get) wrong_method();
    else SendSimple(c, 200, "application/json", "");
  } else if (path == "/v1/models") {
    if (!get) wrong_method();
    else HandleModels(c);
  } else if (path == "/metrics") {
    if (!get) {
      wrong_method();
    } else {
      EngineGauges g;
      g.running = engine_.running();
      g.waiting = engine_.waiting();
      g.kv_usage = engine_.kv_usage();
      g.kv_tokens_held = engine_.kv_tokens_held();
      g.prefix_queries_tokens = engine_.prefix_queries_tokens();
      g.prefix_hit_tokens = engine_.prefix_hit_tokens();
      g.prefix_queries_blocks = engine_.prefix_queries_blocks();
      g.prefix_hit_blocks = engine_.prefix_hit_blocks();
      g.steps = engine_.steps();
      std::string body;
      RenderMetrics(opts_.engine, opts_.model, metrics_, g, &body);
      SendSimple(c, 200, "text/plain; version=0.0.4; charset=utf-8", body);
    }
  } else if (path == "/mock/stats") {
    if (!get) wrong_method();
    else HandleStats(c);
  } else if (path == "/mock/faults") {
    if (get) HandleFaultsGet(c);
    else if (post) done = HandleFaultsPost(c);
    else wrong_method();
  } else {
    SendError(c, 404, "not found: " + std::string(path));
  }
  if (c->dead) return false;
  if (done) FinishExchange(c);
  return done && !c->dead;
}

void Server::RunTimers() {
  int64_t now = NowUs();
  while (!delayed_.empty() && delayed_.top().first <= now) {
    uint64_t id = delayed_.top().second;
    delayed_.pop();
    auto it = reqs_.find(id);
    if (it == reqs_.end()) continue;
    std::string prompt = std::move(it->second.prompt);
    StartRequest(&it->second, prompt);
  }
  events_.clear();
  engine_.Advance(now, &events_);
  // Tokens of one step leave together, as vLLM's output processor sends them.
  for (const TokenEvent& e : events_) {
    auto it = reqs_.find(e.id);
    if (it == reqs_.end()) continue;
    EmitTokens(&it->second, e.index, 1, e.finished, now);
  }
  RearmTimer();
}

void Server::RearmTimer() {
  int64_t next = engine_.NextDeadlineUs();
  if (!delayed_.empty() && (next < 0 || delayed_.top().first < next)) next = delayed_.top().first;
  if (next == armed_deadline_) return;
  armed_deadline_ = next;
  itimerspec its{};
  if (next >= 0) {
    if (next < 1) next = 1;
    its.it_value.tv_sec = next / 1000000;
    its.it_value.tv_nsec = (next % 1000000) * 1000;
  }
  timerfd_settime(timer_fd_, TFD_TIMER_ABSTIME, &its, nullptr);
}

}  // namespace internal

namespace {

int OpenListener(const std::string& host, uint16_t port, bool reuse_port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (reuse_port) setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(port);
  if (inet_pton(AF_INET, host.c_str(), &sa.sin_addr) != 1 ||
      bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0 || listen(fd, 4096) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

}  // namespace

int RunMockServer(const MockOptions& opts) {
  using internal::Server;
  signal(SIGPIPE, SIG_IGN);
  SetLogComponent("llmgw-mock");
  size_t colon = opts.listen.rfind(':');
  std::string host = opts.listen.substr(0, colon);
  uint16_t port = static_cast<uint16_t>(std::atoi(opts.listen.c_str() + colon + 1));
  const bool multi = opts.threads > 1;
  // --tls: the TLS front owns the public address; the loops listen on a loopback port of
  // their own that only the front connects to.
  const bool tls = !opts.tls_cert.empty();
  uint16_t public_port = 0;
  if (tls) {
    int pub = OpenListener(host, port, false);
    if (pub < 0) {
      Log(LogLevel::kError, "cannot listen", {{"listen", std::string_view(opts.listen)}, {"errno", errno}});
      return 1;
    }
    sockaddr_in sa{};
    socklen_t sl = sizeof sa;
    getsockname(pub, reinterpret_cast<sockaddr*>(&sa), &sl);
    public_port = ntohs(sa.sin_port);
    host = "127.0.0.1";
    port = 0;
    int first = OpenListener(host, port, multi);
    sl = sizeof sa;
    getsockname(first, reinterpret_cast<sockaddr*>(&sa), &sl);
    close(first);
    port = ntohs(sa.sin_port);  // reopened below, shared by the loops
    std::string err;
    if (!StartTlsFront(opts.tls_cert, opts.tls_key, pub, port, &err)) {
      Log(LogLevel::kError, "cannot serve TLS", {{"error", std::string_view(err)}});
      return 1;
    }
  }
  int first = OpenListener(host, port, multi);
  if (first < 0) {
    Log(LogLevel::kError, "cannot listen", {{"listen", std::string_view(opts.listen)}, {"errno", errno}});
    return 1;
  }
  if (multi && port == 0) {  // the other loops join the port the kernel picked
    sockaddr_in sa{};
    socklen_t sl = sizeof sa;
    getsockname(first, reinterpret_cast<sockaddr*>(&sa), &sl);
    port = ntohs(sa.sin_port);
  }
  std::vector<std::thread> threads;
  for (int t = 1; t < opts.threads; ++t) {
    int fd = OpenListener(host, port, true);
    if (fd < 0) return 1;
    threads.emplace_back([&opts, fd, t] {
      Server s(opts, fd, t);
      s.Run(false);
    });
  }
  Server s(opts, first, 0);
  int rc = s.Run(true, public_port);
  for (auto& t : threads) t.join();
  return rc;
}

}  // namespace llmgw::mock
