// Per data-plane thread: the TLS client context of each https backend slot and the
// thread's session cache. Sync() runs when a new snapshot arrives (off the request path):
// a slot whose TLS settings changed (BackendUpstream::tls_fingerprint) gets a new context
// and loses its cached session; unchanged slots keep theirs, so pooled TLS connections and
// resumption survive reloads that do not touch TLS. A context that cannot be built (a
// missing tls.ca_file) leaves the slot without one: connecting to it fails with that error.
#pragma once

#include <array>
#include <cstdint>
#include <memory>

#include "common/error.h"
#include "common/shm_layout.h"
#include "dataplane/tls_session.h"

namespace llmgw::dataplane {

class UpstreamTlsContexts {
 public:
  // Returns how many slots got a new context (or a new error) in this call.
  uint32_t Sync(const shm::Snapshot& snap);
  // The slot's context, or null (plain http, or it failed: see status()).
  const TlsClientContext* Get(uint32_t slot) const {
    return slot < shm::kMaxBackends ? entries_[slot].ctx.get() : nullptr;
  }
  const Status& status(uint32_t slot) const { return entries_[slot].status; }
  TlsSessionCache* sessions() { return &sessions_; }
  // The session cache key of a slot: its backend's identity with its TLS settings.
  uint64_t SessionKey(uint32_t slot) const { return entries_[slot].session_key; }

 private:
  struct Entry {
    uint64_t fingerprint = 0;
    uint64_t session_key = 0;
    std::unique_ptr<TlsClientContext> ctx;
    Status status;
  };
  std::array<Entry, shm::kMaxBackends> entries_;
  TlsSessionCache sessions_;
};

}  // namespace llmgw::dataplane
