// etcd v3 for llmcd's HA fleet, through etcd's JSON gateway (POST /v3/..., keys and values
// base64) over libcurl: the few calls the leader election and agent discovery need.
// EtcdKv is the interface the election is written against, so its logic is unit-tested
// on a fake (tests/controlplane/election_test.cc); EtcdClient is the real one: http:// or
// https:// (fleet.etcd.ca_file, client certificate), and with etcd's auth enabled a token
// from /v3/auth/authenticate (fleet.etcd.username / password_file) on every call.
#pragma once

#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "common/config.h"
#include "common/error.h"

namespace llmgw::cp {

struct EtcdKeyValue {
  std::string key, value;
  int64_t lease = 0;
  int64_t create_revision = 0, mod_revision = 0;
};

class EtcdKv {
 public:
  virtual ~EtcdKv() = default;
  // A lease of ttl_s seconds; its id.
  virtual Result<int64_t> LeaseGrant(int64_t ttl_s) = 0;
  // Renews it; the remaining TTL in seconds, 0 when the lease is gone (expired, revoked).
  virtual Result<int64_t> LeaseKeepAlive(int64_t id) = 0;
  virtual Status LeaseRevoke(int64_t id) = 0;
  virtual Status Put(const std::string& key, const std::string& value, int64_t lease) = 0;
  // Creates key = value (attached to lease) only when the key does not exist. True when
  // created; false (and *current, if given, set) when someone else holds it.
  virtual Result<bool> CreateIfAbsent(const std::string& key, const std::string& value, int64_t lease,
                                      std::optional<EtcdKeyValue>* current) = 0;
  virtual Result<std::optional<EtcdKeyValue>> Get(const std::string& key) = 0;
  virtual Result<std::vector<EtcdKeyValue>> GetPrefix(const std::string& prefix) = 0;
  // Deletes key only while its value is `value` (a leader resigning its own key).
  virtual Status DeleteIfValue(const std::string& key, const std::string& value) = 0;
};

std::string Base64Encode(const std::string& in);
// False on characters outside the alphabet.
bool Base64Decode(const std::string& in, std::string* out);

class EtcdClient final : public EtcdKv {
 public:
  // endpoints: http://HOST:PORT of the members; a call tries them in turn, starting with
  // the last that answered. timeout_ms bounds each HTTP request.
  EtcdClient(std::vector<std::string> endpoints, uint32_t timeout_ms);
  // With fleet.etcd's TLS and auth settings.
  EtcdClient(const EtcdConfig& cfg, uint32_t timeout_ms);
  ~EtcdClient() override;
  EtcdClient(const EtcdClient&) = delete;
  EtcdClient& operator=(const EtcdClient&) = delete;

  Result<int64_t> LeaseGrant(int64_t ttl_s) override;
  Result<int64_t> LeaseKeepAlive(int64_t id) override;
  Status LeaseRevoke(int64_t id) override;
  Status Put(const std::string& key, const std::string& value, int64_t lease) override;
  Result<bool> CreateIfAbsent(const std::string& key, const std::string& value, int64_t lease,
                              std::optional<EtcdKeyValue>* current) override;
  Result<std::optional<EtcdKeyValue>> Get(const std::string& key) override;
  Result<std::vector<EtcdKeyValue>> GetPrefix(const std::string& prefix) override;
  Status DeleteIfValue(const std::string& key, const std::string& value) override;

 private:
  // POSTs body to path on a member; the response body (a JSON object) or an error. With
  // auth: authenticates first when there is no token, and again once when etcd answers
  // that the token is no longer valid (tokens expire, a restarted etcd forgets them).
  Result<std::string> Call(const std::string& path, const std::string& body);
  // One POST, trying the members in turn; *status is etcd's HTTP status. mu_ held.
  Result<std::string> Post(const std::string& path, const std::string& body, long* status);
  Status Authenticate();  // mu_ held
  std::vector<std::string> endpoints_;
  uint32_t timeout_ms_;
  EtcdConfig tls_auth_;  // ca_file, client cert, username, password_file
  std::string token_;    // etcd auth token; empty = none yet
  std::mutex mu_;  // one call at a time on the reused handle
  void* curl_ = nullptr;
  size_t current_ = 0;
};

}  // namespace llmgw::cp
