// Metric families for Prometheus, built from controller views at scrape time (nothing is
// mirrored into prometheus-cpp counters, so totals are exactly the data plane's): the
// exposer, the controller's own families, /load-stats, /healthz and the dashboard routes.
// The data-plane stat families and the /load-stats body are in metrics_families.cc.
#include "controlplane/metrics_exporter.h"

#include <CivetServer.h>
#include <civetweb.h>
#include <prometheus/client_metric.h>
#include <prometheus/collectable.h>
#include <prometheus/metric_family.h>
#include <prometheus/metric_type.h>
#include <prometheus/exposer.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <netdb.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cctype>
#include <chrono>
#include <cstring>
#include <limits>
#include <map>
#include <memory>
#include <thread>
#include <unordered_map>

#include "common/log.h"
#include "common/snapshot_builder.h"
#include "controlplane/admin_convert.h"
#include "controlplane/dashboard.h"
#include "controlplane/metrics_parts.h"

namespace llmgw::cp {

namespace admin = ::llmgw::admin::v1;
using prometheus::ClientMetric;
using prometheus::MetricFamily;
using prometheus::MetricType;

namespace {

std::atomic<const Controller*> g_load_stats_controller{nullptr};
// The dashboard's token, set before the exposer's threads start and not changed while
// they run (Start/Stop order it).
std::string g_dashboard_token;
// Event streams open now. Each holds one civetweb worker for its lifetime, so they are
// capped below the worker count: /metrics and /healthz always find a free worker.
std::atomic<int> g_dashboard_streams{0};
constexpr int kExposerThreads = 8;
constexpr int kMaxDashboardStreams = 5;
constexpr int kDashboardEventMs = 500;  // two events a second

uint64_t UnixMs() {
  return static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch()).count());
}

std::string PercentEncode(std::string_view v) {
  static const char* hex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char ch : v) {
    if (std::isalnum(ch) || ch == '-' || ch == '_' || ch == '.' || ch == '~') {
      out.push_back(static_cast<char>(ch));
    } else {
      out.push_back('%');
      out.push_back(hex[ch >> 4]);
      out.push_back(hex[ch & 15]);
    }
  }
  return out;
}

void Reply(mg_connection* conn, const char* status, const char* type, std::string_view body,
           const std::string& extra_headers = "") {
  mg_printf(conn,
            "HTTP/1.1 %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\nCache-Control: no-store\r\n"
            "X-Content-Type-Options: nosniff\r\n%sConnection: close\r\n\r\n",
            status, type, body.size(), extra_headers.c_str());
  mg_write(conn, body.data(), body.size());
}

