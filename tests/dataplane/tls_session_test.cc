// TlsSession over a socketpair against a blocking OpenSSL server thread: the handshake
// driven only through memory BIOs (the test moves the bytes, as io_uring will), SNI,
// verification against a throwaway CA (and the refusals: unknown CA, wrong name),
// session resumption through the per-thread cache, client certificates, and data both ways.
#include "dataplane/tls_session.h"

#include <gtest/gtest.h>
#include <openssl/err.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <memory>
#include <vector>
#include <string>
#include <thread>

#include "tests/tls/test_pki.h"

namespace llmgw::dataplane {
namespace {

using llmgw::test::TestPki;

// One TLS server connection on fd: handshake, echo one message back upper-cased, close.
// Records the SNI it was asked for and whether the session was resumed.
struct ServerSide {
  std::string sni;
  bool resumed = false;
  bool handshake_ok = false;
  std::string got;
};

SSL_CTX* ServerCtx(const std::string& cert, const std::string& key, const std::string& client_ca = "") {
  SSL_CTX* ctx = SSL_CTX_new(TLS_server_method());
  SSL_CTX_use_certificate_chain_file(ctx, cert.c_str());
  SSL_CTX_use_PrivateKey_file(ctx, key.c_str(), SSL_FILETYPE_PEM);
  SSL_CTX_set_session_id_context(ctx, reinterpret_cast<const unsigned char*>("t"), 1);
  if (!client_ca.empty()) {
    SSL_CTX_load_verify_locations(ctx, client_ca.c_str(), nullptr);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nullptr);
  }
  return ctx;
}

void Serve(SSL_CTX* ctx, int fd, ServerSide* out) {
  timeval tv{5, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  SSL* ssl = SSL_new(ctx);
  SSL_set_fd(ssl, fd);
  if (SSL_accept(ssl) == 1) {
    out->handshake_ok = true;
    const char* n = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
    out->sni = n ? n : "";
    out->resumed = SSL_session_reused(ssl) == 1;
    char buf[256];
    int r = SSL_read(ssl, buf, sizeof buf);
    if (r > 0) {
      out->got.assign(buf, static_cast<size_t>(r));
      std::string reply = "ECHO " + out->got;
      SSL_write(ssl, reply.data(), static_cast<int>(reply.size()));
    }
    SSL_shutdown(ssl);
  }
  SSL_free(ssl);
  ERR_clear_error();
  close(fd);
}

// Moves bytes between the session and the socket until pred or an error or 5 s.
class Pump {
 public:
  Pump(TlsSession* s, int fd) : s_(s), fd_(fd) {}
  bool Flush() {
    char buf[16384];
    while (size_t n = s_->TakeOutput(buf, sizeof buf))
      if (send(fd_, buf, n, MSG_NOSIGNAL) != static_cast<ssize_t>(n)) return false;
    return true;
  }
  // Reads what the socket has within wait_ms into the session; false on EOF.
  bool Receive(int wait_ms) {
    pollfd p{fd_, POLLIN, 0};
    if (poll(&p, 1, wait_ms) <= 0) return true;
    char buf[16384];
    ssize_t n = recv(fd_, buf, sizeof buf, 0);
    if (n <= 0) return false;
    return s_->Feed(buf, static_cast<size_t>(n)).ok();
  }
  Result<bool> Handshake() {
    for (int i = 0; i < 200; ++i) {
      Result<bool> r = s_->Handshake();
      if (!Flush()) return Error(ErrorKind::kIo, ErrorSide::kUpstream, false, "send failed");
      if (!r.ok() || r.value()) return r;
      if (!Receive(25)) return Error(ErrorKind::kConnectionReset, ErrorSide::kUpstream, false, "closed");
    }
    return Error(ErrorKind::kTimeout, ErrorSide::kUpstream, false, "handshake took too long");
  }
  std::string Exchange(const std::string& msg) {
    EXPECT_TRUE(s_->Write(msg.data(), msg.size()).ok());
    Flush();
    std::string got;
    char buf[256];
    for (int i = 0; i < 200 && !s_->peer_closed(); ++i) {
      Result<size_t> r = s_->Read(buf, sizeof buf);
      if (!r.ok()) break;
      if (r.value() > 0) {
        got.append(buf, r.value());
        continue;
      }
      Flush();
      if (!Receive(25)) break;
    }
    return got;
  }

 private:
  TlsSession* s_;
  int fd_;
};

class TlsSessionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    signal(SIGPIPE, SIG_IGN);  // a refused peer hangs up while an alert is written
    ASSERT_TRUE(pki_.ok()) << pki_.error();
  }
  TlsClientContext* Ctx(bool verify = true, bool client_cert = false) {
    TlsClientOptions o;
    o.ca_file = pki_.ca_cert();
    o.verify = verify;
    if (client_cert) {
      o.client_cert_file = pki_.client_cert();
      o.client_key_file = pki_.client_key();
    }
    ctx_ = std::make_unique<TlsClientContext>();
    EXPECT_TRUE(ctx_->Init(o).ok());
    return ctx_.get();
  }
  // One connection: server thread on one end, the session on the other.
  Result<bool> Connect(SSL_CTX* server, const TlsClientContext& client, const std::string& name,
                       ServerSide* side, std::string* echoed = nullptr, TlsSessionCache* cache = nullptr,
                       bool* resumed = nullptr) {
    int sv[2];
    socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
    std::thread t(Serve, server, sv[1], side);
    TlsSession s;
    EXPECT_TRUE(s.Start(client, name, cache, 42).ok());
    Pump p(&s, sv[0]);
    Result<bool> r = p.Handshake();
    if (r.ok() && r.value() && echoed) *echoed = p.Exchange("hello");
    if (resumed) *resumed = s.resumed();
    shutdown(sv[0], SHUT_RDWR);
    t.join();
    close(sv[0]);
    return r;
  }
  TestPki pki_;
  std::unique_ptr<TlsClientContext> ctx_;
};

