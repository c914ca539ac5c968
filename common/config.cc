// Config loader and validator (see config.h). Walks the YAML tree with a fixed schema so
// every unknown key, wrong type or bad value is reported with its file, line and key path
// (yaml-cpp marks are 0-based; we print 1-based). All errors are collected, not just the
// first, so an operator fixes a config in one pass.
#include "common/config.h"
#include "common/env_overrides.h"

#include "common/config_keys.h"

#include <openssl/sha.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <map>
#include <fstream>
#include <set>
#include <sstream>
#include <thread>
#include <variant>

#include "common/utf8.h"

namespace llmgw {

namespace {
constexpr std::string_view kPolicyNames[] = {
    "round_robin", "weighted_round_robin", "least_connections", "least_queue", "capacity",
    "p2c_kv",      "consistent_hash",      "prefix_affinity",   "adaptive"};
constexpr std::string_view kEngineNames[] = {"auto", "vllm", "sglang", "tgi", "llamacpp", "trtllm"};
}  // namespace

std::string_view PolicyName(Policy p) {
  auto i = static_cast<size_t>(p);
  return i < std::size(kPolicyNames) ? kPolicyNames[i] : "unknown";
}
bool ParsePolicy(std::string_view s, Policy* out) {
  for (size_t i = 0; i < std::size(kPolicyNames); ++i) {
    if (s == kPolicyNames[i]) {
      *out = static_cast<Policy>(i);
      return true;
    }
  }
  return false;
}
std::string_view EngineName(Engine e) {
  auto i = static_cast<size_t>(e);
  return i < std::size(kEngineNames) ? kEngineNames[i] : "unknown";
}
bool ParseEngine(std::string_view s, Engine* out) {
  for (size_t i = 0; i < std::size(kEngineNames); ++i) {
    if (s == kEngineNames[i]) {
      *out = static_cast<Engine>(i);
      return true;
    }
  }
  return false;
}

bool ParseHostPort(std::string_view s, std::string* host, uint16_t* port, std::string* why,
                   bool allow_zero_port) {
  size_t colon;
  if (!s.empty() && s[0] == '[') {
    size_t close = s.find(']');
    if (close == std::string_view::npos || close + 1 >= s.size() || s[close + 1] != ':') {
      *why = "expected [IPV6]:PORT";
      return false;
    }
    *host = std::string(s.substr(1, close - 1));
    colon = close + 1;
  } else {
    colon = s.rfind(':');
    if (colon == std::string_view::npos) {
      *why = "expected HOST:PORT";
      return false;
    }
    *host = std::string(s.substr(0, colon));
  }
  if (host->empty()) {
    *why = "empty host";
    return false;
  }
  std::string_view p = s.substr(colon + 1);
  if (p.empty() || p.size() > 5 || !std::all_of(p.begin(), p.end(), ::isdigit)) {
    *why = "port must be a number";
    return false;
  }
  long v = std::strtol(std::string(p).c_str(), nullptr, 10);
  if (v > 65535 || (v == 0 && !allow_zero_port)) {
    *why = "port out of range";
    return false;
  }
  *port = static_cast<uint16_t>(v);
  return true;
}

bool ParseUrl(std::string_view s, Url* out, std::string* why) {
  constexpr std::string_view kHttp = "http://", kHttps = "https://";
  bool tls = s.substr(0, kHttps.size()) == kHttps;
  if (!tls && s.substr(0, kHttp.size()) != kHttp) {
    *why = "URL must start with http:// or https://";
    return false;
  }
  uint16_t default_port = tls ? 443 : 80;
  std::string_view rest = s.substr(tls ? kHttps.size() : kHttp.size());
  size_t slash = rest.find('/');
  std::string_view hostport = rest.substr(0, slash);
  out->path = slash == std::string_view::npos ? "" : std::string(rest.substr(slash));
  while (!out->path.empty() && out->path.back() == '/') out->path.pop_back();
  if (hostport.empty()) {
    *why = "URL has no host";
    return false;
  }
  if (hostport.find('@') != std::string_view::npos) {
    *why = "credentials in the URL (user:password@) are not supported";
    return false;
  }
  if (hostport.find_first_of(" \t?#") != std::string_view::npos) {
    *why = "URL host contains an invalid character";
    return false;
  }
  bool has_port = hostport.back() != ']' && hostport.find(':') != std::string_view::npos;
  if (has_port) {
    if (!ParseHostPort(hostport, &out->host, &out->port, why, false)) return false;
  } else {
    out->host = hostport[0] == '[' ? std::string(hostport.substr(1, hostport.size() - 2))
                                   : std::string(hostport);
    out->port = default_port;
  }
  out->scheme = tls ? "https" : "http";
  return true;
}

std::string RedactUrlCredentials(std::string_view url) {
  size_t scheme = url.find("://");
  size_t start = scheme == std::string_view::npos ? 0 : scheme + 3;
  size_t end = url.find_first_of("/?#", start);
  size_t at = url.substr(start, end == std::string_view::npos ? std::string_view::npos : end - start).rfind('@');
  if (at == std::string_view::npos) return std::string(url);
  return std::string(url.substr(0, start)) + "***" + std::string(url.substr(start + at));
}

uint32_t GatewayConfig::EffectiveThreads() const {
  uint32_t n = threads ? threads : std::thread::hardware_concurrency();
  return n ? n : 1;
}

const ModelConfig* Config::FindModel(std::string_view name_or_alias) const {
  for (const auto& m : models) {
    if (m.name == name_or_alias) return &m;
    for (const auto& a : m.aliases)
      if (a == name_or_alias) return &m;
  }
  return nullptr;
}

std::string ConfigError::ToString() const {
  std::ostringstream os;
  os << file << ":" << line << ": " << key << ": " << message;
  return os.str();
}

std::string ConfigResult::ErrorText() const {
  std::string out;
  for (const auto& e : errors) out += e.ToString() + "\n";
  return out;
}

std::string DidYouMean(std::string_view word, const std::vector<std::string_view>& candidates) {
  // Levenshtein distance; suggest when at most a third of the word differs.
  auto dist = [](std::string_view a, std::string_view b) {
    std::vector<size_t> prev(b.size() + 1), cur(b.size() + 1);
    for (size_t j = 0; j <= b.size(); ++j) prev[j] = j;
    for (size_t i = 1; i <= a.size(); ++i) {
      cur[0] = i;
      for (size_t j = 1; j <= b.size(); ++j) {
        size_t sub = prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1);
        cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, sub});
      }
      std::swap(prev, cur);
    }
    return prev[b.size()];
  };
  std::string best;
  size_t best_d = SIZE_MAX;
  for (auto c : candidates) {
    size_t d = dist(word, c);
    if (d < best_d) {
      best_d = d;
      best = std::string(c);
    }
  }
  size_t limit = std::max<size_t>(2, word.size() / 3);
  return best_d <= limit ? best : std::string();
}