// GET /dashboard, /dashboard/state, /dashboard/events. Returns the status sent.
int ServeDashboard(mg_connection* conn, const mg_request_info* ri, const Controller* c, std::string_view path) {
  const char* auth = mg_get_header(conn, "Authorization");
  const char* cookie = mg_get_header(conn, "Cookie");
  std::string_view query = ri->query_string ? ri->query_string : "";
  if (!DashboardAuthorized(auth ? auth : "", cookie ? cookie : "", query, g_dashboard_token)) {
    Reply(conn, "401 Unauthorized", "text/plain; charset=utf-8",
          "llmgw dashboard: the admin token is required: open /dashboard?token=<admin token> "
          "(or send Authorization: Bearer <token>)\n",
          "WWW-Authenticate: Bearer realm=\"llmgw\"\r\n");
    return 401;
  }
  if (std::strcmp(ri->request_method, "GET") != 0) {
    Reply(conn, "405 Method Not Allowed", "text/plain; charset=utf-8", "GET only\n", "Allow: GET\r\n");
    return 405;
  }
  if (path == "/dashboard" || path == "/dashboard/") {
    // The page's own script and style only; it talks to this origin alone.
    std::string headers =
        "Content-Security-Policy: default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
        "connect-src 'self'; img-src 'self' data:\r\nX-Frame-Options: DENY\r\n";
    std::string token = QueryParam(query, "token");
    if (!g_dashboard_token.empty() && !token.empty())
      headers += "Set-Cookie: llmgw_admin_token=" + PercentEncode(token) + "; Path=/dashboard; HttpOnly; SameSite=Strict\r\n";
    Reply(conn, "200 OK", "text/html; charset=utf-8", DashboardPage(), headers);
    return 200;
  }
  if (path == "/dashboard/state") {
    Reply(conn, "200 OK", "application/json", DashboardStateJson(*c, UnixMs()));
    return 200;
  }
  if (path != "/dashboard/events") {
    Reply(conn, "404 Not Found", "text/plain; charset=utf-8", "not found\n");
    return 404;
  }
  if (g_dashboard_streams.fetch_add(1) >= kMaxDashboardStreams) {
    g_dashboard_streams.fetch_sub(1);
    Reply(conn, "503 Service Unavailable", "text/plain; charset=utf-8", "too many dashboard viewers\n",
          "Retry-After: 5\r\n");
    return 503;
  }
  mg_printf(conn,
            "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-store\r\n"
            "X-Accel-Buffering: no\r\nConnection: close\r\n\r\nretry: 2000\n\n");
  // One event now and then every kDashboardEventMs, until the viewer leaves (a failed
  // write) or the exporter stops (it clears g_load_stats_controller first, then joins).
  while (g_load_stats_controller.load() == c) {
    std::string ev = "event: state\ndata: " + DashboardStateJson(*c, UnixMs()) + "\n\n";
    if (mg_write(conn, ev.data(), ev.size()) <= 0) break;
    for (int waited = 0; waited < kDashboardEventMs && g_load_stats_controller.load() == c; waited += 50)
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  g_dashboard_streams.fetch_sub(1);
  return 200;
}

int BeginRequest(mg_connection* conn) {
  const mg_request_info* ri = mg_get_request_info(conn);
  if (!ri || !ri->local_uri) return 0;
  const Controller* c = g_load_stats_controller.load();
  if (!c) return 0;
  if (std::strcmp(ri->local_uri, "/healthz") == 0) {
    // Liveness for systemd watchers, Kubernetes probes and load balancers: 200 while the
    // publish loop publishes (llmgw then reads fresh snapshots), 503 when it is stuck.
    bool ok = c->Publishing();
    const char* body = ok ? "{\"status\":\"ok\"}\n" : "{\"status\":\"not publishing\"}\n";
    mg_printf(conn,
              "HTTP/1.1 %s\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n"
              "Cache-Control: no-store\r\nConnection: close\r\n\r\n%s",
              ok ? "200 OK" : "503 Service Unavailable", std::strlen(body), body);
    return ok ? 200 : 503;
  }
  std::string_view uri = ri->local_uri;
  if (uri == "/dashboard" || uri.rfind("/dashboard/", 0) == 0) return ServeDashboard(conn, ri, c, uri);
  if (uri != "/load-stats") return 0;
  std::string body = LoadStatsJson(*c);
  mg_printf(conn,
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n"
            "Connection: close\r\n\r\n",
            body.size());
  mg_write(conn, body.data(), body.size());
  return 200;
}

}  // namespace

