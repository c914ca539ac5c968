// Client-side TLS for upstream connections without leaving io_uring: OpenSSL drives the
// protocol over two memory BIOs, so it never touches the socket and never blocks. The
// connection's owner moves bytes: what arrives from the socket goes in with Feed(), what
// OpenSSL wants sent comes out of TakeOutput() and is written by the owner's io_uring
// sends. Handshake() is called again after every Feed() until it reports done.
//
// TlsClientContext is one SSL_CTX per (worker thread, backend TLS settings): trust store or
// tls.ca_file, verification, client certificate. TlsSessionCache holds the last session
// per backend for this thread, so a new connection resumes instead of doing a full
// handshake (TLS 1.3 tickets arrive after the handshake; OpenSSL hands them to the cache
// through the new-session callback).
#pragma once

#include <openssl/ssl.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "common/error.h"

namespace llmgw::dataplane {

struct TlsClientOptions {
  std::string ca_file;           // empty: the system trust store
  bool verify = true;
  std::string client_cert_file;  // PEM, optional (with client_key_file)
  std::string client_key_file;
};

// A per-thread SSL_CTX. Built off the hot path (at start or when a snapshot brings new TLS
// settings); loading files happens here, never per connection.
class TlsClientContext {
 public:
  TlsClientContext() = default;
  ~TlsClientContext();
  TlsClientContext(const TlsClientContext&) = delete;
  TlsClientContext& operator=(const TlsClientContext&) = delete;

  Status Init(const TlsClientOptions& o);
  SSL_CTX* ctx() const { return ctx_; }
  bool verify() const { return verify_; }

 private:
  SSL_CTX* ctx_ = nullptr;
  bool verify_ = true;
};

// The last session per backend key, for this thread only (no locks). Fixed capacity; a
// full cache replaces the oldest entry.
class TlsSessionCache {
 public:
  static constexpr size_t kSlots = 64;
  TlsSessionCache() = default;
  ~TlsSessionCache();
  TlsSessionCache(const TlsSessionCache&) = delete;
  TlsSessionCache& operator=(const TlsSessionCache&) = delete;

  // The cached session for key, or null. The cache keeps its reference.
  SSL_SESSION* Get(uint64_t key) const;
  // Stores s for key (taking one reference), replacing what was there.
  void Put(uint64_t key, SSL_SESSION* s);
  void Forget(uint64_t key);
  size_t size() const;

 private:
  struct Slot {
    uint64_t key = 0;
    SSL_SESSION* session = nullptr;
    uint64_t stamp = 0;
  };
  Slot slots_[kSlots];
  uint64_t clock_ = 0;
};

class TlsSession {
 public:
  TlsSession() = default;
  ~TlsSession();
  TlsSession(const TlsSession&) = delete;
  TlsSession& operator=(const TlsSession&) = delete;

  // Back to the state of a new object (a pooled connection object serving another
  // socket): the SSL freed as the destructor does, a healthy session left resumable.
  void Reset();
  bool started() const { return ssl_ != nullptr; }
  // Plaintext or ciphertext already inside OpenSSL that Read() can still return.
  bool HasBufferedInput() const;

  // Prepares a client handshake: SNI and the checked name are server_name (an IP address
  // is checked as one and sent without SNI); cache and cache_key (optional) offer and keep
  // resumable sessions. The first Handshake() produces the ClientHello.
  Status Start(const TlsClientContext& ctx, std::string_view server_name, TlsSessionCache* cache = nullptr,
               uint64_t cache_key = 0);

  // Ciphertext received from the socket.
  Status Feed(const char* data, size_t len);
  // Advances the handshake; Result true once it is complete. A refused certificate is an
  // upstream error naming why ("certificate verify failed: unable to get local issuer
  // certificate"), not retried on the same backend by the caller.
  Result<bool> Handshake();
  bool handshake_done() const { return done_; }
  bool resumed() const;

  // Encrypts plaintext (after the handshake); the records appear in TakeOutput().
  Status Write(const char* data, size_t len);
  // Decrypts into out; Result 0 means more ciphertext is needed (or the peer closed: see
  // peer_closed()).
  Result<size_t> Read(char* out, size_t cap);
  bool peer_closed() const { return peer_closed_; }

  // Ciphertext waiting to be sent; moved into out (at most cap bytes), returns the count.
  size_t PendingOutput() const;
  size_t TakeOutput(char* out, size_t cap);

  // Queues close_notify (to be sent from TakeOutput) before the owner closes the socket.
  void Shutdown();

 private:
  Error SslError(int ret, const char* what);
  SSL* ssl_ = nullptr;
  BIO* rbio_ = nullptr;  // network -> OpenSSL
  BIO* wbio_ = nullptr;  // OpenSSL -> network
  bool done_ = false;
  bool peer_closed_ = false;
  bool failed_ = false;
  uint64_t key_ = 0;  // the cache key, stable for the callback (SSL ex_data points here)
};

}  // namespace llmgw::dataplane
