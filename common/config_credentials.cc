// Backend credentials (api_key_file / api_key_env): read at load and on reload, checked
// without ever echoing the secret, and fingerprinted for display (llmctl shows the
// fingerprint, never the key).
#include "common/config.h"

#include <openssl/sha.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>

namespace llmgw {

bool ReadBackendKey(const std::string& api_key_file, const std::string& api_key_env, const std::string& dir,
                    std::string* key, std::string* why) {
  key->clear();
  std::string secret;
  if (!api_key_file.empty()) {
    std::string file = api_key_file[0] == '/' ? api_key_file : dir + api_key_file;
    std::ifstream in(file);
    if (!in) {
      *why = "cannot read ";
      why->append(file).append(": ").append(std::strerror(errno));
      return false;
    }
    std::stringstream ss;
    ss << in.rdbuf();
    secret = ss.str();
  } else if (!api_key_env.empty()) {
    const char* v = std::getenv(api_key_env.c_str());
    if (!v || !*v) {
      *why = "environment variable ";
      why->append(api_key_env).append(" is not set");
      return false;
    }
    secret = v;
  } else {
    *why = "no api_key_file or api_key_env";
    return false;
  }
  // A trailing newline (echo > file) is not part of the key.
  while (!secret.empty() && (secret.back() == '\n' || secret.back() == '\r' || secret.back() == ' ')) secret.pop_back();
  bool printable = !secret.empty();
  for (char ch : secret)
    if (static_cast<unsigned char>(ch) <= 0x20 || static_cast<unsigned char>(ch) >= 0x7f) printable = false;
  if (secret.size() > 255) printable = false;
  if (!printable) {
    // Never echo the content: say only what is wrong with it.
    *why = secret.empty()          ? "the key is empty"
           : secret.size() > 255   ? "the key is longer than 255 characters"
                                   : "the key contains whitespace or non-printable characters";
    return false;
  }
  *key = std::move(secret);
  return true;
}

void ResolveBackendKeys(Config* config, std::vector<ConfigError>* errors) {
  std::string dir;
  if (size_t slash = config->source_file.rfind('/'); slash != std::string::npos)
    dir = config->source_file.substr(0, slash + 1);
  for (size_t i = 0; i < config->models.size(); ++i) {
    for (size_t j = 0; j < config->models[i].backends.size(); ++j) {
      BackendConfig& b = config->models[i].backends[j];
      b.api_key.clear();
      if (b.api_key_file.empty() && b.api_key_env.empty()) continue;
      std::string why;
      if (!ReadBackendKey(b.api_key_file, b.api_key_env, dir, &b.api_key, &why)) {
        std::string key = "models[";
        key.append(std::to_string(i)).append("].backends[").append(std::to_string(j)).append("]");
        key.append(b.api_key_file.empty() ? ".api_key_env" : ".api_key_file");
        errors->push_back({config->source_file, b.line, key, why});
      }
    }
  }
}

std::string KeyFingerprint(std::string_view secret) {
  if (secret.empty()) return {};
  unsigned char md[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(secret.data()), secret.size(), md);
  char out[32];
  std::snprintf(out, sizeof out, "sha256:%02x%02x%02x%02x", md[0], md[1], md[2], md[3]);
  return out;
}

}  // namespace llmgw