namespace {

class Parser {
 public:
  Parser(std::string_view file, std::vector<ConfigError>* errors) : file_(file), errors_(errors) {}

  void Error(const YAML::Node& n, const std::string& key, const std::string& msg) {
    int line = n.IsDefined() ? n.Mark().line + 1 : 0;
    if (line <= 0) line = last_line_;
    errors_->push_back({file_, line, key, msg});
  }

  static std::string Join(const std::string& path, std::string_view key) {
    return path.empty() ? std::string(key) : path + "." + std::string(key);
  }

  // Checks n is a map and every key is known; returns false when n is not a map.
  bool CheckMap(const YAML::Node& n, const std::string& path,
                const std::vector<std::string_view>& keys) {
    if (!n.IsMap()) {
      Error(n, path, "must be a mapping");
      return false;
    }
    last_line_ = n.Mark().line + 1;
    for (auto it = n.begin(); it != n.end(); ++it) {
      std::string k = it->first.Scalar();
      if (std::find(keys.begin(), keys.end(), k) == keys.end()) {
        std::string hint = DidYouMean(k, keys);
        Error(it->first, Join(path, k),
              "unknown key" + (hint.empty() ? std::string() : " (did you mean '" + hint + "'?)"));
      }
    }
    return true;
  }

  bool Str(const YAML::Node& parent, std::string_view key, const std::string& path,
           std::string* out) {
    YAML::Node n = parent[std::string(key)];
    if (!n.IsDefined() || n.IsNull()) return false;
    if (!n.IsScalar()) {
      Error(n, Join(path, key), "must be a string");
      return false;
    }
    *out = n.Scalar();
    return true;
  }

  bool Bool(const YAML::Node& parent, std::string_view key, const std::string& path, bool* out) {
    YAML::Node n = parent[std::string(key)];
    if (!n.IsDefined() || n.IsNull()) return false;
    const std::string& s = n.IsScalar() ? n.Scalar() : std::string();
    if (s == "true" || s == "yes" || s == "on") {
      *out = true;
    } else if (s == "false" || s == "no" || s == "off") {
      *out = false;
    } else {
      Error(n, Join(path, key), "must be true or false, got '" + s + "'");
      return false;
    }
    return true;
  }

  // Unsigned integer; min_value 1 for durations and counts that must be positive.
  template <typename T>
  bool Uint(const YAML::Node& parent, std::string_view key, const std::string& path, T* out,
            uint64_t min_value, uint64_t max_value = UINT64_MAX) {
    YAML::Node n = parent[std::string(key)];
    if (!n.IsDefined() || n.IsNull()) return false;
    std::string s = n.IsScalar() ? n.Scalar() : std::string();
    std::string k = Join(path, key);
    if (s.empty() || !(std::isdigit(static_cast<unsigned char>(s[0])) || s[0] == '-')) {
      Error(n, k, "must be a whole number, got '" + s + "'");
      return false;
    }
    errno = 0;
    char* end = nullptr;
    long long v = std::strtoll(s.c_str(), &end, 10);
    if (errno != 0 || *end != 0) {
      Error(n, k, "must be a whole number, got '" + s + "'");
      return false;
    }
    if (v < 0) {
      Error(n, k, "must not be negative, got " + s);
      return false;
    }
    uint64_t tmax = std::min<uint64_t>(max_value, static_cast<uint64_t>(std::numeric_limits<T>::max()));
    if (static_cast<uint64_t>(v) < min_value) {
      Error(n, k, min_value == 1 ? "must be greater than zero, got " + s
                                 : "must be at least " + std::to_string(min_value) + ", got " + s);
      return false;
    }
    if (static_cast<uint64_t>(v) > tmax) {
      Error(n, k, "must be at most " + std::to_string(tmax) + ", got " + s);
      return false;
    }
    *out = static_cast<T>(v);
    return true;
  }

