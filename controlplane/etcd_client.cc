// etcd v3 over its JSON gateway with libcurl; JSON with rapidjson. int64 fields come as
// strings in the gateway's JSON (proto3's JSON mapping), missing when 0.
#include "controlplane/etcd_client.h"

#include <curl/curl.h>
#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>

namespace llmgw::cp {

namespace {

const char kB64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

int64_t Int(const rapidjson::Value& obj, const char* name) {
  if (!obj.IsObject()) return 0;
  auto it = obj.FindMember(name);
  if (it == obj.MemberEnd()) return 0;
  if (it->value.IsString()) return std::strtoll(it->value.GetString(), nullptr, 10);
  if (it->value.IsInt64()) return it->value.GetInt64();
  return 0;
}

std::string Str(const rapidjson::Value& obj, const char* name) {
  if (!obj.IsObject()) return {};
  auto it = obj.FindMember(name);
  return it != obj.MemberEnd() && it->value.IsString() ? std::string(it->value.GetString(), it->value.GetStringLength())
                                                       : std::string();
}

bool ReadKv(const rapidjson::Value& v, EtcdKeyValue* out) {
  if (!Base64Decode(Str(v, "key"), &out->key) || !Base64Decode(Str(v, "value"), &out->value)) return false;
  out->lease = Int(v, "lease");
  out->create_revision = Int(v, "create_revision");
  out->mod_revision = Int(v, "mod_revision");
  return true;
}

// {"k":"v",...} from pairs whose values are already JSON.
std::string Obj(std::initializer_list<std::pair<const char*, std::string>> kv) {
  std::string s = "{";
  for (const auto& [k, v] : kv) {
    if (s.size() > 1) s += ',';
    s += '"';
    s += k;
    s += "\":";
    s += v;
  }
  return s + "}";
}
std::string Q(const std::string& s) { return "\"" + s + "\""; }  // base64 and digits only

// The key right after every key with this prefix (etcd's range_end for a prefix).
std::string PrefixEnd(std::string p) {
  while (!p.empty()) {
    if (static_cast<unsigned char>(p.back()) < 0xff) {
      p.back() = static_cast<char>(p.back() + 1);
      return p;
    }
    p.pop_back();
  }
  return std::string(1, '\0');
}

size_t Collect(char* data, size_t size, size_t n, void* out) {
  auto* s = static_cast<std::string*>(out);
  if (s->size() > (4u << 20)) return 0;  // an etcd answer we asked for is small
  s->append(data, size * n);
  return size * n;
}

// etcd's answer, shortened (an Error holds 160 characters); the one refusal that puzzles
// operators is said in words that tell what to do.
std::string Answer(long status, const std::string& body) {
  if (body.find("CommonName of client") != std::string::npos)
    return std::to_string(status) + ", with auth on etcd's gateway refuses a client certificate with a CN: use one without";
  std::string s = std::to_string(status) + " " + body.substr(0, 100);
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

Error EtcdError(const char* fmt, const std::string& a, const std::string& b = {}) {
  return Error(ErrorKind::kIo, ErrorSide::kUpstream, true, fmt, a.c_str(), b.c_str());
}

}  // namespace

std::string Base64Encode(const std::string& in) {
  std::string out;
  out.reserve((in.size() + 2) / 3 * 4);
  size_t i = 0;
  for (; i + 2 < in.size(); i += 3) {
    uint32_t v = (uint8_t(in[i]) << 16) | (uint8_t(in[i + 1]) << 8) | uint8_t(in[i + 2]);
    for (int s = 18; s >= 0; s -= 6) out += kB64[(v >> s) & 63];
  }
  if (i + 1 == in.size()) {
    uint32_t v = uint8_t(in[i]) << 16;
    out += kB64[(v >> 18) & 63];
    out += kB64[(v >> 12) & 63];
    out += "==";
  } else if (i + 2 == in.size()) {
    uint32_t v = (uint8_t(in[i]) << 16) | (uint8_t(in[i + 1]) << 8);
    out += kB64[(v >> 18) & 63];
    out += kB64[(v >> 12) & 63];
    out += kB64[(v >> 6) & 63];
    out += '=';
  }
  return out;
}

bool Base64Decode(const std::string& in, std::string* out) {
  out->clear();
  uint32_t acc = 0;
  int bits = 0;
  for (char c : in) {
    if (c == '=') break;
    const char* p = std::strchr(kB64, c);
    if (!p || c == 0) return false;
    acc = (acc << 6) | static_cast<uint32_t>(p - kB64);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out->push_back(static_cast<char>((acc >> bits) & 0xff));
    }
  }
  return true;
}

EtcdClient::EtcdClient(std::vector<std::string> endpoints, uint32_t timeout_ms)
    : endpoints_(std::move(endpoints)), timeout_ms_(timeout_ms) {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
  curl_ = curl_easy_init();
}

EtcdClient::EtcdClient(const EtcdConfig& cfg, uint32_t timeout_ms) : EtcdClient(cfg.endpoints, timeout_ms) {
  tls_auth_ = cfg;
}

EtcdClient::~EtcdClient() {
  if (curl_) curl_easy_cleanup(static_cast<CURL*>(curl_));
}

Result<std::string> EtcdClient::Post(const std::string& path, const std::string& body, long* status) {
  CURL* c = static_cast<CURL*>(curl_);
  std::string last_error;
  for (size_t attempt = 0; attempt < endpoints_.size(); ++attempt) {
    size_t idx = (current_ + attempt) % endpoints_.size();
    std::string url = endpoints_[idx] + path, resp;
    curl_easy_reset(c);
    curl_slist* headers = curl_slist_append(nullptr, "Content-Type: application/json");
    // etcd's gateway passes Authorization on as the token (no "Bearer").
    if (!token_.empty()) headers = curl_slist_append(headers, ("Authorization: " + token_).c_str());
    curl_easy_setopt(c, CURLOPT_URL, url.c_str());
    curl_easy_setopt(c, CURLOPT_POST, 1L);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body.c_str());
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, static_cast<long>(body.size()));
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, static_cast<long>(timeout_ms_));
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(timeout_ms_));
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    if (!tls_auth_.ca_file.empty()) curl_easy_setopt(c, CURLOPT_CAINFO, tls_auth_.ca_file.c_str());
    if (!tls_auth_.client_cert_file.empty()) {
      curl_easy_setopt(c, CURLOPT_SSLCERT, tls_auth_.client_cert_file.c_str());
      curl_easy_setopt(c, CURLOPT_SSLKEY, tls_auth_.client_key_file.c_str());
    }
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, Collect);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &resp);
    CURLcode rc = curl_easy_perform(c);
    *status = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, status);
    curl_slist_free_all(headers);
    if (rc != CURLE_OK) {
      last_error = endpoints_[idx] + ": " + curl_easy_strerror(rc);
      continue;
    }
    current_ = idx;
    return resp;
  }
  return EtcdError("etcd unreachable: %s%s", last_error, "");
}

