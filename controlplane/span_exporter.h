// SpanExporter: llmcd's OTLP/HTTP trace exporter (docs/OPERATIONS.md, "Tracing"). Spans
// collected from the data plane's rings wait in a bounded queue; one thread sends them in
// batches (POST <endpoint>/v1/traces, http/protobuf or http/json, libcurl) and retries a
// failed batch with exponential backoff. Nothing here ever blocks the caller: a full queue
// drops the new spans, a batch that keeps failing is dropped, and both are counted
// (llmcd_spans_dropped_total{reason}).
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "common/error.h"
#include "controlplane/otlp.h"

namespace llmgw::cp {

struct SpanExporterOptions {
  std::string endpoint;        // http://HOST:PORT (or a full URL ending in /v1/traces)
  bool json = false;           // http/json instead of http/protobuf
  size_t max_queue = 8192;     // spans waiting; more are dropped
  size_t batch = 512;          // spans per request at most
  uint32_t flush_ms = 1000;    // a partial batch waits at most this long
  uint32_t timeout_ms = 5000;  // per request
  uint32_t max_attempts = 5;   // per batch, then dropped
  uint32_t backoff_ms = 200;   // first retry delay; doubles, capped at max_backoff_ms
  uint32_t max_backoff_ms = 5000;
  OtlpResource resource;
};

struct SpanExporterCounters {
  uint64_t exported = 0;              // spans the collector accepted (2xx)
  uint64_t dropped_queue_full = 0;    // spans refused because the queue was full
  uint64_t dropped_export_failed = 0; // spans of batches that failed every attempt or were rejected
  uint64_t dropped_data_plane = 0;    // spans the data plane dropped (its ring was full)
  uint64_t requests = 0, request_failures = 0;
  uint64_t queued = 0;                // waiting now
};

class SpanExporter {
 public:
  // Validates the endpoint (http:// or https:// URL) and starts the sending thread.
  static Result<std::unique_ptr<SpanExporter>> Start(SpanExporterOptions opts);
  ~SpanExporter();  // stops; spans still queued get one last attempt (bounded by timeout_ms)
  SpanExporter(const SpanExporter&) = delete;
  SpanExporter& operator=(const SpanExporter&) = delete;

  // Queues spans; returns how many were accepted (the rest are counted as dropped).
  size_t Enqueue(std::vector<OtlpSpan> spans);
  // Spans the data plane could not hand over (its rings were full).
  void CountDataPlaneDropped(uint64_t n);
  SpanExporterCounters counters() const;
  const std::string& url() const { return url_; }

 private:
  explicit SpanExporter(SpanExporterOptions opts);
  void Loop();
  // One POST of a batch; true when the collector took it, *retry when it may later.
  bool Post(const std::string& body, bool* retry, std::string* why);

  SpanExporterOptions opts_;
  std::string url_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<OtlpSpan> q_;
  bool stop_ = false;
  SpanExporterCounters c_;
  std::thread thread_;
};

}  // namespace llmgw::cp
