// See upstream_tls.h.
#include "dataplane/upstream_tls.h"

#include <algorithm>

namespace llmgw::dataplane {

uint32_t UpstreamTlsContexts::Sync(const shm::Snapshot& snap) {
  uint32_t changed = 0;
  uint32_t n = std::min<uint32_t>(snap.num_backends, shm::kMaxBackends);
  for (uint32_t slot = 0; slot < shm::kMaxBackends; ++slot) {
    Entry& e = entries_[slot];
    bool used = slot < n && snap.backends[slot].state != static_cast<uint8_t>(shm::BackendState::kEmpty) &&
                snap.backends[slot].tls;
    uint64_t fp = used ? snap.upstreams[slot].tls_fingerprint : 0;
    if (fp == e.fingerprint) continue;
    ++changed;
    if (e.session_key) sessions_.Forget(e.session_key);
    e.ctx.reset();
    e.status = Status::Ok();
    e.fingerprint = fp;
    e.session_key = 0;
    if (!fp) continue;
    const shm::BackendUpstream& u = snap.upstreams[slot];
    TlsClientOptions o;
    o.ca_file = u.ca_file;
    o.verify = u.tls_verify != 0;
    o.client_cert_file = u.client_cert_file;
    o.client_key_file = u.client_key_file;
    auto ctx = std::make_unique<TlsClientContext>();
    e.status = ctx->Init(o);
    if (e.status.ok()) e.ctx = std::move(ctx);
    e.session_key = snap.backends[slot].key ^ fp;
  }
  return changed;
}

}  // namespace llmgw::dataplane
