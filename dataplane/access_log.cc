// AccessLog: see access_log.h.
#include "dataplane/access_log.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "common/log.h"
#include "dataplane/signals.h"

namespace llmgw::dataplane {

void FormatAddress(int family, const uint8_t* addr, uint16_t port, char* out, size_t cap) {
  char ip[INET6_ADDRSTRLEN] = {};
  out[0] = 0;
  if (!inet_ntop(family, addr, ip, sizeof(ip))) return;
  std::snprintf(out, cap, family == AF_INET6 ? "[%s]:%u" : "%s:%u", ip, static_cast<unsigned>(port));
}

void FormatPeer(const sockaddr_storage& ss, char* out, size_t cap) {
  out[0] = 0;
  if (ss.ss_family == AF_INET) {
    const auto* a = reinterpret_cast<const sockaddr_in*>(&ss);
    FormatAddress(AF_INET, reinterpret_cast<const uint8_t*>(&a->sin_addr), ntohs(a->sin_port), out, cap);
  } else if (ss.ss_family == AF_INET6) {
    const auto* a = reinterpret_cast<const sockaddr_in6*>(&ss);
    FormatAddress(AF_INET6, reinterpret_cast<const uint8_t*>(&a->sin6_addr), ntohs(a->sin6_port), out, cap);
  }
}

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
  // Per-attempt lists and flags formatted into stack buffers: no allocation per line.
  char statuses[kMaxAttemptNotes * 4 + 1], times[kMaxAttemptNotes * 16 + 1], flags[160];
  size_t sn = 0, tn = 0, fn = 0;
  for (unsigned i = 0; i < r.notes && i < kMaxAttemptNotes; ++i) {
    sn += static_cast<size_t>(std::snprintf(statuses + sn, sizeof(statuses) - sn, i ? ",%u" : "%u",
                                            static_cast<unsigned>(r.attempt_notes[i].status)));
    tn += static_cast<size_t>(std::snprintf(times + tn, sizeof(times) - tn, i ? ",%.3f" : "%.3f",
                                            static_cast<double>(r.attempt_notes[i].time_us) / 1000.0));
  }
  for (uint32_t b = 0; b < kAccessFlagCount; ++b) {
    if (!(r.flags & (1u << b))) continue;
    std::string_view name = AccessFlagName(b);
    if (fn + name.size() + 2 >= sizeof(flags)) break;
    if (fn) flags[fn++] = ',';
    std::memcpy(flags + fn, name.data(), name.size());
    fn += name.size();
  }
  std::string_view ua = r.user_agent.substr(0, 200);
  char line[3072];
  size_t n = FormatLogLine(line, sizeof(line), LogLevel::kInfo, "access",
                           {{"method", r.method},
                            {"path", r.path},
                            {"status", r.status},
                            {"model", r.model},
                            {"key", r.key},
                            {"backend", r.backend},
                            {"stream", r.stream},
                            {"attempts", r.attempts},
                            {"duration_us", static_cast<unsigned long long>(r.duration_us)},
                            {"ttft_us", static_cast<unsigned long long>(r.ttft_us)},
                            {"bytes_out", static_cast<unsigned long long>(r.bytes_out)},
                            {"prompt_tokens", static_cast<unsigned long long>(r.prompt_tokens)},
                            {"completion_tokens", static_cast<unsigned long long>(r.completion_tokens)},
                            {"client", r.client_addr},
                            {"user_agent", ua},
                            {"bytes_in", static_cast<unsigned long long>(r.bytes_in)},
                            {"upstream", r.upstream_addr},
                            {"upstream_status", std::string_view(statuses, sn)},
                            {"upstream_time_ms", std::string_view(times, tn)},
                            {"flags", std::string_view(flags, fn)},
                            {"trace_id", r.trace_id},
                            {"resumes", r.resumes},
                            {"resume", r.resume}},
                           r.request_id);
  ssize_t w = ::write(fd_, line, n);  // one write per line (O_APPEND): no interleaving
  (void)w;
}

}  // namespace llmgw::dataplane