TEST_F(TlsSessionTest, HandshakeSniAndDataBothWays) {
  SSL_CTX* srv = ServerCtx(pki_.server_cert(), pki_.server_key());
  ServerSide side;
  std::string echoed;
  Result<bool> r = Connect(srv, *Ctx(), "backend.test", &side, &echoed);
  ASSERT_TRUE(r.ok()) << r.error().message();
  EXPECT_TRUE(r.value());
  EXPECT_EQ(side.sni, "backend.test");
  EXPECT_EQ(side.got, "hello");
  EXPECT_EQ(echoed, "ECHO hello");
  SSL_CTX_free(srv);
}

TEST_F(TlsSessionTest, AnIpAddressIsCheckedAsOneAndSentWithoutSni) {
  SSL_CTX* srv = ServerCtx(pki_.server_cert(), pki_.server_key());
  ServerSide side;
  Result<bool> r = Connect(srv, *Ctx(), "127.0.0.1", &side);
  ASSERT_TRUE(r.ok()) << r.error().message();
  EXPECT_EQ(side.sni, "");
  Result<bool> wrong = Connect(srv, *Ctx(), "127.0.0.9", &side);
  EXPECT_FALSE(wrong.ok());
  SSL_CTX_free(srv);
}

TEST_F(TlsSessionTest, UnknownCaAndWrongNameAreRefusedWithTheReason) {
  SSL_CTX* rogue = ServerCtx(pki_.rogue_cert(), pki_.rogue_key());
  ServerSide side;
  Result<bool> r = Connect(rogue, *Ctx(), "localhost", &side);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().kind(), ErrorKind::kUpstreamProtocol);
  EXPECT_FALSE(r.error().retryable());
  EXPECT_NE(std::string(r.error().message()).find("certificate verify failed"), std::string::npos)
      << r.error().message();
  SSL_CTX* srv = ServerCtx(pki_.server_cert(), pki_.server_key());
  Result<bool> name = Connect(srv, *Ctx(), "other.test", &side);
  ASSERT_FALSE(name.ok());
  EXPECT_NE(std::string(name.error().message()).find("certificate verify failed"), std::string::npos)
      << name.error().message();
  // verify: false accepts the rogue certificate.
  Result<bool> off = Connect(rogue, *Ctx(false), "localhost", &side);
  EXPECT_TRUE(off.ok()) << off.error().message();
  SSL_CTX_free(rogue);
  SSL_CTX_free(srv);
}

