#!/usr/bin/env python3
"""The Grafana dashboard and the Prometheus alert rules name only metrics llmcd exports.

Starts llmgw-mock, llmcd and llmgw on loopback, sends streaming and failing requests so
every family has samples, scrapes llmcd's /metrics and reads the exported names from its
# TYPE lines (histograms add _bucket, _sum, _count). Then checks deploy/grafana/llmgw.json
(unique panel ids, every panel has a query, every query is valid PromQL by promtool and
names exported metrics only, including the template variables) and the expressions of
deploy/prometheus/alerts.yml the same way.
Usage: metrics_names_test.py BIN_DIR
"""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

import yaml

from deploytest import BIN, ROOT, fail, exit_status, free_port, http


def exported_names():
    tmp = tempfile.mkdtemp(prefix="llmgw-metrics-")
    procs = []
    inst = f"mnt-{os.getpid()}"
    try:
        mock, gw, grpc, metrics = free_port(), free_port(), free_port(), free_port()
        cfg = os.path.join(tmp, "c.yaml")
        with open(cfg, "w") as f:
            f.write(f"instance: {inst}\ngateway: {{ listen: 127.0.0.1:{gw}, threads: 1 }}\n"
                    f"admin: {{ grpc_listen: 127.0.0.1:{grpc}, metrics_listen: 127.0.0.1:{metrics} }}\n"
                    f"health: {{ interval_ms: 200 }}\n"
                    f"models:\n  - name: m\n    backends: [ {{ url: \"http://127.0.0.1:{mock}\" }} ]\n")
        log = open(os.path.join(tmp, "log"), "w")
        procs.append(subprocess.Popen([f"{BIN}/llmgw-mock", "--listen", f"127.0.0.1:{mock}", "--model", "m"],
                                      stdout=subprocess.DEVNULL, stderr=log))
        procs.append(subprocess.Popen([f"{BIN}/llmcd", "--config", cfg], stdout=subprocess.DEVNULL, stderr=log))
        procs.append(subprocess.Popen([f"{BIN}/llmgw", "--config", cfg], stdout=subprocess.DEVNULL, stderr=log))
        deadline = time.time() + 15
        while time.time() < deadline and http(gw, "/ready")[0] != 200:
            time.sleep(0.1)
        chat = b'{"model":"m","messages":[{"role":"user","content":"hello"}],"max_tokens":4'
        for stream in (b"true", b"false"):
            status, _ = http(gw, "/v1/chat/completions", chat + b',"stream":' + stream + b"}")
            if status != 200:
                fail(f"request through llmgw answered {status}; log:\n" + open(os.path.join(tmp, "log")).read())
        http(gw, "/v1/chat/completions", b"{not json")
        time.sleep(1.5)  # a stats sum and a publish
        status, text = http(metrics, "/metrics")
        if status != 200:
            fail(f"/metrics answered {status}")
        names = set()
        for line in text.splitlines():
            m = re.match(r"# TYPE (\S+) (\S+)", line)
            if m:
                names.add(m.group(1))
                if m.group(2) in ("histogram", "summary"):
                    names.update(m.group(1) + s for s in ("_bucket", "_sum", "_count"))
        return names
    finally:
        for p in reversed(procs):
            p.terminate()
        for p in procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(tmp, ignore_errors=True)
        for n in (f"/dev/shm/llmgw-{inst}", f"/dev/shm/llmgw-{inst}.writer"):
            if os.path.exists(n):
                os.unlink(n)


def metric_names(expr):
    # A metric is named right before its selector; every query here uses one.
    return set(re.findall(r"([a-zA-Z_:][a-zA-Z0-9_:]*)\s*\{", expr))


def promql_valid(exprs, what):
    """promtool parses each expression as a recording rule (no server needed)."""
    rules = {"groups": [{"name": "check", "rules": [
        {"record": f"check:{i}", "expr": e} for i, e in enumerate(exprs)]}]}
    with tempfile.NamedTemporaryFile("w", suffix=".yml", delete=False) as f:
        yaml.safe_dump(rules, f)
    r = subprocess.run(["promtool", "check", "rules", f.name], capture_output=True, text=True)
    os.unlink(f.name)
    if r.returncode != 0:
        fail(f"{what}: promtool rejects a query: {r.stdout}{r.stderr}")


def main():
    exported = exported_names()
    if "llm_gateway_requests_total" not in exported:
        fail(f"the scrape found no llmgw metric: {sorted(exported)}")

    dash = json.load(open(os.path.join(ROOT, "deploy/grafana/llmgw.json")))
    ids = [p["id"] for p in dash["panels"]]
    if len(ids) != len(set(ids)):
        fail("duplicate panel ids")
    exprs = []
    for p in dash["panels"]:
        if p["type"] == "row":
            continue
        if not p.get("targets"):
            fail(f"panel '{p['title']}' has no query")
        g = p["gridPos"]
        if g["x"] + g["w"] > 24:
            fail(f"panel '{p['title']}' is wider than the grid")
        for t in p.get("targets", []):
            exprs.append((p["title"], t["expr"]))
    for v in dash["templating"]["list"]:
        if v["type"] == "query":
            m = re.match(r"label_values\((\w+),\s*(\w+)\)", v["query"]["query"])
            if not m:
                fail(f"variable {v['name']}: unexpected query {v['query']}")
            elif m.group(1) not in exported:
                fail(f"variable {v['name']} reads {m.group(1)}, which llmcd does not export")
    # Grafana's variables, substituted as Grafana would for "All".
    concrete = [re.sub(r"\$__rate_interval", "5m", re.sub(r"\$(instance|model|backend)\b", ".*", e))
                for _, e in exprs]
    promql_valid(concrete, "dashboard")
    for (title, e) in exprs:
        used = metric_names(e)
        if not used:
            fail(f"panel '{title}': no metric found in {e}")
        for n in used - exported:
            fail(f"panel '{title}' queries {n}, which llmcd does not export")

    alerts = yaml.safe_load(open(os.path.join(ROOT, "deploy/prometheus/alerts.yml")))
    for g in alerts["groups"]:
        for r in g["rules"]:
            used = metric_names(r["expr"]) | set(re.findall(r"absent\((\w+)\)", r["expr"]))
            used |= set(re.findall(r"\b(llm\w+)\b", r["expr"]))
            if not used:
                fail(f"alert {r['alert']}: no metric found")
            for n in used - exported:
                fail(f"alert {r['alert']} uses {n}, which llmcd does not export")

    print(f"metrics_names_test: {len(exprs)} dashboard queries, exported families: {len(exported)}")
    return exit_status()


if __name__ == "__main__":
    sys.exit(main())
