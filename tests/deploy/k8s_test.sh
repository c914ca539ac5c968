#!/usr/bin/env bash
# deploy/k8s (issue 15): `kubectl kustomize` renders it; every object validates against
# the Kubernetes / Prometheus Operator schemas bundled in the npm package kubernetes-models
# (offline, no cluster; tests/deploy/k8s, installed by scripts/test.sh with npm ci); and
# the wiring holds: llmgw and its llmcd share a memory-backed /dev/shm, probes hit
# llmgw's /ready and /health and the controller's /healthz, Services and the
# ServiceMonitor select existing pods and ports, both configs pass `llmctl config check`,
# every container runs as non-root with no privilege escalation.
# The schemas check types, required fields and enums; they allow unknown fields.
# Exit 77 (ctest: skipped) when kubectl or the npm packages are missing.
# Usage: tests/deploy/k8s_test.sh BIN_DIR
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN="${1:-build/bin}"
command -v kubectl >/dev/null || { echo "k8s_test: kubectl not installed: SKIPPED" >&2; exit 77; }
[ -d tests/deploy/k8s/node_modules/kubernetes-models ] ||
  { echo "k8s_test: run 'npm ci' in tests/deploy/k8s (scripts/test.sh does): SKIPPED" >&2; exit 77; }
tmp="$(mktemp -d /tmp/llmgw-k8stest-XXXXXX)"
trap 'rm -rf "$tmp"' EXIT

kubectl kustomize deploy/k8s >"$tmp/rendered.yaml"
/usr/bin/python3 -c 'import sys, yaml, json; json.dump([d for d in yaml.safe_load_all(sys.stdin) if d], sys.stdout)' \
  <"$tmp/rendered.yaml" >"$tmp/rendered.json"
node tests/deploy/k8s/validate.mjs <"$tmp/rendered.json"

/usr/bin/python3 - "$tmp" "$BIN" <<'PY'
import json, subprocess, sys, yaml
tmp, bin_dir = sys.argv[1], sys.argv[2]
objs = json.load(open(f"{tmp}/rendered.json"))
fails = []
def check(cond, msg):
    if not cond:
        fails.append(msg)
by = {(o["kind"], o["metadata"]["name"].rsplit("-", 1)[0] if o["kind"] in ("ConfigMap", "Secret") else o["metadata"]["name"]): o for o in objs}
for k in [("Deployment", "llmgw-gateway"), ("Deployment", "llmgw-controller"), ("Service", "llmgw"),
          ("Service", "llmgw-controller"), ("ServiceMonitor", "llmgw"), ("ConfigMap", "llmgw-config")]:
    check(k in by, f"missing {k}")
if fails:
    print("\n".join(fails)); sys.exit(1)

def pod(d): return d["spec"]["template"]["spec"]
def container(d, name): return next(c for c in pod(d)["containers"] if c["name"] == name)
def shm_volume(p):
    vols = {v["name"]: v for v in p.get("volumes", [])}
    return vols
gw, ctl = by[("Deployment", "llmgw-gateway")], by[("Deployment", "llmgw-controller")]

# Shared memory: every container mounts the same memory-backed emptyDir on /dev/shm.
for d in (gw, ctl):
    vols = shm_volume(pod(d))
    for c in pod(d)["containers"]:
        m = [v for v in c.get("volumeMounts", []) if v["mountPath"] == "/dev/shm"]
        check(len(m) == 1, f"{d['metadata']['name']}/{c['name']}: no /dev/shm mount")
        if m:
            v = vols.get(m[0]["name"], {})
            check(v.get("emptyDir", {}).get("medium") == "Memory", f"{c['name']}: /dev/shm is not a memory emptyDir")
gw_shm = {[v for v in c["volumeMounts"] if v["mountPath"] == "/dev/shm"][0]["name"] for c in pod(gw)["containers"]}
check(len(gw_shm) == 1, f"gateway containers mount different /dev/shm volumes: {gw_shm}")