  bool Double(const YAML::Node& parent, std::string_view key, const std::string& path, double* out,
              double min_value, double max_value) {
    YAML::Node n = parent[std::string(key)];
    if (!n.IsDefined() || n.IsNull()) return false;
    std::string s = n.IsScalar() ? n.Scalar() : std::string();
    char* end = nullptr;
    errno = 0;
    double v = std::strtod(s.c_str(), &end);
    std::string k = Join(path, key);
    if (s.empty() || errno != 0 || *end != 0 || !std::isfinite(v)) {
      Error(n, k, "must be a number, got '" + s + "'");
      return false;
    }
    if (v < min_value || v > max_value) {
      std::ostringstream os;
      os << "must be between " << min_value << " and " << max_value << ", got " << s;
      Error(n, k, os.str());
      return false;
    }
    *out = v;
    return true;
  }

  bool StrList(const YAML::Node& parent, std::string_view key, const std::string& path,
               std::vector<std::string>* out) {
    YAML::Node n = parent[std::string(key)];
    if (!n.IsDefined() || n.IsNull()) return false;
    std::string k = Join(path, key);
    if (!n.IsSequence()) {
      Error(n, k, "must be a list of strings");
      return false;
    }
    for (size_t i = 0; i < n.size(); ++i) {
      if (!n[i].IsScalar() || n[i].Scalar().empty()) {
        Error(n[i], k + "[" + std::to_string(i) + "]", "must be a non-empty string");
        continue;
      }
      out->push_back(n[i].Scalar());
    }
    return true;
  }

  void Parse(const YAML::Node& root, Config* c);

 private:
  template <typename Root>
  void Walk(const YAML::Node& n, const std::string& shown, std::string_view prefix,
            const std::vector<ConfigKey<Root>>& keys, Root* root);
  template <typename Root>
  void Leaf(const YAML::Node& parent, std::string_view name, const std::string& shown,
            const ConfigKey<Root>& key, Root* root);
  void ParseModel(const YAML::Node& n, const std::string& path, ModelConfig* m);
  void ParseBackend(const YAML::Node& n, const std::string& path, BackendConfig* b);
  void CrossCheck(const YAML::Node& root, Config* c);
 public:
  // A `keys:` list (inline or a keys file's); checks each key's models against c.
  void ParseKeys(const YAML::Node& list, const std::string& path, const Config& c, std::vector<KeyConfig>* out);
 private:

