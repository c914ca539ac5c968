// Human rendering of admin API messages (aligned tables, durations, percentages) and the
// JSON form for `-o json`, shared by the one-shot commands and `watch`.
#include <cstdio>
#include <sstream>

#include <google/protobuf/util/json_util.h>

#include "cli/cli_internal.h"

namespace llmgw::cli {

void Table::Render(std::ostream& out, size_t max_width) const {
  size_t columns = headers.size();
  for (const auto& r : rows) columns = std::max(columns, r.size());
  std::vector<size_t> width(columns, 0);
  auto measure = [&](const std::vector<std::string>& row) {
    for (size_t i = 0; i < row.size() && i < width.size(); ++i)
      width[i] = std::max(width[i], row[i].size());
  };
  measure(headers);
  for (const auto& r : rows) measure(r);
  auto line = [&](const std::vector<std::string>& row) {
    std::string s;
    for (size_t i = 0; i < width.size(); ++i) {
      std::string cell = i < row.size() ? row[i] : "";
      bool last = i + 1 == width.size();
      std::string pad(width[i] - cell.size(), ' ');
      if (i < right.size() && right[i]) s += pad + cell;
      else s += cell + (last ? "" : pad);
      if (!last) s += "  ";
    }
    while (!s.empty() && s.back() == ' ') s.pop_back();
    if (max_width && s.size() > max_width) s.resize(max_width);
    out << s << "\n";
  };
  if (!headers.empty()) line(headers);
  for (const auto& r : rows) line(r);
}

std::string StateName(admin::v1::BackendState s) {
  switch (s) {
    case admin::v1::HEALTHY: return "healthy";
    case admin::v1::UNHEALTHY: return "unhealthy";
    case admin::v1::DRAINING: return "draining";
    case admin::v1::CIRCUIT_OPEN: return "circuit_open";
    case admin::v1::HALF_OPEN: return "half_open";
    default: return "unknown";
  }
}

std::string FormatDuration(double seconds) {
  if (!(seconds >= 0)) seconds = 0;
  auto total = static_cast<uint64_t>(seconds);
  uint64_t d = total / 86400, h = total / 3600 % 24, m = total / 60 % 60, s = total % 60;
  char buf[64];
  if (d) std::snprintf(buf, sizeof buf, "%llud%02lluh%02llum", (unsigned long long)d,
                       (unsigned long long)h, (unsigned long long)m);
  else if (h) std::snprintf(buf, sizeof buf, "%lluh%02llum%02llus", (unsigned long long)h,
                            (unsigned long long)m, (unsigned long long)s);
  else if (m) std::snprintf(buf, sizeof buf, "%llum%02llus", (unsigned long long)m,
                            (unsigned long long)s);
  else std::snprintf(buf, sizeof buf, "%llus", (unsigned long long)s);
  return buf;
}

std::string FormatDouble(double v, int decimals) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
  return buf;
}

std::string FormatPercent(double fraction) { return FormatDouble(fraction * 100.0, 1); }

std::string ToJson(const google::protobuf::Message& m, bool pretty) {
  google::protobuf::util::JsonPrintOptions opts;
  opts.add_whitespace = pretty;
  opts.preserve_proto_field_names = true;
  // Scripts should see every field, zeros and false included, not guess at defaults.
  opts.always_print_primitive_fields = true;
  std::string s;
  (void)google::protobuf::util::MessageToJsonString(m, &s, opts);
  while (!s.empty() && s.back() == '\n') s.pop_back();
  return s;
}

void RenderStatus(const admin::v1::GetStatusResponse& s, std::ostream& out) {
  Table t;
  auto row = [&](const std::string& k, const std::string& v) { t.rows.push_back({k, v}); };
  row("version", s.version());
  row("instance", s.instance());
  row("role", s.role());
  row("uptime", FormatDuration(s.uptime_seconds()));
  row("generation", std::to_string(s.snapshot_generation()));
  row("backends", std::to_string(s.backends_healthy()) + "/" + std::to_string(s.backends_total()) +
                      " healthy");
  row("models", std::to_string(s.models()));
  row("requests/s", FormatDouble(s.requests_per_second(), 1));
  row("errors/s", FormatDouble(s.errors_per_second(), 2));  // errors are rarer: one more digit
  row("requests", std::to_string(s.requests_total()) + " total, " +
                      std::to_string(s.active_requests()) + " active");
  // Every gateway of the fleet over the last 30 s (streams for TTFT).
  row("ttft p50/p99", FormatDouble(s.ttft_p50_ms(), 0) + " / " + FormatDouble(s.ttft_p99_ms(), 0) + " ms (30 s)");
  row("latency p50/p99", FormatDouble(s.latency_p50_ms(), 0) + " / " + FormatDouble(s.latency_p99_ms(), 0) + " ms (30 s)");
  row("dataplane", s.dataplane_alive()
                       ? "alive, " + std::to_string(s.dataplane_threads()) + " threads"
                       : std::string("NOT RUNNING"));
  row("config", (s.config_file().empty() ? std::string("-") : s.config_file()) + " (" +
                    std::to_string(s.config_reloads()) + " reloads, " +
                    std::to_string(s.config_reload_failures()) + " failed)");
  t.Render(out);  // key/value listing: no header line, the keys say what they are
}

Table BackendsTable(const google::protobuf::RepeatedPtrField<admin::v1::Backend>& backends,
                    bool compact) {
  Table t;
  if (compact)  // watch: short headers so all ten columns fit in 80 columns
    t.headers = {"ID", "MODEL", "STATE", "INFL", "RUN", "WAIT", "KV%", "LAT", "TTFT99", "ERR%"};
  else
    t.headers = {"ID", "MODEL", "STATE", "INFLIGHT", "RUNNING", "WAITING", "KV%", "LAT_MS",
                 "TTFT99_MS", "ERR%"};
  t.right = {false, false, false, true, true, true, true, true, true, true};
  for (const auto& b : backends) {
    std::string kv = FormatPercent(b.kv_cache_usage()) + (b.metrics_stale() ? "?" : "");
    t.rows.push_back({b.id(), b.model(), StateName(b.state()), std::to_string(b.in_flight()),
                      FormatDouble(b.running(), 0), FormatDouble(b.waiting(), 0), kv,
                      FormatDouble(b.ewma_latency_ms(), 0), FormatDouble(b.ttft_p99_ms(), 0),
                      FormatPercent(b.error_rate())});
  }
  return t;
}

}  // namespace llmgw::cli
