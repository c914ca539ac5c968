// Per-host overrides of the few config keys operators set per machine or container
// without templating the file (as the seeds' LLM_* variables do): one config file (a
// ConfigMap, a package's conffile) serves many hosts, the environment says what differs.
//   LLMGW_INSTANCE   instance
//   LLMGW_LISTEN     gateway.listen
//   LLMGW_THREADS    gateway.threads
//   LLMGW_LOG_LEVEL  log_level
// Applied by LoadConfigFile after parsing, so llmgw, llmcd (reloads included) and
// `llmctl config check` all see the same values. A bad value is a config error naming
// the variable; an empty variable counts as unset.
#pragma once

#include <string>
#include <vector>

#include "common/config.h"

namespace llmgw {

using GetEnvFn = const char* (*)(const char*);
// The process environment (std::getenv).
const char* ProcessEnv(const char* name);

// Applies the variables set in the environment to r->config; appends an error per bad one.
void ApplyEnvOverrides(ConfigResult* r, GetEnvFn get_env = ProcessEnv);
// "NAME=value" for every override variable that is set (for the startup log).
std::vector<std::string> EnvOverridesInEffect(GetEnvFn get_env = ProcessEnv);

}  // namespace llmgw
