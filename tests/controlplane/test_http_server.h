// A tiny in-process HTTP/1.1 responder on 127.0.0.1 for control-plane tests: stands in
// for a model server's /health, /v1/models and /metrics until llmgw-mock is on main.
// One thread, one connection at a time, Connection: close.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

namespace llmgw::cp::testing {

struct TestResponse {
  int status = 200;
  std::string body;
  int hang_ms = 0;  // wait this long before answering (timeouts)
};

class TestHttpServer {
 public:
  using Handler = std::function<TestResponse(const std::string& path)>;
  // Binds 127.0.0.1:port (0: any free port).
  explicit TestHttpServer(Handler h, uint16_t port = 0);
  ~TestHttpServer();
  uint16_t port() const { return port_; }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  // Closes the listener: later connects are refused, like a killed server.
  void Stop();
  int requests(const std::string& path) const;

 private:
  void Loop();
  Handler handler_;
  int listen_fd_ = -1;
  uint16_t port_ = 0;
  std::atomic<bool> stop_{false};
  std::thread thread_;
  mutable std::mutex mu_;
  std::vector<std::string> seen_;
};

// A free loopback TCP port (bound then released; fine for tests).
uint16_t FreePort();

}  // namespace llmgw::cp::testing
