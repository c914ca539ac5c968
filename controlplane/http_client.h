// A blocking HTTP(S) GET for health probes and /metrics scrapes, over libcurl (TLS,
// chunked bodies, 1xx answers). Every call is bounded by one deadline and the body by a
// byte cap, so a backend that hangs, trickles or floods costs at most timeout_ms of a pool
// thread. The connection goes to the address llmcd resolved (the snapshot's), never to a
// fresh DNS answer, so a probe checks the very server the data plane sends to.
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>

#include <atomic>
#include <cstdint>
#include <string>
#include <vector>

namespace llmgw::cp {

struct HttpTlsOptions {
  std::string ca_file;           // empty: the system trust store
  std::string server_name;       // SNI and certificate name; empty: the host of host_header
  bool verify = true;
  std::string client_cert_file;  // PEM; with client_key_file
  std::string client_key_file;
};

struct HttpTarget {
  sockaddr_storage addr{};
  socklen_t addr_len = 0;
  std::string host_header;  // HOST:PORT as in the URL
  std::string base_path;    // prefix before the request path
  bool tls = false;         // https
  HttpTlsOptions tls_options;
  // Extra request headers ("Name: value"), e.g. a hosted provider's key. Never logged.
  std::vector<std::string> headers;
};

struct HttpResponse {
  int status = 0;        // 0 when no valid response arrived
  std::string body;
  std::string error;     // empty on success (any status)
  bool ok() const { return error.empty() && status != 0; }
};

// When `cancel` is given and becomes true, the call gives up within about 50 ms
// (error "cancelled"): llmcd's shutdown does not wait out a hung backend's timeout.
// `path` may carry a query string.
HttpResponse HttpGet(const HttpTarget& target, const std::string& path, uint32_t timeout_ms,
                     size_t max_body_bytes = 16u << 20, const std::atomic<bool>* cancel = nullptr);

}  // namespace llmgw::cp