class MetricsExporter::Collector : public prometheus::Collectable {
 public:
  explicit Collector(Controller* c) : c_(c) {}
  std::function<SpanExporterCounters()> span_counters;  // set before the exposer starts
  std::vector<MetricFamily> Collect() const override {
    std::vector<MetricFamily> out;
    shm::StatsTotals st = c_->StatsCopy();
    auto backends = ToProto(c_->Backends());
    auto circuits = c_->Circuits();
    auto counters = c_->Counters();
    auto models = c_->ModelSlots();
    auto status = ToProto(c_->GetStatus());

    std::vector<std::pair<std::string, uint64_t>> backend_keys;
    for (const auto& b : backends) backend_keys.emplace_back(b.id(), BackendKey(b.id()));
    auto configured = std::make_unique<shm::Snapshot>();
    c_->CopyConfiguredSnapshot(configured.get());
    std::vector<KeyLabel> keys = {{std::string(kAnonymousKeyId), -1, 0, 0, 0}};
    for (uint32_t k = 0; k < configured->num_keys; ++k) {
      const shm::KeyEntry& e = configured->keys[k];
      if (e.present) keys.push_back({e.id, static_cast<int>(k), e.rpm, e.tpm, e.max_concurrent});
    }
    std::map<std::string, ModelPrice> prices;
    for (const auto& m : c_->CurrentConfig().models)
      if (m.price.priced()) prices[m.name] = m.price;
    AppendStatFamilies(st, models, backend_keys, &out, keys, configured.get(), prices);
    auto g = [&](const char* n, const char* h, double v) {
      auto f = Family(n, h, MetricType::Gauge);
      f.metric.push_back(Value(MetricType::Gauge, v));
      out.push_back(std::move(f));
    };
    auto cnt = [&](const char* n, const char* h, double v) {
      auto f = Family(n, h, MetricType::Counter);
      f.metric.push_back(Value(MetricType::Counter, v));
      out.push_back(std::move(f));
    };
    g("llm_gateway_healthy_workers", "Backends currently HEALTHY.", status.backends_healthy());

    auto per_backend = [&](const char* n, const char* h, MetricType t, auto fn) {
      auto f = Family(n, h, t);
      for (const auto& b : backends) f.metric.push_back(Value(t, fn(b), {{"id", b.id()}}));
      out.push_back(std::move(f));
    };
    {
      // Backends are labelled by id everywhere (as in llmctl and the access log); the URL,
      // model and engine are here, for joins: `* on(id) group_left(url) llm_worker_info`.
      auto f = Family("llm_worker_info", "1 for every backend, with its URL, model and engine.", MetricType::Gauge);
      for (const auto& b : backends)
        f.metric.push_back(Value(MetricType::Gauge, 1,
                                 {{"engine", b.engine()}, {"id", b.id()}, {"model", b.model()}, {"url", b.url()}}));
      out.push_back(std::move(f));
    }
    per_backend("llm_worker_running_requests", "Running requests scraped from the backend.", MetricType::Gauge,
                [](const admin::Backend& b) { return b.running(); });
    per_backend("llm_worker_waiting_requests", "Waiting requests scraped from the backend.", MetricType::Gauge,
                [](const admin::Backend& b) { return b.waiting(); });
    per_backend("llm_worker_kv_cache_usage", "KV-cache usage (0..1) scraped from the backend.", MetricType::Gauge,
                [](const admin::Backend& b) { return b.kv_cache_usage(); });
    per_backend("llm_worker_in_flight", "Gateway requests in flight to the backend.", MetricType::Gauge,
                [](const admin::Backend& b) { return static_cast<double>(b.in_flight()); });
    per_backend("llm_circuit_breaker_state", "Circuit breaker state: 0 closed, 1 open, 2 half-open.", MetricType::Gauge,
                [&](const admin::Backend& b) {
                  auto it = circuits.find(b.id());
                  return it == circuits.end() ? 0.0 : static_cast<double>(it->second.state);
                });
    per_backend("llm_circuit_breaker_failures_total", "Failures and slow calls counted by the circuit breaker.",
                MetricType::Counter, [&](const admin::Backend& b) {
                  auto it = circuits.find(b.id());
                  return it == circuits.end() ? 0.0 : static_cast<double>(it->second.failures_total);
                });
    {
      auto f = Family("llm_worker_state", "1 for the backend's current state.", MetricType::Gauge);
      for (const auto& b : backends)
        f.metric.push_back(Value(MetricType::Gauge, 1, {{"id", b.id()}, {"state", std::string(StateName(b.state()))}}));
      out.push_back(std::move(f));
    }

    cnt("llmcd_config_reloads_total", "Successful config reloads.", static_cast<double>(counters.config_reloads));
    cnt("llmcd_config_reload_failures_total", "Rejected config reloads (the old config kept serving).",
        static_cast<double>(counters.config_reload_failures));
    cnt("llmcd_snapshots_published_total", "Routing snapshots published.", static_cast<double>(counters.snapshots_published));
    cnt("llmcd_probes_total", "Active health probes completed.", static_cast<double>(counters.probes));
    cnt("llmcd_probe_failures_total", "Active health probes that failed.", static_cast<double>(counters.probe_failures));
    cnt("llmcd_scrapes_total", "Backend /metrics scrapes completed.", static_cast<double>(counters.scrapes));
    cnt("llmcd_scrape_failures_total", "Backend /metrics scrapes that failed or were unusable.",
        static_cast<double>(counters.scrape_failures));
    cnt("llmcd_jobs_dropped_total", "Probe/scrape jobs refused because the worker queue was full.",
        static_cast<double>(counters.jobs_dropped));
    {
      auto f = Family("llmcd_circuit_transitions_total", "Circuit breaker transitions.", MetricType::Counter);
      for (const auto& [k, v] : counters.circuit_transitions) {
        auto arrow = k.find("->");
        f.metric.push_back(Value(MetricType::Counter, static_cast<double>(v),
                                 {{"from", k.substr(0, arrow)}, {"to", k.substr(arrow + 2)}}));
      }
      out.push_back(std::move(f));
    }
    {
      // The fleet per gateway (this host's data plane and every agent's); the unlabelled
      // families above are the fleet's sums.
      auto gws = c_->GatewayStats();
      auto up = Family("llmcd_fleet_gateway_up", "1 while the gateway reports (its agent's link is up).", MetricType::Gauge);
      auto age = Family("llmcd_fleet_gateway_report_age_seconds", "Time since the gateway's last report.", MetricType::Gauge);
      auto req = Family("llmcd_fleet_gateway_requests_total", "Requests answered by the gateway.", MetricType::Counter);
      auto err = Family("llmcd_fleet_gateway_errors_total", "Failures counted by the gateway, by error kind.", MetricType::Counter);
      auto act = Family("llmcd_fleet_gateway_active_requests", "Requests in flight in the gateway.", MetricType::Gauge);
      auto thr = Family("llmcd_fleet_gateway_threads", "Live data-plane threads of the gateway.", MetricType::Gauge);
      for (const auto& gw : gws) {
        std::vector<ClientMetric::Label> l{{"gateway", gw.name}};
        up.metric.push_back(Value(MetricType::Gauge, gw.connected ? 1 : 0, l));
        age.metric.push_back(Value(MetricType::Gauge, gw.report_age_seconds, l));
        req.metric.push_back(Value(MetricType::Counter, static_cast<double>(gw.requests_answered), l));
        for (const auto& [kind, n] : gw.errors_by_kind)
          err.metric.push_back(Value(MetricType::Counter, static_cast<double>(n), {{"gateway", gw.name}, {"kind", kind}}));
        act.metric.push_back(Value(MetricType::Gauge, static_cast<double>(gw.active_requests), l));
        thr.metric.push_back(Value(MetricType::Gauge, static_cast<double>(gw.live_threads), l));
      }
      for (auto* f : {&up, &age, &req, &err, &act, &thr}) out.push_back(std::move(*f));
    }
    if (span_counters) {
      SpanExporterCounters sc = span_counters();
      cnt("llmcd_spans_exported_total", "Spans the OTLP collector accepted.", static_cast<double>(sc.exported));
      auto f = Family("llmcd_spans_dropped_total", "Spans dropped before export, by reason.", MetricType::Counter);
      f.metric.push_back(Value(MetricType::Counter, static_cast<double>(sc.dropped_queue_full), {{"reason", "queue_full"}}));
      f.metric.push_back(
          Value(MetricType::Counter, static_cast<double>(sc.dropped_export_failed), {{"reason", "export_failed"}}));
      f.metric.push_back(
          Value(MetricType::Counter, static_cast<double>(sc.dropped_data_plane), {{"reason", "data_plane_ring_full"}}));
      out.push_back(std::move(f));
      cnt("llmcd_span_export_requests_total", "OTLP export requests (batches) completed or given up.",
          static_cast<double>(sc.requests));
      cnt("llmcd_span_export_failures_total", "OTLP export attempts that failed (retried or dropped).",
          static_cast<double>(sc.request_failures));
      g("llmcd_span_export_queue", "Spans waiting for export.", static_cast<double>(sc.queued));
    }
    g("llmcd_dataplane_alive", "1 when at least one llmgw thread has a fresh heartbeat.", status.dataplane_alive() ? 1 : 0);
    g("llmcd_dataplane_threads", "Live data-plane threads.", status.dataplane_threads());
    g("llmcd_snapshot_generation", "Generation of the last published snapshot.",
      static_cast<double>(status.snapshot_generation()));
    return out;
  }

