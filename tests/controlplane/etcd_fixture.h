// A throwaway single-member etcd for the fleet integration tests that need a real one
// (fleet_ha_integration_test, fleet_config_integration_test): its data in DIR/etcd, client
// and peer URLs on free loopback ports, its log in DIR/etcd.log, killed when the Proc goes.
// The targets define ETCD_BIN (scripts/install-deps.sh installs etcd-server).
#pragma once

#include <unistd.h>

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "e2e_process.h"

namespace llmgw::e2e {

struct EtcdProcess {
  std::unique_ptr<Proc> proc;
  int port = 0;          // the client port
  std::string endpoint;  // the client URL: http(s)://127.0.0.1:<port>
};

// Why the etcd tests cannot run here (for GTEST_SKIP), or "" when they can.
inline std::string EtcdMissing() {
  return access(ETCD_BIN, X_OK) == 0 ? std::string()
                                     : std::string(ETCD_BIN) + " missing: scripts/install-deps.sh installs etcd-server";
}

// Starts etcd (not yet waited for: each test checks readiness its own way). tls: the
// client URL is https with DIR/server.crt and DIR/server.key, client certificates signed
// by DIR/ca.crt required.
inline EtcdProcess StartEtcdProcess(const std::string& dir, bool tls = false) {
  EtcdProcess e;
  e.port = FreePort();
  // Appends, not "literal" + std::string: GCC 12 -O3 reports a false -Wrestrict on those.
  std::string peer_url = "http://127.0.0.1:";
  peer_url += std::to_string(FreePort());
  e.endpoint = tls ? "https" : "http";
  e.endpoint += "://127.0.0.1:";
  e.endpoint += std::to_string(e.port);
  std::string cluster = "t=";
  cluster += peer_url;
  std::vector<std::string> argv{ETCD_BIN, "--name", "t", "--data-dir", dir + "/etcd", "--listen-client-urls",
                                e.endpoint, "--advertise-client-urls", e.endpoint, "--listen-peer-urls", peer_url,
                                "--initial-advertise-peer-urls", peer_url, "--initial-cluster", cluster};
  if (tls) {
    for (auto [flag, file] : {std::pair<const char*, const char*>{"--cert-file=", "/server.crt"},
                              {"--key-file=", "/server.key"},
                              {"--trusted-ca-file=", "/ca.crt"}}) {
      std::string a = flag;
      a += dir;
      a += file;
      argv.push_back(a);
    }
    argv.push_back("--client-cert-auth");
  }
  e.proc = std::make_unique<Proc>(argv, dir + "/etcd.log", false);
  return e;
}

}  // namespace llmgw::e2e