Status EtcdClient::Authenticate() {
  std::ifstream in(tls_auth_.password_file);
  if (!in) return EtcdError("etcd: cannot read fleet.etcd.password_file %s: %s", tls_auth_.password_file, std::strerror(errno));
  std::string password;
  std::getline(in, password);
  while (!password.empty() && (password.back() == '\r' || password.back() == ' ')) password.pop_back();
  rapidjson::StringBuffer buf;
  rapidjson::Writer<rapidjson::StringBuffer> w(buf);  // escapes what the user and password hold
  w.StartObject();
  w.Key("name");
  w.String(tls_auth_.username.c_str(), static_cast<rapidjson::SizeType>(tls_auth_.username.size()));
  w.Key("password");
  w.String(password.c_str(), static_cast<rapidjson::SizeType>(password.size()));
  w.EndObject();
  token_.clear();
  long status = 0;
  auto r = Post("/v3/auth/authenticate", buf.GetString(), &status);
  if (!r.ok()) return r.error();
  if (status != 200)  // the password never appears in the message
    return EtcdError("etcd refused user '%s': %s", tls_auth_.username, Answer(status, r.value()));
  rapidjson::Document d;
  d.Parse(r.value().c_str());
  token_ = d.HasParseError() ? std::string() : Str(d, "token");
  if (token_.empty()) return EtcdError("etcd: authenticate gave no token for user '%s'%s", tls_auth_.username);
  return Status::Ok();
}

