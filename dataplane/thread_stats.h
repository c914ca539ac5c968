// ThreadStats: one data-plane thread's stats slot in shared memory (one writer: this
// thread; llmcd sums the slots). Every counter the data plane keeps is bumped through a
// named method here, so the request path says what happened ("a retry", "a first byte")
// and this class alone knows which shm fields that touches. The field names are those of
// common/shm_layout.h. All methods are inline: each is a few relaxed stores on the hot path.
#pragma once

#include <cstdint>

#include "common/error.h"
#include "common/shm.h"
#include "common/shm_layout.h"

namespace llmgw::dataplane {

// What EndRequest needs to know about a finished request (copied out of the client
// session, so this class does not depend on it).
struct RequestOutcome {
  int status = 0;                 // 0: the client left before an answer (counted as 499)
  uint64_t duration_us = 0;       // whole request, streaming included
  uint64_t ttfb_us = 0;           // to the first upstream byte; 0 when none arrived
  // The last attempt's wait for its response head (until now when none came): what the
  // slow-call rule judges; a long generation after a quick head is not slow.
  uint64_t attempt_wait_us = 0;
  int model = -1;                 // the model the client named (its slot), -1 when none
  int backend = -1;               // the backend that answered last, -1 when none (a local answer)
  uint64_t prompt_tokens = 0;
  uint64_t completion_tokens = 0;
};

class ThreadStats {
 public:
  ThreadStats() = default;
  ThreadStats(const ThreadStats&) = delete;
  ThreadStats& operator=(const ThreadStats&) = delete;
  ~ThreadStats() { Release(); }

  // Claims the thread's slot in the shared region; `slow_call_ms` is
  // circuit_breaker.slow_call_ms (a backend's slow_calls counter).
  Status Claim(shm::ShmRegion* region, uint32_t thread_index, uint32_t slow_call_ms) {
    Error err;
    slot_ = shm::ClaimStatsSlot(region, thread_index, &err);
    if (!slot_) return err;
    owned_ = true;
    slow_call_ms_ = slow_call_ms;
    return Status::Ok();
  }
  // Uses a slot the caller owns (unit tests: a StatsSlot on the heap, no shared memory).
  void Attach(shm::StatsSlot* slot, uint32_t slow_call_ms) {
    slot_ = slot;
    owned_ = false;
    slow_call_ms_ = slow_call_ms;
  }
  void Release() {
    if (slot_ && owned_) shm::ReleaseStatsSlot(slot_);
    slot_ = nullptr;
  }
  shm::StatsSlot* slot() { return slot_; }

  // ---- the thread
  void Heartbeat(uint64_t unix_ms) { shm::Set(slot_->heartbeat_unix_ms, unix_ms); }
  void SnapshotCopied(uint64_t generation) { shm::Set(slot_->snapshot_generation, generation); }
  void ConnectionOpened(uint64_t open_now) {
    shm::Bump(slot_->connections_total);
    shm::Set(slot_->connections_open, open_now);
  }
  void ConnectionClosed(uint64_t open_now) { shm::Set(slot_->connections_open, open_now); }
  void ClientBytesIn(uint64_t n) { shm::Bump(slot_->bytes_in, n); }
  void ClientBytesOut(uint64_t n) { shm::Bump(slot_->bytes_out, n); }
  void CountError(ErrorKind kind) { shm::Bump(slot_->errors_by_kind[static_cast<size_t>(kind)]); }
  void AdmissionQueued() { shm::Bump(slot_->admission_queued); }
  void AdmissionRejected(int model) {
    shm::Bump(slot_->admission_rejected);
    shm::Bump(slot_->models[model].rejected);
  }

  // ---- a model
  void RequestRouted(int model) { shm::Bump(slot_->models[model].active); }
  void NoBackend(int model) { shm::Bump(slot_->models[model].rejected); }
  void Fallback(int model) { shm::Bump(slot_->models[model].fallbacks); }
  // A stream's backend failed after the first byte; what became of the stream.
  void StreamResume(int model, ResumeOutcome outcome) {
    shm::Bump(slot_->models[model].stream_resumes[static_cast<size_t>(outcome)]);
  }
  void Retry(int model) {
    shm::Bump(slot_->retries);
    shm::Bump(slot_->models[model].retries);
  }

