// The config keys, declared once: one row per key (dotted path, type through the field it
// fills, bounds or check, whether a reload applies it, a one-line doc). The table drives
// the parser and its `FILE:LINE: key: message` errors (config.cc), `llmctl config diff`
// and llmcd's reload summary (DiffConfigs below), and tests/common/config_keys_test.cc
// checks docs/CONFIG.md against it (every key documented with its default and reload
// column, no documented key that does not exist). The defaults are the member initialisers
// in config.h, read from a default-constructed Config, never written out a second time.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "common/config.h"

namespace llmgw {

// When a changed value takes effect.
enum class Applies : uint8_t {
  kReload,         // on llmcd's hot reload (copied into the snapshot, or read by llmcd live)
  kLlmgwRestart,   // read by llmgw at start
  kLlmcdRestart,   // read by llmcd at start
  kRestart,        // read by both at start
};
std::string_view AppliesName(Applies a);  // as docs/CONFIG.md's `applies` column shows it

// Extra checks on string values (numbers use min/max).
enum class KeyCheck : uint8_t {
  kNone,
  kListen,        // HOST:PORT, port 0 allowed
  kHostPortOpt,   // empty, or HOST:PORT with a port
  kInstanceName,  // 1-64 of [A-Za-z0-9_-]
  kAbsPath,       // starts with /
  kOneOf,         // one of `choices` ("a|b|c")
  kSha256Hex,     // 64 hex digits (a key's key_sha256)
  kKeyId,         // 1-64 of [A-Za-z0-9_.:@-] (a key's id: a metric label and a log field)
};

// The field a key fills; the alternative is the key's type. std::monostate marks a key the
// parser walks by hand (models, models[].backends): documented and diffed by its entries.
using FieldPtr = std::variant<std::monostate, uint32_t*, uint64_t*, double*, bool*, std::string*,
                              std::vector<std::string>*, Policy*, Engine*>;

template <typename Root>
struct ConfigKey {
  std::string_view path;  // dotted, relative to Root ("gateway.timeouts.connect_ms", "policy")
  FieldPtr (*field)(Root&);
  Applies applies = Applies::kReload;
  double min = 0;         // numbers: smallest accepted value
  double max = 0;         // numbers: largest accepted value; 0 = the type's largest
  KeyCheck check = KeyCheck::kNone;
  std::string_view choices;  // kOneOf: "debug|info|warn|error|off"
  std::string_view shown_default;  // when the real default is computed ("the URL"); else empty
  std::string_view doc;
};

// Top-level and section keys of Config, in file order; `models` is walked by hand.
const std::vector<ConfigKey<Config>>& ConfigKeys();
// Keys of one entry of `models:`; `backends` is walked by hand.
const std::vector<ConfigKey<ModelConfig>>& ModelKeys();
// Keys of one entry of `models[].backends:`.
const std::vector<ConfigKey<BackendConfig>>& BackendKeys();
// Keys of one entry of `keys:` (and of auth.keys_file).
const std::vector<ConfigKey<KeyConfig>>& KeyKeys();

// The value of a field as the diff and the docs show it: numbers plainly (%.10g), strings
// quoted, lists as [a, b], enums by name.
std::string KeyValueText(const FieldPtr& f, bool quote_strings = true);

// ---- config diff -----------------------------------------------------------------------
struct ConfigFieldChange {
  std::string field;  // key path for "key" changes, field name for models and backends
  std::string from, to;
};

struct ConfigChange {
  enum Kind { kAdded, kRemoved, kChanged } kind;
  std::string what;    // "model", "backend", "api key" (an entry of `keys:`) or "key"
  std::string name;    // model name, backend id or key path
  std::string detail;  // one line: for changes "field: old -> new, ..."
  std::vector<ConfigFieldChange> fields;  // kChanged: what differs
  Applies applies = Applies::kReload;     // "key": when the change takes effect
};

// What applying `next` would change relative to `running`, models first, then backends,
// then the other keys (effective values, so spelled-out defaults are not changes). Every
// key of the tables above is compared.
std::vector<ConfigChange> DiffConfigs(const Config& running, const Config& next);

// The changes as llmcd's reload summary: one line each ("added backend X", "backend X
// max_concurrent 16 -> 32", "gateway.listen "a" -> "b" (takes effect after restarting
// llmgw)"); "no changes\n" when there are none.
std::string ConfigChangesSummary(const std::vector<ConfigChange>& changes);

}  // namespace llmgw