# Probes.
llmgw = container(gw, "llmgw")
check(llmgw["readinessProbe"]["httpGet"]["path"] == "/ready", "llmgw readiness is not /ready")
check(llmgw["livenessProbe"]["httpGet"]["path"] == "/health", "llmgw liveness is not /health")
llmcd = container(ctl, "llmcd")
check(llmcd["livenessProbe"]["httpGet"]["path"] == "/healthz", "controller liveness is not /healthz")
check("grpc" in llmcd["readinessProbe"], "controller readiness is not the gRPC health check")
check(llmgw["securityContext"]["seccompProfile"]["type"] == "Localhost", "llmgw: seccomp profile is not the io_uring one")
check(int(pod(gw)["terminationGracePeriodSeconds"]) > 30, "grace period shorter than gateway.drain_ms (30 s)")

# Non-root everywhere, no escalation, read-only root.
for d in (gw, ctl):
    p = pod(d)
    check(p["securityContext"].get("runAsNonRoot") is True, f"{d['metadata']['name']}: runAsNonRoot")
    for c in p["containers"]:
        sc = c.get("securityContext", {})
        check(sc.get("allowPrivilegeEscalation") is False, f"{c['name']}: allowPrivilegeEscalation")
        check(sc.get("readOnlyRootFilesystem") is True, f"{c['name']}: readOnlyRootFilesystem")

# Services and the ServiceMonitor select real pods and named ports.
def ports_of(d): return {p["name"] for c in pod(d)["containers"] for p in c.get("ports", [])}
for svc_name, d in (("llmgw", gw), ("llmgw-controller", ctl)):
    svc = by[("Service", svc_name)]
    labels = d["spec"]["template"]["metadata"]["labels"]
    check(all(labels.get(k) == v for k, v in svc["spec"]["selector"].items()), f"Service {svc_name} selects no pod")
    for p in svc["spec"]["ports"]:
        check(p["targetPort"] in ports_of(d), f"Service {svc_name}: targetPort {p['targetPort']} not a container port")
sm = by[("ServiceMonitor", "llmgw")]
ctl_svc = by[("Service", "llmgw-controller")]
check(all(ctl_svc["metadata"]["labels"].get(k) == v for k, v in sm["spec"]["selector"]["matchLabels"].items()),
      "ServiceMonitor selects no Service")
check({e["port"] for e in sm["spec"]["endpoints"]} <= {p["name"] for p in ctl_svc["spec"]["ports"]},
      "ServiceMonitor port not on the Service")

# No mount inside another mount's read-only volume (the kubelet cannot create the mount
# point in a ConfigMap or Secret volume), and every token_file a config names is mounted.
for d in (gw, ctl):
    for c in pod(d)["containers"]:
        paths = [m["mountPath"].rstrip("/") for m in c.get("volumeMounts", [])]
        for a in paths:
            for b in paths:
                check(a == b or not b.startswith(a + "/"), f"{c['name']}: {b} is mounted inside {a}")

# The configs in the ConfigMap are valid, and the files the pods name are in it.
cm = by[("ConfigMap", "llmgw-config")]
for name, text in cm["data"].items():
    open(f"{tmp}/{name}", "w").write(text)
    r = subprocess.run([f"{bin_dir}/llmctl", "config", "check", f"{tmp}/{name}"], capture_output=True, text=True)
    check(r.returncode == 0, f"{name}: {r.stdout}{r.stderr}")
for d in (gw, ctl):
    for c in pod(d)["containers"]:
        cfg = c["args"][c["args"].index("--config") + 1]
        name = cfg[len("/etc/llmgw/"):]
        check(cfg.startswith("/etc/llmgw/") and name in cm["data"], f"{c['name']}: {cfg} not in the ConfigMap")
        token = yaml.safe_load(cm["data"].get(name, "{}")).get("admin", {}).get("token_file", "")
        if token and c["command"][0].endswith("llmcd"):  # llmgw does not read the admin token
            mounts = [m["mountPath"].rstrip("/") for m in c.get("volumeMounts", [])]
            check(any(token.startswith(m + "/") for m in mounts), f"{c['name']}: token_file {token} is not mounted")
if fails:
    print("FAIL:\n  " + "\n  ".join(fails)); sys.exit(1)
print(f"k8s_test: {len(objs)} objects rendered, valid and wired")
PY
