#!/usr/bin/env python3
"""A request followed in a trace from client to backend (issue 16), with the real llmgw and
llmcd on loopback: two Python backends ("bad" answers 503, "good" streams an answer and
records the headers it got), llmcd exporting to otlp_receiver.py (protobuf, decoded by
python3-protobuf), and clients sending W3C traceparent headers. Checks: the request's
SERVER span continues the client's trace and span, each upstream attempt is a CLIENT span
under it with its backend, reason and status, the first token is an event, the good
backend received a traceparent naming its attempt's span, and an unsampled request (no
traceparent, tracing.sample 0) leaves no span.
Usage: tracing_e2e_test.py BIN_DIR
"""
import http.server
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

BIN = sys.argv[1]
HERE = os.path.dirname(os.path.abspath(__file__))
failures = []


def fail(msg):
    failures.append(msg)
    print("FAIL:", msg, file=sys.stderr)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def backend(ok, seen):
    class H(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *a):
            pass

        def do_GET(self):
            body = b'{"object":"list","data":[{"id":"m"}]}' if self.path != "/metrics" else b""
            self.send_response(200 if self.path != "/metrics" else 404)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            seen.append({"traceparent": self.headers.get("traceparent"), "tracestate": self.headers.get("tracestate"),
                         "request_id": self.headers.get("X-Request-ID"), "body": body.decode()})
            if not ok:
                msg = b'{"error":{"message":"overloaded","type":"server_error"}}'
                self.send_response(503)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(msg)))
                self.end_headers()
                self.wfile.write(msg)
                return
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            events = [{"choices": [{"delta": {"content": w}}], "model": "m"} for w in ("Hello", " there")]
            events.append({"choices": [], "usage": {"prompt_tokens": 7, "completion_tokens": 2}})
            for ev in events:
                chunk = f"data: {json.dumps(ev)}\n\n".encode()
                self.wfile.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
                self.wfile.flush()
                time.sleep(0.02)
            done = b"data: [DONE]\n\n"
            self.wfile.write(f"{len(done):x}\r\n".encode() + done + b"\r\n0\r\n\r\n")

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv


