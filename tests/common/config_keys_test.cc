// The config key tables (common/config_keys.h) drive parsing, validation and the diff:
// every key set to a non-default value is parsed into its field and reported by
// DiffConfigs; every bound of the table is enforced with FILE:LINE: key; model and
// backend field changes (max_concurrent included) reach llmcd's reload summary; and
// docs/CONFIG.md documents exactly the keys of the tables, with their defaults and when
// they apply.
#include "common/config_keys.h"

#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <functional>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

namespace llmgw {
namespace {

constexpr const char* kModels =
    "models:\n"
    "  - name: m\n"
    "    backends:\n"
    "      - { id: b1, url: \"http://127.0.0.1:8001\" }\n";

// Renders dotted keys as nested YAML (flow mappings), plus the models.
std::string Yaml(const std::map<std::string, std::string>& kv) {
  // path -> value, grouped by first component, recursively.
  std::function<std::string(const std::map<std::string, std::string>&)> render =
      [&](const std::map<std::string, std::string>& m) {
        std::map<std::string, std::map<std::string, std::string>> groups;
        std::string s = "{ ";
        bool first = true;
        for (const auto& [k, v] : m) {
          size_t dot = k.find('.');
          if (dot == std::string::npos) {
            s += std::string(first ? "" : ", ") + k + ": " + v;
            first = false;
          } else {
            groups[k.substr(0, dot)][k.substr(dot + 1)] = v;
          }
        }
        for (const auto& [g, sub] : groups) {
          s += std::string(first ? "" : ", ") + g + ": " + render(sub);
          first = false;
        }
        return s + " }";
      };
  std::map<std::string, std::map<std::string, std::string>> top;
  std::string out;
  for (const auto& [k, v] : kv) {
    size_t dot = k.find('.');
    if (dot == std::string::npos) out += k + ": " + v + "\n";
    else top[k.substr(0, dot)][k.substr(dot + 1)] = v;
  }
  for (const auto& [g, sub] : top) out += g + ": " + render(sub) + "\n";
  return out + kModels;
}

// A valid value for the key that differs from its default, plus keys it needs.
std::map<std::string, std::string> ChangedValue(const ConfigKey<Config>& k, Config& defaults) {
  std::string path(k.path);
  FieldPtr f = k.field(defaults);
  // auth.required needs a place for keys (else every request would be refused: an error).
  if (path == "auth.required") return {{path, "true"}, {"auth.keys_file", "\"/dev/null\""}};
  if (path == "limits.global.burst") return {{path, "7"}, {"limits.global.rps", "3"}};
  auto in_range = [&](double v) { return v >= k.min && (k.max <= 0 || v <= k.max); };
  if (auto* u = std::get_if<uint32_t*>(&f)) {
    double v = static_cast<double>(**u) + 1;
    if (!in_range(v)) v = static_cast<double>(**u) - 1;
    return {{path, std::to_string(static_cast<uint64_t>(v))}};
  }
  if (auto* u64 = std::get_if<uint64_t*>(&f)) return {{path, std::to_string(**u64 + 1)}};
  if (auto* d = std::get_if<double*>(&f)) {
    double v = k.max > 0 ? (k.min + k.max) / 2 : **d + 1;
    if (v == **d) v = k.min;
    std::ostringstream os;
    os << v;
    return {{path, os.str()}};
  }
  if (auto* b = std::get_if<bool*>(&f)) return {{path, **b ? "false" : "true"}};
  if (std::get_if<std::vector<std::string>*>(&f)) return {{path, "[\"http://127.0.0.1:2379\"]"}};
  if (auto* s = std::get_if<std::string*>(&f)) {
    switch (k.check) {
      case KeyCheck::kListen: return {{path, "\"127.0.0.1:1234\""}};
      case KeyCheck::kHostPortOpt: return {{path, "\"127.0.0.1:7\""}};
      case KeyCheck::kInstanceName: return {{path, "other-instance"}};
      case KeyCheck::kAbsPath: return {{path, "/ready"}};
      case KeyCheck::kOneOf: {
        std::string_view c = k.choices;
        while (!c.empty()) {
          std::string choice(c.substr(0, c.find('|')));
          if (choice != **s) {
            if (path == "fleet.role") return {{path, choice}, {"fleet.controller", "\"127.0.0.1:7\""}};
            return {{path, choice}};
          }
          c = c.find('|') == std::string_view::npos ? std::string_view() : c.substr(c.find('|') + 1);
        }
        ADD_FAILURE() << path << ": no other choice";
        return {};
      }
      case KeyCheck::kSha256Hex:
      case KeyCheck::kKeyId:
        ADD_FAILURE() << path << ": only keys[] entries carry this check";
        return {};
      case KeyCheck::kNone:
        // /dev/null is an empty keys file: no keys, nothing to read.
        if (path == "auth.keys_file") return {{path, "\"/dev/null\""}};
        if (path == "fleet.etcd.prefix") return {{path, "/changed/"}};
        if (path == "admin.tls_cert_file" || path == "admin.tls_key_file")
          return {{"admin.tls_cert_file", "/c.pem"}, {"admin.tls_key_file", "/k.pem"}};
        if (path == "fleet.etcd.client_cert_file" || path == "fleet.etcd.client_key_file")
          return {{"fleet.etcd.client_cert_file", "/c.pem"}, {"fleet.etcd.client_key_file", "/k.pem"}};
        if (path == "fleet.etcd.username" || path == "fleet.etcd.password_file")
          return {{"fleet.etcd.username", "u"}, {"fleet.etcd.password_file", "/p"}};
        if (path == "tracing.otlp_endpoint") return {{path, "\"http://127.0.0.1:4318\""}};  // a URL only
        return {{path, "changed-value"}};
    }
  }
  return {};
}

TEST(ConfigKeysTest, EveryKeyIsParsedIntoItsFieldAndDiffed) {
  Config defaults;
  const Config base = ParseConfig(kModels, "base.yaml").config;
  int covered = 0;
  for (const auto& k : ConfigKeys()) {
    if (std::holds_alternative<std::monostate>(k.field(defaults))) continue;
    auto kv = ChangedValue(k, defaults);
    ASSERT_FALSE(kv.empty()) << k.path;
    std::string yaml = Yaml(kv);
    ConfigResult r = ParseConfig(yaml, "t.yaml");
    ASSERT_TRUE(r.ok()) << k.path << "\n" << yaml << r.ErrorText();
    std::string got = KeyValueText(k.field(r.config)), was = KeyValueText(k.field(defaults));
    EXPECT_NE(got, was) << k.path << " was not parsed into its field";
    bool diffed = false;
    for (const auto& c : DiffConfigs(base, r.config))
      if (c.what == "key" && c.name == k.path) {
        diffed = true;
        EXPECT_EQ(c.applies, k.applies);
        EXPECT_EQ(c.detail, was + " -> " + got);
      }
    EXPECT_TRUE(diffed) << k.path << " is not reported by the diff";
    ++covered;
  }
  EXPECT_EQ(covered, static_cast<int>(ConfigKeys().size()) - 2);  // all but the `models` and `keys` sections
}

TEST(ConfigKeysTest, EveryBoundIsEnforcedWithLineAndKey) {
  Config defaults;
  for (const auto& k : ConfigKeys()) {
    FieldPtr f = k.field(defaults);
    bool integer = std::holds_alternative<uint32_t*>(f) || std::holds_alternative<uint64_t*>(f);
    if (!integer && !std::holds_alternative<double*>(f)) continue;
    std::vector<std::string> bad;
    if (k.min > 0) bad.push_back(integer ? std::to_string(static_cast<uint64_t>(k.min) - 1) : "0");
    if (k.max > 0) bad.push_back(integer ? std::to_string(static_cast<uint64_t>(k.max) + 1) : std::to_string(k.max * 2));
    bad.push_back("-1");
    bad.push_back("abc");
    for (const auto& v : bad) {
      if (!integer && v == "0" && k.min <= 0) continue;
      std::string yaml = Yaml({{std::string(k.path), v}});
      ConfigResult r = ParseConfig(yaml, "bad.yaml");
      bool found = false;
      for (const auto& e : r.errors) found |= e.key == k.path && e.line == 1 && e.file == "bad.yaml";
      EXPECT_TRUE(found) << k.path << " = " << v << " accepted or misreported:\n" << r.ErrorText();
    }
  }
}

// Issue 16: a reload that only changes max_concurrent said "no changes".
TEST(ConfigKeysTest, BackendAndModelFieldChangesReachTheReloadSummary) {
  const std::string before = kModels;
  const std::string after =
      "models:\n"
      "  - name: m\n"
      "    policy: p2c_kv\n"
      "    backends:\n"
      "      - { id: b1, url: \"http://127.0.0.1:8001\", max_concurrent: 16, engine: vllm }\n";
  ConfigResult a = ParseConfig(before, "a.yaml"), b = ParseConfig(after, "b.yaml");
  ASSERT_TRUE(a.ok() && b.ok()) << a.ErrorText() << b.ErrorText();
  auto changes = DiffConfigs(a.config, b.config);
  std::string summary = ConfigChangesSummary(changes);
  EXPECT_NE(summary.find("backend b1 max_concurrent 64 -> 16\n"), std::string::npos) << summary;
  EXPECT_NE(summary.find("backend b1 engine auto -> vllm\n"), std::string::npos) << summary;
  EXPECT_NE(summary.find("model m policy least_connections -> p2c_kv\n"), std::string::npos) << summary;
  EXPECT_EQ(ConfigChangesSummary(DiffConfigs(a.config, a.config)), "no changes\n");

  // A key that needs a restart says so.
  ConfigResult c = ParseConfig("gateway: { listen: \"127.0.0.1:9\" }\n" + before, "c.yaml");
  ASSERT_TRUE(c.ok()) << c.ErrorText();
  EXPECT_EQ(ConfigChangesSummary(DiffConfigs(a.config, c.config)),
            "gateway.listen \"127.0.0.1:8080\" -> \"127.0.0.1:9\" (takes effect after: restart llmgw)\n");
}

// A rotated provider key shows in the diff as a changed fingerprint, never as the key.
TEST(ConfigKeysTest, RotatedBackendKeyIsDiffedByFingerprintOnly) {
  const std::string yaml =
      "models:\n  - name: m\n    backends:\n"
      "      - { id: oa, url: \"https://api.example\", provider: openai, api_key_env: K }\n";
  ConfigResult a = ParseConfig(yaml, "a.yaml"), b = ParseConfig(yaml, "b.yaml");
  ASSERT_TRUE(a.ok() && b.ok()) << a.ErrorText() << b.ErrorText();
  a.config.models[0].backends[0].api_key = "sk-old-secret";
  b.config.models[0].backends[0].api_key = "sk-new-secret";
  std::string summary = ConfigChangesSummary(DiffConfigs(a.config, b.config));
  EXPECT_EQ(summary, "backend oa api_key " + KeyFingerprint("sk-old-secret") + " -> " +
                         KeyFingerprint("sk-new-secret") + "\n");
  EXPECT_EQ(summary.find("secret"), std::string::npos);
  b.config.models[0].backends[0].api_key = "sk-old-secret";
  EXPECT_EQ(ConfigChangesSummary(DiffConfigs(a.config, b.config)), "no changes\n");
}

// ---- docs/CONFIG.md ----------------------------------------------------------------------

struct DocRow {
  std::string path;     // as the tables spell it: "gateway.timeouts.connect_ms", "models[].policy"
  std::string default_text;
  std::string applies;
  int line;
};

std::vector<std::string> Backticked(const std::string& cell) {
  std::vector<std::string> out;
  static const std::regex re("`([^`]*)`");
  for (std::sregex_iterator it(cell.begin(), cell.end(), re), end; it != end; ++it) out.push_back((*it)[1]);
  return out;
}

std::string Trim(std::string s) {
  while (!s.empty() && s.front() == ' ') s.erase(s.begin());
  while (!s.empty() && s.back() == ' ') s.pop_back();
  return s;
}

// Reads the key tables of docs/CONFIG.md (tests run from the source root); headings name
// the section ("## `gateway`", "### `models[].backends[]`", "## Top level").
std::vector<DocRow> ReadDocRows(std::set<std::string>* headings) {
  std::ifstream in("docs/CONFIG.md");
  EXPECT_TRUE(in) << "docs/CONFIG.md not found (run from the source root)";
  std::vector<DocRow> rows;
  std::string line, prefix;
  bool in_section = false;
  int n = 0;
  while (std::getline(in, line)) {
    ++n;
    if (line.rfind("## ", 0) == 0 || line.rfind("### ", 0) == 0) {
      auto names = Backticked(line);
      in_section = line.find("Top level") != std::string::npos || !names.empty();
      prefix = names.empty() ? "" : names[0];
      if (!names.empty()) headings->insert(prefix);
      continue;
    }
    if (!in_section || line.rfind("| `", 0) != 0) continue;
    std::vector<std::string> cells;
    std::stringstream ss(line.substr(1));
    for (std::string c; std::getline(ss, c, '|');) cells.push_back(Trim(c));
    if (cells.size() < 4) {
      ADD_FAILURE() << "CONFIG.md:" << n << ": expected | key | default | applies | meaning |";
      continue;
    }
    auto keys = Backticked(cells[0]);
    auto defaults = Backticked(cells[1]);
    for (size_t i = 0; i < keys.size(); ++i) {
      std::string d = defaults.empty() ? cells[1] : defaults.size() == keys.size() ? defaults[i] : defaults[0];
      std::string p = prefix.empty()                          ? keys[i]
                      : prefix == "models" || prefix == "keys" ? prefix + "[]." + keys[i]
                                                               : prefix + "." + keys[i];
      rows.push_back({p, d, cells[2], n});
    }
  }
  return rows;
}

// The table's keys under the docs' spelling, with the default as the docs should show it.
struct Expected {
  std::string default_text;
  bool numeric;
  std::string applies;
};

// GCC 12 at -O3 sees Root's default-constructed strings as maybe-uninitialized (a false
// positive on a value-initialised aggregate) and the Release build makes it an error.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
template <typename Root>
void AddExpected(const std::vector<ConfigKey<Root>>& keys, const std::string& prefix, std::map<std::string, Expected>* out) {
  Root defaults{};
  for (const auto& k : keys) {
    FieldPtr f = k.field(defaults);
    std::string text = !k.shown_default.empty() ? std::string(k.shown_default) : KeyValueText(f, false);
    if (text.empty() && std::holds_alternative<std::string*>(f)) text = "\"\"";
    bool numeric = std::holds_alternative<double*>(f) || std::holds_alternative<uint32_t*>(f) ||
                   std::holds_alternative<uint64_t*>(f);
    (*out)[prefix + std::string(k.path)] = {text, numeric && k.shown_default.empty(), std::string(AppliesName(k.applies))};
  }
}
#pragma GCC diagnostic pop

TEST(ConfigKeysTest, DocsDocumentEveryKeyAndNoOther) {
  std::map<std::string, Expected> expected;
  AddExpected(ConfigKeys(), "", &expected);
  AddExpected(ModelKeys(), "models[].", &expected);
  AddExpected(BackendKeys(), "models[].backends[].", &expected);
  AddExpected(KeyKeys(), "keys[].", &expected);
  std::set<std::string> headings;
  auto rows = ReadDocRows(&headings);
  ASSERT_GT(rows.size(), 60u);
  std::set<std::string> documented;
  for (const auto& r : rows) {
    documented.insert(r.path);
    auto it = expected.find(r.path);
    if (it == expected.end()) {
      ADD_FAILURE() << "CONFIG.md:" << r.line << ": documents `" << r.path << "`, which is not a config key";
      continue;
    }
    const Expected& e = it->second;
    if (e.numeric) {
      EXPECT_DOUBLE_EQ(std::stod(r.default_text), std::stod(e.default_text))
          << "CONFIG.md:" << r.line << ": default of " << r.path;
    } else {
      EXPECT_EQ(r.default_text, e.default_text) << "CONFIG.md:" << r.line << ": default of " << r.path;
    }
    EXPECT_EQ(r.applies, e.applies) << "CONFIG.md:" << r.line << ": applies of " << r.path;
  }
  for (const auto& [path, e] : expected)
    EXPECT_TRUE(documented.count(path) || headings.count(path)) << "CONFIG.md does not document `" << path << "`";
}

}  // namespace
}  // namespace llmgw
