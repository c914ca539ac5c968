// See writer_lock.h. The lock file lives in the shm namespace (shm_open), so its scope is
// exactly the scope of the shm object it protects (a container's own /dev/shm included).
#include "common/writer_lock.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

namespace llmgw {

Result<std::unique_ptr<WriterLock>> WriterLock::Acquire(const std::string& shm_name) {
  std::string name = LockName(shm_name);
  // The holder removes the file when it lets go (no lock file left per instance in
  // /dev/shm). So a lock taken on an inode that is no longer the path's — its holder
  // removed it between our open and our flock — is worth nothing: take it again.
  for (int attempt = 0; attempt < 8; ++attempt) {
    auto r = AcquireOnce(shm_name, name);
    if (!r.ok() || r.value()) return r;
  }
  return Error(ErrorKind::kIo, ErrorSide::kInternal, false, "cannot take the writer lock /dev/shm%s: it keeps changing",
               name.c_str());
}

Result<std::unique_ptr<WriterLock>> WriterLock::AcquireOnce(const std::string& shm_name, const std::string& name) {
  int fd = shm_open(name.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0660);
  if (fd < 0)
    return Error(ErrorKind::kIo, ErrorSide::kInternal, false, "cannot open the writer lock /dev/shm%s: %s",
                 name.c_str(), strerror(errno));
  if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
    int e = errno;
    char buf[32] = {};
    ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);
    long holder = n > 0 ? std::strtol(buf, nullptr, 10) : 0;
    close(fd);
    if (e == EWOULDBLOCK)
      return Error(ErrorKind::kConfig, ErrorSide::kInternal, false,
                   "another llmcd (pid %ld) already publishes to %s (lock /dev/shm%s)", holder,
                   shm_name.c_str(), name.c_str());
    return Error(ErrorKind::kIo, ErrorSide::kInternal, false, "cannot lock /dev/shm%s: %s", name.c_str(),
                 strerror(e));
  }
  struct stat held {}, now {};
  if (fstat(fd, &held) != 0 || stat(("/dev/shm" + name).c_str(), &now) != 0 || held.st_ino != now.st_ino ||
      held.st_dev != now.st_dev) {
    close(fd);
    return std::unique_ptr<WriterLock>();  // removed or replaced meanwhile: try again
  }
  char buf[32];
  int len = std::snprintf(buf, sizeof(buf), "%ld\n", static_cast<long>(getpid()));
  if (ftruncate(fd, 0) != 0 || pwrite(fd, buf, static_cast<size_t>(len), 0) != len) {
    // The pid is only for the message of a second llmcd; the lock itself holds.
  }
  return std::unique_ptr<WriterLock>(new WriterLock(fd, name));
}

// Removed while still locked, then released: a starting llmcd that opened this inode
// before the removal finds its lock stale (Acquire's inode check) and takes a new file.
WriterLock::~WriterLock() {
  shm_unlink(name_.c_str());
  close(fd_);
}

}  // namespace llmgw
