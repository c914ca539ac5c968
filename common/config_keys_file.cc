// Client API keys files (auth.keys_file): parsing them with the config's rules, checking ids
// and hashes are unique over inline keys and the file, resolving the file's path and
// rendering the file that `llmctl keys add|revoke` writes.
#include "common/config.h"
#include "common/config_parser.h"

#include "common/utf8.h"

#include <map>
#include <string>
#include <vector>

namespace llmgw {
namespace config_internal {

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

}  // namespace config_internal

using config_internal::ParseKeysText;

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

}  // namespace llmgw