TEST_F(TlsSessionTest, SecondConnectionResumesThroughThePerThreadCache) {
  SSL_CTX* srv = ServerCtx(pki_.server_cert(), pki_.server_key());
  TlsClientContext* ctx = Ctx();
  TlsSessionCache cache;
  ServerSide first, second;
  std::string echoed;
  bool resumed = true;
  ASSERT_TRUE(Connect(srv, *ctx, "backend.test", &first, &echoed, &cache, &resumed).ok());
  EXPECT_FALSE(resumed);
  EXPECT_EQ(cache.size(), 1u);  // the ticket arrived with the data
  ASSERT_TRUE(Connect(srv, *ctx, "backend.test", &second, &echoed, &cache, &resumed).ok());
  EXPECT_TRUE(resumed);
  EXPECT_TRUE(second.resumed);
  EXPECT_EQ(echoed, "ECHO hello");
  cache.Forget(42);
  ASSERT_TRUE(Connect(srv, *ctx, "backend.test", &second, &echoed, &cache, &resumed).ok());
  EXPECT_FALSE(resumed);
  SSL_CTX_free(srv);
}

TEST_F(TlsSessionTest, ClientCertificateWhenTheServerRequiresOne) {
  SSL_CTX* srv = ServerCtx(pki_.server_cert(), pki_.server_key(), pki_.ca_cert());
  ServerSide without, with;
  std::string echoed;
  Result<bool> no = Connect(srv, *Ctx(), "backend.test", &without, &echoed);
  // TLS 1.3: the client learns of the refusal on its first read, not in the handshake.
  EXPECT_TRUE(!no.ok() || echoed.empty());
  EXPECT_FALSE(without.handshake_ok);
  Result<bool> yes = Connect(srv, *Ctx(true, true), "backend.test", &with, &echoed);
  ASSERT_TRUE(yes.ok()) << yes.error().message();
  EXPECT_TRUE(with.handshake_ok);
  EXPECT_EQ(echoed, "ECHO hello");
  SSL_CTX_free(srv);
}

TEST_F(TlsSessionTest, BadCaFileOrClientKeyIsAConfigError) {
  TlsClientContext c;
  TlsClientOptions o;
  o.ca_file = pki_.dir() + "/missing.pem";
  Status st = c.Init(o);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().kind(), ErrorKind::kConfig);
  TlsClientContext d;
  TlsClientOptions p;
  p.ca_file = pki_.ca_cert();
  p.client_cert_file = pki_.client_cert();
  p.client_key_file = pki_.server_key();  // not the certificate's key
  EXPECT_FALSE(d.Init(p).ok());
}

TEST(TlsSessionCacheTest, KeepsOneSessionPerKeyAndReplacesTheOldestWhenFull) {
  TlsSessionCache cache;
  std::vector<SSL_SESSION*> made;
  for (uint64_t k = 1; k <= TlsSessionCache::kSlots + 1; ++k) {
    SSL_SESSION* s = SSL_SESSION_new();
    made.push_back(s);
    cache.Put(k, s);
  }
  EXPECT_EQ(cache.size(), TlsSessionCache::kSlots);
  EXPECT_EQ(cache.Get(1), nullptr);  // the oldest went
  EXPECT_EQ(cache.Get(2), made[1]);
  EXPECT_EQ(cache.Get(TlsSessionCache::kSlots + 1), made.back());
  cache.Put(2, made[0]);
  EXPECT_EQ(cache.Get(2), made[0]);
  for (auto* s : made) SSL_SESSION_free(s);  // the cache holds its own references
}

}  // namespace
}  // namespace llmgw::dataplane
