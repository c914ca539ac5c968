#!/usr/bin/env python3
"""The live dashboard in a real browser (issue 16): headless Chromium opens llmcd's
/dashboard (with the admin token, as an operator's browser would), and the test reads the
rendered page over the DevTools protocol (--remote-debugging-pipe, no network port):
every backend has a row, the event stream keeps arriving (>= 1 Hz), and the numbers
change when traffic through llmgw starts. A screenshot of the page is written to
OUT_DIR/dashboard.png and its path printed.

Starts two llmgw-mock backends, llmcd (admin token set) and llmgw on loopback.
Usage: dashboard_browser_test.py BIN_DIR OUT_DIR
"""
import base64
import json
import os
import select
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

BIN = sys.argv[1]
OUT = sys.argv[2] if len(sys.argv) > 2 else tempfile.gettempdir()
TOKEN = "dash-secret-" + str(os.getpid())


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def http(port, path, body=None, headers=None, timeout=5):
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=body, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
    except OSError:
        return 0, ""


def find_chromium():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        p = shutil.which(name)
        if p:
            return p
    return None


class Browser:
    """Chromium driven over --remote-debugging-pipe: commands on fd 3, replies on fd 4,
    each message JSON terminated by a NUL byte."""

    def __init__(self, exe, profile):
        to_chrome_r, self.to_chrome = os.pipe()
        self.from_chrome, from_chrome_w = os.pipe()
        args = [exe, "--headless=new", "--remote-debugging-pipe", "--no-sandbox", "--disable-gpu",
                "--no-first-run", "--no-default-browser-check", "--disable-extensions",
                "--disable-background-networking", "--disable-sync", "--metrics-recording-only",
                "--disable-dev-shm-usage", "--window-size=1400,1000", f"--user-data-dir={profile}", "about:blank"]
        # Chromium reads the protocol on fd 3 and writes on fd 4: a shell puts the pipes
        # there (a preexec dup2 could clobber subprocess's own descriptors).
        cmd = "exec \"$@\" 3<&%d 4>&%d" % (to_chrome_r, from_chrome_w)
        self.proc = subprocess.Popen(["/bin/sh", "-c", cmd, "sh"] + args, pass_fds=(to_chrome_r, from_chrome_w),
                                     stdout=subprocess.DEVNULL, stderr=open(os.path.join(profile, "chrome.log"), "w"))
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        self.buf = b""
        self.next_id = 0
        self.session = None

    def call(self, method, params=None, session=True, timeout=20):
        self.next_id += 1
        msg = {"id": self.next_id, "method": method, "params": params or {}}
        if session and self.session:
            msg["sessionId"] = self.session
        os.write(self.to_chrome, json.dumps(msg).encode() + b"\0")
        deadline = time.time() + timeout
        while time.time() < deadline:
            while b"\0" in self.buf:
                raw, self.buf = self.buf.split(b"\0", 1)
                m = json.loads(raw)
                if m.get("id") == self.next_id:
                    if "error" in m:
                        raise RuntimeError(f"{method}: {m['error']}")
                    return m.get("result", {})
            r, _, _ = select.select([self.from_chrome], [], [], 0.5)
            if r:
                chunk = os.read(self.from_chrome, 1 << 20)
                if not chunk:
                    raise RuntimeError("chromium closed the pipe")
                self.buf += chunk
        raise RuntimeError(f"{method}: no answer in {timeout}s")

    def open(self, url):
        t = self.call("Target.createTarget", {"url": "about:blank"}, session=False)
        a = self.call("Target.attachToTarget", {"targetId": t["targetId"], "flatten": True}, session=False)
        self.session = a["sessionId"]
        self.call("Page.enable")
        self.call("Page.navigate", {"url": url})

    def eval(self, expr):
        r = self.call("Runtime.evaluate", {"expression": expr, "returnByValue": True})
        return r.get("result", {}).get("value")

    def screenshot(self, path):
        r = self.call("Page.captureScreenshot", {"format": "png"})
        with open(path, "wb") as f:
            f.write(base64.b64decode(r["data"]))

    def close(self):
        try:
            self.call("Browser.close", session=False, timeout=5)
        except Exception:
            pass
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def wait_for(pred, timeout, step=0.2):
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(step)
    return None


