// Attempt: the proxying decisions of one request, apart from any I/O. Which backend next
// (one pick from the router; when the model has none left, its fallbacks in order, each
// named upstream instead), what was tried already, and what a failure means: retry now,
// retry after a backoff with jitter, or give the client the error's reply. Every failure
// arrives as one Error value (common/error.h: kind, side, retryable, upstream status,
// message), made where it happened; OnFailure is the one place it is judged.
#pragma once

#include <cstdint>
#include <span>

#include "common/error.h"
#include "common/routing/router.h"
#include "common/shm_layout.h"
#include "dataplane/rng.h"
#include "dataplane/thread_stats.h"

namespace llmgw::dataplane {

class Attempt {
 public:
  static constexpr uint8_t kMaxTried = 16;

  // A new request: nothing tried, no model yet.
  void Reset() {
    fallback_ = 0;
    rewrite_ = alias_ = false;
    tried_count_ = 0;
    attempts_ = 0;
    backend_ = -1;
    retry_at_ms_ = 0;
    if (last_error_.kind() != ErrorKind::kNone) last_error_ = Error();
  }
  // The request names model `model` (directly, or via an alias: then the model's own
  // name goes upstream).
  void SetModel(int model, bool via_alias) {
    model_ = orig_model_ = static_cast<uint16_t>(model);
    rewrite_ = alias_ = via_alias;
  }

  // One pick: the router on the current model, excluding what was tried; when it finds
  // none, the model's fallbacks in order. `fill(model, &info)` supplies the request's
  // routing keys (hash key, prompt prefix) for the model being tried. Returns the backend
  // slot, or routing::kNoBackend.
  template <typename FillInfo>
  int Pick(routing::Router& router, const shm::Snapshot& snap, std::span<const routing::LocalLoad> local, Rng* rng,
           ThreadStats* stats, FillInfo&& fill) {
    while (true) {
      routing::RequestInfo info;
      fill(model_, &info);
      info.random = rng->Next();
      int slot = router.Pick(model_, info, local, std::span<const uint16_t>(tried_, tried_count_));
      if (slot != routing::kNoBackend) return slot;
      const auto& me = snap.models[orig_model_];
      if (fallback_ >= me.num_fallbacks || fallback_ >= shm::kMaxFallbacks) return routing::kNoBackend;
      model_ = me.fallbacks[fallback_++];
      rewrite_ = true;  // the fallback model's name goes upstream
      stats->Fallback(orig_model_);
    }
  }

  // The pick is used: it counts as an attempt and is not picked again for this request.
  void Started(int slot) {
    if (tried_count_ < kMaxTried) tried_[tried_count_++] = static_cast<uint16_t>(slot);
    ++attempts_;
    backend_ = slot;
  }
  // The attempt never reached the backend (a pooled connection the server had closed
  // meanwhile): not the backend's fault, so it is not counted and may be picked again.
  void Undo() {
    --attempts_;
    if (tried_count_) --tried_count_;
  }
  // Waiting in the admission queue: the next pick starts over from the named model.
  void Requeue() {
    model_ = orig_model_;
    fallback_ = 0;
    rewrite_ = alias_;
  }

  enum class Next { kRetryNow, kRetryLater, kFail };
  // The attempt failed with `e` before anything reached the client. Retry when the error
  // allows it, retries are left (retries_max after the first) and the gateway is not
  // draining; the backoff doubles per attempt from backoff_ms, plus up to half of it as
  // jitter. kRetryLater sets retry_at_ms(); kFail leaves the client's reply to the error.
  Next OnFailure(const Error& e, uint32_t retries_max, uint32_t backoff_ms, bool draining, uint64_t now_ms, Rng* rng) {
    last_error_ = e;
    if (!e.retryable() || attempts_ > retries_max || draining) return Next::kFail;
    uint32_t backoff = backoff_ms << (attempts_ > 0 ? attempts_ - 1 : 0);
    backoff += static_cast<uint32_t>(rng->Next() % (backoff / 2 + 1));  // jitter
    if (backoff == 0) return Next::kRetryNow;
    retry_at_ms_ = now_ms + backoff;
    return Next::kRetryLater;
  }
  // No retry any more (the gateway is shutting down).
  void CancelRetry() { retry_at_ms_ = 0; }
  // A pending backoff is over at `now_ms` (then it is cleared).
  bool RetryDue(uint64_t now_ms) {
    if (!retry_at_ms_ || now_ms < retry_at_ms_) return false;
    retry_at_ms_ = 0;
    return true;
  }

  uint16_t model() const { return model_; }            // the model tried now (a fallback, maybe)
  uint16_t orig_model() const { return orig_model_; }  // the model the client named
  bool rewrite() const { return rewrite_; }            // another model name goes upstream
  uint8_t attempts() const { return attempts_; }
  std::span<const uint16_t> tried() const { return {tried_, tried_count_}; }  // backends picked so far
  int backend() const { return backend_; }             // the last backend started, -1: none
  uint64_t retry_at_ms() const { return retry_at_ms_; }
  bool failed() const { return last_error_.kind() != ErrorKind::kNone; }
  const Error& last_error() const { return last_error_; }

 private:
  uint16_t model_ = 0;
  uint16_t orig_model_ = 0;
  uint8_t fallback_ = 0;
  bool rewrite_ = false;
  bool alias_ = false;
  uint16_t tried_[kMaxTried];
  uint8_t tried_count_ = 0;
  uint8_t attempts_ = 0;
  int backend_ = -1;
  uint64_t retry_at_ms_ = 0;
  Error last_error_;
};

}  // namespace llmgw::dataplane