 private:
  Controller* c_;
};

MetricsExporter::MetricsExporter(Controller* c) : c_(c), collector_(std::make_shared<Collector>(c)) {}

MetricsExporter::~MetricsExporter() { Stop(); }

namespace {

// Opens and at once closes a TCP connection to host:port (wildcards mean loopback).
void Poke(const std::string& host, int port) {
  std::string h = host == "0.0.0.0" || host.empty() ? "127.0.0.1" : host == "::" ? "::1" : host;
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV;
  addrinfo* res = nullptr;
  if (getaddrinfo(h.c_str(), std::to_string(port).c_str(), &hints, &res) != 0 || !res) return;
  int fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd >= 0) {
    (void)connect(fd, res->ai_addr, res->ai_addrlen);  // non-blocking: the SYN is enough
    close(fd);
  }
  freeaddrinfo(res);
}

}  // namespace

void MetricsExporter::Stop() {
  const Controller* expected = c_;
  g_load_stats_controller.compare_exchange_strong(expected, nullptr);
  if (!exposer_) return;
  // civetweb's master thread sleeps in poll() on the listening sockets for up to 2 s
  // (SOCKET_TIMEOUT_QUANTUM) between looks at its stop flag, so a plain stop takes up to
  // 2 s. While the exposer stops, knock on our own port every 20 ms: the poll wakes,
  // sees the flag and exits (with the flag set the knock is not accepted, only reset).
  std::atomic<bool> stopped{false};
  std::thread knocker([&] {
    while (!stopped.load()) {
      if (port_ > 0) Poke(host_, port_);
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  });
  exposer_.reset();
  stopped = true;
  knocker.join();
}

Status MetricsExporter::Start(const std::string& listen) {
  std::string host;
  uint16_t port = 0;
  std::string why;
  if (!ParseHostPort(listen, &host, &port, &why))
    return Error(ErrorKind::kConfig, ErrorSide::kInternal, false, "admin.metrics_listen: %s", why.c_str());
  static CivetCallbacks callbacks;
  callbacks.begin_request = BeginRequest;
  g_dashboard_token = dashboard_token_;
  g_load_stats_controller.store(c_);
  std::string addr = host.find(':') != std::string::npos ? "[" + host + "]:" + std::to_string(port)
                                                         : host + ":" + std::to_string(port);
  try {
    exposer_ = std::make_unique<prometheus::Exposer>(addr, kExposerThreads, &callbacks);
  } catch (const std::exception& e) {
    return Error(ErrorKind::kIo, ErrorSide::kInternal, false, "admin.metrics_listen: cannot listen on %s: %s",
                 addr.c_str(), e.what());
  }
  collector_->span_counters = span_counters_;
  exposer_->RegisterCollectable(collector_);
  host_ = host;
  auto ports = exposer_->GetListeningPorts();
  port_ = ports.empty() ? 0 : ports.front();
  LOG_INFO("metrics listening", {{"addr", host + ":" + std::to_string(port_)}});
  return Status::Ok();
}

}  // namespace llmgw::cp
