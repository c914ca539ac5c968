// HttpGet (libcurl) against real servers on loopback: plain HTTP, HTTPS verified against a
// throwaway CA, the refusals an operator must be able to tell apart (unknown CA, wrong
// name, missing client certificate), SNI via tls.server_name, extra headers (provider
// keys), the body cap, the deadline and cancellation.
#include "controlplane/http_client.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <thread>

#include "test_http_server.h"
#include "tests/tls/test_pki.h"
#include "tests/tls/tls_http_server.h"

namespace llmgw::cp {
namespace {

using testing::TestHttpServer;
using testing::TestResponse;
using llmgw::test::TestPki;
using llmgw::test::TlsHttpServer;

HttpTarget Loopback(uint16_t port, const std::string& host = "127.0.0.1") {
  HttpTarget t;
  auto* sa = reinterpret_cast<sockaddr_in*>(&t.addr);
  sa->sin_family = AF_INET;
  sa->sin_port = htons(port);
  sa->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  t.addr_len = sizeof(sockaddr_in);
  t.host_header = host + ":" + std::to_string(port);
  return t;
}

TEST(HttpClientTest, PlainGetReturnsStatusAndBody) {
  TestHttpServer s([](const std::string& path) {
    return path == "/health" ? TestResponse{200, "fine"} : TestResponse{404, "no"};
  });
  HttpResponse r = HttpGet(Loopback(s.port()), "/health", 2000);
  ASSERT_TRUE(r.ok()) << r.error;
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "fine");
  r = HttpGet(Loopback(s.port()), "/other", 2000);
  ASSERT_TRUE(r.ok()) << r.error;
  EXPECT_EQ(r.status, 404);
}

TEST(HttpClientTest, RefusedConnectionSaysConnect) {
  uint16_t port;
  {
    TestHttpServer s([](const std::string&) { return TestResponse{}; });
    port = s.port();
  }
  HttpResponse r = HttpGet(Loopback(port), "/health", 2000);
  EXPECT_FALSE(r.ok());
  EXPECT_EQ(r.error.rfind("connect: ", 0), 0u) << r.error;
}

TEST(HttpClientTest, BodyOverTheCapIsRefused) {
  TestHttpServer s([](const std::string&) { return TestResponse{200, std::string(100000, 'x')}; });
  HttpResponse r = HttpGet(Loopback(s.port()), "/metrics", 2000, 1000);
  EXPECT_FALSE(r.ok());
  EXPECT_EQ(r.error, "response too large");
}

TEST(HttpClientTest, HungBackendTimesOutAndCancelIsPrompt) {
  TestHttpServer s([](const std::string&) { return TestResponse{200, "late", 3000}; });
  auto t0 = std::chrono::steady_clock::now();
  HttpResponse r = HttpGet(Loopback(s.port()), "/health", 300);
  auto ms = [&] {
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0).count();
  };
  EXPECT_FALSE(r.ok());
  EXPECT_NE(r.error.find("timeout"), std::string::npos) << r.error;
  EXPECT_LT(ms(), 2000);

  std::atomic<bool> cancel{false};
  std::thread canceller([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    cancel = true;
  });
  t0 = std::chrono::steady_clock::now();
  r = HttpGet(Loopback(s.port()), "/health", 10000, 1 << 20, &cancel);
  canceller.join();
  EXPECT_EQ(r.error, "cancelled");
  EXPECT_LT(ms(), 1000);
}

class HttpsClientTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(pki_.ok()) << pki_.error(); }
  HttpTarget Https(uint16_t port, const std::string& host = "backend.test") {
    HttpTarget t = Loopback(port, host);
    t.tls = true;
    t.tls_options.ca_file = pki_.ca_cert();
    return t;
  }
  TestPki pki_;
};

TlsHttpServer::Answer Models(const std::string&) { return {200, "{\"object\":\"list\",\"data\":[]}"}; }