def chat(port, headers):
    body = b'{"model":"m","messages":[{"role":"user","content":"hi"}],"stream":true}'
    req = urllib.request.Request(f"http://127.0.0.1:{port}/v1/chat/completions", data=body,
                                 headers={"Content-Type": "application/json", **headers})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def main():
    tmp = tempfile.mkdtemp(prefix="llmgw-trace-")
    inst = f"trace-{os.getpid()}"
    procs = []
    seen_good, seen_bad = [], []
    good, bad = backend(True, seen_good), backend(False, seen_bad)
    out = os.path.join(tmp, "spans.jsonl")
    try:
        recv = subprocess.Popen(["/usr/bin/python3", os.path.join(HERE, "otlp_receiver.py"), out],
                                stdout=subprocess.PIPE, stderr=open(os.path.join(tmp, "recv.log"), "w"), text=True)
        procs.append(recv)
        line = recv.stdout.readline()
        rport = int(line.strip().rsplit(":", 1)[1])
        gw, grpc, metrics = free_port(), free_port(), free_port()
        cfg = os.path.join(tmp, "c.yaml")
        with open(cfg, "w") as f:
            f.write(f"instance: {inst}\ngateway: {{ listen: 127.0.0.1:{gw}, threads: 1, retries: {{ max: 2, backoff_ms: 1 }} }}\n"
                    f"admin: {{ grpc_listen: 127.0.0.1:{grpc}, metrics_listen: 127.0.0.1:{metrics} }}\n"
                    f"health: {{ interval_ms: 200 }}\ncontrol: {{ tick_ms: 50 }}\n"
                    f"tracing: {{ otlp_endpoint: \"http://127.0.0.1:{rport}\", protocol: http/protobuf, sample: 0, "
                    f"service_name: llmgw-e2e }}\n"
                    f"models:\n  - name: m\n    policy: round_robin\n    backends:\n"
                    f"      - {{ id: bad, url: \"http://127.0.0.1:{bad.server_address[1]}\" }}\n"
                    f"      - {{ id: good, url: \"http://127.0.0.1:{good.server_address[1]}\" }}\n")
        log = open(os.path.join(tmp, "log"), "w")
        procs.append(subprocess.Popen([f"{BIN}/llmcd", "--config", cfg], stdout=subprocess.DEVNULL, stderr=log))
        procs.append(subprocess.Popen([f"{BIN}/llmgw", "--config", cfg], stdout=subprocess.DEVNULL, stderr=log))
        deadline = time.time() + 15
        while time.time() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{gw}/ready", timeout=1) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            time.sleep(0.1)

        # Four sampled requests (round robin: two of them meet "bad" first and retry).
        clients = []
        for i in range(4):
            trace, parent = secrets.token_hex(16), secrets.token_hex(8)
            status, body = chat(gw, {"traceparent": f"00-{trace}-{parent}-01", "tracestate": "client=1",
                                     "X-Request-ID": f"traced-{i}"})
            if status != 200 or "Hello" not in body:
                fail(f"request {i}: {status} {body[:200]}")
            clients.append((trace, parent))
        status, _ = chat(gw, {"X-Request-ID": "unsampled"})
        if status != 200:
            fail(f"unsampled request: {status}")

        def spans():
            try:
                return [json.loads(l) for l in open(out)]
            except FileNotFoundError:
                return []
        deadline = time.time() + 15
        while time.time() < deadline and len(spans()) < 4 + 4 + 2:
            time.sleep(0.2)
        got = spans()
        by_trace = {}
        for s in got:
            by_trace.setdefault(s["trace_id"], []).append(s)
        retried = 0
        for trace, parent in clients:
            ss = by_trace.get(trace, [])
            servers = [s for s in ss if s["kind"] == 2]
            attempts = sorted([s for s in ss if s["kind"] == 3], key=lambda s: s["attributes"]["llmgw.attempt"])
            if len(servers) != 1:
                fail(f"trace {trace}: {len(servers)} server spans: {ss}")
                continue
            srv = servers[0]
            a = srv["attributes"]
            if srv["parent_span_id"] != parent:
                fail(f"server span's parent {srv['parent_span_id']}, want the client's {parent}")
            if srv["name"] != "chat m" or a.get("gen_ai.request.model") != "m" or a.get("gen_ai.response.model") != "m":
                fail(f"server span name/model: {srv['name']} {a}")
            if a.get("http.response.status_code") != 200 or a.get("gen_ai.operation.name") != "chat":
                fail(f"server span attributes: {a}")
            if a.get("gen_ai.usage.input_tokens") != 7 or a.get("gen_ai.usage.output_tokens") != 2:
                fail(f"server span usage: {a}")
            if srv["trace_state"] != "client=1":
                fail(f"tracestate not kept: {srv['trace_state']!r}")
            if srv["resource"].get("service.name") != "llmgw-e2e":
                fail(f"resource: {srv['resource']}")
            if not any(e["name"] == "gen_ai.first_token" for e in srv["events"]):
                fail(f"no first-token event on the server span: {srv['events']}")
            if not attempts or len(attempts) != a.get("llmgw.attempts"):
                fail(f"{len(attempts)} attempt spans, server says {a.get('llmgw.attempts')}")
                continue
            for x in attempts:
                if x["parent_span_id"] != srv["span_id"]:
                    fail(f"attempt span parent {x['parent_span_id']}, want {srv['span_id']}")
            last = attempts[-1]
            if last["attributes"].get("llmgw.backend.id") != "good" or last["attributes"].get("http.response.status_code") != 200:
                fail(f"last attempt: {last['attributes']}")
            if len(attempts) == 2:
                retried += 1
                first = attempts[0]["attributes"]
                if first.get("llmgw.backend.id") != "bad" or first.get("http.response.status_code") != 503 or \
                        attempts[0]["status"]["code"] != 2 or first.get("llmgw.attempt.reason") != "first":
                    fail(f"failed attempt: {attempts[0]}")
                if last["attributes"].get("llmgw.attempt.reason") != "retry":
                    fail(f"retry attempt reason: {last['attributes']}")
            # The backend got a traceparent naming the attempt span that reached it.
            hit = [h for h in seen_good if h["request_id"] and h["traceparent"] and trace in h["traceparent"]]
            want = f"00-{trace}-{last['span_id']}-01"
            if not hit or hit[-1]["traceparent"] != want:
                fail(f"backend saw traceparent {hit[-1]['traceparent'] if hit else None}, want {want}")
        if retried == 0:
            fail("no request was retried: the 503 backend was never picked first")
        if any(s["attributes"].get("llmgw.request_id") == "unsampled" for s in got):
            fail("an unsampled request (sample 0, no traceparent) was recorded")
        unsampled = [h for h in seen_good if h["request_id"] == "unsampled"]
        if unsampled and (not unsampled[0]["traceparent"] or not unsampled[0]["traceparent"].endswith("-00")):
            fail(f"unsampled request's upstream traceparent {unsampled[0]['traceparent']}: want the flag 00")
        print(f"{len(got)} spans received, {retried} retried requests")
    finally:
        for p in reversed(procs):
            p.terminate()
        for p in procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
        good.shutdown()
        bad.shutdown()
        if failures:
            print("--- log\n" + open(os.path.join(tmp, "log")).read()[-3000:], file=sys.stderr)
        shutil.rmtree(tmp, ignore_errors=True)
        for n in (f"/dev/shm/llmgw-{inst}", f"/dev/shm/llmgw-{inst}.writer"):
            if os.path.exists(n):
                os.unlink(n)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
