// See tls_session.h.
#include "dataplane/tls_session.h"

#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <cstring>

namespace llmgw::dataplane {
namespace {

// SSL ex_data slots: the session cache and key a connection stores new sessions under.
int CacheIndex() {
  static int idx = SSL_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
  return idx;
}
int KeyIndex() {
  static int idx = SSL_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
  return idx;
}

// OpenSSL's new-session callback: keep the session (TLS 1.3: each ticket) for resumption.
int OnNewSession(SSL* ssl, SSL_SESSION* s) {
  auto* cache = static_cast<TlsSessionCache*>(SSL_get_ex_data(ssl, CacheIndex()));
  auto* key = static_cast<uint64_t*>(SSL_get_ex_data(ssl, KeyIndex()));
  if (cache && key) cache->Put(*key, s);
  return 0;  // we did not keep OpenSSL's reference; Put took its own
}

std::string LastSslError() {
  unsigned long e = ERR_get_error();
  if (!e) return "unknown error";
  char buf[200];
  ERR_error_string_n(e, buf, sizeof buf);
  ERR_clear_error();
  return buf;
}

}  // namespace

TlsClientContext::~TlsClientContext() {
  if (ctx_) SSL_CTX_free(ctx_);
}

Status TlsClientContext::Init(const TlsClientOptions& o) {
  ctx_ = SSL_CTX_new(TLS_client_method());
  if (!ctx_) return Error(ErrorKind::kConfig, ErrorSide::kInternal, false, "tls: SSL_CTX_new failed");
  SSL_CTX_set_min_proto_version(ctx_, TLS1_2_VERSION);
  verify_ = o.verify;
  if (o.verify) {
    int ok = o.ca_file.empty() ? SSL_CTX_set_default_verify_paths(ctx_)
                               : SSL_CTX_load_verify_locations(ctx_, o.ca_file.c_str(), nullptr);
    if (ok != 1)
      return Error(ErrorKind::kConfig, ErrorSide::kInternal, false, "tls: cannot load CA %s: %s",
                   o.ca_file.empty() ? "(system store)" : o.ca_file.c_str(), LastSslError().c_str());
    SSL_CTX_set_verify(ctx_, SSL_VERIFY_PEER, nullptr);
  } else {
    SSL_CTX_set_verify(ctx_, SSL_VERIFY_NONE, nullptr);
  }
  if (!o.client_cert_file.empty()) {
    if (SSL_CTX_use_certificate_chain_file(ctx_, o.client_cert_file.c_str()) != 1 ||
        SSL_CTX_use_PrivateKey_file(ctx_, o.client_key_file.c_str(), SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_check_private_key(ctx_) != 1)
      return Error(ErrorKind::kConfig, ErrorSide::kInternal, false, "tls: cannot use client certificate %s: %s",
                   o.client_cert_file.c_str(), LastSslError().c_str());
  }
  // Client-side caching through our per-thread cache only (OpenSSL's internal store is
  // for servers and would take a lock).
  SSL_CTX_set_session_cache_mode(ctx_, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
  SSL_CTX_sess_set_new_cb(ctx_, OnNewSession);
  // No SSL_MODE_RELEASE_BUFFERS: it frees the record buffers whenever a connection is idle
  // and allocates them again for the next request (the hot path allocates nothing).
  SSL_CTX_set_mode(ctx_, SSL_MODE_ENABLE_PARTIAL_WRITE);
  return Status::Ok();
}

TlsSessionCache::~TlsSessionCache() {
  for (auto& s : slots_)
    if (s.session) SSL_SESSION_free(s.session);
}

SSL_SESSION* TlsSessionCache::Get(uint64_t key) const {
  for (const auto& s : slots_)
    if (s.session && s.key == key) return s.session;
  return nullptr;
}

void TlsSessionCache::Put(uint64_t key, SSL_SESSION* session) {
  Slot* target = nullptr;
  for (auto& s : slots_) {
    if (s.session && s.key == key) { target = &s; break; }
  }
  if (!target) {
    for (auto& s : slots_) {
      if (!s.session) { target = &s; break; }
      if (!target || s.stamp < target->stamp) target = &s;
    }
  }
  SSL_SESSION_up_ref(session);
  if (target->session) SSL_SESSION_free(target->session);
  target->session = session;
  target->key = key;
  target->stamp = ++clock_;
}

void TlsSessionCache::Forget(uint64_t key) {
  for (auto& s : slots_)
    if (s.session && s.key == key) {
      SSL_SESSION_free(s.session);
      s.session = nullptr;
    }
}

size_t TlsSessionCache::size() const {
  size_t n = 0;
  for (const auto& s : slots_) n += s.session != nullptr;
  return n;
}

TlsSession::~TlsSession() { Reset(); }

void TlsSession::Reset() {
  if (!ssl_) return;
  // OpenSSL marks the session of a connection freed without a shutdown as not resumable,
  // which would void the cached ticket: a healthy connection closed by its owner (idle,
  // pool pruning) counts as shut down; one that failed does not, so its session goes.
  if (done_ && !failed_) SSL_set_shutdown(ssl_, SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
  SSL_free(ssl_);  // frees both BIOs
  ssl_ = nullptr;
  rbio_ = wbio_ = nullptr;
  done_ = peer_closed_ = failed_ = false;
  key_ = 0;
}

bool TlsSession::HasBufferedInput() const {
  return ssl_ && (SSL_pending(ssl_) > 0 || BIO_ctrl_pending(rbio_) > 0);
}

Status TlsSession::Start(const TlsClientContext& ctx, std::string_view server_name, TlsSessionCache* cache,
                         uint64_t cache_key) {
  Reset();
  ssl_ = SSL_new(ctx.ctx());
  rbio_ = BIO_new(BIO_s_mem());
  wbio_ = BIO_new(BIO_s_mem());
  if (!ssl_ || !rbio_ || !wbio_) return Error(ErrorKind::kInternal, ErrorSide::kInternal, false, "tls: out of memory");
  BIO_set_mem_eof_return(rbio_, -1);  // an empty read BIO means "want more", not EOF
  SSL_set_bio(ssl_, rbio_, wbio_);
  SSL_set_connect_state(ssl_);
  char name[256];
  size_t n = std::min(server_name.size(), sizeof name - 1);
  std::memcpy(name, server_name.data(), n);
  name[n] = 0;
  unsigned char ip[16];
  bool is_ip = inet_pton(AF_INET, name, ip) == 1 || inet_pton(AF_INET6, name, ip) == 1;
  if (!is_ip && n > 0) SSL_set_tlsext_host_name(ssl_, name);  // SNI is for names only (RFC 6066)
  if (ctx.verify() && n > 0) {
    X509_VERIFY_PARAM* param = SSL_get0_param(ssl_);
    int ok = is_ip ? X509_VERIFY_PARAM_set1_ip_asc(param, name) : X509_VERIFY_PARAM_set1_host(param, name, n);
    if (ok != 1) return Error(ErrorKind::kConfig, ErrorSide::kInternal, false, "tls: bad server name %s", name);
    X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
  }
  if (cache) {
    SSL_set_ex_data(ssl_, CacheIndex(), cache);
    key_ = cache_key;
    SSL_set_ex_data(ssl_, KeyIndex(), &key_);
    if (SSL_SESSION* s = cache->Get(cache_key)) SSL_set_session(ssl_, s);
  }
  return Status::Ok();
}

Status TlsSession::Feed(const char* data, size_t len) {
  while (len > 0) {
    int w = BIO_write(rbio_, data, static_cast<int>(std::min<size_t>(len, 1 << 30)));
    if (w <= 0) return Error(ErrorKind::kInternal, ErrorSide::kInternal, false, "tls: BIO_write failed");
    data += w;
    len -= static_cast<size_t>(w);
  }
  return Status::Ok();
}

Error TlsSession::SslError(int ret, const char* what) {
  failed_ = true;
  int e = SSL_get_error(ssl_, ret);
  long vr = SSL_get_verify_result(ssl_);
  if (vr != X509_V_OK)
    return Error(ErrorKind::kUpstreamProtocol, ErrorSide::kUpstream, false, "tls: certificate verify failed: %s",
                 X509_verify_cert_error_string(vr));
  if (e == SSL_ERROR_ZERO_RETURN) {
    peer_closed_ = true;
    return Error(ErrorKind::kConnectionReset, ErrorSide::kUpstream, true, "tls: peer closed during %s", what);
  }
  return Error(ErrorKind::kUpstreamProtocol, ErrorSide::kUpstream, true, "tls: %s failed: %s", what,
               LastSslError().c_str());
}

Result<bool> TlsSession::Handshake() {
  if (done_) return true;
  ERR_clear_error();
  int r = SSL_do_handshake(ssl_);
  if (r == 1) {
    done_ = true;
    return true;
  }
  int e = SSL_get_error(ssl_, r);
  if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) return false;
  return SslError(r, "handshake");
}

bool TlsSession::resumed() const { return ssl_ && SSL_session_reused(ssl_) == 1; }

Status TlsSession::Write(const char* data, size_t len) {
  ERR_clear_error();
  while (len > 0) {
    size_t written = 0;
    int r = SSL_write_ex(ssl_, data, len, &written);
    if (r != 1) return SslError(r, "write");
    data += written;
    len -= written;
  }
  return Status::Ok();
}

Result<size_t> TlsSession::Read(char* out, size_t cap) {
  ERR_clear_error();
  size_t got = 0;
  int r = SSL_read_ex(ssl_, out, cap, &got);
  if (r == 1) return got;
  int e = SSL_get_error(ssl_, r);
  if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) return size_t{0};
  if (e == SSL_ERROR_ZERO_RETURN) {
    peer_closed_ = true;
    return size_t{0};
  }
  return SslError(r, "read");
}

size_t TlsSession::PendingOutput() const { return BIO_ctrl_pending(wbio_); }

size_t TlsSession::TakeOutput(char* out, size_t cap) {
  int n = BIO_read(wbio_, out, static_cast<int>(std::min<size_t>(cap, 1 << 30)));
  return n > 0 ? static_cast<size_t>(n) : 0;
}

void TlsSession::Shutdown() {
  if (ssl_ && done_) SSL_shutdown(ssl_);
}

}  // namespace llmgw::dataplane
