// Config loader and validator (see config.h). Walks the YAML tree with a fixed schema so
// every unknown key, wrong type or bad value is reported with its file, line and key path
// (yaml-cpp marks are 0-based; we print 1-based). All errors are collected, not just the
// first, so an operator fixes a config in one pass.
#include "common/config.h"
#include "common/env_overrides.h"

#include "common/config_keys.h"

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

#include "common/config_parser.h"

namespace llmgw {

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

namespace config_internal {

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
      std::vector<std::string_view> names = PolicyNames();
      std::string hint = DidYouMean(policy, names);
      Error(parent[std::string(name)], k,
            "unknown policy '" + policy + "'" + (hint.empty() ? "" : " (did you mean '" + hint + "'?)"));
    }
  } else if (auto* eng = std::get_if<Engine*>(&field)) {
    std::string engine;
    if (Str(parent, name, shown, &engine) && !ParseEngine(engine, *eng)) {
      std::vector<std::string_view> names = EngineNames();
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

// Keys files walk their rows too (Parser::ParseKeys in config_keys_file.cc).
template void Parser::Walk<KeyConfig>(const YAML::Node&, const std::string&, std::string_view,
                                      const std::vector<ConfigKey<KeyConfig>>&, KeyConfig*);

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
      {&b->api_key_file, 159, "api_key_file"}, {&b->api_key_env, 63, "api_key_env"},
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

}  // namespace config_internal

using config_internal::CheckKeysUnique;
using config_internal::Parser;
using config_internal::ParseKeysText;
using config_internal::ReadWholeFile;

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
