// The stored fleet config (fleet_config.h): key split and the YAML-level merge with the
// local file. Merging the documents, then parsing the result with the one parser, keeps
// every rule of the config (cross-key checks, keys files, defaults) in one place.
#include "common/fleet_config.h"

#include <yaml-cpp/yaml.h>

#include <fstream>
#include <sstream>

#include "common/config_keys.h"
#include "common/env_overrides.h"

namespace llmgw {

namespace {

std::vector<std::string> Split(std::string_view path) {
  std::vector<std::string> parts;
  size_t start = 0;
  for (size_t dot; (dot = path.find('.', start)) != std::string_view::npos; start = dot + 1)
    parts.emplace_back(path.substr(start, dot - start));
  parts.emplace_back(path.substr(start));
  return parts;
}

// The node at parts under root, or an undefined node; never creates anything.
YAML::Node Find(const YAML::Node& root, const std::vector<std::string>& parts) {
  YAML::Node at = root;  // const lookups only below: nothing is added to root
  for (const auto& p : parts) {
    if (!at.IsMap()) return YAML::Node(YAML::NodeType::Undefined);
    const YAML::Node& a = at;
    YAML::Node next = a[p];
    if (!next.IsDefined()) return next;
    at.reset(next);
  }
  return at;
}

void Remove(YAML::Node root, const std::vector<std::string>& parts) {
  YAML::Node at = root;
  for (size_t i = 0; i + 1 < parts.size(); ++i) {
    if (!at.IsMap()) return;
    const YAML::Node& a = at;
    YAML::Node next = a[parts[i]];
    if (!next.IsDefined()) return;
    at.reset(next);
  }
  if (at.IsMap()) at.remove(parts.back());
}

void Set(YAML::Node root, const std::vector<std::string>& parts, const YAML::Node& value) {
  YAML::Node at = root;
  for (size_t i = 0; i + 1 < parts.size(); ++i) {
    YAML::Node child;  // a valid node to reset onto (a failed lookup's node cannot be reset)
    const YAML::Node& a = at;
    YAML::Node found = a[parts[i]];
    if (found.IsDefined() && found.IsMap()) {
      child.reset(found);
    } else {
      at[parts[i]] = YAML::Node(YAML::NodeType::Map);
      child.reset(at[parts[i]]);
    }
    at.reset(child);
  }
  at[parts.back()] = YAML::Clone(value);
}

bool ReadFile(const std::string& path, std::string* out) {
  std::ifstream in(path);
  if (!in) return false;
  std::stringstream ss;
  ss << in.rdbuf();
  *out = ss.str();
  return true;
}

}  // namespace

bool IsFleetWideKey(std::string_view path) {
  if (path == "auth.keys_file") return false;  // a file on this host
  for (const auto& k : ConfigKeys())
    if (k.path == path) return k.applies == Applies::kReload;
  return false;
}

std::vector<ConfigError> CheckFleetConfigText(const std::string& fleet_yaml, const std::string& fleet_name) {
  ConfigResult alone = ParseConfig(fleet_yaml, fleet_name);
  std::vector<ConfigError> errors;
  for (auto& e : alone.errors)
    // Checked again on the merged config: the keys may come from a local auth.keys_file.
    if (e.key != "auth.required") errors.push_back(std::move(e));
  if (!errors.empty()) return errors;
  YAML::Node root = YAML::Load(fleet_yaml);  // parsed above without error
  for (const auto& k : ConfigKeys()) {
    if (IsFleetWideKey(k.path)) continue;
    YAML::Node n = Find(root, Split(k.path));
    if (!n.IsDefined()) continue;
    errors.push_back({fleet_name, n.Mark().line + 1, std::string(k.path),
                      "is local to each host (applies: " + std::string(AppliesName(k.applies)) +
                          "): set it in each host's config file, not in the fleet config"});
  }
  return errors;
}

ConfigResult LoadConfigWithFleet(const std::string& local_path, const std::string& fleet_yaml,
                                 const std::string& fleet_name, bool read_backend_keys) {
  // The local file on its own first, so errors of its local keys (and its YAML syntax)
  // carry its own line numbers. Its fleet-wide keys are replaced below, so what is wrong
  // with them (or missing: models) does not count.
  ConfigResult local = LoadConfigFile(local_path, false);
  if (!local.ok()) {
    ConfigResult bad;
    for (const auto& e : local.errors) {
      bool fleet_key = IsFleetWideKey(e.key) || e.key.rfind("models", 0) == 0 || e.key.rfind("keys", 0) == 0 ||
                       e.key == "auth.required" || e.file != local_path;
      if (e.key.empty() || e.key[0] == '(' || !fleet_key) bad.errors.push_back(e);
    }
    if (!bad.ok()) return bad;
  }
  ConfigResult r;
  r.errors = CheckFleetConfigText(fleet_yaml, fleet_name);
  if (!r.ok()) return r;
  std::string local_text;
  if (!ReadFile(local_path, &local_text)) {  // read a moment ago: replaced meanwhile
    r.errors.push_back({local_path, 0, "(file)", "cannot read"});
    return r;
  }
  YAML::Node merged = YAML::Load(local_text);
  if (!merged.IsMap()) merged = YAML::Node(YAML::NodeType::Map);
  YAML::Node fleet = YAML::Load(fleet_yaml);
  for (const auto& k : ConfigKeys()) {
    if (!IsFleetWideKey(k.path)) continue;
    auto parts = Split(k.path);
    Remove(merged, parts);
    YAML::Node v = Find(fleet, parts);
    if (v.IsDefined()) Set(merged, parts, v);
  }
  YAML::Emitter out;
  out << merged;
  // Parsed under the local file's name: relative paths (auth.keys_file, api_key_file)
  // resolve against its folder.
  r = ParseConfig(out.c_str(), local_path);
  for (auto& e : r.errors)
    if (e.file == local_path) {  // a rule between keys of both: the merged text's lines mean nothing
      e.file = local_path + " merged with " + fleet_name;
      e.line = 0;
    }
  ApplyEnvOverrides(&r);
  if (r.ok() && read_backend_keys) ResolveBackendKeys(&r.config, &r.errors);
  return r;
}

}  // namespace llmgw
