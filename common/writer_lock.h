// The one-snapshot-writer-per-instance lock: llmcd (controller or agent) holds an
// exclusive flock on a small file beside the instance's shm object (/dev/shm/<shm>.writer)
// for as long as it runs, so a second llmcd of the same instance refuses to start instead
// of publishing snapshots over the first one's. The kernel drops the lock when the process
// dies, even by SIGKILL, so a crash never leaves the instance locked. A clean exit also
// removes the file (a crash leaves it, harmlessly: the next llmcd locks it).
#pragma once

#include <sys/types.h>

#include <memory>
#include <string>

#include "common/error.h"

namespace llmgw {

class WriterLock {
 public:
  // Takes the lock for the shm object `shm_name` ("/llmgw-default"), writing this pid into
  // the file. Fails (kConfig) with a message naming the holder's pid when another process
  // holds it, or (kIo) when the file cannot be opened.
  static Result<std::unique_ptr<WriterLock>> Acquire(const std::string& shm_name);
  ~WriterLock();
  WriterLock(const WriterLock&) = delete;
  WriterLock& operator=(const WriterLock&) = delete;

  // The POSIX shm name of the lock file ("/llmgw-default.writer").
  static std::string LockName(const std::string& shm_name) { return shm_name + ".writer"; }

 private:
  WriterLock(int fd, std::string name) : fd_(fd), name_(std::move(name)) {}
  // One try; an empty pointer (not an error) when the file was replaced meanwhile.
  static Result<std::unique_ptr<WriterLock>> AcquireOnce(const std::string& shm_name, const std::string& name);
  int fd_;
  std::string name_;
};

}  // namespace llmgw
