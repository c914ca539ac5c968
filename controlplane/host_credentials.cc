// A fleet agent's backend keys, read on its own host (see host_credentials.h).
#include "controlplane/host_credentials.h"

#include <algorithm>
#include <cstring>
#include <set>

#include "common/config.h"
#include "common/log.h"

namespace llmgw::cp {

HostCredentials::HostCredentials(const std::string& config_file, std::function<void(const std::string&)> before_read)
    : before_read_(std::move(before_read)) {
  if (size_t slash = config_file.rfind('/'); slash != std::string::npos) dir_ = config_file.substr(0, slash + 1);
}

uint32_t HostCredentials::Fill(shm::Snapshot* s) {
  std::map<std::string, std::string> problems;
  std::set<std::string> keyed;  // backends given their key this time
  std::vector<std::string> files;
  uint32_t missing = 0;
  for (uint32_t i = 0; i < s->num_backends && i < shm::kMaxBackends; ++i) {
    shm::BackendEntry& be = s->backends[i];
    shm::BackendUpstream& up = s->upstreams[i];
    std::memset(up.api_key, 0, sizeof(up.api_key));  // whatever came in, only this host's key goes out
    if (be.id[0] == 0) continue;
    std::string file(up.api_key_file, strnlen(up.api_key_file, sizeof(up.api_key_file)));
    std::string env(up.api_key_env, strnlen(up.api_key_env, sizeof(up.api_key_env)));
    if (file.empty() && env.empty()) continue;
    std::string source = file.empty() ? "env:" : "file:";
    source.append(file.empty() ? env : file);
    std::string path = file.empty() || file[0] == '/' ? file : dir_ + file;
    auto it = cache_.find(source);
    if (it == cache_.end()) {
      if (!path.empty() && before_read_) before_read_(path);
      Read r;
      r.ok = ReadBackendKey(file, env, dir_, &r.key, &r.why);
      it = cache_.emplace(source, std::move(r)).first;
    }
    if (!path.empty()) files.push_back(path);
    if (it->second.ok && it->second.key.size() < sizeof(up.api_key)) {
      std::memcpy(up.api_key, it->second.key.data(), it->second.key.size());
      keyed.insert(be.id);
      continue;
    }
    // No keyless requests: llmgw skips an UNHEALTHY backend (the model's other backends
    // and fallbacks serve), on this host only.
    be.state = static_cast<uint8_t>(shm::BackendState::kUnhealthy);
    problems[be.id] = it->second.why;
    ++missing;
  }
  for (const auto& [id, why] : problems) {
    auto old = problems_.find(id);
    if (old == problems_.end() || old->second != why)
      LOG_ERROR("backend key not readable on this host; the backend is not used here until it is",
                {{"backend", id}, {"error", why}});
  }
  for (const auto& [id, why] : problems_)
    if (keyed.count(id)) LOG_INFO("backend key readable again on this host", {{"backend", id}});
  problems_ = std::move(problems);
  std::sort(files.begin(), files.end());
  files.erase(std::unique(files.begin(), files.end()), files.end());
  files_ = std::move(files);
  return missing;
}

std::vector<std::string> HostCredentials::files() const { return files_; }

}  // namespace llmgw::cp
