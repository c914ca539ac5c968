// Per-thread stats into the shm slot, the optional JSON access log, and the loop's RNG.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <string>

#include "common/log.h"
#include "dataplane/request_json.h"
#include "dataplane/worker_impl.h"

namespace llmgw::dataplane {

LLMGW_PART_INLINE void WorkerImpl::ObserveTtftOnce(ClientConn* c) {
  if (c->current_backend < 0) return;
  uint64_t us = c->first_byte_us - c->start_us;
  shm::Observe(stats_->ttft, us);
  shm::Observe(stats_->backends[c->current_backend].ttft, us);
}

LLMGW_PART_INLINE void WorkerImpl::CountUpErr(uint16_t slot, shm::UpstreamErr e) {
  shm::Bump(stats_->backends[slot].errors[static_cast<size_t>(e)]);
}

LLMGW_PART_INLINE void WorkerImpl::EndRequestStats(ClientConn* c, int status) {
  if (status == 0) status = 499;
  if (c->addr_counted) {
    addr_limiter_.Release(c->addr_key);
    c->addr_counted = false;
  }
  uint64_t us = NowUs() - c->start_us;
  shm::Bump(stats_->requests_total);
  shm::Observe(stats_->latency, us);
  if (c->model_slot != UINT16_MAX) {
    auto& ms = stats_->models[c->orig_model_slot];
    shm::Bump(ms.requests_by_code[shm::StatusCodeIndex(static_cast<uint16_t>(status))]);
    uint64_t a = ms.active.load(std::memory_order_relaxed);
    if (a) shm::Set(ms.active, a - 1);
    shm::Bump(ms.prompt_tokens, c->prompt_tokens);
    shm::Bump(ms.completion_tokens, c->completion_tokens);
    if (c->current_backend >= 0) {
      auto& bs = stats_->backends[c->current_backend];
      shm::Observe(bs.latency, us);
      if (status < 500 && status != 429 && status != 499) shm::Bump(bs.successes);
      shm::Bump(bs.prompt_tokens, c->prompt_tokens);
      shm::Bump(bs.completion_tokens, c->completion_tokens);
      // A slow call is a backend slow to answer (time to its response head, this
      // attempt only), not a long generation: judged on the whole request, every long
      // stream opened the circuit of a healthy backend.
      uint64_t wait_us = (c->first_byte_us ? c->first_byte_us : NowUs()) - c->attempt_start_us;
      if (wait_us / 1000 > cfg_.circuit_breaker.slow_call_ms) shm::Bump(bs.slow_calls);
    }
  }
  if (cfg_.gateway.access_log.enabled) AccessLog(c, status, us);
  c->model_slot = UINT16_MAX;
}

LLMGW_PART_INLINE void WorkerImpl::AccessLog(ClientConn* c, int status, uint64_t us) {
  double sample = cfg_.gateway.access_log.sample;
  if (sample < 1.0 && static_cast<double>(NextRandom() % 1000000) / 1e6 >= sample) return;
  char line[2048];
  std::string_view model = c->model_slot != UINT16_MAX ? std::string_view(snap_->models[c->orig_model_slot].name) : "";
  std::string_view backend = c->current_backend >= 0 ? std::string_view(snap_->backends[c->current_backend].id) : "";
  size_t n = FormatLogLine(line, sizeof(line), LogLevel::kInfo, "access",
      {{"method", llhttp_method_name(static_cast<llhttp_method_t>(c->parser.method))},
       {"path", c->h->url.View()},
       {"status", status},
       {"model", model},
       {"backend", backend},
       {"stream", c->streaming},
       {"attempts", static_cast<unsigned>(c->attempts)},
       {"duration_us", static_cast<unsigned long long>(us)},
       {"ttft_us", static_cast<unsigned long long>(c->first_byte_us ? c->first_byte_us - c->start_us : 0)},
       {"bytes_out", static_cast<unsigned long long>(c->bytes_out)},
       {"prompt_tokens", static_cast<unsigned long long>(c->prompt_tokens)},
       {"completion_tokens", static_cast<unsigned long long>(c->completion_tokens)}},
      c->h->request_id.View());
  // One write per line (O_APPEND), so threads' lines never interleave.
  ssize_t w = ::write(access_fd_, line, n);
  (void)w;
}

LLMGW_PART_INLINE uint64_t WorkerImpl::NextRandom() {
  // xorshift64*: per-thread, no syscalls, good enough for ids, jitter and tie breaks.
  rng_ ^= rng_ >> 12;
  rng_ ^= rng_ << 25;
  rng_ ^= rng_ >> 27;
  return rng_ * 2685821657736338717ull;
}

}  // namespace llmgw::dataplane
