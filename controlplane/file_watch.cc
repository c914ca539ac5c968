// Change notices for the files llmcd reads (see file_watch.h).
#include "controlplane/file_watch.h"

#include <sys/inotify.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace llmgw::cp {
namespace {

std::string DirOf(const std::string& p) {
  auto s = p.rfind('/');
  return s == std::string::npos ? "." : (s == 0 ? "/" : p.substr(0, s));
}
std::string BaseOf(const std::string& p) {
  auto s = p.rfind('/');
  return s == std::string::npos ? p : p.substr(s + 1);
}

}  // namespace

FileWatch::FileWatch() : fd_(inotify_init1(IN_NONBLOCK | IN_CLOEXEC)) {
  if (fd_ < 0) init_error_ = std::strerror(errno);
}

FileWatch::~FileWatch() {
  if (fd_ >= 0) close(fd_);
}

bool FileWatch::Watch(const std::string& path, std::string* why) {
  if (path.empty() || !paths_.insert(path).second) return true;  // a refused path is not tried (and reported) again
  if (fd_ < 0) {
    *why = init_error_;
    return false;
  }
  int wd = inotify_add_watch(fd_, DirOf(path).c_str(), IN_CLOSE_WRITE | IN_MOVED_TO | IN_CREATE);
  if (wd < 0) {
    *why = std::strerror(errno);
    return false;
  }
  watched_[wd].insert(BaseOf(path));
  return true;
}

bool FileWatch::Changed() {
  if (fd_ < 0) return false;
  bool changed = false;
  alignas(inotify_event) char buf[4096];
  ssize_t n;
  while ((n = read(fd_, buf, sizeof(buf))) > 0) {
    for (char* p = buf; p < buf + n;) {
      auto* ev = reinterpret_cast<inotify_event*>(p);
      // "..data" is the symlink Kubernetes swaps when a mounted ConfigMap or Secret changes.
      auto w = watched_.find(ev->wd);
      if (ev->len && w != watched_.end() && (w->second.count(ev->name) || std::strcmp(ev->name, "..data") == 0))
        changed = true;
      p += sizeof(inotify_event) + ev->len;
    }
  }
  return changed;
}

}  // namespace llmgw::cp
