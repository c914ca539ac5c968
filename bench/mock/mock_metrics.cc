// Prometheus text rendering for llmgw-mock; names follow /work/shared/samples/metrics.
#include "bench/mock/mock_metrics.h"

#include <cstdio>

namespace llmgw::mock {

bool ParseEngineFlavor(std::string_view s, EngineFlavor* out) {
  if (s == "vllm") *out = EngineFlavor::kVllm;
  else if (s == "sglang") *out = EngineFlavor::kSglang;
  else if (s == "tgi") *out = EngineFlavor::kTgi;
  else if (s == "llamacpp") *out = EngineFlavor::kLlamacpp;
  else return false;
  return true;
}

void Histogram::Observe(double v) {
  ++count_;
  sum_ += v;
  for (size_t i = 0; i < bounds_.size(); ++i) {
    if (v <= bounds_[i]) {
      ++counts_[i];
      return;
    }
  }
}

// Bucket boundaries are vLLM V1's (vllm/v1/metrics/loggers.py).
MockMetrics::MockMetrics()
    : ttft_seconds({0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0,
                    7.5, 10.0, 20.0, 40.0, 80.0, 160.0, 640.0, 2560.0}),
      inter_token_seconds({0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0,
                           7.5, 10.0, 20.0, 40.0, 80.0}),
      e2e_seconds({0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0,
                   120.0, 240.0, 480.0, 960.0, 1920.0, 7680.0}),
      queue_seconds({0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0,
                     120.0, 240.0, 480.0, 960.0, 1920.0, 7680.0}) {}

namespace {

struct Writer {
  std::string* out;
  std::string labels;  // without braces, e.g. engine="0",model_name="m"

