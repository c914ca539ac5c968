// The config stored in etcd for a whole HA fleet (fleet.etcd; `llmctl config push FILE`):
// which keys it may hold, and how a controller merges it with its own local file. The
// split follows the key table's `applies` column: what llmcd applies on a hot reload is
// fleet-wide (models, keys, health, breakers, routing, limits, timeouts, retries ...) and
// comes from the stored document; what a process reads at start (listeners, threads,
// instance, admin, fleet, tracing, log level) is local to each host and comes from its
// own file. auth.keys_file is local too: it names a file on the host. The local file is
// also the bootstrap: it holds fleet.etcd and serves until a stored config exists.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "common/config.h"

namespace llmgw {

// True for a key path of ConfigKeys() (or the sections "models" and "keys") that the
// stored fleet config provides.
bool IsFleetWideKey(std::string_view path);

// The stored document checked on its own: YAML and schema errors with its own line
// numbers (FLEET_NAME:LINE: key: message), and any local key it sets refused. Empty = ok.
std::vector<ConfigError> CheckFleetConfigText(const std::string& fleet_yaml, const std::string& fleet_name);

// The local file at local_path with every fleet-wide key taken from fleet_yaml instead
// (a fleet-wide key the stored document leaves out has its default, whatever the local
// file says), parsed as llmcd loads a file: environment overrides applied and, with
// read_backend_keys, backend keys read (paths relative to the local file). Errors of the
// local file name it; errors of the stored document name fleet_name; the merged result's
// own errors (rules between a local and a fleet-wide key) name both.
ConfigResult LoadConfigWithFleet(const std::string& local_path, const std::string& fleet_yaml,
                                 const std::string& fleet_name, bool read_backend_keys);

}  // namespace llmgw
