#!/usr/bin/env python3
"""The container seccomp profile deploy/docker/seccomp-llmgw.json.

1. It is exactly what scripts/gen-seccomp-profile.py writes (no hand edits, no drift from
   the systemd units' SystemCallFilter).
2. llmgw serves under it: the profile is loaded with libseccomp (python3-seccomp), the
   way runc loads it, then llmgw is exec'd; GET /health must answer 200.
3. Under the same profile without the io_uring calls (what Docker 25+'s default does to
   io_uring) llmgw refuses to start, and its message names seccomp and the profile.
Usage: seccomp_test.py BIN_DIR
"""
import errno
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request

import seccomp

from deploytest import BIN, ROOT, fail, exit_status, free_port
PROFILE = os.path.join(ROOT, "deploy/docker/seccomp-llmgw.json")


def confined(names):
    """A preexec_fn that installs an allow-list filter (EPERM for the rest)."""
    def apply():
        f = seccomp.SyscallFilter(defaction=seccomp.ERRNO(errno.EPERM))
        for n in names:
            try:
                f.add_rule(seccomp.ALLOW, n)
            except (RuntimeError, ValueError):
                pass  # a name this architecture does not have (runc skips these too)
        f.load()
    return apply


def run_llmgw(names, cfg, log):
    return subprocess.Popen([f"{BIN}/llmgw", "--config", cfg], stdout=subprocess.PIPE, stderr=log,
                            preexec_fn=confined(names))


def main():
    with tempfile.TemporaryDirectory() as tmp:
        regenerated = os.path.join(tmp, "p.json")
        subprocess.run([sys.executable, os.path.join(ROOT, "scripts/gen-seccomp-profile.py"), regenerated],
                       check=True)
        if open(regenerated).read() != open(PROFILE).read():
            fail("deploy/docker/seccomp-llmgw.json differs from scripts/gen-seccomp-profile.py's output")

        names = json.load(open(PROFILE))["syscalls"][0]["names"]
        port = free_port()
        inst = f"sct-{os.getpid()}"
        cfg = os.path.join(tmp, "c.yaml")
        with open(cfg, "w") as f:
            f.write(f"instance: {inst}\ngateway: {{ listen: 127.0.0.1:{port}, threads: 2 }}\n"
                    f"models:\n  - name: m\n    backends: [ {{ url: \"http://127.0.0.1:{free_port()}\" }} ]\n")
        log_path = os.path.join(tmp, "log")
        try:
            with open(log_path, "w") as log:
                p = run_llmgw(names, cfg, log)
                status = 0
                deadline = time.time() + 10
                while time.time() < deadline and p.poll() is None:
                    try:
                        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as r:
                            status = r.status
                            break
                    except OSError:
                        time.sleep(0.1)
                if status != 200:
                    fail(f"llmgw under the profile: /health {status}, exit {p.poll()}\n" + open(log_path).read())
                p.terminate()
                rc = p.wait(15)
                if rc != 0:
                    fail(f"llmgw under the profile exited {rc} on SIGTERM\n" + open(log_path).read())

            without = [n for n in names if not n.startswith("io_uring")]
            with open(log_path, "w") as log:
                p = run_llmgw(without, cfg, log)
                try:
                    rc = p.wait(10)
                except subprocess.TimeoutExpired:
                    p.kill()
                    rc = None
            text = open(log_path).read()
            if rc != 1:
                fail(f"llmgw without io_uring: exit {rc}, expected 1\n{text}")
            for want in ("seccomp", "seccomp-llmgw.json"):
                if want not in text:
                    fail(f"llmgw's refusal does not mention '{want}':\n{text}")
        finally:
            for n in (f"/dev/shm/llmgw-{inst}",):
                if os.path.exists(n):
                    os.unlink(n)
    print(f"seccomp_test: {len(names)} calls allowed; llmgw serves under the profile and refuses clearly without io_uring")
    return exit_status()


if __name__ == "__main__":
    sys.exit(main())
