// See env_overrides.h. Each variable is validated with the same rule as its YAML key.
#include "common/env_overrides.h"

#include <cstdlib>

namespace llmgw {

namespace {

constexpr const char* kVars[] = {"LLMGW_INSTANCE", "LLMGW_LISTEN", "LLMGW_THREADS", "LLMGW_LOG_LEVEL"};

const char* Get(GetEnvFn get_env, const char* name) {
  const char* v = get_env(name);
  return v && *v ? v : nullptr;
}

void Bad(ConfigResult* r, const char* var, const char* key, const std::string& value, const std::string& why) {
  r->errors.push_back({std::string("$") + var, 0, key, "'" + value + "' (from the environment): " + why});
}

}  // namespace

const char* ProcessEnv(const char* name) { return std::getenv(name); }

void ApplyEnvOverrides(ConfigResult* r, GetEnvFn get_env) {
  Config& c = r->config;
  if (const char* v = Get(get_env, "LLMGW_INSTANCE")) {
    std::string s = v;
    bool good = s.size() <= 64;
    for (char ch : s)
      good = good && ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '_' ||
                      ch == '-');
    if (good) c.instance = s;
    else Bad(r, "LLMGW_INSTANCE", "instance", s, "must be 1-64 characters of [A-Za-z0-9_-]");
  }
  if (const char* v = Get(get_env, "LLMGW_LISTEN")) {
    std::string host, why;
    uint16_t port = 0;
    if (ParseHostPort(v, &host, &port, &why)) c.gateway.listen = v;
    else Bad(r, "LLMGW_LISTEN", "gateway.listen", v, why);
  }
  if (const char* v = Get(get_env, "LLMGW_THREADS")) {
    char* end = nullptr;
    unsigned long n = std::strtoul(v, &end, 10);
    if (*v >= '0' && *v <= '9' && end && *end == '\0' && n <= 1024) c.gateway.threads = static_cast<uint32_t>(n);
    else Bad(r, "LLMGW_THREADS", "gateway.threads", v, "must be an integer from 0 to 1024");
  }
  if (const char* v = Get(get_env, "LLMGW_LOG_LEVEL")) {
    std::string s = v;
    if (s == "debug" || s == "info" || s == "warn" || s == "error" || s == "off") c.log_level = s;
    else Bad(r, "LLMGW_LOG_LEVEL", "log_level", s, "must be one of debug, info, warn, error, off");
  }
}

std::vector<std::string> EnvOverridesInEffect(GetEnvFn get_env) {
  std::vector<std::string> out;
  for (const char* var : kVars)
    if (const char* v = Get(get_env, var)) out.push_back(std::string(var) + "=" + v);
  return out;
}

}  // namespace llmgw
