// Client API keys and limits on the way in and out of a request (DESIGN.md "Client API
// keys and limits"): who the request is (401), whether its key may use the model (403),
// whether every limit admits it (429 with Retry-After), the x-ratelimit-* headers of a
// limited key's answers, and at the end its concurrency slot back, its tokens charged and
// its per-key counters. The limits are spent from this thread's own leases
// (ThreadLimiter): no lock, no other thread's memory.
#include <cmath>
#include <cstdio>

#include "dataplane/api_key_auth.h"
#include "dataplane/ratelimit_headers.h"
#include "dataplane/worker_impl.h"

namespace llmgw::dataplane {

namespace {

using shm::LimitKind;
using shm::LimiterIndex;
using Mode = ThreadLimiter::Mode;

}  // namespace

bool WorkerImpl::AuthenticateClient(ClientConn* c) {
  ApiKeyAuth::Result who = ApiKeyAuth::Authenticate(*snap_, c->h->api_key, &key_cache_);
  switch (who.outcome) {
    case ApiKeyAuth::Outcome::kKey:
      c->key_slot = who.slot;
      c->key_hash = snap_->keys[who.slot].id_hash;
      return true;
    case ApiKeyAuth::Outcome::kAnonymous:
      c->key_slot = -1;
      c->key_hash = anonymous_hash_;
      return true;
    case ApiKeyAuth::Outcome::kMissing:
      SendFailure(c, Error(ErrorKind::kInvalidApiKey, ErrorSide::kDownstream, false,
                           "You didn't provide an API key. Send it as `Authorization: Bearer <key>` "
                           "(or in an `api-key` or `x-api-key` header)."));
      return false;
    case ApiKeyAuth::Outcome::kInvalid: break;
  }
  // Never echo the key: it may be someone's real secret sent to the wrong place.
  SendFailure(c, Error(ErrorKind::kInvalidApiKey, ErrorSide::kDownstream, false, "Incorrect API key provided."));
  return false;
}

void WorkerImpl::FormatRateLimitHeaders(ClientConn* c) {
  c->rl_headers.Clear();
  if (c->key_slot < 0) return;
  const shm::KeyEntry& k = snap_->keys[c->key_slot];
  uint32_t slot = static_cast<uint32_t>(c->key_slot);
  if (k.rpm) AppendRateLimitLines(&c->rl_headers, "requests", k.rpm, limiter_.LimitRemaining(LimiterIndex(LimitKind::kKeyRpm, slot)));
  if (k.tpm) AppendRateLimitLines(&c->rl_headers, "tokens", k.tpm, limiter_.LimitRemaining(LimiterIndex(LimitKind::kKeyTpm, slot)));
}

bool WorkerImpl::AdmitLimits(ClientConn* c, int m) {
  c->key_model = m;
  const shm::KeyEntry* key = c->key_slot >= 0 ? &snap_->keys[c->key_slot] : nullptr;
  if (key && !ApiKeyAuth::ModelAllowed(*key, static_cast<uint32_t>(m))) {
    char msg[256];
    std::snprintf(msg, sizeof msg, "The API key '%s' may not use the model `%s`.", key->id, snap_->models[m].name);
    SendFailure(c, Error(ErrorKind::kModelNotAllowed, ErrorSide::kDownstream, false, "%s", msg));
    return false;
  }
  ThreadLimiter::Check checks[5];
  uint32_t n = 0;
  const shm::Limits& lim = snap_->limits;
  if (lim.global_rps) checks[n++] = {LimiterIndex(LimitKind::kGlobalRps, 0), Mode::kTake};
  if (snap_->models[m].rps) checks[n++] = {LimiterIndex(LimitKind::kModelRps, static_cast<uint32_t>(m)), Mode::kTake};
  if (key) {
    uint32_t slot = static_cast<uint32_t>(c->key_slot);
    // Every request of a key counts on its rpm limiter (llmctl keys shows the use), limited or not.
    checks[n++] = {LimiterIndex(LimitKind::kKeyRpm, slot), key->rpm ? Mode::kTake : Mode::kCount};
    if (key->tpm) checks[n++] = {LimiterIndex(LimitKind::kKeyTpm, slot), Mode::kPositive};
    if (key->max_concurrent) checks[n++] = {LimiterIndex(LimitKind::kKeyConcurrency, slot), Mode::kEnter};
  }
  int refused = limiter_.Admit(checks, n);
  if (refused < 0) {
    c->key_conc_held = key && key->max_concurrent;
    c->tpm_live = key && key->tpm;
    FormatRateLimitHeaders(c);
    return true;
  }
  FormatRateLimitHeaders(c);
  uint32_t limiter = checks[refused].limiter;
  char msg[256];
  double retry_s = 1;
  if (limiter == LimiterIndex(LimitKind::kGlobalRps, 0)) {
    std::snprintf(msg, sizeof msg, "The gateway's request rate limit is reached (%u per second).", lim.global_rps);
  } else if (!key || limiter < LimiterIndex(LimitKind::kKeyRpm, 0)) {
    std::snprintf(msg, sizeof msg, "The request rate limit of the model `%s` is reached (%u per second).",
                  snap_->models[m].name, snap_->models[m].rps);
  } else if (limiter == LimiterIndex(LimitKind::kKeyRpm, static_cast<uint32_t>(c->key_slot))) {
    std::snprintf(msg, sizeof msg, "Rate limit reached for requests of the API key '%s': %u per minute.", key->id,
                  key->rpm);
    retry_s = 60.0 / key->rpm;
  } else if (limiter == LimiterIndex(LimitKind::kKeyTpm, static_cast<uint32_t>(c->key_slot))) {
    std::snprintf(msg, sizeof msg, "Rate limit reached for tokens of the API key '%s': %u per minute.", key->id,
                  key->tpm);
    // The thread's debt (tokens charged beyond its lease) refills at tpm per minute.
    double debt = static_cast<double>(limiter_.spent(limiter)) - static_cast<double>(limiter_.grant(limiter)) + 1;
    retry_s = std::max(1.0, debt) * 60.0 / key->tpm;
  } else {
    std::snprintf(msg, sizeof msg, "Too many concurrent requests for the API key '%s' (max_concurrent %u).", key->id,
                  key->max_concurrent);
  }
  c->retry_after_s = static_cast<uint32_t>(std::clamp(std::ceil(retry_s), 1.0, 3600.0));
  SendFailure(c, Error(ErrorKind::kRateLimited, ErrorSide::kDownstream, false, "%s", msg));
  return false;
}

void WorkerImpl::ChargeStreamedTokens(ClientConn* c, std::string_view piece) {
  // A stream's output tokens count against the key's tpm as they are relayed, so a long
  // answer uses the budget while it runs rather than only when it ends: the stream
  // filter counts the chunks it relayed; on the byte path each `data:` event is about
  // one token. The settlement at the end charges what the usage says beyond that.
  uint64_t tokens;
  if (c->filtering) {
    tokens = c->filter->completion_tokens();
  } else {
    for (size_t p = 0; (p = piece.find("data:", p)) != std::string_view::npos; p += 5) ++c->tpm_events;
    tokens = c->tpm_events;
  }
  if (tokens <= c->tpm_charged || c->key_slot < 0 || static_cast<uint32_t>(c->key_slot) >= snap_->num_keys) return;
  limiter_.Charge(LimiterIndex(LimitKind::kKeyTpm, static_cast<uint32_t>(c->key_slot)), tokens - c->tpm_charged);
  c->tpm_charged = tokens;
}

void WorkerImpl::EndKeyRequest(ClientConn* c, int status) {
  if (c->key_hash == 0) return;  // refused before anyone was known (401, or no API request)
  uint64_t prompt = c->relay.prompt_tokens(), completion = c->relay.completion_tokens();
  if (c->key_slot >= 0 && static_cast<uint32_t>(c->key_slot) < snap_->num_keys) {
    uint32_t slot = static_cast<uint32_t>(c->key_slot);
    if (c->key_conc_held) limiter_.Leave(LimiterIndex(LimitKind::kKeyConcurrency, slot));
    // Input and output tokens, settled from the answer's usage, less what was charged
    // while it streamed (ChargeStreamedTokens).
    if (prompt + completion > c->tpm_charged)
      limiter_.Charge(LimiterIndex(LimitKind::kKeyTpm, slot), prompt + completion - c->tpm_charged);
  }
  c->key_conc_held = false;
  c->tpm_live = false;
  c->tpm_charged = 0;
  if (c->key_model >= 0) {
    if (shm::KeyModelStats* row = shm::KeyModelRow(*stats_.slot(), c->key_hash, static_cast<uint32_t>(c->key_model))) {
      shm::Bump(row->requests_by_code[shm::StatusCodeIndex(static_cast<uint16_t>(status))]);
      if (prompt) shm::Bump(row->prompt_tokens, prompt);
      if (completion) shm::Bump(row->completion_tokens, completion);
    }
  }
  c->key_hash = 0;
  c->key_slot = c->key_model = -1;
}

}  // namespace llmgw::dataplane