  // ---- a backend
  void BackendPicked(int backend, uint64_t key, uint64_t in_flight) {
    auto& bs = slot_->backends[backend];
    if (bs.key.load(std::memory_order_relaxed) != key) shm::Set(bs.key, key);
    shm::Bump(bs.picks);
    shm::Bump(bs.requests);
    shm::Set(bs.in_flight, in_flight);
  }
  void BackendInFlight(int backend, uint64_t in_flight) { shm::Set(slot_->backends[backend].in_flight, in_flight); }
  void UpstreamConnect(int backend) { shm::Bump(slot_->backends[backend].upstream_connects); }
  void UpstreamBytesIn(int backend, uint64_t n) { shm::Bump(slot_->backends[backend].bytes_in, n); }
  void UpstreamBytesOut(int backend, uint64_t n) { shm::Bump(slot_->backends[backend].bytes_out, n); }
  void UpstreamError(int backend, shm::UpstreamErr e) {
    shm::Bump(slot_->backends[backend].errors[static_cast<size_t>(e)]);
  }
  // A streamed answer's first event arrived `ttft_us` after the request started. Only
  // streams count: a buffered answer's first byte is its whole generation, and mixing it
  // in made TTFT figures jump between stream and non-stream timings (issue 16).
  void FirstToken(int model, int backend, uint64_t ttft_us) {
    shm::Observe(slot_->ttft, ttft_us);
    if (model >= 0) shm::Observe(slot_->models[model].ttft, ttft_us);
    if (backend >= 0) shm::Observe(slot_->backends[backend].ttft, ttft_us);
  }
  // `us` passed between two pieces of a streamed answer.
  void InterToken(int model, int backend, uint64_t us) {
    shm::Observe(slot_->inter_token, us);
    if (model >= 0) shm::Observe(slot_->models[model].inter_token, us);
    if (backend >= 0) shm::Observe(slot_->backends[backend].inter_token, us);
  }

  // The request is over (answered, failed, or the client left). Latency histograms take
  // only requests that went to a backend (r.backend >= 0): an answer llmgw gives itself
  // (/v1/models, /health, 401, unknown model, a limit's 429, no backend) takes
  // microseconds and, mixed in, pulled the latency quantiles toward 0. Those are counted by
  // status code only (docs/OPERATIONS.md, "What the figures mean").
  void EndRequest(const RequestOutcome& r) {
    int status = r.status == 0 ? 499 : r.status;
    bool proxied = r.backend >= 0;
    shm::Bump(slot_->requests_total);
    if (proxied) shm::Observe(slot_->latency, r.duration_us);
    if (r.model < 0) {  // unknown model, other paths: counted, with no model label
      shm::Bump(slot_->unrouted_by_code[shm::StatusCodeIndex(static_cast<uint16_t>(status))]);
      return;
    }
    auto& ms = slot_->models[r.model];
    if (proxied) shm::Observe(ms.latency, r.duration_us);
    shm::Bump(ms.requests_by_code[shm::StatusCodeIndex(static_cast<uint16_t>(status))]);
    uint64_t a = ms.active.load(std::memory_order_relaxed);
    if (a) shm::Set(ms.active, a - 1);
    shm::Bump(ms.prompt_tokens, r.prompt_tokens);
    shm::Bump(ms.completion_tokens, r.completion_tokens);
    if (r.backend < 0) return;
    auto& bs = slot_->backends[r.backend];
    shm::Observe(bs.latency, r.duration_us);
    if (status < 500 && status != 429 && status != 499) shm::Bump(bs.successes);
    shm::Bump(bs.prompt_tokens, r.prompt_tokens);
    shm::Bump(bs.completion_tokens, r.completion_tokens);
    if (r.attempt_wait_us / 1000 > slow_call_ms_) shm::Bump(bs.slow_calls);
  }

 private:
  shm::StatsSlot* slot_ = nullptr;
  bool owned_ = false;
  uint64_t slow_call_ms_ = 0;
};

}  // namespace llmgw::dataplane
