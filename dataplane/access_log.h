// AccessLog: gateway.access_log, one JSON line per finished request (sampled), written
// with one write() per line to an O_APPEND file (or stderr) so the threads' lines never
// interleave. Each data-plane thread has its own.
#pragma once

#include <sys/socket.h>

#include <cstdint>
#include <string>
#include <string_view>

#include "common/config.h"
#include "common/error.h"
#include "dataplane/rng.h"

namespace llmgw::dataplane {

// What happened to a request besides its status, as Envoy's response flags: each a bit,
// logged as a comma-separated list of names ("flags":"retried,fallback").
enum AccessFlag : uint32_t {
  kFlagRetried = 1u << 0,       // an attempt failed and another backend was tried
  kFlagResumed = 1u << 1,       // a stream continued on another backend after a failure
  kFlagLimited = 1u << 2,       // refused or queued by a limit (admission, rate limit)
  kFlagFallback = 1u << 3,      // served by a fallback model
  kFlagStreamCut = 1u << 4,     // cut after the first byte (status 520)
  kFlagClientGone = 1u << 5,    // the client left before the answer ended (499)
  kFlagUpstreamTimeout = 1u << 6,  // an attempt timed out
};
constexpr uint32_t kAccessFlagCount = 7;
constexpr std::string_view AccessFlagName(uint32_t bit) {
  switch (bit) {
    case 0: return "retried";
    case 1: return "resumed";
    case 2: return "limited";
    case 3: return "fallback";
    case 4: return "stream_cut";
    case 5: return "client_gone";
    case 6: return "upstream_timeout";
  }
  return "unknown";
}

// One upstream attempt as the log shows it (nginx's $upstream_status and
// $upstream_response_time, one entry per attempt).
struct AttemptNote {
  uint16_t status = 0;   // 0: no answer (connect failure, timeout, reset before the head)
  uint64_t time_us = 0;  // from the attempt's start to its end or failure
};
constexpr unsigned kMaxAttemptNotes = 8;

struct AccessRecord {
  std::string_view method;
  std::string_view path;
  int status = 0;
  std::string_view model;
  std::string_view backend;
  bool stream = false;
  unsigned attempts = 0;
  uint64_t duration_us = 0;
  uint64_t ttft_us = 0;
  uint64_t bytes_out = 0;
  uint64_t prompt_tokens = 0;
  uint64_t completion_tokens = 0;
  // Stream resume: continuations started, and what became of a stream whose backend
  // failed after the first byte (ResumeOutcomeName; empty when none did).
  unsigned resumes = 0;
  std::string_view resume;
  std::string_view request_id;
  std::string_view key;  // the client API key's id ("anonymous"; empty before auth) — never the secret
  std::string_view client_addr;    // "ip:port" of the client
  std::string_view user_agent;     // truncated to 200 bytes in the log
  uint64_t bytes_in = 0;           // request bytes from the client (head and body)
  std::string_view upstream_addr;  // "ip:port" of the backend that answered last
  AttemptNote attempt_notes[kMaxAttemptNotes];
  unsigned notes = 0;              // entries of attempt_notes used
  uint32_t flags = 0;              // AccessFlag bits
  std::string_view trace_id;       // 32 hex characters when the request is traced
};

// "ip:port" ("[v6]:port") of an address, NUL-terminated in out (empty when unknown).
void FormatAddress(int family, const uint8_t* addr, uint16_t port, char* out, size_t cap);
void FormatPeer(const sockaddr_storage& ss, char* out, size_t cap);

class AccessLog {
 public:
  AccessLog() = default;
  AccessLog(const AccessLog&) = delete;
  AccessLog& operator=(const AccessLog&) = delete;
  ~AccessLog();

  // Opens gateway.access_log.path when set (else stderr); nothing when disabled.
  Status Open(const AccessLogConfig& cfg);
  // Writes to an already open descriptor (unit tests: a pipe). Not closed by this class.
  void UseFd(int fd, double sample) {
    enabled_ = true;
    fd_ = fd;
    owned_ = false;
    sample_ = sample;
  }
  bool enabled() const { return enabled_; }
  // Logs `r` unless sampled out; `rng` decides the sampling.
  void Write(const AccessRecord& r, Rng* rng);
  // SIGUSR1 (logrotate moved the file): the path is opened anew onto the same descriptor,
  // so lines go to the new file from the next write on. Nothing for stderr.
  Status Reopen();

 private:
  bool enabled_ = false;
  bool owned_ = false;
  int fd_ = 2;
  double sample_ = 1.0;
  std::string path_;
};

}  // namespace llmgw::dataplane
