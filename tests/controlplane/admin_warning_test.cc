// When llmcd warns at start that the admin token would cross the network in plaintext
// (issue 17: it was accepted without a word on a non-loopback address without TLS).
#include <gtest/gtest.h>

#include <string>

#include "controlplane/auth.h"

namespace llmgw::cp {
namespace {

AdminConfig Admin(const std::string& listen, bool token, bool tls) {
  AdminConfig a;
  a.grpc_listen = listen;
  if (token) a.token_file = "/etc/llmgw/token";
  if (tls) {
    a.tls_cert_file = "/etc/llmgw/cert.pem";
    a.tls_key_file = "/etc/llmgw/key.pem";
  }
  return a;
}

TEST(AdminWarningTest, TokenOnANetworkAddressWithoutTlsWarns) {
  for (const char* listen : {"0.0.0.0:9090", "10.1.2.3:9090", "[::]:9090", "gw.example:9090"}) {
    std::string w = PlaintextTokenWarning(Admin(listen, true, false));
    EXPECT_NE(w.find("plaintext"), std::string::npos) << listen;
    EXPECT_NE(w.find(listen), std::string::npos) << w;
    EXPECT_NE(w.find("admin.tls_cert_file"), std::string::npos) << w;
  }
}

TEST(AdminWarningTest, NoWarningWhenTheTokenStaysLocalOrIsEncrypted) {
  EXPECT_EQ(PlaintextTokenWarning(Admin("127.0.0.1:9090", true, false)), "");
  EXPECT_EQ(PlaintextTokenWarning(Admin("[::1]:9090", true, false)), "");
  EXPECT_EQ(PlaintextTokenWarning(Admin("localhost:9090", true, false)), "");
  EXPECT_EQ(PlaintextTokenWarning(Admin("0.0.0.0:9090", true, true)), "");
  EXPECT_EQ(PlaintextTokenWarning(Admin("0.0.0.0:9090", false, false)), "");  // refused elsewhere
}

TEST(AdminWarningTest, FleetAgentSendingItsTokenToARemoteControllerWarns) {
  AdminConfig a = Admin("127.0.0.1:9090", true, true);
  std::string w = PlaintextTokenWarning(a, "10.0.0.5:9090");
  EXPECT_NE(w.find("10.0.0.5:9090"), std::string::npos) << w;
  EXPECT_NE(w.find("without TLS"), std::string::npos) << w;
  EXPECT_EQ(PlaintextTokenWarning(a, "127.0.0.1:9090"), "");
  EXPECT_EQ(PlaintextTokenWarning(Admin("127.0.0.1:9090", false, false), "10.0.0.5:9090"), "");
}

}  // namespace
}  // namespace llmgw::cp
