// Upstream side of an attempt: the request handed to the connection's codec, connect,
// send, and the response read armed (relay.cc takes the response from there).
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
#include "common/providers/anthropic_translate.h"
#include "common/providers/provider.h"
#include "dataplane/request_json.h"
#include "dataplane/worker_impl.h"

namespace llmgw::dataplane {

namespace {
// The host of a Host header value ("name:port", "[v6]:port", "name"): the TLS server name
// when tls.server_name does not set one.
std::string_view HostOfHostHeader(std::string_view h) {
  if (!h.empty() && h.front() == '[') {
    size_t close = h.find(']');
    return close == std::string_view::npos ? h.substr(1) : h.substr(1, close - 1);
  }
  size_t colon = h.find(':');
  if (colon != std::string_view::npos && h.find(':', colon + 1) == std::string_view::npos) return h.substr(0, colon);
  return h;
}
}  // namespace

// The request's bytes come from the codec (upstream_codec.h); this names the pieces: the
// backend's provider (common/providers) decides the path and the credential headers, and
// for Anthropic the body is translated (the answer is translated back in relay.cc).
Status WorkerImpl::BuildUpstreamRequest(ClientConn* c, UpstreamConn* u, const shm::BackendEntry& be) {
  UpstreamCodec::Request r;
  r.base_path = be.base_path;
  r.api_path = c->api_path;
  r.host_header = be.host_header;
  r.request_id = c->h->request_id.View();
  if (c->trace_begun) {  // tracing: this attempt's span is the upstream's parent
    c->trace.UpstreamTraceparent(c->traceparent_out);
    r.traceparent = std::string_view(c->traceparent_out, kTraceparentLen);
  } else {
    r.traceparent = c->h->traceparent.View();  // tracing off: the client's, unchanged
  }
  r.has_content_type = c->h->has_content_type;
  r.header_lines = c->h->req_headers.lines();
  r.body = c->h->body;
  const shm::BackendUpstream& bu = snap_->upstreams[u->slot];
  const auto kind = static_cast<providers::ProviderKind>(be.provider);
  const providers::Provider& provider =
      providers::ProviderFor(kind < providers::ProviderKind::kCount ? kind : providers::ProviderKind::kOpenAiCompatible);
  providers::ProviderParams pp;
  pp.api_key = bu.api_key;
  pp.organization = bu.organization;
  pp.deployment = bu.deployment;
  pp.api_version = bu.api_version;
  pp.base_path = be.base_path;
  if (!provider.Serves(r.api_path)) {
    // Not this provider's endpoint (Anthropic: chat completions only; Gemini: no Responses
    // API): the backend is skipped, the attempt fails over to the model's others.
    const std::string_view name = providers::ProviderName(provider.kind());
    if (provider.translates())
      return Error(ErrorKind::kNoBackend, ErrorSide::kInternal, true, "%.*s backends serve only /v1/chat/completions",
                   static_cast<int>(name.size()), name.data());
    return Error(ErrorKind::kNoBackend, ErrorSide::kInternal, true, "%.*s backends do not serve %.*s",
                 static_cast<int>(name.size()), name.data(), static_cast<int>(r.api_path.size()), r.api_path.data());
  }
  if (c->continuing && !provider.continues_streams()) {
    // A continuation (stream resume) needs a backend that continues a final assistant
    // message: this one would refuse vLLM's fields or answer a new turn. Skipped.
    const std::string_view name = providers::ProviderName(provider.kind());
    // Upstream side: TryResume goes on to the model's next backend, as after a refused head.
    return Error(ErrorKind::kNoBackend, ErrorSide::kUpstream, true, "%.*s backends cannot continue a stream",
                 static_cast<int>(name.size()), name.data());
  }
  std::string_view new_model = provider.BodyModel(pp, r.api_path);
  if (new_model.empty())
    new_model = bu.upstream_model[0] ? std::string_view(bu.upstream_model)
                : c->attempt.rewrite() ? std::string_view(snap_->models[c->attempt.model()].name)
                                       : std::string_view();
  c->xlate = provider.translates();
  c->reshape_errors = provider.reshapes_errors() ? &provider : nullptr;
  c->xlate_buffering = false;  // what a failed attempt's translation left
  if (c->translator) {
    free_translators_.push_back(c->translator);
    c->translator = nullptr;
  }
  if (c->continuing || c->add_usage) {
    // A body of llmgw's making (a pooled buffer, kept until the request ends): a stream's
    // continuation (stream_resume.h), or a stream asking for usage the client did not.
    if (!c->up_body) c->up_body = stream_pool_.Take();
    bool built = c->continuing
                     ? BuildContinuation(c->h->body, c->chat, new_model, c->filter->state(), c->up_body) ==
                           ResumeOutcome::kOk
                     : EnsureIncludeUsage(c->h->body, new_model, c->up_body);
    if (built) {
      r.body = *c->up_body;
      new_model = {};  // already in the built body
    }
  }
  // A backend with credentials of its own (a hosted provider, or an api_key) gets those,
  // never the client's; its path is the provider's.
  char target[512], auth[512];
  providers::OutBuf target_out(target, sizeof target), auth_out(auth, sizeof auth);
  if (be.provider != 0 || bu.api_key[0]) {
    provider.WritePath(pp, r.api_path, &target_out);
    provider.WriteAuthHeaders(pp, &auth_out);
    if (!target_out.ok() || !auth_out.ok())
      return Error(ErrorKind::kInternal, ErrorSide::kInternal, true, "the backend's request path or key is too long");
    r.target = target_out.view();
    r.auth_lines = auth_out.view();
    r.drop_client_credentials = true;
  }
  if (c->xlate) {
    // Anthropic: the body in the Messages shape (other paths were skipped above).
    if (!c->xlate_body) c->xlate_body = stream_pool_.Take();
    size_t cap = r.body.size() * 2 + 4096;
    if (c->xlate_body->size() < cap) c->xlate_body->resize(cap);
    if (xlate_scratch_.size() < cap * 2) xlate_scratch_.resize(cap * 2);
    providers::OutBuf out(c->xlate_body->data(), c->xlate_body->size());
    Status st = providers::AnthropicRequestFromOpenAi(r.body, new_model, xlate_scratch_.data(), xlate_scratch_.size(),
                                                      &out, &c->xlate_stream);
    if (!st.ok()) {
      // Not translatable (the request's own shape): the client's error, not this backend's.
      return Error(ErrorKind::kBadRequest, ErrorSide::kDownstream, false, "%s", st.error().message());
    }
    if (!out.ok()) return Error(ErrorKind::kInternal, ErrorSide::kInternal, true, "translated request too large");
    r.body = out.view();
    new_model = {};
  }
  if (!new_model.empty()) {
    r.rewrite_model = true;
    r.new_model = new_model;
    r.model_begin = c->model_begin;
    r.model_end = c->model_end;
  }
  u->codec.WriteRequest(r);
  return Status::Ok();
}

void WorkerImpl::ArmUpSend(UpstreamConn* u) {
  if (u->tls) return TlsFlush(u);
  u->msg = msghdr{};
  u->msg.msg_iov = u->codec.iov();
  u->msg.msg_iovlen = static_cast<size_t>(u->codec.iov_count());
  io_uring_sqe* s = Sqe();
  io_uring_prep_sendmsg(s, u->fd, &u->msg, MSG_NOSIGNAL);
  io_uring_sqe_set_data64(s, u->send_done.user_data());
  u->send_armed = true;
  ++u->pending_ops;
}

void WorkerImpl::OnUpConnect(UpstreamConn* u, int res) {
  if (u->closed || !u->client) return;
  ClientConn* c = u->client;
  if (res < 0) {
    LOG_DEBUG("upstream connect failed", {{"backend", std::string_view(snap_->backends[u->slot].id)},
                                          {"error", strerror(-res)}});
    stats_.UpstreamError(u->slot, shm::UpstreamErr::kConnect);
    return UpstreamFailed(c, Error(ErrorKind::kConnectFailed, ErrorSide::kUpstream, true, "upstream connect failed"));
  }
  u->connected = true;
  // https: the connect deadline keeps running through the handshake.
  if (u->tls) return TlsAdvance(u);
  SetUpDeadline(c, 2, snap_->limits.first_byte_ms);
  ArmUpSend(u);
  ArmUpRecv(u);
}

void WorkerImpl::OnUpSend(UpstreamConn* u, int res) {
  u->send_armed = false;
  if (u->closed || !u->client) return;
  ClientConn* c = u->client;
  if (res < 0) {
    if (u->reused) return RetryStale(c);
    stats_.UpstreamError(u->slot, shm::UpstreamErr::kReset);
    return UpstreamFailed(c, Error(ErrorKind::kConnectionReset, ErrorSide::kUpstream, true,
                                   "upstream reset while sending"));
  }
  size_t n = static_cast<size_t>(res);
  stats_.UpstreamBytesOut(u->slot, n);
  if (u->tls) {
    u->tls_out_off += n;
    TlsFlush(u);  // the rest of this batch, or what OpenSSL queued meanwhile
  } else if (u->codec.Advance(n)) {
    return ArmUpSend(u);  // advanced over what was sent; the rest resubmitted
  }
  if (!u->recv_armed) ArmUpRecv(u);
}

// ---- https upstreams: TlsSession over the ring's sends and recvs (tls_session.h)

Status WorkerImpl::StartTls(UpstreamConn* u, int slot, const shm::BackendEntry& be) {
  const auto s = static_cast<uint32_t>(slot);
  const TlsClientContext* ctx = tls_ctx_.Get(s);
  if (!ctx) {
    const Status& why = tls_ctx_.status(s);
    return Error(ErrorKind::kConnectFailed, ErrorSide::kInternal, true, "%s",
                 why.ok() ? "tls: no TLS context for this backend" : why.error().message());
  }
  const shm::BackendUpstream& bu = snap_->upstreams[slot];
  std::string_view name = bu.server_name;
  if (name.empty()) name = HostOfHostHeader(be.host_header);
  if (!u->tls_out) u->tls_out = std::make_unique<char[]>(kTlsOutCap);  // once per connection object
  u->tls = true;
  u->tls_fingerprint = bu.tls_fingerprint;
  u->tls_out_len = u->tls_out_off = 0;
  LOG_DEBUG("upstream TLS connection", {{"backend", std::string_view(be.id)},
                                        {"cached_session", tls_ctx_.sessions()->Get(tls_ctx_.SessionKey(s)) ? "yes" : "no"}});
  return u->tls_session.Start(*ctx, name, tls_ctx_.sessions(), tls_ctx_.SessionKey(s));
}

// A handshake step after the connect or new ciphertext; once it is done, the waiting
// request is encrypted and its first-byte deadline starts.
void WorkerImpl::TlsAdvance(UpstreamConn* u) {
  ClientConn* c = u->client;
  Result<bool> hs = u->tls_session.Handshake();
  if (!hs.ok()) return TlsFailed(u, hs.error());
  if (hs.value() && u->tls_request_waits) {
    u->tls_request_waits = false;
    LOG_DEBUG("upstream TLS handshake done", {{"backend", std::string_view(snap_->backends[u->slot].id)},
                                              {"resumed", u->tls_session.resumed() ? "yes" : "no"}});
    SetUpDeadline(c, 2, snap_->limits.first_byte_ms);
    Status st = TlsWriteRequest(u);
    if (!st.ok()) return TlsFailed(u, st.error());
  }
  TlsFlush(u);
  ArmUpRecv(u);
}

// The request's pieces (the codec's iovecs) encrypted into the session's output, gathered
// into full records first: one SSL_write per piece made a record per piece (head,
// forwarded headers, CRLF, body: 3-5 records for a small request, each with its own
// header, tag and OpenSSL's per-record work).
Status WorkerImpl::TlsWriteRequest(UpstreamConn* u) {
  constexpr size_t kRecord = 16384;  // TLS's largest record
  if (tls_gather_.size() < kRecord) tls_gather_.resize(kRecord);  // once per worker
  const iovec* v = u->codec.iov();
  size_t total = 0, filled = 0;
  for (int i = 0; i < u->codec.iov_count(); ++i) {
    const char* p = static_cast<const char*>(v[i].iov_base);
    size_t n = v[i].iov_len;
    total += n;
    while (n > 0) {
      size_t k = std::min(n, kRecord - filled);
      std::memcpy(tls_gather_.data() + filled, p, k);
      filled += k;
      p += k;
      n -= k;
      if (filled == kRecord) {
        Status st = u->tls_session.Write(tls_gather_.data(), filled);
        if (!st.ok()) return st;
        filled = 0;
      }
    }
  }
  if (filled) {
    Status st = u->tls_session.Write(tls_gather_.data(), filled);
    if (!st.ok()) return st;
  }
  u->codec.Advance(total);  // all of it is in the session now
  return Status::Ok();
}

// Sends what is left of tls_out, else the next batch of ciphertext OpenSSL has queued.
void WorkerImpl::TlsFlush(UpstreamConn* u) {
  if (u->send_armed || u->closed) return;
  if (u->tls_out_off >= u->tls_out_len) {
    u->tls_out_off = 0;
    u->tls_out_len = u->tls_session.PendingOutput() ? u->tls_session.TakeOutput(u->tls_out.get(), kTlsOutCap) : 0;
    if (!u->tls_out_len) return;
  }
  io_uring_sqe* s = Sqe();
  io_uring_prep_send(s, u->fd, u->tls_out.get() + u->tls_out_off, u->tls_out_len - u->tls_out_off, MSG_NOSIGNAL);
  io_uring_sqe_set_data64(s, u->send_done.user_data());
  u->send_armed = true;
  ++u->pending_ops;
}

// A refused certificate (or any failed handshake) is a connect failure of this backend:
// logged with its reason, counted, failed over; the client gets the reason when no
// backend is left.
void WorkerImpl::TlsFailed(UpstreamConn* u, const Error& e) {
  ClientConn* c = u->client;
  bool handshake = !u->tls_session.handshake_done();
  LOG_WARN(handshake ? "upstream TLS handshake failed" : "upstream TLS failed",
           {{"backend", std::string_view(snap_->backends[u->slot].id)}, {"error", e.message()}});
  stats_.UpstreamError(u->slot, handshake ? shm::UpstreamErr::kConnect : shm::UpstreamErr::kProtocol);
  UpstreamFailed(c, Error(handshake ? ErrorKind::kConnectFailed : ErrorKind::kUpstreamProtocol, ErrorSide::kUpstream,
                          true, "upstream %s", e.message()));
}

// Ciphertext arrived: fed to the session; during the handshake it advances that, after
// it the plaintext is decrypted into `in` (the ciphertext was copied into the session)
// and parsed like a plain read, piece by piece.
void WorkerImpl::OnUpTlsRecv(UpstreamConn* u, ClientConn* c, size_t n) {
  Status fed = u->tls_session.Feed(u->in, n);
  if (!fed.ok()) return TlsFailed(u, fed.error());
  if (!u->tls_session.handshake_done()) return TlsAdvance(u);
  if (c->rw.committed()) SetUpDeadline(c, 3, snap_->limits.idle_ms);
  for (;;) {
    Result<size_t> got = u->tls_session.Read(u->in, kUpstreamInCap);
    if (!got.ok()) return TlsFailed(u, got.error());
    if (got.value() == 0) break;
    if (!ParseUp(u, c, u->in, got.value())) return;
    if (c->response_done) break;
  }
  if (!c->response_done && u->tls_session.peer_closed()) return OnUpClosed(u, c, 0);
  TlsFlush(u);  // what reading made OpenSSL say (a key update's answer)
  AfterUpParse(u, c);
}

void WorkerImpl::ArmUpRecv(UpstreamConn* u) {
  if (u->recv_armed || u->closed) return;
  // The idle clock runs only while we wait for the upstream, not while a slow client
  // is still taking the previous read (backpressure is not an upstream failure).
  if (u->client && u->client->rw.committed()) SetUpDeadline(u->client, 3, snap_->limits.idle_ms);
  io_uring_sqe* s = Sqe();
  io_uring_prep_recv(s, u->fd, u->in, kUpstreamInCap, 0);
  // The answer is not there yet when the read is queued with the request: wait for
  // readiness first instead of trying a read that fails with EAGAIN.
  s->ioprio |= IORING_RECVSEND_POLL_FIRST;
  io_uring_sqe_set_data64(s, u->recv_done.user_data());
  u->recv_armed = true;
  ++u->pending_ops;
}

// Detaches the client's upstream: back to the pool when reusable, else closed.

}  // namespace llmgw::dataplane
