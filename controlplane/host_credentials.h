// A fleet agent's backend keys: the controller's snapshot names where each backend's key
// comes from (api_key_file / api_key_env) but never carries the key; the agent reads it on
// its own host (the same file path, relative to its own config file, or the same variable,
// as a Kubernetes Secret mounted on every pod gives) and fills it into the snapshot it
// publishes to its local llmgw. A backend whose key this host cannot read is published
// UNHEALTHY, so llmgw routes around it rather than sending it keyless requests.
#pragma once

#include <functional>
#include <map>
#include <string>
#include <vector>

#include "common/shm_layout.h"

namespace llmgw::cp {

class HostCredentials {
 public:
  // config_file: this host's config file; relative api_key_file paths are under its folder.
  // before_read, when set, is called with a key file's path before the file is read (the
  // agent watches it there: a rotation right after the read must not go unnoticed).
  explicit HostCredentials(const std::string& config_file,
                           std::function<void(const std::string&)> before_read = nullptr);

  // For every used backend slot of s that names api_key_file or api_key_env: the key as
  // this host has it (read once, then cached until Invalidate). A backend whose key cannot
  // be read here is left without one and set UNHEALTHY; the reason is logged when it
  // appears or changes (not on every snapshot), and the recovery once. Returns how many
  // backends were left without a key.
  uint32_t Fill(shm::Snapshot* s);
  // Key files or variables may have changed (a key file rewritten, the controller
  // reloaded, SIGHUP): the next Fill reads them again.
  void Invalidate() { cache_.clear(); }
  // The key files (paths as read) the last Fill used: to watch them for rotation.
  std::vector<std::string> files() const;
  // Backend id -> why it has no key on this host, as of the last Fill.
  const std::map<std::string, std::string>& problems() const { return problems_; }

 private:
  struct Read {
    bool ok = false;
    std::string key, why;
  };
  std::string dir_;                     // the config file's folder, with its '/'
  std::function<void(const std::string&)> before_read_;
  std::map<std::string, Read> cache_;   // "file:PATH" or "env:NAME" -> what was read
  std::map<std::string, std::string> problems_;
  std::vector<std::string> files_;
};

}  // namespace llmgw::cp
