// Listener hand-over for binary upgrades: see listener_handover.h for why. The wire
// protocol is one line each way on an abstract unix stream socket:
//   successor -> running:  "take <gateway.listen>\n"
//   running -> successor:  "ok <n>\n" with n descriptors attached (SCM_RIGHTS), or
//                          "no <reason>\n"
#include "dataplane/listener_handover.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "common/log.h"

namespace llmgw::dataplane {
namespace {

constexpr size_t kMaxFds = 256;  // more listeners than any thread count we allow

socklen_t AbstractAddr(const std::string& name, sockaddr_un* a) {
  *a = sockaddr_un{};
  a->sun_family = AF_UNIX;
  size_t n = std::min(name.size(), sizeof(a->sun_path) - 1);
  std::memcpy(a->sun_path + 1, name.data(), n);  // sun_path[0] = 0: the abstract namespace
  return static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 + n);
}

void SetTimeouts(int fd, int timeout_ms) {
  timeval tv{timeout_ms / 1000, (timeout_ms % 1000) * 1000};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

bool ReadLine(int fd, std::string* line) {
  char ch;
  while (line->size() < 512) {
    ssize_t n = ::recv(fd, &ch, 1, 0);
    if (n <= 0) return false;
    if (ch == '\n') return true;
    line->push_back(ch);
  }
  return false;
}

bool IsListeningTcp(int fd) {
  int v = 0;
  socklen_t len = sizeof(v);
  if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &v, &len) != 0 || !v) return false;
  int type = 0;
  len = sizeof(type);
  if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) != 0 || type != SOCK_STREAM) return false;
  sockaddr_storage ss{};
  len = sizeof(ss);
  return getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) == 0 &&
         (ss.ss_family == AF_INET || ss.ss_family == AF_INET6);
}

}  // namespace

std::string ListenerHandover::SocketName(const std::string& instance) { return "llmgw-listeners-" + instance; }

std::vector<int> ListenerHandover::TakeFromPredecessor(const std::string& instance, const std::string& listen,
                                                       int timeout_ms) {
  std::vector<int> out;
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return out;
  sockaddr_un a;
  socklen_t alen = AbstractAddr(SocketName(instance), &a);
  SetTimeouts(fd, timeout_ms);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), alen) != 0) {  // no llmgw of this instance
    ::close(fd);
    return out;
  }
  std::string req = "take " + listen + "\n";
  if (::send(fd, req.data(), req.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(req.size())) {
    ::close(fd);
    return out;
  }
  char data[64];
  alignas(cmsghdr) char ctrl[CMSG_SPACE(sizeof(int) * kMaxFds)];
  iovec iov{data, sizeof(data) - 1};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = ctrl;
  msg.msg_controllen = sizeof(ctrl);
  ssize_t n = ::recvmsg(fd, &msg, MSG_CMSG_CLOEXEC);
  ::close(fd);
  if (n <= 0) return out;
  data[n] = 0;
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    const int* fds = reinterpret_cast<const int*>(CMSG_DATA(c));
    for (size_t i = 0; i < k; ++i) out.push_back(fds[i]);
  }
  bool ok = std::strncmp(data, "ok ", 3) == 0 && !out.empty();
  for (int f : out) ok = ok && IsListeningTcp(f);
  if (!ok) {
    if (std::strncmp(data, "no ", 3) == 0) {
      std::string why(data + 3);
      if (!why.empty() && why.back() == '\n') why.pop_back();
      LOG_INFO("the running llmgw of this instance keeps its listeners", {{"reason", why}});
    }
    for (int f : out) ::close(f);
    out.clear();
  }
  return out;
}

