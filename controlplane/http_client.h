// A minimal blocking HTTP/1.1 GET client for health probes and /metrics scrapes. Every
// step (connect, send, receive) is bounded by one deadline and the body by a byte cap,
// so a backend that hangs, trickles or floods costs at most timeout_ms of a pool thread.
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>

#include <atomic>
#include <cstdint>
#include <string>

namespace llmgw::cp {

struct HttpTarget {
  sockaddr_storage addr{};
  socklen_t addr_len = 0;
  std::string host_header;
  std::string base_path;  // prefix before the request path
};

struct HttpResponse {
  int status = 0;        // 0 when no valid response arrived
  std::string body;
  std::string error;     // empty on success (any status)
  bool ok() const { return error.empty() && status != 0; }
};

// When `cancel` is given and becomes true, the call gives up within about 50 ms
// (error "cancelled"): llmcd's shutdown does not wait out a hung backend's timeout.
HttpResponse HttpGet(const HttpTarget& target, const std::string& path, uint32_t timeout_ms,
                     size_t max_body_bytes = 16u << 20, const std::atomic<bool>* cancel = nullptr);

}  // namespace llmgw::cp