Result<std::string> EtcdClient::Call(const std::string& path, const std::string& body) {
  std::lock_guard<std::mutex> l(mu_);
  if (!curl_ || endpoints_.empty()) return EtcdError("etcd: no client%s%s", "", "");
  bool auth = !tls_auth_.username.empty();
  for (int round = 0; round < 2; ++round) {
    if (auth && token_.empty()) {
      Status st = Authenticate();
      if (!st.ok()) return st.error();
    }
    long status = 0;
    auto r = Post(path, body, &status);
    if (!r.ok()) return r;
    if (status == 200) return r;
    // An expired or forgotten token: etcd says so (401 through the gateway, or its
    // "invalid auth token" / "user name is empty" errors); ask for a new one once.
    bool token_refused = status == 401 || r.value().find("auth token") != std::string::npos ||
                         r.value().find("user name is empty") != std::string::npos;
    if (auth && token_refused && round == 0) {
      token_.clear();
      continue;
    }
    // etcd answered: an error of the request itself, no use asking another member.
    return EtcdError("etcd %s: %s", path, Answer(status, r.value()));
  }
  return EtcdError("etcd %s: %s", path, "token refused twice");
}

namespace {
Result<rapidjson::Document> Parse(const Result<std::string>& r) {
  if (!r.ok()) return r.error();
  rapidjson::Document d;
  d.Parse(r.value().c_str());
  if (d.HasParseError() || !d.IsObject())
    return Error(ErrorKind::kIo, ErrorSide::kUpstream, true, "etcd: answer is not a JSON object");
  return d;
}
}  // namespace

Result<int64_t> EtcdClient::LeaseGrant(int64_t ttl_s) {
  auto d = Parse(Call("/v3/lease/grant", Obj({{"TTL", Q(std::to_string(ttl_s))}})));
  if (!d.ok()) return d.error();
  int64_t id = Int(d.value(), "ID");
  if (id == 0) return Error(ErrorKind::kIo, ErrorSide::kUpstream, true, "etcd: lease grant without an ID");
  return id;
}

Result<int64_t> EtcdClient::LeaseKeepAlive(int64_t id) {
  // The gateway streams keepalive answers; one request gets one {"result":{...}}.
  auto d = Parse(Call("/v3/lease/keepalive", Obj({{"ID", Q(std::to_string(id))}})));
  if (!d.ok()) return d.error();
  auto it = d.value().FindMember("result");
  if (it == d.value().MemberEnd()) return int64_t{0};
  return Int(it->value, "TTL");
}

Status EtcdClient::LeaseRevoke(int64_t id) {
  auto r = Call("/v3/lease/revoke", Obj({{"ID", Q(std::to_string(id))}}));
  if (!r.ok()) return r.error();
  return Status::Ok();
}

Status EtcdClient::Put(const std::string& key, const std::string& value, int64_t lease) {
  auto r = Call("/v3/kv/put", Obj({{"key", Q(Base64Encode(key))},
                                   {"value", Q(Base64Encode(value))},
                                   {"lease", Q(std::to_string(lease))}}));
  if (!r.ok()) return r.error();
  return Status::Ok();
}

