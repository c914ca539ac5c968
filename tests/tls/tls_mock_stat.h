// A counter from llmgw-mock's /mock/stats when the mock runs with --tls (its port then
// speaks only TLS), read with libcurl against the test CA. Shared by the data-plane and
// fleet tests that count what a TLS mock received.
#pragma once

#include <curl/curl.h>

#include <cstdlib>
#include <string>

namespace llmgw::test {

inline size_t CollectCurlBody(char* p, size_t s, size_t n, void* u) {
  static_cast<std::string*>(u)->append(p, s * n);
  return s * n;
}

// The number after "key": in the stats JSON; -1 when the mock cannot be read.
inline long TlsMockStat(int port, const std::string& ca, const std::string& key) {
  std::string body;
  CURL* h = curl_easy_init();
  std::string url = "https://127.0.0.1:";
  url += std::to_string(port);
  url += "/mock/stats";
  curl_easy_setopt(h, CURLOPT_URL, url.c_str());
  curl_easy_setopt(h, CURLOPT_PROXY, "");
  curl_easy_setopt(h, CURLOPT_CAINFO, ca.c_str());
  curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 3000L);
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, CollectCurlBody);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, &body);
  CURLcode rc = curl_easy_perform(h);
  curl_easy_cleanup(h);
  if (rc != CURLE_OK) return -1;
  std::string quoted = "\"";
  quoted += key;
  quoted += "\":";
  size_t p = body.find(quoted);
  return p == std::string::npos ? -1 : std::atol(body.c_str() + p + quoted.size());
}

}  // namespace llmgw::test