TEST_F(HttpsClientTest, VerifiedAgainstCaFileWithSniAndExtraHeaders) {
  TlsHttpServer s(pki_.server_cert(), pki_.server_key(), Models);
  ASSERT_TRUE(s.ok());
  HttpTarget t = Https(s.port());
  t.headers = {"api-key: k-123"};
  HttpResponse r = HttpGet(t, "/openai/models?api-version=2024-10-21", 3000);
  ASSERT_TRUE(r.ok()) << r.error;
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "{\"object\":\"list\",\"data\":[]}");
  ASSERT_EQ(s.heads().size(), 1u);
  const std::string head = s.heads()[0];
  EXPECT_EQ(head.rfind("GET /openai/models?api-version=2024-10-21 HTTP/1.1\r\n", 0), 0u) << head;
  EXPECT_NE(head.find("\r\napi-key: k-123\r\n"), std::string::npos) << head;
  EXPECT_NE(head.find("\r\nHost: backend.test:" + std::to_string(s.port()) + "\r\n"), std::string::npos) << head;
  EXPECT_EQ(s.server_names()[0], "backend.test");
}

TEST_F(HttpsClientTest, UnknownCaIsRefusedWithAClearError) {
  TlsHttpServer s(pki_.rogue_cert(), pki_.rogue_key(), Models);
  HttpResponse r = HttpGet(Https(s.port(), "localhost"), "/v1/models", 3000);
  EXPECT_FALSE(r.ok());
  EXPECT_EQ(r.error.rfind("tls: the backend's certificate was refused", 0), 0u) << r.error;
  EXPECT_TRUE(s.heads().empty());
}

TEST_F(HttpsClientTest, NameNotOnTheCertificateIsRefused) {
  TlsHttpServer s(pki_.server_cert(), pki_.server_key(), Models);
  HttpResponse r = HttpGet(Https(s.port(), "other.test"), "/v1/models", 3000);
  EXPECT_FALSE(r.ok());
  EXPECT_EQ(r.error.rfind("tls: the backend's certificate was refused", 0), 0u) << r.error;
}

TEST_F(HttpsClientTest, ServerNameGivesSniAndCheckedNameForAnAddressUrl) {
  TlsHttpServer s(pki_.server_cert(), pki_.server_key(), Models);
  HttpTarget t = Https(s.port(), "127.0.0.2");  // an address not on the certificate
  t.tls_options.server_name = "backend.test";
  HttpResponse r = HttpGet(t, "/v1/models", 3000);
  ASSERT_TRUE(r.ok()) << r.error;
  EXPECT_EQ(s.server_names()[0], "backend.test");
  // The Host header stays the configured backend's.
  EXPECT_NE(s.heads()[0].find("\r\nHost: 127.0.0.2:" + std::to_string(s.port()) + "\r\n"), std::string::npos);
}

TEST_F(HttpsClientTest, VerifyOffAcceptsAnyCertificate) {
  TlsHttpServer s(pki_.rogue_cert(), pki_.rogue_key(), Models);
  HttpTarget t = Https(s.port(), "localhost");
  t.tls_options.verify = false;
  t.tls_options.ca_file.clear();
  HttpResponse r = HttpGet(t, "/v1/models", 3000);
  ASSERT_TRUE(r.ok()) << r.error;
  EXPECT_EQ(r.status, 200);
}

TEST_F(HttpsClientTest, ClientCertificateWhenTheBackendAsksForOne) {
  TlsHttpServer s(pki_.server_cert(), pki_.server_key(), Models, pki_.ca_cert());
  HttpResponse without = HttpGet(Https(s.port()), "/v1/models", 3000);
  EXPECT_FALSE(without.ok());
  HttpTarget t = Https(s.port());
  t.tls_options.client_cert_file = pki_.client_cert();
  t.tls_options.client_key_file = pki_.client_key();
  HttpResponse with = HttpGet(t, "/v1/models", 3000);
  ASSERT_TRUE(with.ok()) << with.error;
  EXPECT_EQ(with.status, 200);
  t.tls_options.ca_file = pki_.dir() + "/missing.pem";
  HttpResponse bad_ca = HttpGet(t, "/v1/models", 3000);
  EXPECT_EQ(bad_ca.error.rfind("tls: cannot load tls.ca_file", 0), 0u) << bad_ca.error;
}

}  // namespace
}  // namespace llmgw::cp
