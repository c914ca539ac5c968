// llmgw-mock server: one epoll loop per thread, HTTP/1.1 keep-alive parsed by llhttp,
// OpenAI endpoints answered from the continuous-batching model (engine_model.h), plus the
// /mock/stats and /mock/faults admin paths. Streaming responses are chunked SSE with one
// event per token; the headers go out with the first token so "first byte" = first token.
#include "bench/mock/mock_server.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <llhttp.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <queue>
#include <random>
#include <thread>
#include <unordered_map>

#include <rapidjson/document.h>
#include <rapidjson/error/en.h>

#include "common/log.h"

namespace llmgw::mock {

namespace {

constexpr size_t kMaxBodyBytes = 16u << 20;
constexpr size_t kMaxUrlBytes = 8192;

int64_t NowUs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000000 + ts.tv_nsec / 1000;
}

uint64_t SplitMix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

// Words the mock "generates"; each token is one word with a leading space.
const char* const kVocab[] = {"the", "model", "gateway", "token", "stream", "batch", "cache",
                              "prefix", "latency", "request", "route", "backend", "queue",
                              "server", "answer", "simple", "fast", "mock", "data", "plane"};
constexpr uint64_t kVocabSize = sizeof(kVocab) / sizeof(kVocab[0]);

void AppendJsonString(std::string* out, std::string_view s) {
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
void AppendInt(std::string* out, int64_t v) {
  char buf[24];
  auto res = std::to_chars(buf, buf + sizeof buf, v);
  out->append(buf, static_cast<size_t>(res.ptr - buf));
}

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

using JsonAlloc = rapidjson::MemoryPoolAllocator<>;
using JsonDoc = rapidjson::GenericDocument<rapidjson::UTF8<>, JsonAlloc, JsonAlloc>;

enum class Api : uint8_t { kChat, kCompletion };

struct Conn;

struct Req {
  uint64_t id = 0;
  Conn* conn = nullptr;
  Api api = Api::kChat;
  bool stream = false;
  bool include_usage = false;
  bool length_limited = false;  // finish_reason "length" rather than "stop"
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

  int Run(bool announce);

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
  bool HandleEmbeddings(Conn* c);
  void HandleModels(Conn* c);
  void HandleStats(Conn* c);
  void HandleFaultsGet(Conn* c);
  bool HandleFaultsPost(Conn* c);
  void StartRequest(Req* r, std::string_view prompt);
  void EmitTokens(Req* r, int first_index, int count, bool finished, int64_t now);
  void CompleteRequest(Req* r);
  void AppendWord(std::string* out, const Req* r, int index) const;
  void AppendChunkEvent(std::string* out, const Req* r, int index, bool finished) const;
  void AppendUsage(std::string* out, const Req* r) const;
  void RunTimers();
  void RearmTimer();
  void CountRequestDone();
  // Inference requests finished in any way die_after counts: answered, failed, or cut.
  uint64_t DoneCount() const { return completed_total_ + errors_injected_ + closed_mid_stream_; }

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
  uint64_t http_requests_total_ = 0, requests_total_ = 0, completed_total_ = 0;
  uint64_t cancelled_total_ = 0, errors_injected_ = 0, closed_mid_stream_ = 0, bad_requests_ = 0;
};

int Server::Run(bool announce) {
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
    std::printf("listening 127.0.0.1:%u\n", ntohs(sa.sin_port));
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
      engine_.Cancel(it->first);
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
  if (path == "/v1/chat/completions" || path == "/v1/completions") {
    if (!post) wrong_method();
    else done = HandleInference(c, path == "/v1/chat/completions" ? Api::kChat : Api::kCompletion);
  } else if (path == "/v1/embeddings") {
    if (!post) wrong_method();
    else done = HandleEmbeddings(c);
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

void Server::HandleModels(Conn* c) {
  std::string body;
  body.append("{\"object\":\"list\",\"data\":[{\"id\":");
  AppendJsonString(&body, opts_.model);
  body.append(",\"object\":\"model\",\"created\":");
  AppendInt(&body, time(nullptr));
  body.append(",\"owned_by\":\"vllm\",\"root\":");
  AppendJsonString(&body, opts_.model);
  body.append(",\"parent\":null,\"max_model_len\":");
  AppendInt(&body, opts_.max_model_len);
  body.append("}]}");
  SendSimple(c, 200, "application/json", body);
}

void Server::HandleStats(Conn* c) {
  std::string b;
  auto kv = [&b](const char* k, uint64_t v, bool last = false) {
    b.append("\"").append(k).append("\":");
    AppendInt(&b, static_cast<int64_t>(v));
    if (!last) b.push_back(',');
  };
  b.push_back('{');
  kv("connections_total", connections_total_);
  kv("connections_open", connections_open_);
  kv("connections_refused", connections_refused_);
  kv("http_requests_total", http_requests_total_);
  kv("requests_total", requests_total_);
  kv("completed_total", completed_total_);
  kv("running", static_cast<uint64_t>(engine_.running()));
  kv("waiting", static_cast<uint64_t>(engine_.waiting()));
  kv("cancelled_total", cancelled_total_);
  kv("errors_injected_total", errors_injected_);
  kv("closed_mid_stream_total", closed_mid_stream_);
  kv("bad_requests_total", bad_requests_);
  kv("prompt_tokens_total", metrics_.prompt_tokens_total);
  kv("generation_tokens_total", metrics_.generation_tokens_total);
  kv("prefix_cache_query_tokens", engine_.prefix_queries_tokens());
  kv("prefix_cache_hit_tokens", engine_.prefix_hit_tokens());
  kv("kv_tokens_held", static_cast<uint64_t>(engine_.kv_tokens_held()), true);
  b.push_back('}');
  SendSimple(c, 200, "application/json", b);
}

void Server::HandleFaultsGet(Conn* c) {
  std::string b;
  char num[64];
  std::snprintf(num, sizeof num, "%g", faults_.error_rate);
  b.append("{\"error_rate\":").append(num);
  b.append(",\"error_status\":");
  AppendInt(&b, faults_.error_status);
  b.append(",\"hang_first_byte\":").append(faults_.hang_first_byte ? "true" : "false");
  b.append(",\"slow_first_byte_ms\":");
  AppendInt(&b, faults_.slow_first_byte_ms);
  b.append(",\"close_mid_stream_after\":");
  AppendInt(&b, faults_.close_mid_stream_after);
  b.append(",\"refuse_connections\":").append(faults_.refuse_connections ? "true" : "false");
  b.append(",\"die_after\":");
  int64_t left = die_at_ > 0 ? die_at_ - static_cast<int64_t>(DoneCount()) : 0;
  AppendInt(&b, left < 0 ? 0 : left);
  b.append("}");
  SendSimple(c, 200, "application/json", b);
}

bool Server::HandleFaultsPost(Conn* c) {
  JsonDoc d;
  d.Parse(c->body.data(), c->body.size());
  if (d.HasParseError() || !d.IsObject()) {
    SendError(c, 400, "body must be a JSON object");
    return true;
  }
  Faults f = faults_;
  int64_t die_after = -1;
  if (d.HasMember("reset") && d["reset"].IsBool() && d["reset"].GetBool()) {
    f = Faults{};
    die_after = 0;
  }
  for (auto& m : d.GetObject()) {
    std::string_view k(m.name.GetString(), m.name.GetStringLength());
    const auto& v = m.value;
    auto bad = [&](const char* what) {
      SendError(c, 400, std::string(k) + ": " + what, k);
      return true;
    };
    if (k == "reset") {
      if (!v.IsBool()) return bad("must be a boolean");
    } else if (k == "error_rate") {
      if (!v.IsNumber() || v.GetDouble() < 0 || v.GetDouble() > 1) return bad("must be a number in [0, 1]");
      f.error_rate = v.GetDouble();
    } else if (k == "error_status") {
      if (!v.IsInt() || v.GetInt() < 400 || v.GetInt() > 599) return bad("must be an HTTP status 400-599");
      f.error_status = v.GetInt();
    } else if (k == "hang_first_byte" || k == "refuse_connections") {
      if (!v.IsBool()) return bad("must be a boolean");
      (k == "hang_first_byte" ? f.hang_first_byte : f.refuse_connections) = v.GetBool();
    } else if (k == "slow_first_byte_ms" || k == "close_mid_stream_after") {
      if (!v.IsInt() || v.GetInt() < 0) return bad("must be a non-negative integer");
      (k == "slow_first_byte_ms" ? f.slow_first_byte_ms : f.close_mid_stream_after) = v.GetInt();
    } else if (k == "die_after") {
      if (!v.IsInt64() || v.GetInt64() < 0) return bad("must be a non-negative integer");
      die_after = v.GetInt64();
    } else {
      return bad("unknown fault");
    }
  }
  faults_ = f;
  // die_after counts from now: "serve N more inference requests, then exit".
  if (die_after == 0) die_at_ = 0;
  if (die_after > 0) die_at_ = static_cast<int64_t>(DoneCount()) + die_after;
  HandleFaultsGet(c);
  return true;
}

// Text of the prompt as the model would see it: the chat messages' roles and contents, or
// the completion prompt (strings, or token ids written as numbers).
bool ExtractPrompt(const rapidjson::GenericValue<rapidjson::UTF8<>, JsonAlloc>& d, Api api, std::string* prompt,
                   std::string* err, std::string* param) {
  if (api == Api::kChat) {
    if (!d.HasMember("messages") || !d["messages"].IsArray() || d["messages"].Empty()) {
      *err = "messages must be a non-empty array";
      *param = "messages";
      return false;
    }
    for (const auto& m : d["messages"].GetArray()) {
      if (!m.IsObject() || !m.HasMember("role") || !m["role"].IsString()) {
        *err = "each message needs a string role";
        *param = "messages";
        return false;
      }
      prompt->append("<|").append(m["role"].GetString()).append("|>");
      if (!m.HasMember("content")) continue;
      const auto& ct = m["content"];
      if (ct.IsString()) {
        prompt->append(ct.GetString(), ct.GetStringLength());
      } else if (ct.IsArray()) {
        for (const auto& part : ct.GetArray())
          if (part.IsObject() && part.HasMember("text") && part["text"].IsString())
            prompt->append(part["text"].GetString(), part["text"].GetStringLength());
      } else if (!ct.IsNull()) {
        *err = "message content must be a string or an array of parts";
        *param = "messages";
        return false;
      }
    }
    return true;
  }
  if (!d.HasMember("prompt")) {
    *err = "prompt is required";
    *param = "prompt";
    return false;
  }
  const auto& p = d["prompt"];
  if (p.IsString()) {
    prompt->append(p.GetString(), p.GetStringLength());
    return true;
  }
  if (p.IsArray() && !p.Empty()) {
    for (const auto& e : p.GetArray()) {
      if (e.IsString()) {
        prompt->append(e.GetString(), e.GetStringLength());
      } else if (e.IsInt()) {
        char buf[16];
        std::snprintf(buf, sizeof buf, "%4d", e.GetInt() % 10000);  // one id = one token = 4 bytes
        prompt->append(buf, 4);
      } else {
        *err = "prompt must be a string, an array of strings or an array of token ids";
        *param = "prompt";
        return false;
      }
    }
    return true;
  }
  *err = "prompt must be a string, an array of strings or an array of token ids";
  *param = "prompt";
  return false;
}

bool Server::HandleInference(Conn* c, Api api) {
  char value_buf[16384], parse_buf[4096];
  JsonAlloc value_alloc(value_buf, sizeof value_buf), parse_alloc(parse_buf, sizeof parse_buf);
  JsonDoc d(&value_alloc, sizeof parse_buf, &parse_alloc);
  d.Parse(c->body.data(), c->body.size());
  if (d.HasParseError()) {
    char msg[128];
    std::snprintf(msg, sizeof msg, "invalid JSON body at offset %zu: %s", d.GetErrorOffset(),
                  rapidjson::GetParseError_En(d.GetParseError()));
    SendError(c, 400, msg);
    return true;
  }
  if (!d.IsObject()) {
    SendError(c, 400, "request body must be a JSON object");
    return true;
  }
  if (d.HasMember("model")) {
    if (!d["model"].IsString()) {
      SendError(c, 400, "model must be a string", "model");
      return true;
    }
    std::string_view m(d["model"].GetString(), d["model"].GetStringLength());
    if (m != opts_.model) {
      SendError(c, 404, "The model `" + std::string(m) + "` does not exist.", "model");
      return true;
    }
  }
  Req r;
  r.api = api;
  std::string err, param;
  std::string& prompt = prompt_scratch_;
  prompt.clear();
  if (!ExtractPrompt(d, api, &prompt, &err, &param)) {
    SendError(c, 400, err, param);
    return true;
  }
  if (d.HasMember("stream")) {
    if (!d["stream"].IsBool()) {
      SendError(c, 400, "stream must be a boolean", "stream");
      return true;
    }
    r.stream = d["stream"].GetBool();
  }
  if (d.HasMember("stream_options") && d["stream_options"].IsObject() &&
      d["stream_options"].HasMember("include_usage") && d["stream_options"]["include_usage"].IsBool())
    r.include_usage = d["stream_options"]["include_usage"].GetBool();
  int64_t max_tokens = -1;
  for (const char* key : {"max_tokens", "max_completion_tokens"}) {
    if (d.HasMember(key) && !d[key].IsNull()) {
      if (!d[key].IsInt64() || d[key].GetInt64() < 1) {
        SendError(c, 400, std::string(key) + " must be a positive integer", key);
        return true;
      }
      max_tokens = d[key].GetInt64();
    }
  }
  bool ignore_eos = d.HasMember("ignore_eos") && d["ignore_eos"].IsBool() && d["ignore_eos"].GetBool();
  r.prompt_tokens = PromptTokens(prompt);
  if (r.prompt_tokens > opts_.max_model_len) {
    SendError(c, 400, "prompt is longer than the model's maximum context length", "messages");
    return true;
  }
  // The model "stops" (EOS) after --output-tokens unless max_tokens cuts it short, or
  // ignore_eos (vLLM's extension) asks for exactly max_tokens.
  int64_t n = opts_.output_tokens;
  if (max_tokens > 0 && (ignore_eos || max_tokens < n)) {
    n = max_tokens;
    r.length_limited = true;
  }
  r.output_tokens = static_cast<int>(std::min<int64_t>(n, opts_.max_model_len));

  ++requests_total_;
  if (faults_.error_rate > 0 && std::uniform_real_distribution<double>(0, 1)(rng_) < faults_.error_rate) {
    ++errors_injected_;
    ++metrics_.errors_injected;
    SendError(c, faults_.error_status, "injected fault");
    CountRequestDone();
    return true;
  }
  r.id = next_req_id_++;
  r.conn = c;
  r.arrival_us = NowUs();
  r.created = time(nullptr);
  const bool delayed = faults_.hang_first_byte || faults_.slow_first_byte_ms > 0;
  if (immediate_ && !delayed) {
    // Fast path for gateway benchmarks: answered before returning, so the request never
    // needs to outlive this call (no map entry, no copy of the prompt).
    StartRequest(&r, prompt);
    return !c->dead;
  }
  c->active_req = r.id;
  Req& stored = reqs_.emplace(r.id, std::move(r)).first->second;
  if (faults_.hang_first_byte) return false;  // stays until the client gives up
  if (faults_.slow_first_byte_ms > 0) {
    stored.prompt = prompt;
    delayed_.emplace(stored.arrival_us + int64_t{faults_.slow_first_byte_ms} * 1000, stored.id);
    RearmTimer();
    return false;
  }
  uint64_t id = stored.id;
  StartRequest(&stored, prompt);
  return reqs_.find(id) == reqs_.end() && !c->dead && c->active_req == 0;
}

void Server::StartRequest(Req* r, std::string_view prompt) {
  metrics_.prompt_tokens_total += static_cast<uint64_t>(r->prompt_tokens);
  if (immediate_) {
    engine_.AccountPrompt(prompt);
    EmitTokens(r, 0, r->output_tokens, true, NowUs());
    return;
  }
  engine_.Submit(r->id, prompt, r->output_tokens, NowUs());
  RearmTimer();
}

void Server::AppendWord(std::string* out, const Req* r, int index) const {
  uint64_t h = SplitMix(opts_.seed ^ (r->id * 0x100000001b3ull) ^ static_cast<uint64_t>(index));
  out->push_back(' ');
  out->append(kVocab[h % kVocabSize]);
}

void Server::AppendUsage(std::string* out, const Req* r) const {
  out->append("\"usage\":{\"prompt_tokens\":");
  AppendInt(out, r->prompt_tokens);
  out->append(",\"total_tokens\":");
  AppendInt(out, r->prompt_tokens + r->output_tokens);
  out->append(",\"completion_tokens\":");
  AppendInt(out, r->output_tokens);
  out->append(",\"prompt_tokens_details\":null}");
}

void Server::AppendChunkEvent(std::string* out, const Req* r, int index, bool finished) const {
  // One SSE event inside one HTTP chunk; the chunk size is patched in once the event is built.
  size_t size_at = out->size();
  out->append("00000000\r\n");
  size_t start = out->size();
  const bool chat = r->api == Api::kChat;
  out->append(chat ? "data: {\"id\":\"chatcmpl-" : "data: {\"id\":\"cmpl-");
  AppendInt(out, static_cast<int64_t>(r->id));
  out->append(chat ? "\",\"object\":\"chat.completion.chunk\",\"created\":" : "\",\"object\":\"text_completion\",\"created\":");
  AppendInt(out, r->created);
  out->append(",\"model\":");
  AppendJsonString(out, opts_.model);
  if (index < 0) {  // the usage-only chunk of stream_options.include_usage
    out->append(",\"choices\":[],");
    AppendUsage(out, r);
    out->append("}\n\n");
  } else {
    out->append(chat ? ",\"choices\":[{\"index\":0,\"delta\":{" : ",\"choices\":[{\"index\":0,\"text\":\"");
    if (chat) {
      if (index == 0) out->append("\"role\":\"assistant\",");
      out->append("\"content\":\"");
    }
    AppendWord(out, r, index);
    out->append(chat ? "\"},\"logprobs\":null,\"finish_reason\":" : "\",\"logprobs\":null,\"finish_reason\":");
    out->append(!finished ? "null" : (r->length_limited ? "\"length\"" : "\"stop\""));
    out->append("}]}\n\n");
  }
  size_t len = out->size() - start;
  for (int i = 7; i >= 0; --i, len >>= 4) (*out)[size_at + static_cast<size_t>(i)] = "0123456789abcdef"[len & 15];
  out->append("\r\n");
}

void Server::EmitTokens(Req* r, int first_index, int count, bool finished, int64_t now) {
  Conn* c = r->conn;
  if (first_index == 0) {
    metrics_.ttft_seconds.Observe(static_cast<double>(now - r->arrival_us) / 1e6);
  } else {
    metrics_.inter_token_seconds.Observe(static_cast<double>(now - r->last_token_us) / 1e6);
  }
  for (int i = 1; i < count; ++i) metrics_.inter_token_seconds.Observe(0);
  r->last_token_us = now;
  metrics_.generation_tokens_total += static_cast<uint64_t>(count);
  int close_after = faults_.close_mid_stream_after;
  bool cut = close_after > 0 && first_index + count >= close_after && !(finished && first_index + count <= close_after);
  if (cut) count = std::max(0, std::min(count, close_after - first_index));

  std::string& s = scratch_;
  s.clear();
  if (r->stream) {
    if (first_index == 0)
      s.append("HTTP/1.1 200 OK\r\ncontent-type: text/event-stream; charset=utf-8\r\ncache-control: no-cache\r\n"
               "transfer-encoding: chunked\r\n");
    if (first_index == 0 && !c->keep_alive) s.append("connection: close\r\n");
    if (first_index == 0) s.append("\r\n");
    for (int i = 0; i < count; ++i) AppendChunkEvent(&s, r, first_index + i, finished && !cut && i == count - 1);
    if (finished && !cut) {
      if (r->include_usage) AppendChunkEvent(&s, r, -1, true);
      s.append("e\r\ndata: [DONE]\n\n\r\n0\r\n\r\n");
    }
    Send(c, s);
  }
  if (c->dead) return;  // Send failed: CloseConn cancelled the request and freed *r
  r->sent = first_index + count;
  if (cut) {
    ++closed_mid_stream_;
    uint64_t id = r->id;
    c->active_req = 0;
    engine_.Cancel(id);
    reqs_.erase(id);
    CountRequestDone();
    CloseConn(c);
    RearmTimer();
    return;
  }
  if (finished) CompleteRequest(r);
}

void Server::CompleteRequest(Req* r) {
  Conn* c = r->conn;
  if (!r->stream) {
    std::string& body = body_scratch_;
    body.clear();
    const bool chat = r->api == Api::kChat;
    body.append(chat ? "{\"id\":\"chatcmpl-" : "{\"id\":\"cmpl-");
    AppendInt(&body, static_cast<int64_t>(r->id));
    body.append(chat ? "\",\"object\":\"chat.completion\",\"created\":" : "\",\"object\":\"text_completion\",\"created\":");
    AppendInt(&body, r->created);
    body.append(",\"model\":");
    AppendJsonString(&body, opts_.model);
    body.append(chat ? ",\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":\""
                     : ",\"choices\":[{\"index\":0,\"text\":\"");
    for (int i = 0; i < r->output_tokens; ++i) AppendWord(&body, r, i);
    body.append(chat ? "\"},\"logprobs\":null,\"finish_reason\":" : "\",\"logprobs\":null,\"finish_reason\":");
    body.append(r->length_limited ? "\"length\"" : "\"stop\"");
    body.append("}],");
    AppendUsage(&body, r);
    body.append("}");
    SendSimple(c, 200, "application/json", body);
  }
  metrics_.e2e_seconds.Observe(static_cast<double>(NowUs() - r->arrival_us) / 1e6);
  metrics_.queue_seconds.Observe(0);
  (r->length_limited ? metrics_.success_length : metrics_.success_stop)++;
  ++completed_total_;
  // Only requests that outlived their Dispatch call are in reqs_ and own active_req.
  const bool was_async = c->active_req == r->id;
  reqs_.erase(r->id);
  if (c->dead) return;
  c->active_req = 0;
  CountRequestDone();
  if (!was_async) return;  // Dispatch's caller goes on parsing
  FinishExchange(c);
  if (c->dead || c->close_after_flush) return;
  if (!c->pending_in.empty()) {
    std::string in = std::move(c->pending_in);
    c->pending_in.clear();
    ProcessBytes(c, in.data(), in.size());
  }
}

void Server::CountRequestDone() {
  if (die_at_ > 0 && static_cast<int64_t>(DoneCount()) >= die_at_) {
    Log(LogLevel::kWarn, "die_after reached; exiting", {{"requests", static_cast<uint64_t>(requests_total_)}});
    _exit(3);
  }
}

bool Server::HandleEmbeddings(Conn* c) {
  JsonDoc d;
  d.Parse(c->body.data(), c->body.size());
  if (d.HasParseError() || !d.IsObject()) {
    SendError(c, 400, "request body must be a JSON object");
    return true;
  }
  if (d.HasMember("model") && (!d["model"].IsString() || opts_.model != d["model"].GetString())) {
    SendError(c, 404, "The model does not exist.", "model");
    return true;
  }
  if (!d.HasMember("input") || !(d["input"].IsString() || d["input"].IsArray())) {
    SendError(c, 400, "input must be a string or an array", "input");
    return true;
  }
  std::vector<std::string> inputs;
  if (d["input"].IsString()) {
    inputs.emplace_back(d["input"].GetString(), d["input"].GetStringLength());
  } else {
    for (const auto& e : d["input"].GetArray()) {
      if (e.IsString()) inputs.emplace_back(e.GetString(), e.GetStringLength());
      else if (e.IsInt()) inputs.emplace_back(std::to_string(e.GetInt()));
      else {
        SendError(c, 400, "input array must hold strings or token ids", "input");
        return true;
      }
    }
  }
  ++requests_total_;
  std::string b;
  b.append("{\"object\":\"list\",\"data\":[");
  int tokens = 0;
  for (size_t i = 0; i < inputs.size(); ++i) {
    tokens += PromptTokens(inputs[i]);
    if (i) b.push_back(',');
    b.append("{\"object\":\"embedding\",\"index\":");
    AppendInt(&b, static_cast<int64_t>(i));
    b.append(",\"embedding\":[");
    uint64_t h = 1469598103934665603ull;
    for (char ch : inputs[i]) h = (h ^ static_cast<unsigned char>(ch)) * 1099511628211ull;
    std::vector<double> v(static_cast<size_t>(opts_.embedding_dim));
    double norm = 0;
    for (size_t k = 0; k < v.size(); ++k) {
      v[k] = static_cast<double>(SplitMix(h + k) % 20001) / 10000.0 - 1.0;
      norm += v[k] * v[k];
    }
    norm = norm > 0 ? std::sqrt(norm) : 1;
    char num[32];
    for (size_t k = 0; k < v.size(); ++k) {
      std::snprintf(num, sizeof num, "%s%.6f", k ? "," : "", v[k] / norm);
      b.append(num);
    }
    b.append("]}");
  }
  b.append("],\"model\":");
  AppendJsonString(&b, opts_.model);
  b.append(",\"usage\":{\"prompt_tokens\":");
  AppendInt(&b, tokens);
  b.append(",\"total_tokens\":");
  AppendInt(&b, tokens);
  b.append("}}");
  metrics_.prompt_tokens_total += static_cast<uint64_t>(tokens);
  SendSimple(c, 200, "application/json", b);
  ++completed_total_;
  CountRequestDone();
  return true;
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
         "faults (also at runtime: POST /mock/faults):\n"
         "  --error-rate X --error-status N --hang-first-byte --slow-first-byte-ms N\n"
         "  --close-mid-stream-after N --refuse-connections --die-after N\n";
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
    } else if (!value()) {
      *err = a + ": missing value";
      return false;
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
    } else if (a == "--close-mid-stream-after") {
      ok = ParseInt(v, 0, 1 << 30, &n);
      o->faults.close_mid_stream_after = static_cast<int>(n);
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

int RunMockServer(const MockOptions& opts) {
  signal(SIGPIPE, SIG_IGN);
  SetLogComponent("llmgw-mock");
  size_t colon = opts.listen.rfind(':');
  std::string host = opts.listen.substr(0, colon);
  uint16_t port = static_cast<uint16_t>(std::atoi(opts.listen.c_str() + colon + 1));
  const bool multi = opts.threads > 1;
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
  int rc = s.Run(true);
  for (auto& t : threads) t.join();
  return rc;
}

}  // namespace llmgw::mock
