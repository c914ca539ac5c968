// A small HTTPS responder on 127.0.0.1 for tests (OpenSSL, blocking, one thread, one
// connection at a time, Connection: close): serves a fixed answer per path, records each
// request head (so tests check the headers a client sent) and the SNI it was asked for,
// and can require a client certificate signed by a given CA.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace llmgw::test {

class TlsHttpServer {
 public:
  struct Answer {
    int status = 200;
    std::string body;
  };
  using Handler = std::function<Answer(const std::string& request_head)>;

  // cert/key: the server's identity; client_ca non-empty: a client certificate signed by
  // it is required.
  TlsHttpServer(const std::string& cert, const std::string& key, Handler h, const std::string& client_ca = "")
      : handler_(std::move(h)) {
    signal(SIGPIPE, SIG_IGN);  // a refused client hangs up while the alert is written
    ctx_ = SSL_CTX_new(TLS_server_method());
    if (SSL_CTX_use_certificate_chain_file(ctx_, cert.c_str()) != 1 ||
        SSL_CTX_use_PrivateKey_file(ctx_, key.c_str(), SSL_FILETYPE_PEM) != 1) {
      error_ = "cannot load server certificate";
      return;
    }
    if (!client_ca.empty()) {
      SSL_CTX_load_verify_locations(ctx_, client_ca.c_str(), nullptr);
      SSL_CTX_set_verify(ctx_, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nullptr);
    }
    fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (bind(fd_, reinterpret_cast<sockaddr*>(&a), len) != 0 || listen(fd_, 16) != 0) {
      error_ = "bind/listen failed";
      return;
    }
    getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    thread_ = std::thread([this] { Loop(); });
  }
  ~TlsHttpServer() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
    if (fd_ >= 0) close(fd_);
    SSL_CTX_free(ctx_);
  }

  bool ok() const { return error_.empty(); }
  uint16_t port() const { return port_; }
  std::vector<std::string> heads() const {
    std::lock_guard<std::mutex> l(mu_);
    return heads_;
  }
  std::vector<std::string> server_names() const {
    std::lock_guard<std::mutex> l(mu_);
    return snis_;
  }
  int handshakes_failed() const { return failed_.load(); }

 private:
  void Loop() {
    while (!stop_) {
      pollfd p{fd_, POLLIN, 0};
      if (poll(&p, 1, 20) <= 0) continue;
      int c = accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (c < 0) continue;
      timeval tv{2, 0};
      setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
      SSL* ssl = SSL_new(ctx_);
      SSL_set_fd(ssl, c);
      if (SSL_accept(ssl) != 1) {
        ++failed_;
      } else {
        const char* sni = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
        std::string head;
        char buf[4096];
        while (head.find("\r\n\r\n") == std::string::npos) {
          int n = SSL_read(ssl, buf, sizeof buf);
          if (n <= 0) break;
          head.append(buf, static_cast<size_t>(n));
        }
        {
          std::lock_guard<std::mutex> l(mu_);
          heads_.push_back(head);
          snis_.push_back(sni ? sni : "");
        }
        Answer a = handler_(head);
        std::string resp = "HTTP/1.1 " + std::to_string(a.status) + " X\r\nContent-Type: application/json\r\n"
                           "Content-Length: " + std::to_string(a.body.size()) + "\r\nConnection: close\r\n\r\n" + a.body;
        SSL_write(ssl, resp.data(), static_cast<int>(resp.size()));
        SSL_shutdown(ssl);
      }
      SSL_free(ssl);
      close(c);
      ERR_clear_error();
    }
  }

  Handler handler_;
  SSL_CTX* ctx_ = nullptr;
  int fd_ = -1;
  uint16_t port_ = 0;
  std::string error_;
  std::atomic<bool> stop_{false};
  std::atomic<int> failed_{0};
  std::thread thread_;
  mutable std::mutex mu_;
  std::vector<std::string> heads_, snis_;
};

}  // namespace llmgw::test
