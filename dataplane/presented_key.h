// The client API key a request presents (DESIGN.md "Client API keys and limits"):
// `Authorization: Bearer <key>`, `api-key: <key>` (Azure clients) or `x-api-key: <key>`
// (Anthropic clients). ClientSession feeds it every credential header and drops those
// headers from what goes upstream; the worker asks ApiKeyAuth (api_key_auth.h) who the key
// is. Kept in the request's state; never allocates.
#pragma once

#include <string_view>

#include "dataplane/http_text.h"
#include "dataplane/small_str.h"

namespace llmgw::dataplane {

// The headers that carry a client's credentials: dropped from what goes upstream (the
// backend gets its own credentials, or none) and never written to a log.
inline bool IsClientCredential(std::string_view name) {
  return EqualsNoCase(name, "authorization") || EqualsNoCase(name, "api-key") || EqualsNoCase(name, "x-api-key");
}

// The key a request presents, fed one header at a time. When several headers carry one,
// Authorization wins over api-key over x-api-key (the order OpenAI, Azure and Anthropic
// SDKs are most often configured in); an Authorization of another scheme (Basic) is not
// an API key.
class PresentedKey {
 public:
  void Clear() {
    secret_.Clear();
    rank_ = 0;
  }
  void OnHeader(std::string_view name, std::string_view value) {
    int rank = 0;
    std::string_view v = value;
    if (EqualsNoCase(name, "authorization")) {
      constexpr std::string_view kBearer = "bearer ";
      if (v.size() < kBearer.size() || !EqualsNoCase(v.substr(0, kBearer.size()), kBearer)) return;
      v.remove_prefix(kBearer.size());
      rank = 3;
    } else if (EqualsNoCase(name, "api-key")) {
      rank = 2;
    } else if (EqualsNoCase(name, "x-api-key")) {
      rank = 1;
    } else {
      return;
    }
    if (rank <= rank_) return;
    while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) v.remove_prefix(1);
    while (!v.empty() && (v.back() == ' ' || v.back() == '\t')) v.remove_suffix(1);
    secret_.Clear();
    secret_.Append(v.data(), v.size());
    rank_ = rank;
  }
  bool present() const { return rank_ != 0; }
  std::string_view secret() const { return secret_.View(); }
  // Longer than any key we could have issued: cannot match, refused as invalid.
  bool overflow() const { return secret_.overflow; }

 private:
  SmallStr<512> secret_;  // copied: the header's bytes are reused for the next header
  int rank_ = 0;
};

}  // namespace llmgw::dataplane
