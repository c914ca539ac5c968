// Blocking GET with a single deadline: non-blocking socket + poll for every step.
#include "controlplane/http_client.h"

#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>

namespace llmgw::cp {
namespace {

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// Waits for `events` on fd until the deadline or cancellation; false on timeout, error
// or cancel. With a cancel flag, poll in 50 ms slices so the flag is seen promptly.
bool WaitFor(int fd, short events, int64_t deadline_ms, const std::atomic<bool>* cancel) {
  for (;;) {
    if (cancel && cancel->load(std::memory_order_relaxed)) return false;
    int64_t left = deadline_ms - NowMs();
    if (left <= 0) return false;
    if (cancel) left = std::min<int64_t>(left, 50);
    pollfd p{fd, events, 0};
    int r = poll(&p, 1, static_cast<int>(left));
    if (r > 0) return true;
    if (r == 0) continue;  // the deadline or the flag is checked at the top
    if (errno != EINTR) return false;
  }
}

// Decodes a chunked body; false when malformed.
bool Dechunk(const std::string& in, std::string* out) {
  size_t pos = 0;
  out->clear();
  for (;;) {
    size_t eol = in.find("\r\n", pos);
    if (eol == std::string::npos) return false;
    size_t len = 0;
    size_t i = pos;
    for (; i < eol; ++i) {
      char c = in[i];
      int v = (c >= '0' && c <= '9') ? c - '0' : (c >= 'a' && c <= 'f') ? c - 'a' + 10
              : (c >= 'A' && c <= 'F') ? c - 'A' + 10 : -1;
      if (v < 0) break;  // chunk extensions after ';'
      if (len > (1u << 28)) return false;
      len = len * 16 + static_cast<size_t>(v);
    }
    if (i == pos) return false;
    pos = eol + 2;
    if (len == 0) return true;
    if (pos + len > in.size()) return false;
    out->append(in, pos, len);
    pos += len + 2;
  }
}

}  // namespace

HttpResponse HttpGet(const HttpTarget& target, const std::string& path, uint32_t timeout_ms,
                     size_t max_body_bytes, const std::atomic<bool>* cancel) {
  HttpResponse res;
  auto timed_out = [&](const char* step) {
    res.error = cancel && cancel->load() ? std::string("cancelled") : std::string(step) + ": timeout";
    return res;
  };
  int64_t deadline = NowMs() + timeout_ms;
  int fd = socket(target.addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    res.error = std::string("socket: ") + strerror(errno);
    return res;
  }
  struct Closer { int fd; ~Closer() { close(fd); } } closer{fd};
  if (connect(fd, reinterpret_cast<const sockaddr*>(&target.addr), target.addr_len) != 0) {
    if (errno != EINPROGRESS) {
      res.error = std::string("connect: ") + strerror(errno);
      return res;
    }
    if (!WaitFor(fd, POLLOUT, deadline, cancel)) return timed_out("connect");
    int err = 0;
    socklen_t len = sizeof(err);
    getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
    if (err != 0) {
      res.error = std::string("connect: ") + strerror(err);
      return res;
    }
  }
  std::string req = "GET " + target.base_path + path + " HTTP/1.1\r\nHost: " + target.host_header +
                    "\r\nUser-Agent: llmcd\r\nAccept: text/plain, application/json\r\n"
                    "Connection: close\r\n\r\n";
  size_t sent = 0;
  while (sent < req.size()) {
    ssize_t n = send(fd, req.data() + sent, req.size() - sent, MSG_NOSIGNAL);
    if (n > 0) { sent += static_cast<size_t>(n); continue; }
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
      if (!WaitFor(fd, POLLOUT, deadline, cancel)) return timed_out("send");
      continue;
    }
    res.error = std::string("send: ") + strerror(errno);
    return res;
  }
  std::string raw;
  size_t head_end = std::string::npos;
  long content_length = -1;
  bool chunked = false;
  char buf[16384];
  for (;;) {
    if (head_end != std::string::npos && content_length >= 0 &&
        raw.size() >= head_end + static_cast<size_t>(content_length))
      break;
    if (head_end != std::string::npos && chunked && raw.size() >= 5 &&
        raw.compare(raw.size() - 5, 5, "0\r\n\r\n") == 0)
      break;
    if (!WaitFor(fd, POLLIN, deadline, cancel)) return timed_out("receive");
    ssize_t n = recv(fd, buf, sizeof(buf), 0);
    if (n < 0) {
      if (errno == EAGAIN || errno == EINTR) continue;
      res.error = std::string("receive: ") + strerror(errno);
      return res;
    }
    if (n == 0) break;
    raw.append(buf, static_cast<size_t>(n));
    if (raw.size() > max_body_bytes + 65536) { res.error = "response too large"; return res; }
    if (head_end == std::string::npos) {
      size_t e = raw.find("\r\n\r\n");
      if (e == std::string::npos) {
        if (raw.size() > 65536) { res.error = "response head too large"; return res; }
        continue;
      }
      head_end = e + 4;
      // Headers, case-insensitive: only the two that frame the body matter here.
      std::string head = raw.substr(0, e);
      for (auto& c : head) c = static_cast<char>(tolower(static_cast<unsigned char>(c)));
      size_t cl = head.find("\r\ncontent-length:");
      if (cl != std::string::npos) content_length = strtol(head.c_str() + cl + 17, nullptr, 10);
      if (head.find("\r\ntransfer-encoding: chunked") != std::string::npos) chunked = true;
      if (content_length < 0 && !chunked) content_length = -1;  // read until close
    }
  }
  if (head_end == std::string::npos) {
    res.error = raw.empty() ? "empty response" : "truncated response head";
    return res;
  }
  if (raw.compare(0, 5, "HTTP/") != 0 || raw.size() < 12) {
    res.error = "not an HTTP response";
    return res;
  }
  int status = atoi(raw.c_str() + 9);
  if (status < 100 || status > 599) {
    res.error = "bad status line";
    return res;
  }
  std::string body = raw.substr(head_end);
  if (chunked) {
    std::string out;
    if (!Dechunk(body, &out)) { res.error = "bad chunked body"; return res; }
    body.swap(out);
  } else if (content_length >= 0) {
    if (body.size() < static_cast<size_t>(content_length)) { res.error = "truncated body"; return res; }
    body.resize(static_cast<size_t>(content_length));
  }
  if (body.size() > max_body_bytes) { res.error = "response too large"; return res; }
  res.status = status;
  res.body = std::move(body);
  return res;
}

}  // namespace llmgw::cp
