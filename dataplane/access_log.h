// AccessLog: gateway.access_log, one JSON line per finished request (sampled), written
// with one write() per line to an O_APPEND file (or stderr) so the threads' lines never
// interleave. Each data-plane thread has its own.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "common/config.h"
#include "common/error.h"
#include "dataplane/rng.h"

namespace llmgw::dataplane {

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
};

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
