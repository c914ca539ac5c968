// UpstreamTlsContexts: contexts follow the snapshot's TLS fingerprints slot by slot, are
// kept when nothing changed (so pooled connections and resumption survive a reload), and
// a context that cannot be built leaves the slot with the reason.
#include "dataplane/upstream_tls.h"

#include <gtest/gtest.h>

#include <cstring>
#include <memory>

#include "tests/tls/test_pki.h"

namespace llmgw::dataplane {
namespace {

void SetTls(shm::Snapshot* s, uint32_t slot, const std::string& ca, uint64_t fp) {
  s->backends[slot].state = static_cast<uint8_t>(shm::BackendState::kHealthy);
  s->backends[slot].tls = 1;
  s->backends[slot].key = 100 + slot;
  std::strncpy(s->upstreams[slot].ca_file, ca.c_str(), sizeof s->upstreams[slot].ca_file - 1);
  s->upstreams[slot].tls_verify = 1;
  s->upstreams[slot].tls_fingerprint = fp;
  if (s->num_backends < slot + 1) s->num_backends = slot + 1;
}

TEST(UpstreamTlsContextsTest, FollowsFingerprintsAndKeepsUnchangedContexts) {
  llmgw::test::TestPki pki;
  ASSERT_TRUE(pki.ok()) << pki.error();
  auto s = std::make_unique<shm::Snapshot>();
  std::memset(static_cast<void*>(s.get()), 0, sizeof(shm::Snapshot));
  s->backends[0].state = static_cast<uint8_t>(shm::BackendState::kHealthy);  // plain http
  SetTls(s.get(), 1, pki.ca_cert(), 11);
  SetTls(s.get(), 2, pki.ca_cert(), 22);
  UpstreamTlsContexts t;
  EXPECT_EQ(t.Sync(*s), 2u);
  EXPECT_EQ(t.Get(0), nullptr);
  ASSERT_NE(t.Get(1), nullptr);
  ASSERT_NE(t.Get(2), nullptr);
  const TlsClientContext* kept = t.Get(1);
  for (uint32_t slot : {1u, 2u}) {
    SSL_SESSION* session = SSL_SESSION_new();
    t.sessions()->Put(t.SessionKey(slot), session);
    SSL_SESSION_free(session);  // the cache keeps its own reference
  }
  EXPECT_EQ(t.Sync(*s), 0u);  // nothing changed: nothing rebuilt
  EXPECT_EQ(t.Get(1), kept);

  SetTls(s.get(), 2, pki.dir() + "/missing.pem", 23);
  EXPECT_EQ(t.Sync(*s), 1u);
  EXPECT_EQ(t.Get(1), kept);
  EXPECT_NE(t.sessions()->Get(t.SessionKey(1)), nullptr);  // its session survives
  EXPECT_EQ(t.Get(2), nullptr);
  EXPECT_FALSE(t.status(2).ok());
  EXPECT_NE(std::string(t.status(2).error().message()).find("missing.pem"), std::string::npos);
  EXPECT_EQ(t.sessions()->size(), 1u);  // slot 2's session went with its old settings

  s->backends[1].state = static_cast<uint8_t>(shm::BackendState::kEmpty);  // removed backend
  EXPECT_EQ(t.Sync(*s), 1u);
  EXPECT_EQ(t.Get(1), nullptr);
  EXPECT_EQ(t.sessions()->size(), 0u);
}

}  // namespace
}  // namespace llmgw::dataplane
