// HttpGet over libcurl's multi interface: one easy handle per call, driven in 50 ms poll
// slices so a cancel flag is seen promptly, the whole transfer bounded by timeout_ms.
#include "controlplane/http_client.h"

#include <arpa/inet.h>
#include <curl/curl.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <mutex>

namespace llmgw::cp {
namespace {

void GlobalInit() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

struct Sink {
  std::string* body;
  size_t cap;
  bool too_large = false;
};

size_t Write(char* data, size_t size, size_t n, void* user) {
  auto* s = static_cast<Sink*>(user);
  size_t len = size * n;
  if (s->body->size() + len > s->cap) {
    s->too_large = true;
    return 0;  // aborts the transfer with CURLE_WRITE_ERROR
  }
  s->body->append(data, len);
  return len;
}

// "ADDR:PORT" of the resolved address, IPv6 in brackets, for CURLOPT_CONNECT_TO.
std::string AddrPort(const HttpTarget& t) {
  char ip[INET6_ADDRSTRLEN] = {};
  uint16_t port = 0;
  if (t.addr.ss_family == AF_INET6) {
    const auto* sa = reinterpret_cast<const sockaddr_in6*>(&t.addr);
    inet_ntop(AF_INET6, &sa->sin6_addr, ip, sizeof ip);
    port = ntohs(sa->sin6_port);
    // snprintf, not "[" + std::string(ip): GCC 12 at -O3 warns -Wrestrict (a false
    // positive) on operator+(const char*, string&&), which the Release build makes an error.
    char out[INET6_ADDRSTRLEN + 8];
    std::snprintf(out, sizeof out, "[%s]:%u", ip, static_cast<unsigned>(port));
    return out;
  }
  const auto* sa = reinterpret_cast<const sockaddr_in*>(&t.addr);
  inet_ntop(AF_INET, &sa->sin_addr, ip, sizeof ip);
  port = ntohs(sa->sin_port);
  return std::string(ip) + ":" + std::to_string(port);
}

// The port part of HOST:PORT (host_header always carries one).
std::string PortOf(const std::string& host_header) {
  size_t colon = host_header.rfind(':');
  size_t bracket = host_header.rfind(']');
  if (colon == std::string::npos || (bracket != std::string::npos && colon < bracket)) return "";
  return host_header.substr(colon + 1);
}

std::string Describe(CURLcode rc, const char* errbuf, const Sink& sink, uint32_t timeout_ms) {
  std::string detail = errbuf[0] ? errbuf : curl_easy_strerror(rc);
  switch (rc) {
    case CURLE_WRITE_ERROR:
      if (sink.too_large) return "response too large";
      return "receive: " + detail;
    case CURLE_OPERATION_TIMEDOUT: return "timeout after " + std::to_string(timeout_ms) + " ms";
    case CURLE_COULDNT_CONNECT: return "connect: " + detail;
    case CURLE_PEER_FAILED_VERIFICATION:
      return "tls: the backend's certificate was refused: " + detail;
    case CURLE_SSL_CACERT_BADFILE: return "tls: cannot load tls.ca_file: " + detail;
    case CURLE_SSL_CERTPROBLEM: return "tls: cannot use the client certificate: " + detail;
    case CURLE_SSL_CONNECT_ERROR: return "tls: handshake failed: " + detail;
    case CURLE_GOT_NOTHING: return "empty response";
    case CURLE_RECV_ERROR: return "receive: " + detail;
    case CURLE_SEND_ERROR: return "send: " + detail;
    case CURLE_UNSUPPORTED_PROTOCOL:
    case CURLE_WEIRD_SERVER_REPLY: return "not an HTTP response: " + detail;
    default: return detail;
  }
}

}  // namespace

HttpResponse HttpGet(const HttpTarget& target, const std::string& path, uint32_t timeout_ms,
                     size_t max_body_bytes, const std::atomic<bool>* cancel) {
  GlobalInit();
  HttpResponse res;
  CURL* easy = curl_easy_init();
  CURLM* multi = curl_multi_init();
  if (!easy || !multi) {
    if (easy) curl_easy_cleanup(easy);
    if (multi) curl_multi_cleanup(multi);
    res.error = "libcurl: out of memory";
    return res;
  }
  const HttpTlsOptions& tls = target.tls_options;
  // With tls.server_name the URL names it (so SNI and the certificate check use it) while
  // the Host header and the connection stay those of the configured backend.
  std::string host = target.tls && !tls.server_name.empty() ? tls.server_name + ":" + PortOf(target.host_header)
                                                            : target.host_header;
  std::string url = (target.tls ? "https://" : "http://") + host + target.base_path + path;
  std::string connect_to = "::" + AddrPort(target);
  curl_slist* connect_list = curl_slist_append(nullptr, connect_to.c_str());
  curl_slist* headers = nullptr;
  headers = curl_slist_append(headers, ("Host: " + target.host_header).c_str());
  headers = curl_slist_append(headers, "Accept: text/plain, application/json");
  for (const auto& h : target.headers) headers = curl_slist_append(headers, h.c_str());

  Sink sink{&res.body, max_body_bytes};
  char errbuf[CURL_ERROR_SIZE] = {};
  curl_easy_setopt(easy, CURLOPT_URL, url.c_str());
  curl_easy_setopt(easy, CURLOPT_CONNECT_TO, connect_list);
  curl_easy_setopt(easy, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(easy, CURLOPT_USERAGENT, "llmcd");
  curl_easy_setopt(easy, CURLOPT_PROXY, "");  // never through an environment proxy
  curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(easy, CURLOPT_FOLLOWLOCATION, 0L);
  curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, static_cast<long>(timeout_ms));
  curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(timeout_ms));
  curl_easy_setopt(easy, CURLOPT_FORBID_REUSE, 1L);
  curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, Write);
  curl_easy_setopt(easy, CURLOPT_WRITEDATA, &sink);
  curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, errbuf);
  if (target.tls) {
    curl_easy_setopt(easy, CURLOPT_SSL_VERIFYPEER, tls.verify ? 1L : 0L);
    curl_easy_setopt(easy, CURLOPT_SSL_VERIFYHOST, tls.verify ? 2L : 0L);
    if (!tls.ca_file.empty()) curl_easy_setopt(easy, CURLOPT_CAINFO, tls.ca_file.c_str());
    if (!tls.client_cert_file.empty()) {
      curl_easy_setopt(easy, CURLOPT_SSLCERT, tls.client_cert_file.c_str());
      curl_easy_setopt(easy, CURLOPT_SSLKEY, tls.client_key_file.c_str());
    }
  }

  curl_multi_add_handle(multi, easy);
  CURLcode rc = CURLE_OK;
  bool done = false, cancelled = false;
  while (!done) {
    int running = 0;
    CURLMcode mc = curl_multi_perform(multi, &running);
    if (mc != CURLM_OK) {
      res.error = std::string("libcurl: ") + curl_multi_strerror(mc);
      break;
    }
    int queued = 0;
    while (CURLMsg* m = curl_multi_info_read(multi, &queued)) {
      if (m->msg == CURLMSG_DONE) {
        rc = m->data.result;
        done = true;
      }
    }
    if (done) break;
    if (cancel && cancel->load(std::memory_order_relaxed)) {
      cancelled = true;
      break;
    }
    curl_multi_poll(multi, nullptr, 0, cancel ? 50 : 1000, nullptr);
  }
  if (cancelled) {
    res.error = "cancelled";
  } else if (done && rc != CURLE_OK) {
    res.error = Describe(rc, errbuf, sink, timeout_ms);
  } else if (done) {
    long status = 0;
    curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
    if (status < 100 || status > 599) res.error = "bad status line";
    else res.status = static_cast<int>(status);
  }
  if (!res.ok()) res.body.clear();
  curl_multi_remove_handle(multi, easy);
  curl_easy_cleanup(easy);
  curl_multi_cleanup(multi);
  curl_slist_free_all(headers);
  curl_slist_free_all(connect_list);
  return res;
}

}  // namespace llmgw::cp