// "[x]": built by appends — GCC 12 at -O3 warns -Wrestrict (a false positive) on
// "[" + std::string, which the Release build makes an error.
static std::string Arr(const std::string& x) {
  std::string s;
  s.reserve(x.size() + 2);
  s += '[';
  s += x;
  s += ']';
  return s;
}

Result<bool> EtcdClient::CreateIfAbsent(const std::string& key, const std::string& value, int64_t lease,
                                        std::optional<EtcdKeyValue>* current) {
  std::string k = Q(Base64Encode(key));
  std::string body =
      Obj({{"compare", Arr(Obj({{"key", k}, {"target", Q("CREATE")}, {"create_revision", Q("0")}}))},
           {"success", Arr(Obj({{"request_put", Obj({{"key", k}, {"value", Q(Base64Encode(value))},
                                                       {"lease", Q(std::to_string(lease))}})}}))},
           {"failure", Arr(Obj({{"request_range", Obj({{"key", k}})}}))}});
  auto d = Parse(Call("/v3/kv/txn", body));
  if (!d.ok()) return d.error();
  const auto& doc = d.value();
  auto s = doc.FindMember("succeeded");
  if (s != doc.MemberEnd() && s->value.IsBool() && s->value.GetBool()) return true;
  if (current) {
    current->reset();
    auto resps = doc.FindMember("responses");
    if (resps != doc.MemberEnd() && resps->value.IsArray() && !resps->value.Empty()) {
      const auto& rr = resps->value[0];
      auto range = rr.FindMember("response_range");
      if (range != rr.MemberEnd()) {
        auto kvs = range->value.FindMember("kvs");
        if (kvs != range->value.MemberEnd() && kvs->value.IsArray() && !kvs->value.Empty()) {
          EtcdKeyValue kv;
          if (ReadKv(kvs->value[0], &kv)) *current = kv;
        }
      }
    }
  }
  return false;
}

Result<std::optional<EtcdKeyValue>> EtcdClient::Get(const std::string& key) {
  auto d = Parse(Call("/v3/kv/range", Obj({{"key", Q(Base64Encode(key))}})));
  if (!d.ok()) return d.error();
  std::optional<EtcdKeyValue> out;
  auto kvs = d.value().FindMember("kvs");
  if (kvs != d.value().MemberEnd() && kvs->value.IsArray() && !kvs->value.Empty()) {
    EtcdKeyValue kv;
    if (!ReadKv(kvs->value[0], &kv)) return Error(ErrorKind::kIo, ErrorSide::kUpstream, true, "etcd: bad base64");
    out = kv;
  }
  return out;
}

Result<std::vector<EtcdKeyValue>> EtcdClient::GetPrefix(const std::string& prefix) {
  auto d = Parse(Call("/v3/kv/range",
                      Obj({{"key", Q(Base64Encode(prefix))}, {"range_end", Q(Base64Encode(PrefixEnd(prefix)))}})));
  if (!d.ok()) return d.error();
  std::vector<EtcdKeyValue> out;
  auto kvs = d.value().FindMember("kvs");
  if (kvs != d.value().MemberEnd() && kvs->value.IsArray())
    for (const auto& v : kvs->value.GetArray()) {
      EtcdKeyValue kv;
      if (ReadKv(v, &kv)) out.push_back(std::move(kv));
    }
  return out;
}

Status EtcdClient::DeleteIfValue(const std::string& key, const std::string& value) {
  std::string k = Q(Base64Encode(key));
  std::string body =
      Obj({{"compare", Arr(Obj({{"key", k}, {"target", Q("VALUE")}, {"value", Q(Base64Encode(value))}}))},
           {"success", Arr(Obj({{"request_delete_range", Obj({{"key", k}})}}))}});
  auto r = Call("/v3/kv/txn", body);
  if (!r.ok()) return r.error();
  return Status::Ok();
}

}  // namespace llmgw::cp