def main():
    exe = find_chromium()
    if not exe:
        print("FAIL: chromium not installed (scripts/install-deps.sh installs it)", file=sys.stderr)
        return 1
    tmp = tempfile.mkdtemp(prefix="llmgw-dash-")
    inst = f"dash-{os.getpid()}"
    procs, browser, failures = [], None, []
    stop = threading.Event()
    try:
        mocks = [free_port(), free_port()]
        gw, grpc, metrics = free_port(), free_port(), free_port()
        with open(os.path.join(tmp, "token"), "w") as f:
            f.write(TOKEN + "\n")
        cfg = os.path.join(tmp, "c.yaml")
        with open(cfg, "w") as f:
            f.write(f"instance: {inst}\ngateway: {{ listen: 127.0.0.1:{gw}, threads: 1 }}\n"
                    f"admin: {{ grpc_listen: 127.0.0.1:{grpc}, metrics_listen: 127.0.0.1:{metrics}, "
                    f"token_file: {tmp}/token }}\n"
                    f"health: {{ interval_ms: 200 }}\ncontrol: {{ tick_ms: 50 }}\n"
                    f"models:\n  - name: m\n    policy: round_robin\n    backends:\n"
                    f"      - {{ id: gpu-alpha, url: \"http://127.0.0.1:{mocks[0]}\" }}\n"
                    f"      - {{ id: gpu-beta, url: \"http://127.0.0.1:{mocks[1]}\" }}\n")
        log = open(os.path.join(tmp, "log"), "w")
        for p in mocks:
            procs.append(subprocess.Popen([f"{BIN}/llmgw-mock", "--listen", f"127.0.0.1:{p}", "--model", "m",
                                           "--token-interval-ms", "5", "--output-tokens", "8"],
                                          stdout=subprocess.DEVNULL, stderr=log))
        procs.append(subprocess.Popen([f"{BIN}/llmcd", "--config", cfg], stdout=subprocess.DEVNULL, stderr=log))
        procs.append(subprocess.Popen([f"{BIN}/llmgw", "--config", cfg], stdout=subprocess.DEVNULL, stderr=log))
        if not wait_for(lambda: http(gw, "/ready")[0] == 200, 15):
            raise RuntimeError("llmgw not ready; log:\n" + open(os.path.join(tmp, "log")).read())

        browser = Browser(exe, tmp)
        browser.open(f"http://127.0.0.1:{metrics}/dashboard?token={TOKEN}")
        # The page renders live events: the counter of events received moves.
        n0 = wait_for(lambda: int(browser.eval("+document.getElementById('updates').textContent") or 0) >= 2, 20)
        if not n0:
            failures.append("no state event rendered within 20 s: " +
                            str(browser.eval("document.body ? document.body.innerText.slice(0, 400) : ''")))
            raise RuntimeError("page not live")
        ids = browser.eval("[...document.querySelectorAll('#backends tr')].map(r => r.dataset.id)")
        if sorted(ids or []) != ["gpu-alpha", "gpu-beta"]:
            failures.append(f"backend rows {ids}, want gpu-alpha and gpu-beta")
        if browser.eval("document.getElementById('conn').textContent") != "live":
            failures.append("connection badge not 'live'")
        if browser.eval("document.getElementById('instance').textContent") != inst:
            failures.append("instance not shown")
        # >= 1 Hz: count events over 3 s.
        u1 = int(browser.eval("+document.getElementById('updates').textContent"))
        time.sleep(3)
        u2 = int(browser.eval("+document.getElementById('updates').textContent"))
        if u2 - u1 < 3:
            failures.append(f"{u2 - u1} events in 3 s (want >= 1 Hz)")
        before = int(browser.eval("+document.getElementById('requests').textContent") or 0)

        # Traffic through llmgw: the numbers on the page follow.
        chat = b'{"model":"m","messages":[{"role":"user","content":"hi"}],"max_tokens":8,"stream":true}'
        def load():
            while not stop.is_set():
                http(gw, "/v1/chat/completions", chat, {"Content-Type": "application/json"})
        workers = [threading.Thread(target=load, daemon=True) for _ in range(3)]
        for t in workers:
            t.start()
        rps_seen = wait_for(lambda: float(browser.eval(
            "parseFloat(document.getElementById('rps').textContent) || 0") or 0) > 0, 20)
        if not rps_seen:
            failures.append("requests/s tile stayed at 0 under traffic")
        after = wait_for(lambda: int(browser.eval("+document.getElementById('requests').textContent") or 0) > before + 10, 20)
        if not after:
            failures.append("requests total on the page did not grow with traffic")
        per_backend = wait_for(lambda: all(int(x) > 0 for x in (browser.eval(
            "[...document.querySelectorAll('#backends td[data-k=requests]')].map(td => td.dataset.requests)") or ["0"])), 20)
        if not per_backend:
            failures.append("a backend row shows no requests under round-robin traffic")
        ttft = wait_for(lambda: all(float(x or 0) > 0 for x in (browser.eval(
            "[...document.querySelectorAll('#backends td[data-k=ttft99]')].map(td => parseFloat(td.textContent))") or [0])), 20)
        if not ttft:
            failures.append("no observed TTFT p99 shown for every backend under streaming traffic")
        time.sleep(1)
        os.makedirs(OUT, exist_ok=True)
        shot = os.path.join(OUT, "dashboard.png")
        browser.screenshot(shot)
        print(f"screenshot: {shot} ({os.path.getsize(shot)} bytes)")
        if os.path.getsize(shot) < 10000:
            failures.append("screenshot suspiciously small")

        # Without the token the page is refused (the browser's cookie is not sent here).
        status, _ = http(metrics, "/dashboard")
        if status != 401:
            failures.append(f"/dashboard without the token answered {status}, want 401")
    except Exception as e:  # noqa: BLE001 - report and fail
        failures.append(f"error: {e}")
    finally:
        stop.set()
        if browser:
            browser.close()
        for p in reversed(procs):
            p.terminate()
        for p in procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
        for f in failures:
            print("FAIL:", f, file=sys.stderr)
        if failures:
            print("--- log\n" + open(os.path.join(tmp, "log")).read()[-3000:], file=sys.stderr)
        shutil.rmtree(tmp, ignore_errors=True)
        for n in (f"/dev/shm/llmgw-{inst}", f"/dev/shm/llmgw-{inst}.writer"):
            if os.path.exists(n):
                os.unlink(n)
    if failures:
        return 1
    print("dashboard browser test: ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
