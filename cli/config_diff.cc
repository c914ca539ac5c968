// `llmctl config diff -o json`: the changes DiffConfigs (common/config_keys.h, driven by
// the key tables) finds between the running config and a file, as JSON.
#include <rapidjson/prettywriter.h>
#include <rapidjson/stringbuffer.h>

#include "cli/cli_internal.h"

namespace llmgw::cli {

std::string ConfigChangesJson(const std::vector<ConfigChange>& changes) {
  rapidjson::StringBuffer buf;
  rapidjson::PrettyWriter<rapidjson::StringBuffer> w(buf);
  w.SetIndent(' ', 2);
  w.StartObject();
  w.Key("changed");
  w.Bool(!changes.empty());
  w.Key("changes");
  w.StartArray();
  for (const auto& c : changes) {
    w.StartObject();
    w.Key("change");
    w.String(c.kind == ConfigChange::kAdded ? "added"
             : c.kind == ConfigChange::kRemoved ? "removed" : "changed");
    w.Key("kind");
    w.String(c.what.c_str());
    w.Key("name");
    w.String(c.name.c_str());
    w.Key("detail");
    w.String(c.detail.c_str());
    w.Key("applies");
    w.String(std::string(AppliesName(c.applies)).c_str());
    w.EndObject();
  }
  w.EndArray();
  w.EndObject();
  return buf.GetString();
}

}  // namespace llmgw::cli