Status ListenerHandover::Start(const std::string& instance, const std::string& listen, const std::vector<int>& fds,
                               const std::atomic<bool>* stop) {
  listen_ = listen;
  stop_ = stop;
  for (int f : fds) {
    int d = ::fcntl(f, F_DUPFD_CLOEXEC, 0);
    if (d < 0) {
      Stop();
      return Error(ErrorKind::kIo, ErrorSide::kInternal, false, "dup listener: %s", strerror(errno));
    }
    fds_.push_back(d);
  }
  server_fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (server_fd_ < 0) {
    Stop();
    return Error(ErrorKind::kIo, ErrorSide::kInternal, false, "hand-over socket: %s", strerror(errno));
  }
  std::string name = SocketName(instance);
  thread_ = std::thread([this, name] {
    // The name is taken while a predecessor still runs (it keeps offering until it has
    // drained): retry until it is free, so the next upgrade finds this process.
    sockaddr_un a;
    socklen_t alen = AbstractAddr(name, &a);
    bool logged = false;
    while (!quit_.load() && !(stop_ && stop_->load())) {
      if (::bind(server_fd_, reinterpret_cast<sockaddr*>(&a), alen) == 0 && ::listen(server_fd_, 8) == 0) {
        LOG_DEBUG("offering listeners to a successor", {{"socket", name}});
        Serve();
        break;
      }
      if (!logged) {
        LOG_DEBUG("hand-over socket busy (a predecessor still runs); retrying", {{"socket", name}});
        logged = true;
      }
      ::usleep(100 * 1000);
    }
    // Drain started (or Stop): the sockets close once the workers closed theirs too.
    for (int f : fds_) ::close(f);
    fds_.clear();
    ::close(server_fd_);  // a successor starting now opens listeners of its own
    server_fd_ = -1;
  });
  return Status::Ok();
}

void ListenerHandover::Serve() {
  while (!quit_.load() && !(stop_ && stop_->load())) {
    pollfd p{server_fd_, POLLIN, 0};
    if (::poll(&p, 1, 50) <= 0) continue;
    int conn = ::accept4(server_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (conn < 0) continue;
    Answer(conn);
    ::close(conn);
  }
}

void ListenerHandover::Answer(int conn) {
  SetTimeouts(conn, 1000);
  auto say_no = [&](const char* why) {
    std::string r = std::string("no ") + why + "\n";
    (void)!::send(conn, r.data(), r.size(), MSG_NOSIGNAL);
  };
  // Listening sockets carry every client's traffic: only our own user (or root) gets them.
  ucred cred{};
  socklen_t len = sizeof(cred);
  if (getsockopt(conn, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0 || (cred.uid != ::geteuid() && cred.uid != 0)) {
    LOG_WARN("refused a listener hand-over to another user", {{"uid", static_cast<unsigned>(cred.uid)},
                                                              {"pid", static_cast<int>(cred.pid)}});
    ++refused_;
    return say_no("another user");
  }
  std::string line;
  if (!ReadLine(conn, &line) || line.rfind("take ", 0) != 0) return say_no("bad request");
  if (line.substr(5) != listen_) return say_no("different gateway.listen");
  if (fds_.empty() || fds_.size() > kMaxFds) return say_no("no listeners");
  std::string reply = "ok " + std::to_string(fds_.size()) + "\n";
  iovec iov{reply.data(), reply.size()};
  alignas(cmsghdr) char ctrl[CMSG_SPACE(sizeof(int) * kMaxFds)] = {};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = ctrl;
  msg.msg_controllen = CMSG_SPACE(sizeof(int) * fds_.size());
  cmsghdr* c = CMSG_FIRSTHDR(&msg);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = SCM_RIGHTS;
  c->cmsg_len = CMSG_LEN(sizeof(int) * fds_.size());
  std::memcpy(CMSG_DATA(c), fds_.data(), sizeof(int) * fds_.size());
  if (::sendmsg(conn, &msg, MSG_NOSIGNAL) == static_cast<ssize_t>(reply.size())) {
    ++handed_over_;
    LOG_INFO("listeners handed over to a successor", {{"pid", static_cast<int>(cred.pid)},
                                                      {"listeners", static_cast<unsigned>(fds_.size())}});
  }
}

void ListenerHandover::Stop() {
  quit_.store(true);
  if (thread_.joinable()) thread_.join();
  for (int f : fds_) ::close(f);
  fds_.clear();
  if (server_fd_ >= 0) ::close(server_fd_);
  server_fd_ = -1;
}

ListenerHandover::~ListenerHandover() { Stop(); }

}  // namespace llmgw::dataplane
