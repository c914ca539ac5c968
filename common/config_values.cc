// Value parsers and small helpers of the config schema: policy and engine names, host:port and
// URL parsing, credential redaction in URLs, "did you mean" hints and the error text. Kept
// apart from the YAML walk (config.cc) because llmctl, llmcd and the data plane call them on
// their own.
#include "common/config.h"
#include "common/config_parser.h"

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <sstream>
#include <string>
#include <vector>

namespace llmgw {

namespace {
constexpr std::string_view kPolicyNames[] = {
    "round_robin", "weighted_round_robin", "least_connections", "least_queue", "capacity",
    "p2c_kv",      "consistent_hash",      "prefix_affinity",   "adaptive"};
constexpr std::string_view kEngineNames[] = {"auto", "vllm", "sglang", "tgi", "llamacpp", "trtllm"};
}  // namespace

std::string_view PolicyName(Policy p) {
  auto i = static_cast<size_t>(p);
  return i < std::size(kPolicyNames) ? kPolicyNames[i] : "unknown";
}
bool ParsePolicy(std::string_view s, Policy* out) {
  for (size_t i = 0; i < std::size(kPolicyNames); ++i) {
    if (s == kPolicyNames[i]) {
      *out = static_cast<Policy>(i);
      return true;
    }
  }
  return false;
}
std::string_view EngineName(Engine e) {
  auto i = static_cast<size_t>(e);
  return i < std::size(kEngineNames) ? kEngineNames[i] : "unknown";
}
bool ParseEngine(std::string_view s, Engine* out) {
  for (size_t i = 0; i < std::size(kEngineNames); ++i) {
    if (s == kEngineNames[i]) {
      *out = static_cast<Engine>(i);
      return true;
    }
  }
  return false;
}

bool ParseHostPort(std::string_view s, std::string* host, uint16_t* port, std::string* why,
                   bool allow_zero_port) {
  size_t colon;
  if (!s.empty() && s[0] == '[') {
    size_t close = s.find(']');
    if (close == std::string_view::npos || close + 1 >= s.size() || s[close + 1] != ':') {
      *why = "expected [IPV6]:PORT";
      return false;
    }
    *host = std::string(s.substr(1, close - 1));
    colon = close + 1;
  } else {
    colon = s.rfind(':');
    if (colon == std::string_view::npos) {
      *why = "expected HOST:PORT";
      return false;
    }
    *host = std::string(s.substr(0, colon));
  }
  if (host->empty()) {
    *why = "empty host";
    return false;
  }
  std::string_view p = s.substr(colon + 1);
  if (p.empty() || p.size() > 5 || !std::all_of(p.begin(), p.end(), ::isdigit)) {
    *why = "port must be a number";
    return false;
  }
  long v = std::strtol(std::string(p).c_str(), nullptr, 10);
  if (v > 65535 || (v == 0 && !allow_zero_port)) {
    *why = "port out of range";
    return false;
  }
  *port = static_cast<uint16_t>(v);
  return true;
}

bool ParseUrl(std::string_view s, Url* out, std::string* why) {
  constexpr std::string_view kHttp = "http://", kHttps = "https://";
  bool tls = s.substr(0, kHttps.size()) == kHttps;
  if (!tls && s.substr(0, kHttp.size()) != kHttp) {
    *why = "URL must start with http:// or https://";
    return false;
  }
  uint16_t default_port = tls ? 443 : 80;
  std::string_view rest = s.substr(tls ? kHttps.size() : kHttp.size());
  size_t slash = rest.find('/');
  std::string_view hostport = rest.substr(0, slash);
  out->path = slash == std::string_view::npos ? "" : std::string(rest.substr(slash));
  while (!out->path.empty() && out->path.back() == '/') out->path.pop_back();
  if (hostport.empty()) {
    *why = "URL has no host";
    return false;
  }
  if (hostport.find('@') != std::string_view::npos) {
    *why = "credentials in the URL (user:password@) are not supported";
    return false;
  }
  if (hostport.find_first_of(" \t?#") != std::string_view::npos) {
    *why = "URL host contains an invalid character";
    return false;
  }
  bool has_port = hostport.back() != ']' && hostport.find(':') != std::string_view::npos;
  if (has_port) {
    if (!ParseHostPort(hostport, &out->host, &out->port, why, false)) return false;
  } else {
    out->host = hostport[0] == '[' ? std::string(hostport.substr(1, hostport.size() - 2))
                                   : std::string(hostport);
    out->port = default_port;
  }
  out->scheme = tls ? "https" : "http";
  return true;
}

std::string RedactUrlCredentials(std::string_view url) {
  size_t scheme = url.find("://");
  size_t start = scheme == std::string_view::npos ? 0 : scheme + 3;
  size_t end = url.find_first_of("/?#", start);
  size_t at = url.substr(start, end == std::string_view::npos ? std::string_view::npos : end - start).rfind('@');
  if (at == std::string_view::npos) return std::string(url);
  return std::string(url.substr(0, start)) + "***" + std::string(url.substr(start + at));
}

std::string ConfigError::ToString() const {
  std::ostringstream os;
  os << file << ":" << line << ": " << key << ": " << message;
  return os.str();
}

std::string ConfigResult::ErrorText() const {
  std::string out;
  for (const auto& e : errors) out += e.ToString() + "\n";
  return out;
}

std::string DidYouMean(std::string_view word, const std::vector<std::string_view>& candidates) {
  // Levenshtein distance; suggest when at most a third of the word differs.
  auto dist = [](std::string_view a, std::string_view b) {
    std::vector<size_t> prev(b.size() + 1), cur(b.size() + 1);
    for (size_t j = 0; j <= b.size(); ++j) prev[j] = j;
    for (size_t i = 1; i <= a.size(); ++i) {
      cur[0] = i;
      for (size_t j = 1; j <= b.size(); ++j) {
        size_t sub = prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1);
        cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, sub});
      }
      std::swap(prev, cur);
    }
    return prev[b.size()];
  };
  std::string best;
  size_t best_d = SIZE_MAX;
  for (auto c : candidates) {
    size_t d = dist(word, c);
    if (d < best_d) {
      best_d = d;
      best = std::string(c);
    }
  }
  size_t limit = std::max<size_t>(2, word.size() / 3);
  return best_d <= limit ? best : std::string();
}

namespace config_internal {
std::vector<std::string_view> PolicyNames() { return {std::begin(kPolicyNames), std::end(kPolicyNames)}; }
std::vector<std::string_view> EngineNames() { return {std::begin(kEngineNames), std::end(kEngineNames)}; }
}  // namespace config_internal

}  // namespace llmgw
