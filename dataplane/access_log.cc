// AccessLog: see access_log.h.
#include "dataplane/access_log.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "common/log.h"
#include "dataplane/signals.h"

namespace llmgw::dataplane {

AccessLog::~AccessLog() {
  if (owned_ && fd_ > 2) ::close(fd_);
}

Status AccessLog::Open(const AccessLogConfig& cfg) {
  enabled_ = cfg.enabled;
  sample_ = cfg.sample;
  if (!enabled_ || cfg.path.empty()) return Status::Ok();
  fd_ = ::open(cfg.path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd_ < 0) {
    int e = errno;
    fd_ = 2;
    return Error(ErrorKind::kIo, ErrorSide::kInternal, false, "gateway.access_log.path %s: %s", cfg.path.c_str(),
                 strerror(e));
  }
  owned_ = true;
  path_ = cfg.path;
  return Status::Ok();
}

Status AccessLog::Reopen() {
  if (!owned_ || path_.empty()) return Status::Ok();
  return ReopenAppendFile(fd_, path_.c_str());
}

void AccessLog::Write(const AccessRecord& r, Rng* rng) {
  if (!enabled_) return;
  if (sample_ < 1.0 && static_cast<double>(rng->Next() % 1000000) / 1e6 >= sample_) return;
  char line[2048];
  size_t n = FormatLogLine(line, sizeof(line), LogLevel::kInfo, "access",
                           {{"method", r.method},
                            {"path", r.path},
                            {"status", r.status},
                            {"model", r.model},
                            {"backend", r.backend},
                            {"stream", r.stream},
                            {"attempts", r.attempts},
                            {"duration_us", static_cast<unsigned long long>(r.duration_us)},
                            {"ttft_us", static_cast<unsigned long long>(r.ttft_us)},
                            {"bytes_out", static_cast<unsigned long long>(r.bytes_out)},
                            {"prompt_tokens", static_cast<unsigned long long>(r.prompt_tokens)},
                            {"completion_tokens", static_cast<unsigned long long>(r.completion_tokens)},
                            {"resumes", r.resumes},
                            {"resume", r.resume}},
                           r.request_id);
  ssize_t w = ::write(fd_, line, n);  // one write per line (O_APPEND): no interleaving
  (void)w;
}

}  // namespace llmgw::dataplane