  void Family(std::string_view name, std::string_view type, std::string_view help) {
    out->append("# HELP ").append(name).append(" ").append(help).append("\n");
    out->append("# TYPE ").append(name).append(" ").append(type).append("\n");
  }
  void Sample(std::string_view name, std::string_view extra_label, double v) {
    char num[64];
    std::snprintf(num, sizeof num, "%.17g", v);
    out->append(name);
    if (!labels.empty() || !extra_label.empty()) {
      out->append("{");
      out->append(labels);
      if (!labels.empty() && !extra_label.empty()) out->append(",");
      out->append(extra_label);
      out->append("}");
    }
    out->append(" ").append(num).append("\n");
  }
  void Gauge(std::string_view name, std::string_view help, double v) {
    Family(name, "gauge", help);
    Sample(name, "", v);
  }
  void Counter(std::string_view name, std::string_view help, double v) {
    Family(name, "counter", help);
    Sample(name, "", v);
  }
  void Hist(std::string_view name, std::string_view help, const Histogram& h) {
    Family(name, "histogram", help);
    std::string bucket = std::string(name) + "_bucket";
    uint64_t cum = 0;
    char le[64];
    for (size_t i = 0; i < h.bounds().size(); ++i) {
      cum += h.counts()[i];
      std::snprintf(le, sizeof le, "le=\"%g\"", h.bounds()[i]);
      Sample(bucket, le, static_cast<double>(cum));
    }
    Sample(bucket, "le=\"+Inf\"", static_cast<double>(h.count()));
    Sample(std::string(name) + "_count", "", static_cast<double>(h.count()));
    Sample(std::string(name) + "_sum", "", h.sum());
  }
};

double Ratio(uint64_t a, uint64_t b) { return b == 0 ? 0.0 : static_cast<double>(a) / static_cast<double>(b); }

void RenderVllm(Writer& w, const MockMetrics& m, const EngineGauges& g) {
  w.Gauge("vllm:num_requests_running", "Number of requests in model execution batches.", g.running);
  w.Gauge("vllm:num_requests_waiting", "Number of requests waiting to be processed.", g.waiting);
  w.Gauge("vllm:kv_cache_usage_perc", "KV-cache usage. 1 means 100 percent usage.", g.kv_usage);
  w.Gauge("vllm:gpu_cache_usage_perc", "GPU KV-cache usage. 1 means 100 percent usage.", g.kv_usage);
  w.Gauge("vllm:gpu_prefix_cache_hit_rate", "GPU prefix cache block hit rate.",
          Ratio(g.prefix_hit_blocks, g.prefix_queries_blocks));
  w.Counter("vllm:prefix_cache_queries_total", "Prefix cache queries, in terms of number of queried tokens.",
            static_cast<double>(g.prefix_queries_tokens));
  w.Counter("vllm:prefix_cache_hits_total", "Prefix cache hits, in terms of number of cached tokens.",
            static_cast<double>(g.prefix_hit_tokens));
  w.Counter("vllm:prompt_tokens_total", "Number of prefill tokens processed.",
            static_cast<double>(m.prompt_tokens_total));
  w.Counter("vllm:generation_tokens_total", "Number of generation tokens processed.",
            static_cast<double>(m.generation_tokens_total));
  w.Family("vllm:request_success_total", "counter", "Count of successfully processed requests.");
  w.Sample("vllm:request_success_total", "finished_reason=\"stop\"", static_cast<double>(m.success_stop));
  w.Sample("vllm:request_success_total", "finished_reason=\"length\"", static_cast<double>(m.success_length));
  w.Sample("vllm:request_success_total", "finished_reason=\"abort\"", static_cast<double>(m.success_abort));
  w.Hist("vllm:time_to_first_token_seconds", "Histogram of time to first token in seconds.", m.ttft_seconds);
  w.Hist("vllm:inter_token_latency_seconds", "Histogram of inter-token latency in seconds.",
         m.inter_token_seconds);
  w.Hist("vllm:e2e_request_latency_seconds", "Histogram of e2e request latency in seconds.", m.e2e_seconds);
  w.Hist("vllm:request_queue_time_seconds", "Histogram of time spent in WAITING phase for request.",
         m.queue_seconds);
}

void RenderSglang(Writer& w, const MockMetrics& m, const EngineGauges& g) {
  w.Gauge("sglang:num_running_reqs", "The number of running requests.", g.running);
  w.Gauge("sglang:num_queue_reqs", "The number of requests in the waiting queue.", g.waiting);
  w.Gauge("sglang:token_usage", "The token usage.", g.kv_usage);
  w.Gauge("sglang:cache_hit_rate", "The prefix cache hit rate.", Ratio(g.prefix_hit_tokens, g.prefix_queries_tokens));
  w.Counter("sglang:prompt_tokens_total", "Number of prefill tokens processed.",
            static_cast<double>(m.prompt_tokens_total));
  w.Counter("sglang:generation_tokens_total", "Number of generation tokens processed.",
            static_cast<double>(m.generation_tokens_total));
  w.Counter("sglang:cached_tokens_total", "Number of cached prompt tokens.", static_cast<double>(g.prefix_hit_tokens));
  w.Counter("sglang:num_requests_total", "Number of requests processed.",
            static_cast<double>(m.success_stop + m.success_length + m.success_abort));
  w.Counter("sglang:num_aborted_requests_total", "Number of requests aborted.", static_cast<double>(m.success_abort));
  w.Hist("sglang:time_to_first_token_seconds", "Histogram of time to first token in seconds.", m.ttft_seconds);
  w.Hist("sglang:inter_token_latency_seconds", "Histogram of inter-token latency in seconds.", m.inter_token_seconds);
  w.Hist("sglang:e2e_request_latency_seconds", "Histogram of End-to-end request latency in seconds", m.e2e_seconds);
}

void RenderTgi(Writer& w, const MockMetrics& m, const EngineGauges& g) {
  uint64_t finished = m.success_stop + m.success_length;
  w.Counter("tgi_request_count", "Total number of requests received",
            static_cast<double>(finished + m.success_abort + m.errors_injected));
  w.Counter("tgi_request_success", "Number of successful requests", static_cast<double>(finished));
  w.Gauge("tgi_batch_current_size", "Current batch size", g.running);
  w.Gauge("tgi_queue_size", "Current queue size", g.waiting);
  w.Gauge("tgi_batch_current_max_tokens", "Maximum tokens for the current batch", static_cast<double>(g.kv_tokens_held));
  w.Hist("tgi_request_duration", "Request duration", m.e2e_seconds);
  w.Hist("tgi_request_queue_duration", "Request queue duration", m.queue_seconds);
  w.Hist("tgi_request_mean_time_per_token_duration", "Mean time per token per request", m.inter_token_seconds);
}

void RenderLlamacpp(Writer& w, const MockMetrics& m, const EngineGauges& g) {
  // Current llama.cpp counts only uncached prompt tokens in prompt_tokens_total.
  uint64_t uncached = m.prompt_tokens_total > g.prefix_hit_tokens ? m.prompt_tokens_total - g.prefix_hit_tokens : 0;
  w.Counter("llamacpp:prompt_tokens_total", "Number of prompt tokens processed.", static_cast<double>(uncached));
  w.Counter("llamacpp:prompt_tokens_cached_total", "Number of prompt tokens served from cache.",
            static_cast<double>(g.prefix_hit_tokens));
  w.Counter("llamacpp:tokens_predicted_total", "Number of generation tokens processed.",
            static_cast<double>(m.generation_tokens_total));
  w.Counter("llamacpp:n_decode_total", "Total number of llama_decode() calls", static_cast<double>(g.steps));
  w.Gauge("llamacpp:requests_processing", "Number of requests processing.", g.running);
  w.Gauge("llamacpp:requests_deferred", "Number of requests deferred.", g.waiting);
}

}  // namespace

void RenderMetrics(EngineFlavor flavor, std::string_view model, const MockMetrics& m, const EngineGauges& g,
                   std::string* out) {
  out->clear();
  Writer w{out, {}};
  switch (flavor) {
    case EngineFlavor::kVllm:
      w.labels = "engine=\"0\",model_name=\"" + std::string(model) + "\"";
      RenderVllm(w, m, g);
      break;
    case EngineFlavor::kSglang:
      w.labels = "engine_type=\"unified\",model_name=\"" + std::string(model) + "\",tp_rank=\"0\"";
      RenderSglang(w, m, g);
      break;
    case EngineFlavor::kTgi:
      RenderTgi(w, m, g);  // TGI exports no model or instance label
      break;
    case EngineFlavor::kLlamacpp:
      RenderLlamacpp(w, m, g);
      break;
  }
}

}  // namespace llmgw::mock
