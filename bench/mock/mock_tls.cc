// See mock_tls.h. Blocking OpenSSL per connection: handshake, then a poll loop pumping
// bytes both ways until either side closes.
#include "bench/mock/mock_tls.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <thread>

namespace llmgw::mock {
namespace {

std::atomic<uint64_t> g_handshakes{0}, g_resumed{0};

bool WriteAll(int fd, const char* p, size_t n) {
  while (n > 0) {
    ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
    if (w <= 0) return false;
    p += w;
    n -= static_cast<size_t>(w);
  }
  return true;
}

void Pump(SSL_CTX* ctx, int client, uint16_t inner_port) {
  timeval tv{10, 0};  // a client that never finishes its handshake is dropped
  setsockopt(client, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  SSL* ssl = SSL_new(ctx);
  SSL_set_fd(ssl, client);
  int inner = -1;
  if (SSL_accept(ssl) == 1) {
    g_handshakes.fetch_add(1, std::memory_order_relaxed);
    if (SSL_session_reused(ssl)) g_resumed.fetch_add(1, std::memory_order_relaxed);
    timeval none{0, 0};
    setsockopt(client, SOL_SOCKET, SO_RCVTIMEO, &none, sizeof none);
    inner = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(inner_port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int one = 1;
    setsockopt(inner, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    setsockopt(client, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(inner, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0) {
      char buf[16384];
      for (;;) {
        if (SSL_pending(ssl) == 0) {
          pollfd p[2] = {{client, POLLIN, 0}, {inner, POLLIN, 0}};
          if (poll(p, 2, -1) < 0) break;
          if (p[1].revents & (POLLIN | POLLHUP | POLLERR)) {
            ssize_t n = recv(inner, buf, sizeof buf, 0);
            if (n <= 0 || SSL_write(ssl, buf, static_cast<int>(n)) <= 0) break;
          }
          if (!(p[0].revents & (POLLIN | POLLHUP | POLLERR))) continue;
        }
        int n = SSL_read(ssl, buf, sizeof buf);
        if (n <= 0) break;
        if (!WriteAll(inner, buf, static_cast<size_t>(n))) break;
      }
    }
  }
  SSL_shutdown(ssl);
  SSL_free(ssl);
  ERR_clear_error();
  if (inner >= 0) close(inner);
  close(client);
}

}  // namespace

uint64_t TlsHandshakes() { return g_handshakes.load(std::memory_order_relaxed); }
uint64_t TlsResumed() { return g_resumed.load(std::memory_order_relaxed); }

bool StartTlsFront(const std::string& cert, const std::string& key, int public_fd, uint16_t inner_port,
                   std::string* err) {
  SSL_CTX* ctx = SSL_CTX_new(TLS_server_method());
  if (!ctx || SSL_CTX_use_certificate_chain_file(ctx, cert.c_str()) != 1 ||
      SSL_CTX_use_PrivateKey_file(ctx, key.c_str(), SSL_FILETYPE_PEM) != 1 || SSL_CTX_check_private_key(ctx) != 1) {
    char msg[256];
    ERR_error_string_n(ERR_get_error(), msg, sizeof msg);
    *err = std::string("--tls: cannot load ") + cert + " / " + key + ": " + msg;
    if (ctx) SSL_CTX_free(ctx);
    return false;
  }
  // Session resumption (tickets and the server cache) stays on: clients that resume are
  // what the TLS benchmark measures.
  SSL_CTX_set_session_id_context(ctx, reinterpret_cast<const unsigned char*>("llmgw-mock"), 10);
  int fl = fcntl(public_fd, F_GETFL);
  fcntl(public_fd, F_SETFL, fl & ~O_NONBLOCK);
  std::thread([ctx, public_fd, inner_port] {
    for (;;) {
      int c = accept4(public_fd, nullptr, nullptr, SOCK_CLOEXEC);
      if (c < 0) continue;
      std::thread(Pump, ctx, c, inner_port).detach();
    }
  }).detach();
  return true;
}

}  // namespace llmgw::mock