  std::string file_;
  std::vector<ConfigError>* errors_;
  int last_line_ = 1;
};

// The keys directly under `prefix` ("" = the root) in table order: leaves and sections.
template <typename Root>
std::vector<std::string_view> ChildNames(const std::vector<ConfigKey<Root>>& keys, std::string_view prefix) {
  std::vector<std::string_view> out;
  for (const auto& k : keys) {
    std::string_view p = k.path;
    if (!prefix.empty()) {
      if (p.size() <= prefix.size() || p.substr(0, prefix.size()) != prefix || p[prefix.size()] != '.') continue;
      p.remove_prefix(prefix.size() + 1);
    }
    std::string_view child = p.substr(0, p.find('.'));
    if (std::find(out.begin(), out.end(), child) == out.end()) out.push_back(child);
  }
  return out;
}

// Checks n is a map of known keys (the table's children of `prefix`), then parses each
// leaf and walks each section present. `shown` is the path as errors show it.
template <typename Root>
void Parser::Walk(const YAML::Node& n, const std::string& shown, std::string_view prefix,
                  const std::vector<ConfigKey<Root>>& keys, Root* root) {
  std::vector<std::string_view> children = ChildNames(keys, prefix);
  if (!CheckMap(n, shown, children)) return;
  for (std::string_view child : children) {
    std::string full = prefix.empty() ? std::string(child) : std::string(prefix) + "." + std::string(child);
    const ConfigKey<Root>* leaf = nullptr;
    for (const auto& k : keys)
      if (k.path == full) leaf = &k;
    if (leaf) {
      Leaf(n, child, shown, *leaf, root);
      continue;
    }
    YAML::Node sub = n[std::string(child)];
    if (sub.IsDefined() && !sub.IsNull()) Walk(sub, Join(shown, child), full, keys, root);
  }
}

// Parses one key into its field, with the checks its row names.
template <typename Root>
void Parser::Leaf(const YAML::Node& parent, std::string_view name, const std::string& shown,
                  const ConfigKey<Root>& key, Root* root) {
  FieldPtr field = key.field(*root);
  std::string k = Join(shown, name);
  auto umax = [&] { return key.max > 0 ? static_cast<uint64_t>(key.max) : UINT64_MAX; };
  auto umin = static_cast<uint64_t>(key.min);
  if (auto* v = std::get_if<uint32_t*>(&field)) {
    Uint(parent, name, shown, *v, umin, umax());
  } else if (auto* v64 = std::get_if<uint64_t*>(&field)) {
    Uint(parent, name, shown, *v64, umin, umax());
  } else if (auto* d = std::get_if<double*>(&field)) {
    Double(parent, name, shown, *d, key.min, key.max);
  } else if (auto* b = std::get_if<bool*>(&field)) {
    Bool(parent, name, shown, *b);
  } else if (auto* l = std::get_if<std::vector<std::string>*>(&field)) {
    StrList(parent, name, shown, *l);
  } else if (auto* pol = std::get_if<Policy*>(&field)) {
    std::string policy;
    if (Str(parent, name, shown, &policy) && !ParsePolicy(policy, *pol)) {
      std::vector<std::string_view> names(std::begin(kPolicyNames), std::end(kPolicyNames));
      std::string hint = DidYouMean(policy, names);
      Error(parent[std::string(name)], k,
            "unknown policy '" + policy + "'" + (hint.empty() ? "" : " (did you mean '" + hint + "'?)"));
    }
  } else if (auto* eng = std::get_if<Engine*>(&field)) {
    std::string engine;
    if (Str(parent, name, shown, &engine) && !ParseEngine(engine, *eng)) {
      std::vector<std::string_view> names(std::begin(kEngineNames), std::end(kEngineNames));
      std::string hint = DidYouMean(engine, names);
      Error(parent[std::string(name)], k,
            "unknown engine '" + engine + "'" + (hint.empty() ? "" : " (did you mean '" + hint + "'?)") +
                "; one of auto, vllm, sglang, tgi, llamacpp, trtllm");
    }
  } else if (auto* str = std::get_if<std::string*>(&field)) {
    if (!Str(parent, name, shown, *str)) return;
    const std::string& v = **str;
    YAML::Node node = parent[std::string(name)];
    std::string host, why;
    uint16_t port;
    switch (key.check) {
      case KeyCheck::kNone: break;
      case KeyCheck::kListen:
        if (!ParseHostPort(v, &host, &port, &why)) Error(node, k, why);
        break;
      case KeyCheck::kHostPortOpt:
        if (!v.empty() && !ParseHostPort(v, &host, &port, &why, false)) Error(node, k, why);
        break;
      case KeyCheck::kInstanceName: {
        bool good = !v.empty() && v.size() <= 64;
        for (char ch : v)
          if (!(std::isalnum(static_cast<unsigned char>(ch)) || ch == '-' || ch == '_')) good = false;
        if (!good) Error(node, k, "must be 1-64 characters of [A-Za-z0-9_-]");
        break;
      }
      case KeyCheck::kAbsPath:
        if (v.empty() || v[0] != '/') Error(node, k, "must start with /");
        break;
      case KeyCheck::kSha256Hex: {
        bool good = v.size() == 64 && std::all_of(v.begin(), v.end(), [](char ch) {
                      return std::isxdigit(static_cast<unsigned char>(ch)) != 0;
                    });
        if (!good) {
          // Never echo the value: someone may have pasted the secret here by mistake.
          Error(node, k, "must be the 64 hex digits of the secret's SHA-256 (sha256sum), not the secret itself");
        } else {
          std::transform((*str)->begin(), (*str)->end(), (*str)->begin(),
                         [](char ch) { return static_cast<char>(std::tolower(static_cast<unsigned char>(ch))); });
        }
        break;
      }
      case KeyCheck::kKeyId: {
        bool good = !v.empty() && v.size() <= 64;
        for (char ch : v)
          if (!(std::isalnum(static_cast<unsigned char>(ch)) || std::strchr("_.:@-", ch))) good = false;
        if (!good) Error(node, k, "must be 1-64 characters of [A-Za-z0-9_.:@-]");
        break;
      }
      case KeyCheck::kOneOf: {
        std::vector<std::string_view> choices;
        for (std::string_view rest = key.choices; !rest.empty();) {
          size_t bar = rest.find('|');
          choices.push_back(rest.substr(0, bar));
          rest = bar == std::string_view::npos ? std::string_view() : rest.substr(bar + 1);
        }
        if (std::find(choices.begin(), choices.end(), v) != choices.end()) break;
        std::string list;
        for (size_t i = 0; i < choices.size(); ++i)
          list += std::string(i == 0 ? "" : i + 1 == choices.size() ? (choices.size() == 2 ? " or " : ", ") : ", ") +
                  std::string(choices[i]);
        Error(node, k, choices.size() == 2 ? "must be " + list : "must be one of " + list);
        break;
      }
    }
  }
}

void Parser::ParseBackend(const YAML::Node& n, const std::string& path, BackendConfig* b) {
  b->line = n.Mark().line + 1;
  if (!n.IsMap()) {
    Error(n, path, "must be a mapping");
    return;
  }
  Walk(n, path, "", BackendKeys(), b);
  if (b->url.empty()) {
    Error(n, path + ".url", "is required");
  } else {
    std::string why;
    if (!ParseUrl(b->url, &b->parsed, &why))
      Error(n["url"], path + ".url", why + ": '" + RedactUrlCredentials(b->url) + "'");
  }
  if (b->id.empty()) b->id = b->url;
  // Provider rules: what each hosted API needs to be reached at all.
  if (!b->api_key_file.empty() && !b->api_key_env.empty())
    Error(n["api_key_env"], path + ".api_key_env", "api_key_file and api_key_env exclude each other");
  if (b->hosted() && b->api_key_file.empty() && b->api_key_env.empty())
    Error(n["provider"], path + ".provider",
          "provider " + b->provider + " needs a key: set api_key_file or api_key_env");
  if (b->provider == "azure") {
    if (b->deployment.empty()) Error(n["provider"], path + ".deployment", "is required for provider azure");
    if (b->api_version.empty()) Error(n["provider"], path + ".api_version", "is required for provider azure");
  } else {
    if (!b->deployment.empty()) Error(n["deployment"], path + ".deployment", "applies to provider azure only");
    if (!b->api_version.empty()) Error(n["api_version"], path + ".api_version", "applies to provider azure only");
  }
  if (!b->organization.empty() && b->provider != "openai")
    Error(n["organization"], path + ".organization", "applies to provider openai only");
  if (b->tls.client_cert_file.empty() != b->tls.client_key_file.empty())
    Error(n["tls"], path + ".tls.client_cert_file", "client_cert_file and client_key_file go together");
  // These land in fixed-size snapshot fields (shm_layout.h BackendUpstream).
  struct { const std::string* v; size_t max; const char* key; } lens[] = {
      {&b->upstream_model, 95, "upstream_model"}, {&b->organization, 63, "organization"},
      {&b->deployment, 63, "deployment"}, {&b->api_version, 31, "api_version"},
      {&b->tls.server_name, 95, "tls.server_name"}, {&b->tls.ca_file, 159, "tls.ca_file"},
      {&b->tls.client_cert_file, 159, "tls.client_cert_file"}, {&b->tls.client_key_file, 159, "tls.client_key_file"}};
  for (const auto& l : lens)
    if (l.v->size() > l.max)
      Error(n, path + "." + l.key, "longer than " + std::to_string(l.max) + " characters");
  YAML::Node tls = n["tls"];
  if (tls.IsDefined() && !tls.IsNull() && !b->parsed.tls() && !b->url.empty())
    Error(tls, path + ".tls", "applies to https:// backends only");
}

void Parser::ParseModel(const YAML::Node& n, const std::string& path, ModelConfig* m) {
  m->line = n.Mark().line + 1;
  if (!n.IsMap()) {
    Error(n, path, "must be a mapping");
    return;
  }
  Walk(n, path, "", ModelKeys(), m);
  if (m->name.empty()) Error(n, path + ".name", "is required");
  YAML::Node bs = n["backends"];
  if (!bs.IsDefined() || bs.IsNull() || (bs.IsSequence() && bs.size() == 0)) {
    Error(bs.IsDefined() ? bs : n, path + ".backends", "a model needs at least one backend");
    return;
  }
  if (!bs.IsSequence()) {
    Error(bs, path + ".backends", "must be a list");
    return;
  }
  for (size_t i = 0; i < bs.size(); ++i) {
    BackendConfig b;
    ParseBackend(bs[i], path + ".backends[" + std::to_string(i) + "]", &b);
    m->backends.push_back(std::move(b));
  }
}

void Parser::ParseKeys(const YAML::Node& list, const std::string& path, const Config& c,
                       std::vector<KeyConfig>* out) {
  if (!list.IsDefined() || list.IsNull()) return;
  if (!list.IsSequence()) {
    Error(list, path, "must be a list of keys");
    return;
  }
  for (size_t i = 0; i < list.size(); ++i) {
    const YAML::Node& n = list[i];
    std::string kp = path + "[" + std::to_string(i) + "]";
    KeyConfig k;
    k.source = file_;
    k.line = n.Mark().line + 1;
    if (!n.IsMap()) {
      Error(n, kp, "must be a mapping");
      continue;
    }
    Walk(n, kp, "", KeyKeys(), &k);
    if (k.id.empty()) Error(n, kp + ".id", "is required");
    if (k.key_sha256.empty()) Error(n, kp + ".key_sha256", "is required");
    if (k.id == kAnonymousKeyId) Error(n["id"], kp + ".id", "'anonymous' is reserved for requests without a key");
    for (size_t m = 0; m < k.models.size(); ++m) {
      if (c.FindModel(k.models[m])) continue;
      std::vector<std::string_view> cand;
      for (const auto& mm : c.models) {
        cand.push_back(mm.name);
        for (const auto& a : mm.aliases) cand.push_back(a);
      }
      std::string hint = DidYouMean(k.models[m], cand);
      Error(n["models"][m], kp + ".models[" + std::to_string(m) + "]",
            "unknown model '" + k.models[m] + "'" + (hint.empty() ? "" : " (did you mean '" + hint + "'?)"));
    }
    out->push_back(std::move(k));
  }
}

void Parser::CrossCheck(const YAML::Node& root, Config* c) {
  YAML::Node models = root["models"];
  std::set<std::string> names;
  std::set<std::string> backend_ids;
  for (size_t i = 0; i < c->models.size(); ++i) {
    const ModelConfig& m = c->models[i];
    std::string path = "models[" + std::to_string(i) + "]";
    YAML::Node mn = models[i];
    if (!m.name.empty() && !names.insert(m.name).second)
      Error(mn["name"], path + ".name", "duplicate model name '" + m.name + "'");
    for (size_t a = 0; a < m.aliases.size(); ++a) {
      if (!names.insert(m.aliases[a]).second)
        Error(mn["aliases"][a], path + ".aliases[" + std::to_string(a) + "]",
              "name '" + m.aliases[a] + "' is already used by another model or alias");
    }
    for (size_t b = 0; b < m.backends.size(); ++b) {
      const BackendConfig& be = m.backends[b];
      if (be.id.empty()) continue;
      if (!backend_ids.insert(be.id).second)
        Error(mn["backends"][b], path + ".backends[" + std::to_string(b) + "]",
              "duplicate backend '" + be.id + "' (ids must be unique across models; set id:)");
    }
  }
  for (size_t i = 0; i < c->models.size(); ++i) {
    const ModelConfig& m = c->models[i];
    for (size_t f = 0; f < m.fallbacks.size(); ++f) {
      const ModelConfig* target = c->FindModel(m.fallbacks[f]);
      std::string key = "models[" + std::to_string(i) + "].fallbacks[" + std::to_string(f) + "]";
      YAML::Node fn = models[i]["fallbacks"][f];
      if (!target) {
        std::vector<std::string_view> cand;
        for (const auto& mm : c->models) cand.push_back(mm.name);
        std::string hint = DidYouMean(m.fallbacks[f], cand);
        Error(fn, key, "unknown fallback model '" + m.fallbacks[f] + "'" +
                           (hint.empty() ? "" : " (did you mean '" + hint + "'?)"));
      } else if (target == &m) {
        Error(fn, key, "a model cannot fall back to itself");
      }
    }
  }
  if (c->fleet.role == "agent" && c->fleet.controller.empty() && c->fleet.etcd.endpoints.empty())
    Error(root["fleet"], "fleet.controller", "is required when fleet.role is agent (or fleet.etcd.endpoints)");
  for (size_t i = 0; i < c->fleet.etcd.endpoints.size(); ++i) {
    const std::string& e = c->fleet.etcd.endpoints[i];
    bool http = e.rfind("http://", 0) == 0 && e.size() > 7, https = e.rfind("https://", 0) == 0 && e.size() > 8;
    if (!http && !https)
      Error(root["fleet"]["etcd"]["endpoints"][i], "fleet.etcd.endpoints[" + std::to_string(i) + "]",
            "must be http://HOST:PORT or https://HOST:PORT (etcd's client URL)");
  }
  const EtcdConfig& etcd = c->fleet.etcd;
  if (etcd.client_cert_file.empty() != etcd.client_key_file.empty())
    Error(root["fleet"]["etcd"], "fleet.etcd.client_cert_file", "client_cert_file and client_key_file go together");
  if (etcd.username.empty() != etcd.password_file.empty())
    Error(root["fleet"]["etcd"], "fleet.etcd.username", "username and password_file go together");
  if (c->fleet.etcd.prefix.empty() || c->fleet.etcd.prefix.front() != '/')
    Error(root["fleet"]["etcd"]["prefix"], "fleet.etcd.prefix", "must start with '/'");
  if (c->limits.global.burst && !c->limits.global.rps)
    Error(root["limits"], "limits.global.burst", "needs limits.global.rps");
  const std::string& otlp = c->tracing.otlp_endpoint;
  if (!otlp.empty() && otlp.rfind("http://", 0) != 0 && otlp.rfind("https://", 0) != 0)
    Error(root["tracing"]["otlp_endpoint"], "tracing.otlp_endpoint",
          "must be an http:// or https:// URL (the OTLP/HTTP collector, e.g. http://127.0.0.1:4318)");
}

// Ids and hashes must be unique over the inline keys and the keys file together: an id is
// what metrics and llmctl show, and two ids for one secret would make its limits ambiguous.
void CheckKeysUnique(const std::vector<KeyConfig>& keys, std::vector<ConfigError>* errors) {
  std::map<std::string, const KeyConfig*> ids, hashes;
  for (const auto& k : keys) {
    if (!k.id.empty()) {
      auto [it, fresh] = ids.emplace(k.id, &k);
      if (!fresh)
        errors->push_back({k.source, k.line, "keys", "duplicate key id '" + k.id + "' (also at " +
                                                         it->second->source + ":" + std::to_string(it->second->line) + ")"});
    }
    if (k.key_sha256.size() == 64) {
      auto [it, fresh] = hashes.emplace(k.key_sha256, &k);
      if (!fresh)
        errors->push_back({k.source, k.line, "keys", "key '" + k.id + "' has the same key_sha256 as key '" +
                                                         it->second->id + "'"});
    }
  }
}

std::string ReadWholeFile(const std::string& path, std::string* why) {
  std::ifstream in(path);
  if (!in) {
    *why = std::string("cannot read: ") + std::strerror(errno);
    return {};
  }
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// The keys of a keys file: a list, or a mapping whose only key is `keys`.
void ParseKeysText(std::string_view yaml, std::string_view filename, const Config& c, std::vector<KeyConfig>* out,
                   std::vector<ConfigError>* errors) {
  if (size_t bad = FirstInvalidUtf8(yaml); bad != std::string_view::npos) {
    errors->push_back({std::string(filename), 1, "(encoding)", "not valid UTF-8; save the file as UTF-8"});
    return;
  }
  YAML::Node root;
  try {
    root = YAML::Load(std::string(yaml));
  } catch (const YAML::Exception& e) {
    errors->push_back({std::string(filename), e.mark.line + 1, "(syntax)", e.msg});
    return;
  }
  Parser p(filename, errors);
  try {
    if (!root.IsDefined() || root.IsNull()) return;  // an empty keys file holds no keys
    if (root.IsMap()) {
      if (!p.CheckMap(root, "", {"keys"})) return;
      p.ParseKeys(root["keys"], "keys", c, out);
    } else {
      p.ParseKeys(root, "keys", c, out);
    }
  } catch (const YAML::Exception& e) {
    errors->push_back({std::string(filename), e.mark.line + 1, "(yaml)", e.msg});
  }
}

void Parser::Parse(const YAML::Node& root, Config* c) {
  if (!root.IsDefined() || root.IsNull()) {
    errors_->push_back({file_, 1, "(root)", "config is empty"});
    return;
  }
  if (!root.IsMap()) {
    Error(root, "", "must be a mapping");
    return;
  }
  Walk(root, "", "", ConfigKeys(), c);
  // Rules between keys.
  YAML::Node gateway = root["gateway"];
  if (c->gateway.timeouts.total_ms < c->gateway.timeouts.connect_ms)
    Error(gateway.IsMap() ? gateway["timeouts"] : gateway, "gateway.timeouts.total_ms",
          "must not be shorter than connect_ms");
  if (c->admin.tls_cert_file.empty() != c->admin.tls_key_file.empty())
    Error(root["admin"], "admin.tls_cert_file", "tls_cert_file and tls_key_file go together");
  YAML::Node models = root["models"];
  if (!models.IsDefined() || models.IsNull() || (models.IsSequence() && models.size() == 0)) {
    Error(models.IsDefined() ? models : root, "models", "at least one model is required");
  } else if (!models.IsSequence()) {
    Error(models, "models", "must be a list");
  } else {
    for (size_t i = 0; i < models.size(); ++i) {
      ModelConfig m;
      ParseModel(models[i], "models[" + std::to_string(i) + "]", &m);
      c->models.push_back(std::move(m));
    }
  }
  CrossCheck(root, c);
  ParseKeys(root["keys"], "keys", *c, &c->keys);
}

}  // namespace

std::string ResolveKeysFile(const std::string& config_file, const std::string& keys_file) {
  if (keys_file.empty() || keys_file[0] == '/') return keys_file;
  size_t slash = config_file.rfind('/');
  return slash == std::string::npos ? keys_file : config_file.substr(0, slash + 1) + keys_file;
}

std::vector<ConfigError> ParseKeysFile(std::string_view yaml, std::string_view filename, const Config& c,
                                       std::vector<KeyConfig>* out) {
  std::vector<ConfigError> errors;
  ParseKeysText(yaml, filename, c, out, &errors);
  return errors;
}

std::string RenderKeysFile(const std::vector<KeyConfig>& keys) {
  std::string s =
      "# Client API keys of llmgw (auth.keys_file). Written by `llmctl keys add|revoke`; hand edits\n"
      "# are fine. Only the SHA-256 of each secret is stored.\n"
      "keys:\n";
  if (keys.empty()) return s.substr(0, s.size() - 1) + " []\n";
  auto quoted = [](const std::string& v) { return "\"" + v + "\""; };
  for (const auto& k : keys) {
    s += "  - { id: " + quoted(k.id) + ", key_sha256: " + quoted(k.key_sha256);
    if (!k.models.empty()) {
      s += ", models: [";
      for (size_t i = 0; i < k.models.size(); ++i) s += (i ? ", " : "") + quoted(k.models[i]);
      s += "]";
    }
    if (k.priority != kDefaultClientPriority) s += ", priority: " + std::to_string(k.priority);
    if (k.limits.rpm || k.limits.tpm || k.limits.max_concurrent) {
      std::string l;
      auto add = [&](const char* name, uint32_t v) {
        if (v) l += std::string(l.empty() ? "" : ", ") + name + ": " + std::to_string(v);
      };
      add("rpm", k.limits.rpm);
      add("tpm", k.limits.tpm);
      add("max_concurrent", k.limits.max_concurrent);
      s += ", limits: { " + l + " }";
    }
    s += " }\n";
  }
  return s;
}

ConfigResult ParseConfig(std::string_view yaml, std::string_view filename) {
  ConfigResult r;
  r.config.source_file = std::string(filename);
  r.config.source_text = std::string(yaml);
  // Strings from the config end up in JSON logs and protobuf answers, which must be UTF-8:
  // say where the first bad byte is instead of failing somewhere downstream.
  if (size_t bad = FirstInvalidUtf8(yaml); bad != std::string_view::npos) {
    size_t nl = bad == 0 ? std::string_view::npos : yaml.rfind('\n', bad - 1);
    size_t line_start = nl == std::string_view::npos ? 0 : nl + 1;
    int line = 1 + static_cast<int>(std::count(yaml.begin(), yaml.begin() + static_cast<long>(bad), '\n'));
    char msg[128];
    std::snprintf(msg, sizeof(msg), "not valid UTF-8: byte 0x%02X at column %zu; save the file as UTF-8",
                  static_cast<unsigned char>(yaml[bad]), bad - line_start + 1);
    r.errors.push_back({std::string(filename), line, "(encoding)", msg});
    return r;
  }
  YAML::Node root;
  try {
    root = YAML::Load(std::string(yaml));
  } catch (const YAML::Exception& e) {
    r.errors.push_back({std::string(filename), e.mark.line + 1, "(syntax)", e.msg});
    return r;
  }
  Parser p(filename, &r.errors);
  try {
    p.Parse(root, &r.config);
  } catch (const YAML::Exception& e) {
    r.errors.push_back({std::string(filename), e.mark.line + 1, "(yaml)", e.msg});
  }
  // auth.keys_file: read and checked with the config, so a bad keys file rejects the
  // reload like a bad config (the running keys keep serving).
  if (r.ok() && !r.config.auth.keys_file.empty()) {
    r.config.keys_file_path = ResolveKeysFile(std::string(filename), r.config.auth.keys_file);
    std::string why;
    std::string text = ReadWholeFile(r.config.keys_file_path, &why);
    if (!why.empty()) {
      YAML::Node auth = root["auth"];
      int line = auth.IsMap() && auth["keys_file"].IsDefined() ? auth["keys_file"].Mark().line + 1 : 0;
      r.errors.push_back({std::string(filename), line, "auth.keys_file", r.config.keys_file_path + ": " + why});
    } else {
      ParseKeysText(text, r.config.keys_file_path, r.config, &r.config.keys, &r.errors);
    }
  }
  CheckKeysUnique(r.config.keys, &r.errors);
  if (r.config.auth.required && r.config.keys.empty() && r.config.auth.keys_file.empty() && r.ok())
    r.errors.push_back({std::string(filename), 0, "auth.required",
                        "is true but no key is configured (keys: or auth.keys_file): every request would get 401"});
  std::stable_sort(r.errors.begin(), r.errors.end(),
                   [](const ConfigError& a, const ConfigError& b) { return a.line < b.line; });
  return r;
}

void ResolveBackendKeys(Config* config, std::vector<ConfigError>* errors) {
  std::string dir;
  if (size_t slash = config->source_file.rfind('/'); slash != std::string::npos)
    dir = config->source_file.substr(0, slash + 1);
  for (size_t i = 0; i < config->models.size(); ++i) {
    for (size_t j = 0; j < config->models[i].backends.size(); ++j) {
      BackendConfig& b = config->models[i].backends[j];
      std::string key = "models[" + std::to_string(i) + "].backends[" + std::to_string(j) + "]";
      b.api_key.clear();
      std::string secret;
      if (!b.api_key_file.empty()) {
        std::string file = b.api_key_file[0] == '/' ? b.api_key_file : dir + b.api_key_file;
        std::ifstream in(file);
        if (!in) {
          errors->push_back({config->source_file, b.line, key + ".api_key_file",
                             "cannot read " + file + ": " + std::strerror(errno)});
          continue;
        }
        std::stringstream ss;
        ss << in.rdbuf();
        secret = ss.str();
      } else if (!b.api_key_env.empty()) {
        const char* v = std::getenv(b.api_key_env.c_str());
        if (!v || !*v) {
          errors->push_back({config->source_file, b.line, key + ".api_key_env",
                             "environment variable " + b.api_key_env + " is not set"});
          continue;
        }
        secret = v;
      } else {
        continue;
      }
      // A trailing newline (echo > file) is not part of the key.
      while (!secret.empty() && (secret.back() == '\n' || secret.back() == '\r' || secret.back() == ' '))
        secret.pop_back();
      bool printable = !secret.empty();
      for (char ch : secret)
        if (static_cast<unsigned char>(ch) <= 0x20 || static_cast<unsigned char>(ch) >= 0x7f) printable = false;
      if (secret.size() > 255) printable = false;
      if (!printable) {
        // Never echo the content: say only what is wrong with it.
        errors->push_back({config->source_file, b.line, key + (b.api_key_file.empty() ? ".api_key_env" : ".api_key_file"),
                           secret.empty()          ? "the key is empty"
                           : secret.size() > 255   ? "the key is longer than 255 characters"
                                                   : "the key contains whitespace or non-printable characters"});
        continue;
      }
      b.api_key = std::move(secret);
    }
  }
}

std::string KeyFingerprint(std::string_view secret) {
  if (secret.empty()) return {};
  unsigned char md[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(secret.data()), secret.size(), md);
  char out[32];
  std::snprintf(out, sizeof out, "sha256:%02x%02x%02x%02x", md[0], md[1], md[2], md[3]);
  return out;
}

ConfigResult LoadConfigFile(const std::string& path, bool read_backend_keys) {
  std::ifstream in(path);
  if (!in) {
    ConfigResult r;
    r.errors.push_back({path, 0, "(file)", std::string("cannot read: ") + std::strerror(errno)});
    return r;
  }
  std::stringstream ss;
  ss << in.rdbuf();
  ConfigResult r = ParseConfig(ss.str(), path);
  ApplyEnvOverrides(&r);  // LLMGW_LISTEN & co. (env_overrides.h)
  if (r.ok() && read_backend_keys) ResolveBackendKeys(&r.config, &r.errors);
  return r;
}

}  // namespace llmgw
