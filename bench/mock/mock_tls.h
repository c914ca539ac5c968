// llmgw-mock's HTTPS (--tls CERT KEY): a TLS terminator in front of the plain event loops.
// It accepts TLS on the public address and pipes each connection's plaintext to the
// loops' internal loopback listener, so the HTTP server itself stays one code path. One
// thread per TLS connection: the mock serves tests and benchmarks, not the internet.
#pragma once

#include <cstdint>
#include <string>

namespace llmgw::mock {

// Loads the certificate and key; false with *err on failure. Then runs (in a detached
// thread) accepting on public_fd and connecting each client to 127.0.0.1:inner_port.
bool StartTlsFront(const std::string& cert, const std::string& key, int public_fd, uint16_t inner_port,
                   std::string* err);

// Completed handshakes, and those that resumed a session (GET /mock/stats reports both:
// tests and the TLS benchmark count how often a client pays a full handshake).
uint64_t TlsHandshakes();
uint64_t TlsResumed();

}  // namespace llmgw::mock
