// See listen_claim.h.
#include "dataplane/listen_claim.h"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>

#include "common/log.h"

namespace llmgw::dataplane {

namespace {
constexpr std::string_view kPrefix = "llmgw-listen:";
}

std::string ListenClaim::Name(uint16_t port, std::string_view instance, long pid) {
  std::string n(kPrefix);
  n += std::to_string(port);
  n += ':';
  n += instance;
  n += ':';
  n += std::to_string(pid);
  return n;
}

bool ListenClaim::FindOtherInstance(std::string_view listing, uint16_t port, std::string_view instance,
                                    std::string* other_instance, long* other_pid) {
  // Each line ends with the path; abstract names are shown with a leading '@'.
  std::string want(1, '@');  // appended piecewise: GCC 12 -O3 warns (-Wrestrict) on "@" + string
  want += kPrefix;
  want += std::to_string(port);
  want += ':';
  size_t pos = 0;
  while (pos < listing.size()) {
    size_t eol = listing.find('\n', pos);
    if (eol == std::string_view::npos) eol = listing.size();
    std::string_view line = listing.substr(pos, eol - pos);
    pos = eol + 1;
    size_t at = line.find(want);
    if (at == std::string_view::npos) continue;
    std::string_view rest = line.substr(at + want.size());  // "<instance>:<pid>"
    size_t colon = rest.rfind(':');
    if (colon == std::string_view::npos) continue;
    std::string_view inst = rest.substr(0, colon);
    if (inst == instance) continue;
    *other_instance = std::string(inst);
    *other_pid = std::strtol(std::string(rest.substr(colon + 1)).c_str(), nullptr, 10);
    return true;
  }
  return false;
}

Result<std::unique_ptr<ListenClaim>> ListenClaim::Acquire(uint16_t port, const std::string& instance,
                                                          const char* proc_net_unix) {
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return Error(ErrorKind::kIo, ErrorSide::kInternal, false, "listen claim: socket: %s", strerror(errno));
  std::string name = Name(port, instance, static_cast<long>(getpid()));
  sockaddr_un sa{};
  sa.sun_family = AF_UNIX;
  std::memcpy(sa.sun_path + 1, name.data(), name.size());  // sun_path[0] = 0: abstract
  socklen_t len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 + name.size());
  if (bind(fd, reinterpret_cast<sockaddr*>(&sa), len) != 0) {
    int e = errno;
    close(fd);
    return Error(ErrorKind::kIo, ErrorSide::kInternal, false, "listen claim @%s: bind: %s", name.c_str(),
                 strerror(e));
  }
  // Claim first, then look: of two instances starting at once, at least the later one
  // sees the other (both may refuse; neither can end up sharing the port).
  std::ifstream in(proc_net_unix);
  if (!in) {
    LOG_WARN("cannot read the abstract socket list; a llmgw of another instance on this port would go unnoticed",
             {{"file", proc_net_unix}, {"error", strerror(errno)}});
    return std::unique_ptr<ListenClaim>(new ListenClaim(fd));
  }
  std::stringstream ss;
  ss << in.rdbuf();
  std::string other;
  long other_pid = 0;
  if (FindOtherInstance(ss.str(), port, instance, &other, &other_pid)) {
    close(fd);
    return Error(ErrorKind::kConfig, ErrorSide::kInternal, false,
                 "port %u is served by llmgw instance '%s' (pid %ld), this is '%s'", static_cast<unsigned>(port),
                 other.c_str(), other_pid, instance.c_str());
  }
  return std::unique_ptr<ListenClaim>(new ListenClaim(fd));
}

ListenClaim::~ListenClaim() { close(fd_); }

}  // namespace llmgw::dataplane
