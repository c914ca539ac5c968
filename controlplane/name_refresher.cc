// Periodic re-resolution of backend host names (see name_refresher.h).
#include "controlplane/name_refresher.h"

#include <arpa/inet.h>

#include <cstring>

#include "common/log.h"

namespace llmgw::cp {
namespace {

bool IsIpLiteral(const std::string& host) {
  unsigned char buf[16];
  return inet_pton(AF_INET, host.c_str(), buf) == 1 || inet_pton(AF_INET6, host.c_str(), buf) == 1;
}

std::string AddrText(const ResolvedAddr& a) {
  char out[INET6_ADDRSTRLEN] = {};
  if (!inet_ntop(a.family, a.addr, out, sizeof(out))) return "?";
  return out;
}

}  // namespace

bool SameAddr(const ResolvedAddr& a, const ResolvedAddr& b) {
  return a.family == b.family && std::memcmp(a.addr, b.addr, sizeof(a.addr)) == 0;
}

std::vector<AddrChange> NameRefresher::Refresh(const std::vector<BackendHost>& hosts, const std::atomic<bool>* stop) {
  struct Looked {
    bool ok = false;
    ResolvedAddr addr;
  };
  std::map<std::pair<std::string, uint16_t>, Looked> looked;  // one lookup per host and port
  std::vector<AddrChange> changes;
  for (const BackendHost& h : hosts) {
    if (h.host.empty() || IsIpLiteral(h.host)) continue;
    auto [it, fresh] = looked.try_emplace({h.host, h.port});
    if (fresh) {
      if (stop && stop->load()) return {};  // stopping: what is found so far is not published
      std::string why;
      it->second.ok = resolve_(h.host, h.port, &it->second.addr, &why);
      auto f = failing_.find(h.host);
      if (!it->second.ok) {
        if (f == failing_.end() || f->second != why)
          LOG_WARN("backend host name does not resolve now; keeping its last address",
                   {{"host", h.host}, {"error", why}});
        failing_[h.host] = why;
      } else if (f != failing_.end()) {
        LOG_INFO("backend host name resolves again", {{"host", h.host}});
        failing_.erase(f);
      }
    }
    if (!it->second.ok || SameAddr(it->second.addr, h.addr)) continue;
    LOG_INFO("backend address changed", {{"backend", h.id}, {"host", h.host}, {"from", AddrText(h.addr)},
                                         {"to", AddrText(it->second.addr)}});
    changes.push_back({h.slot, h.key, it->second.addr});
  }
  return changes;
}

}  // namespace llmgw::cp
