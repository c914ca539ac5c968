// SpanExporter (span_exporter.h).
#include "controlplane/span_exporter.h"

#include <curl/curl.h>

#include <algorithm>
#include <chrono>

#include "common/log.h"

namespace llmgw::cp {

namespace {

size_t Discard(char*, size_t size, size_t n, void*) { return size * n; }

// libcurl's global init once per process, before any thread uses it.
void CurlGlobalInit() {
  static const bool done = [] { return curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK; }();
  (void)done;
}

}  // namespace

Result<std::unique_ptr<SpanExporter>> SpanExporter::Start(SpanExporterOptions opts) {
  const std::string& e = opts.endpoint;
  if (e.rfind("http://", 0) != 0 && e.rfind("https://", 0) != 0)
    return Error(ErrorKind::kConfig, ErrorSide::kInternal, false,
                 "tracing.otlp_endpoint: '%s' is not an http:// or https:// URL", e.c_str());
  CurlGlobalInit();
  std::unique_ptr<SpanExporter> x(new SpanExporter(std::move(opts)));
  x->thread_ = std::thread([p = x.get()] { p->Loop(); });
  return x;
}

SpanExporter::SpanExporter(SpanExporterOptions opts) : opts_(std::move(opts)) {
  // OTLP/HTTP: the traces path is appended to a base endpoint (OTEL_EXPORTER_OTLP_ENDPOINT
  // semantics); a URL that already names it is used as is.
  url_ = opts_.endpoint;
  if (url_.size() < 10 || url_.compare(url_.size() - 10, 10, "/v1/traces") != 0) {
    while (!url_.empty() && url_.back() == '/') url_.pop_back();
    url_ += "/v1/traces";
  }
}

SpanExporter::~SpanExporter() {
  {
    std::lock_guard<std::mutex> l(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

size_t SpanExporter::Enqueue(std::vector<OtlpSpan> spans) {
  size_t taken = 0;
  {
    std::lock_guard<std::mutex> l(mu_);
    for (auto& s : spans) {
      if (q_.size() >= opts_.max_queue) break;
      q_.push_back(std::move(s));
      ++taken;
    }
    c_.dropped_queue_full += spans.size() - taken;
    c_.queued = q_.size();
  }
  if (taken) cv_.notify_all();
  return taken;
}

void SpanExporter::CountDataPlaneDropped(uint64_t n) {
  std::lock_guard<std::mutex> l(mu_);
  c_.dropped_data_plane += n;
}

SpanExporterCounters SpanExporter::counters() const {
  std::lock_guard<std::mutex> l(mu_);
  return c_;
}

bool SpanExporter::Post(const std::string& body, bool* retry, std::string* why) {
  *retry = false;
  CURL* h = curl_easy_init();
  if (!h) {
    *why = "curl_easy_init failed";
    *retry = true;
    return false;
  }
  curl_slist* headers = curl_slist_append(
      nullptr, opts_.json ? "Content-Type: application/json" : "Content-Type: application/x-protobuf");
  curl_easy_setopt(h, CURLOPT_URL, url_.c_str());
  curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(h, CURLOPT_POST, 1L);
  curl_easy_setopt(h, CURLOPT_POSTFIELDS, body.data());
  curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body.size()));
  curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, static_cast<long>(opts_.timeout_ms));
  curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(std::min<uint32_t>(opts_.timeout_ms, 2000)));
  curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);  // no SIGALRM from a worker thread
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, Discard);
  curl_easy_setopt(h, CURLOPT_USERAGENT, "llmcd-otlp");
  CURLcode rc = curl_easy_perform(h);
  long status = 0;
  curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
  curl_slist_free_all(headers);
  curl_easy_cleanup(h);
  if (rc != CURLE_OK) {
    *why = curl_easy_strerror(rc);
    *retry = true;
    return false;
  }
  if (status >= 200 && status < 300) return true;
  *why = "collector answered " + std::to_string(status);
  // OTLP/HTTP: 429, 502, 503 and 504 are retryable; other failures are not.
  *retry = status == 429 || status == 502 || status == 503 || status == 504;
  return false;
}

void SpanExporter::Loop() {
  std::unique_lock<std::mutex> l(mu_);
  bool warned = false;
  for (;;) {
    // Wait for a full batch, the flush interval, or stop.
    cv_.wait_for(l, std::chrono::milliseconds(opts_.flush_ms), [&] { return stop_ || q_.size() >= opts_.batch; });
    if (q_.empty()) {
      if (stop_) return;
      continue;
    }
    size_t n = std::min(q_.size(), opts_.batch);
    std::vector<OtlpSpan> batch(std::make_move_iterator(q_.begin()), std::make_move_iterator(q_.begin() + n));
    q_.erase(q_.begin(), q_.begin() + static_cast<std::ptrdiff_t>(n));
    c_.queued = q_.size();
    bool stopping = stop_;
    l.unlock();
    std::string body = opts_.json ? EncodeOtlpJson(opts_.resource, batch) : EncodeOtlpProtobuf(opts_.resource, batch);
    uint32_t backoff = opts_.backoff_ms;
    bool ok = false;
    std::string why;
    uint32_t attempts = stopping ? 1 : std::max<uint32_t>(1, opts_.max_attempts);
    uint32_t failures = 0;
    for (uint32_t a = 0; a < attempts; ++a) {
      bool retry = false;
      ok = Post(body, &retry, &why);
      if (ok) break;
      ++failures;
      if (!retry || a + 1 == attempts) break;
      // Back off, but leave at once on stop (the final flush gets its single attempt).
      std::unique_lock<std::mutex> wl(mu_);
      if (cv_.wait_for(wl, std::chrono::milliseconds(backoff), [&] { return stop_; })) break;
      backoff = std::min(backoff * 2, opts_.max_backoff_ms);
    }
    l.lock();
    ++c_.requests;
    c_.request_failures += failures;
    if (ok) {
      c_.exported += batch.size();
      if (warned) LOG_INFO("OTLP export recovered", {{"url", url_}});
      warned = false;
    } else {
      c_.dropped_export_failed += batch.size();
      if (!warned) {  // once per outage, not per batch
        l.unlock();
        LOG_WARN("OTLP export failed; spans dropped", {{"url", url_}, {"error", why}, {"spans", batch.size()}});
        l.lock();
        warned = true;
      }
    }
  }
}

}  // namespace llmgw::cp
