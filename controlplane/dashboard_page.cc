// The dashboard page (dashboard.h): one HTML document with its style and script inline,
// no external asset and no build step, so it works air-gapped and ships inside llmcd.
// The script opens an EventSource on /dashboard/events and redraws on every event; the
// charts are drawn by hand on <canvas> (rates are differences of the cumulative counters
// of two events). Element ids (status tiles, backend rows) are what the browser test
// reads.
#include "controlplane/dashboard.h"

namespace llmgw::cp {

namespace {

constexpr char kPage[] = R"HTML(<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>llmgw dashboard</title>
<style>
  :root { --bg:#0f1419; --panel:#171d24; --line:#2a323c; --fg:#d8dee6; --dim:#8a96a3;
          --ok:#3fb950; --warn:#d29922; --bad:#f85149; --info:#58a6ff; }
  * { box-sizing: border-box; }
  body { margin:0; font:13px/1.4 system-ui, sans-serif; background:var(--bg); color:var(--fg); }
  header { display:flex; align-items:center; gap:16px; padding:10px 16px; border-bottom:1px solid var(--line); }
  header h1 { font-size:16px; margin:0; }
  #conn { padding:2px 8px; border-radius:10px; background:var(--line); }
  #conn.live { background:#1f3d2a; color:var(--ok); }
  #conn.down { background:#3d1f1f; color:var(--bad); }
  .dim { color:var(--dim); }
  main { padding:12px 16px; display:grid; gap:12px; }
  .tiles { display:grid; grid-template-columns:repeat(auto-fit, minmax(140px, 1fr)); gap:8px; }
  .tile { background:var(--panel); border:1px solid var(--line); border-radius:6px; padding:8px 10px; }
  .tile .v { font-size:20px; font-weight:600; font-variant-numeric:tabular-nums; }
  .tile .k { color:var(--dim); font-size:11px; text-transform:uppercase; letter-spacing:.04em; }
  .charts { display:grid; grid-template-columns:repeat(auto-fit, minmax(360px, 1fr)); gap:12px; }
  .chart { background:var(--panel); border:1px solid var(--line); border-radius:6px; padding:8px; }
  .chart h2, section h2 { font-size:12px; margin:0 0 6px; color:var(--dim); font-weight:600; text-transform:uppercase; }
  canvas { width:100%; height:160px; display:block; }
  table { width:100%; border-collapse:collapse; background:var(--panel); border:1px solid var(--line); }
  th, td { padding:5px 8px; border-bottom:1px solid var(--line); text-align:right; white-space:nowrap;
           font-variant-numeric:tabular-nums; }
  th { color:var(--dim); font-weight:600; font-size:11px; text-transform:uppercase; }
  td:first-child, th:first-child, td.l, th.l { text-align:left; }
  .st { padding:1px 6px; border-radius:8px; font-size:11px; }
  .st.healthy { background:#1f3d2a; color:var(--ok); } .st.half_open, .st.draining { background:#3d321f; color:var(--warn); }
  .st.unhealthy, .st.circuit_open, .st.open { background:#3d1f1f; color:var(--bad); } .st.closed { color:var(--dim); }
  .bar { height:6px; background:var(--line); border-radius:3px; overflow:hidden; min-width:60px; }
  .bar > i { display:block; height:100%; background:var(--info); }
  .legend span { margin-right:10px; } .legend i { display:inline-block; width:10px; height:3px; margin-right:4px; vertical-align:middle; }
</style>
</head>
<body>
<header>
  <h1>llmgw</h1>
  <span id="conn">connecting</span>
  <span class="dim">instance <b id="instance">-</b> &middot; <span id="role">-</span></span>
  <span class="dim">version <span id="version">-</span></span>
  <span class="dim">updates <span id="updates">0</span></span>
</header>
<main>
  <div class="tiles">
    <div class="tile"><div class="k">requests/s</div><div class="v" id="rps">-</div></div>
    <div class="tile"><div class="k">errors/s</div><div class="v" id="eps">-</div></div>
    <div class="tile"><div class="k">active requests</div><div class="v" id="active">-</div></div>
    <div class="tile"><div class="k">tokens/s (out)</div><div class="v" id="tps">-</div></div>
    <div class="tile"><div class="k">requests total</div><div class="v" id="requests">-</div></div>
    <div class="tile"><div class="k">TTFT p99 ms (30 s, fleet)</div><div class="v" id="ttft99">-</div></div>
    <div class="tile"><div class="k">latency p99 ms (30 s, fleet)</div><div class="v" id="lat99">-</div></div>
    <div class="tile"><div class="k">backends healthy</div><div class="v" id="healthy">-</div></div>
    <div class="tile"><div class="k">data plane</div><div class="v" id="dataplane">-</div></div>
    <div class="tile"><div class="k">snapshot gen.</div><div class="v" id="generation">-</div></div>
  </div>
  <div class="charts">
    <div class="chart"><h2>Requests and errors per second</h2><canvas id="c_req"></canvas><div class="legend" id="l_req"></div></div>
    <div class="chart"><h2>Tokens per second</h2><canvas id="c_tok"></canvas><div class="legend" id="l_tok"></div></div>
    <div class="chart"><h2>TTFT p99 by backend (observed, streams, ms)</h2><canvas id="c_ttft"></canvas><div class="legend" id="l_ttft"></div></div>
    <div class="chart"><h2>Routing split (share of picks per second)</h2><canvas id="c_split"></canvas><div class="legend" id="l_split"></div></div>
  </div>
  <section>
    <h2>Backends</h2>
    <table>
      <thead><tr><th>id</th><th class="l">model</th><th class="l">state</th><th class="l">breaker</th><th>in flight</th>
        <th>running</th><th>waiting</th><th>KV</th><th>req/s</th><th>lat EWMA ms</th><th>lat p99 ms</th>
        <th>TTFT p99 ms</th><th>TTFT p99 ms (scraped)</th><th>errors</th><th>err %</th><th class="l">last error</th></tr></thead>
      <tbody id="backends"></tbody>
    </table>
  </section>
  <section>
    <h2>Models</h2>
    <table>
      <thead><tr><th>model</th><th class="l">policy</th><th>requests</th><th>req/s</th><th>retries</th><th>fallbacks</th>
        <th>rejected</th><th>prompt tok/s</th><th>completion tok/s</th></tr></thead>
      <tbody id="models"></tbody>
    </table>
  </section>
</main>
<script>
"use strict";
const N = 120;  // points kept per series (a minute at 2 events/s)
const COLORS = ["#58a6ff","#3fb950","#d29922","#f85149","#bc8cff","#39c5cf","#ff7b72","#e3b341","#8b949e","#56d364"];
const series = { req: {}, tok: {}, ttft: {}, split: {} };
let prev = null, updates = 0;

function push(group, name, v) {
  const s = series[group][name] || (series[group][name] = []);
  s.push(v);
  if (s.length > N) s.shift();
}
function rate(now, before, dt) { return dt > 0 && now >= before ? (now - before) / dt : 0; }
function fmt(v, d) { return (v === null || v === undefined || !isFinite(v)) ? "-" : Number(v).toFixed(d); }
function esc(s) { return String(s).replace(/[&<>"]/g, c => ({"&":"&amp;","<":"&lt;",">":"&gt;","\"":"&quot;"}[c])); }
function setText(id, v) { const e = document.getElementById(id); if (e) e.textContent = v; }

function draw(id, group, opts) {
  const cv = document.getElementById(id);
  const dpr = window.devicePixelRatio || 1;
  const w = cv.clientWidth || 360, h = cv.clientHeight || 160;
  cv.width = w * dpr; cv.height = h * dpr;
  const g = cv.getContext("2d");
  g.scale(dpr, dpr);
  g.clearRect(0, 0, w, h);
  const names = Object.keys(series[group]);
  let max = 0;
  for (const n of names) for (const v of series[group][n]) max = Math.max(max, v);
  max = max > 0 ? max * 1.15 : 1;
  const L = 44, B = 16, T = 6, R = 6;
  g.strokeStyle = "#2a323c"; g.fillStyle = "#8a96a3"; g.font = "10px system-ui"; g.lineWidth = 1;
  for (let i = 0; i <= 4; i++) {
    const y = T + (h - T - B) * i / 4;
    g.beginPath(); g.moveTo(L, y); g.lineTo(w - R, y); g.stroke();
    g.fillText(fmt(max * (4 - i) / 4, max < 10 ? 1 : 0), 2, y + 3);
  }
  const legend = [];
  names.forEach((n, k) => {
    const s = series[group][n], c = COLORS[k % COLORS.length];
    g.strokeStyle = c; g.lineWidth = 1.6; g.beginPath();
    s.forEach((v, i) => {
      const x = L + (w - L - R) * (i + N - s.length) / (N - 1);
      const y = T + (h - T - B) * (1 - v / max);
      i ? g.lineTo(x, y) : g.moveTo(x, y);
    });
    g.stroke();
    legend.push('<span><i style="background:' + c + '"></i>' + esc(n) + " " + fmt(s[s.length - 1], opts && opts.d !== undefined ? opts.d : 1) + "</span>");
  });
  document.getElementById("l" + id.slice(1)).innerHTML = legend.join("");
}

function drawSplit(shares) {
  const cv = document.getElementById("c_split");
  const dpr = window.devicePixelRatio || 1;
  const w = cv.clientWidth || 360, h = cv.clientHeight || 160;
  cv.width = w * dpr; cv.height = h * dpr;
  const g = cv.getContext("2d");
  g.scale(dpr, dpr);
  g.clearRect(0, 0, w, h);
  const rows = Object.keys(shares);
  const bh = Math.max(8, Math.min(22, (h - 8) / Math.max(rows.length, 1) - 4));
  g.font = "11px system-ui";
  const legend = [];
  rows.forEach((id, k) => {
    const y = 4 + k * (bh + 4), c = COLORS[k % COLORS.length];
    g.fillStyle = "#2a323c"; g.fillRect(120, y, w - 126, bh);
    g.fillStyle = c; g.fillRect(120, y, (w - 126) * shares[id], bh);
    g.fillStyle = "#d8dee6"; g.fillText(id.length > 18 ? id.slice(0, 17) + "\u2026" : id, 2, y + bh * 0.75);
    legend.push('<span><i style="background:' + c + '"></i>' + esc(id) + " " + fmt(shares[id] * 100, 0) + "%</span>");
  });
  document.getElementById("l_split").innerHTML = legend.join("");
}

function render(s) {
  updates++;
  setText("updates", updates);
  const st = s.status;
  setText("instance", st.instance); setText("role", st.role); setText("version", st.version);
  setText("active", st.active);
  setText("requests", s.totals.requests);
  setText("ttft99", fmt(s.totals.ttft_p99_ms, 0)); setText("lat99", fmt(s.totals.latency_p99_ms, 0));
  setText("healthy", st.backends_healthy + " / " + st.backends_total);
  setText("dataplane", st.dataplane_alive ? st.dataplane_threads + " threads" : "DOWN");
  setText("generation", st.generation);
  const dt = prev ? (s.t - prev.t) / 1000 : 0;
  const pb = {};
  if (prev) for (const b of prev.backends) pb[b.id] = b;
  const pm = {};
  if (prev) for (const m of prev.models) pm[m.name] = m;
  if (prev && dt > 0) {
    const rps = rate(s.totals.requests, prev.totals.requests, dt), eps = rate(s.totals.errors, prev.totals.errors, dt);
    const tin = rate(s.totals.prompt_tokens, prev.totals.prompt_tokens, dt), tout = rate(s.totals.completion_tokens, prev.totals.completion_tokens, dt);
    setText("rps", fmt(rps, 1)); setText("eps", fmt(eps, 2)); setText("tps", fmt(tout, 0));
    push("req", "requests/s", rps); push("req", "errors/s", eps);
    push("tok", "prompt/s", tin); push("tok", "completion/s", tout);
    let total = 0; const pr = {};
    for (const b of s.backends) { pr[b.id] = pb[b.id] ? rate(b.picks, pb[b.id].picks, dt) : 0; total += pr[b.id]; }
    const shares = {};
    for (const b of s.backends) shares[b.id] = total > 0 ? pr[b.id] / total : 0;
    drawSplit(shares);
  }
  for (const b of s.backends) push("ttft", b.id, b.ttft_p99_ms);
  draw("c_req", "req", { d: 1 }); draw("c_tok", "tok", { d: 0 }); draw("c_ttft", "ttft", { d: 0 });
  const rows = s.backends.map(b => {
    const r = pb[b.id] && dt > 0 ? rate(b.requests_total, pb[b.id].requests_total, dt) : null;
    const kv = Math.max(0, Math.min(1, b.kv_cache_usage));
    return '<tr id="b-' + esc(b.id) + '" data-id="' + esc(b.id) + '"><td>' + esc(b.id) + '</td><td class="l">' + esc(b.model) +
      '</td><td class="l"><span class="st ' + esc(b.state) + '">' + esc(b.state) + '</span></td><td class="l"><span class="st ' +
      esc(b.breaker) + '">' + esc(b.breaker) + '</span></td><td data-k="in_flight">' + b.in_flight + (b.max_concurrent ? " / " + b.max_concurrent : "") +
      '</td><td data-k="running">' + fmt(b.running, 0) + '</td><td data-k="waiting">' + fmt(b.waiting, 0) +
      '</td><td data-k="kv"><div class="bar" title="' + fmt(kv * 100, 0) + '%"><i style="width:' + (kv * 100) + '%"></i></div>' +
      (b.metrics_stale ? "stale" : fmt(kv * 100, 0) + "%") + '</td><td data-k="rps">' + fmt(r, 1) +
      '</td><td data-k="lat">' + fmt(b.ewma_latency_ms, 0) + '</td><td data-k="lat99">' + fmt(b.latency_p99_ms, 0) +
      '</td><td data-k="ttft99">' + fmt(b.ttft_p99_ms, 0) + '</td><td data-k="sttft99">' + fmt(b.scraped_ttft_p99_ms, 0) +
      '</td><td data-k="requests" data-requests="' + b.requests_total + '">' + b.errors_total + ' / ' + b.requests_total +
      '</td><td data-k="err">' + fmt(b.error_rate * 100, 1) + '</td><td class="l dim">' + esc(b.last_error) + '</td></tr>';
  });
  document.getElementById("backends").innerHTML = rows.join("");
  document.getElementById("models").innerHTML = s.models.map(m => {
    const p = pm[m.name];
    const r = (k) => p && dt > 0 ? fmt(rate(m[k] || 0, p[k] || 0, dt), 1) : "-";
    return '<tr data-model="' + esc(m.name) + '"><td>' + esc(m.name) + '</td><td class="l">' + esc(m.policy) + '</td><td>' + m.requests +
      '</td><td>' + r("requests") + '</td><td>' + m.retries + '</td><td>' + m.fallbacks + '</td><td>' + m.rejected +
      '</td><td>' + r("prompt_tokens") + '</td><td>' + r("completion_tokens") + '</td></tr>';
  }).join("");
  prev = s;
}

function connect() {
  // The token (when the page was opened with ?token=) rides along in the query: an
  // EventSource cannot set headers. llmcd also set it as a cookie when serving the page.
  const q = new URLSearchParams(location.search);
  const url = "/dashboard/events" + (q.get("token") ? "?token=" + encodeURIComponent(q.get("token")) : "");
  const es = new EventSource(url);
  const conn = document.getElementById("conn");
  es.addEventListener("state", ev => {
    conn.textContent = "live"; conn.className = "live";
    try { render(JSON.parse(ev.data)); } catch (e) { console.error(e); }
  });
  es.onerror = () => { conn.textContent = "reconnecting"; conn.className = "down"; };
}
connect();
</script>
</body>
</html>
)HTML";

}  // namespace

std::string_view DashboardPage() { return {kPage, sizeof(kPage) - 1}; }

}  // namespace llmgw::cp
