// Throwaway certificates for TLS tests, made with the openssl CLI in a fresh temp dir: a
// test CA, a server certificate for "localhost", "backend.test" and 127.0.0.1 signed by
// it, a client certificate signed by it, and a self-signed "rogue" server certificate no
// test trusts. Removed when the object goes away. Nothing here resolves names or leaves
// the machine.
#pragma once

#include <stdlib.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <string>

namespace llmgw::test {

class TestPki {
 public:
  TestPki() {
    char tmpl[] = "/tmp/llmgw-pki-XXXXXX";
    if (!mkdtemp(tmpl)) { error_ = "mkdtemp failed"; return; }
    dir_ = tmpl;
    std::ofstream(dir_ + "/server.ext") << "subjectAltName=DNS:localhost,DNS:backend.test,IP:127.0.0.1\n"
                                           "extendedKeyUsage=serverAuth\n";
    std::ofstream(dir_ + "/client.ext") << "extendedKeyUsage=clientAuth\n";
    const std::string d = dir_;
    const std::string ec = " -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes ";
    const std::string cmds[] = {
        "openssl req -x509" + ec + "-keyout " + d + "/ca.key -out " + d + "/ca.crt -days 2 -subj /CN=llmgw-test-ca",
        "openssl req" + ec + "-keyout " + d + "/server.key -out " + d + "/server.csr -subj /CN=localhost",
        "openssl x509 -req -in " + d + "/server.csr -CA " + d + "/ca.crt -CAkey " + d + "/ca.key -CAcreateserial -out " +
            d + "/server.crt -days 2 -extfile " + d + "/server.ext",
        "openssl req" + ec + "-keyout " + d + "/client.key -out " + d + "/client.csr -subj /CN=llmgw-test-client",
        "openssl x509 -req -in " + d + "/client.csr -CA " + d + "/ca.crt -CAkey " + d + "/ca.key -CAcreateserial -out " +
            d + "/client.crt -days 2 -extfile " + d + "/client.ext",
        "openssl req -x509" + ec + "-keyout " + d + "/rogue.key -out " + d + "/rogue.crt -days 2 -subj /CN=localhost "
            "-addext subjectAltName=DNS:localhost,IP:127.0.0.1",
    };
    for (const auto& c : cmds) {
      if (std::system((c + " >/dev/null 2>&1").c_str()) != 0) {
        error_ = "failed: " + c;
        return;
      }
    }
  }
  ~TestPki() {
    if (!dir_.empty()) std::system(("rm -rf '" + dir_ + "'").c_str());
  }
  TestPki(const TestPki&) = delete;
  TestPki& operator=(const TestPki&) = delete;

  bool ok() const { return error_.empty(); }
  const std::string& error() const { return error_; }
  const std::string& dir() const { return dir_; }
  std::string ca_cert() const { return dir_ + "/ca.crt"; }
  std::string server_cert() const { return dir_ + "/server.crt"; }
  std::string server_key() const { return dir_ + "/server.key"; }
  std::string client_cert() const { return dir_ + "/client.crt"; }
  std::string client_key() const { return dir_ + "/client.key"; }
  std::string rogue_cert() const { return dir_ + "/rogue.crt"; }
  std::string rogue_key() const { return dir_ + "/rogue.key"; }

 private:
  std::string dir_;
  std::string error_;
};

}  // namespace llmgw::test
