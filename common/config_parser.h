// The YAML walker of the config loader, shared by config.cc (the config file) and
// config_keys_file.cc (keys files use the same key rows and error reporting). Internal to
// common/: nothing outside the config_*.cc files includes it.
#pragma once

#include "common/config.h"
#include "common/config_keys.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

namespace llmgw::config_internal {

// The valid names, for "did you mean" hints (config_values.cc).
std::vector<std::string_view> PolicyNames();
std::vector<std::string_view> EngineNames();

// Reads a whole file; on failure returns "" and sets *why.
std::string ReadWholeFile(const std::string& path, std::string* why);
// The keys of a keys file (config_keys_file.cc), errors appended.
void ParseKeysText(std::string_view yaml, std::string_view filename, const Config& c, std::vector<KeyConfig>* out,
                   std::vector<ConfigError>* errors);
// Ids and hashes unique over the inline keys and the keys file together.
void CheckKeysUnique(const std::vector<KeyConfig>& keys, std::vector<ConfigError>* errors);

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


}  // namespace llmgw::config_internal
