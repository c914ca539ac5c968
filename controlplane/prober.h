// How the Controller reaches a backend for health probes and metric scrapes: one blocking
// GET, run on a worker-pool thread. An interface so controller tests answer probes from
// a table (and with an injected clock and an inline pool, tick by tick without sleeping)
// instead of standing up sockets and waiting out real intervals.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>

#include "controlplane/http_client.h"

namespace llmgw::cp {

class Prober {
 public:
  virtual ~Prober() = default;
  // GET `path` on `target` within timeout_ms, the body capped at max_body_bytes. When
  // `cancel` becomes true (llmcd shutting down) the call should give up promptly.
  virtual HttpResponse Get(const HttpTarget& target, const std::string& path, uint32_t timeout_ms,
                           size_t max_body_bytes, const std::atomic<bool>* cancel) = 0;
};

// The real one: HttpGet over TCP (http_client.h).
class HttpProber final : public Prober {
 public:
  HttpResponse Get(const HttpTarget& target, const std::string& path, uint32_t timeout_ms, size_t max_body_bytes,
                   const std::atomic<bool>* cancel) override {
    return HttpGet(target, path, timeout_ms, max_body_bytes, cancel);
  }
};

}  // namespace llmgw::cp
