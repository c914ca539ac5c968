// See signals.h.
#include "dataplane/signals.h"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "common/log.h"
#include "common/systemd_notify.h"
#include "dataplane/worker.h"

namespace llmgw::dataplane {

std::atomic<uint64_t> g_reopen_logs{0};

namespace {

sigset_t HandledSignals() {
  sigset_t set;
  sigemptyset(&set);
  for (int s : {SIGTERM, SIGINT, SIGHUP, SIGUSR1}) sigaddset(&set, s);
  return set;
}

}  // namespace

void SignalThread::Start() {
  sigset_t set = HandledSignals();
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  thread_ = std::thread([this, set] {
    while (!stop_.load()) {
      timespec ts{0, 100 * 1000 * 1000};
      int sig = sigtimedwait(&set, nullptr, &ts);
      if (sig == SIGTERM || sig == SIGINT) {
        LOG_INFO("draining", {{"signal", sig == SIGTERM ? "SIGTERM" : "SIGINT"}});
        g_stop_requested.store(true);
        NotifyStopping();
      } else if (sig == SIGHUP) {
        LOG_INFO("SIGHUP ignored: llmgw has no config to reload (models, backends and policies come live "
                 "from llmcd); a changed gateway section needs a restart, which drains",
                 {});
      } else if (sig == SIGUSR1) {
        uint64_t gen = g_reopen_logs.fetch_add(1) + 1;
        LOG_INFO("SIGUSR1: reopening the access log", {{"generation", gen}});
      }
    }
  });
}

void SignalThread::Stop() {
  if (!thread_.joinable()) return;
  stop_.store(true);
  thread_.join();
}

Status ReopenAppendFile(int fd, const char* path) {
  int nfd = ::open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (nfd < 0)
    return Error(ErrorKind::kIo, ErrorSide::kInternal, false, "reopen %s: %s", path, strerror(errno));
  // dup2 keeps FD_CLOEXEC off on fd; set it again so a fork+exec never inherits the log.
  int r = ::dup3(nfd, fd, O_CLOEXEC);
  int e = errno;
  ::close(nfd);
  if (r < 0) return Error(ErrorKind::kIo, ErrorSide::kInternal, false, "reopen %s: dup3: %s", path, strerror(e));
  return Status::Ok();
}

}  // namespace llmgw::dataplane
