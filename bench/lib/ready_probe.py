"""Times llmgw from exec to its first `GET /ready` answered 200, with a snapshot already
in shm (bench scenario g). Usage: ready_probe.py LLMGW CONFIG PORT RUNS -> one line per run
with milliseconds; polls every 0.2 ms with a fresh connection."""
import os
import signal
import socket
import subprocess
import sys
import time

exe, cfg, port, runs = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
req = b"GET /ready HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"


def ready():
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=0.05)
    except OSError:
        return False
    try:
        s.sendall(req)
        data = s.recv(64)
        return data.startswith(b"HTTP/1.1 200")
    except OSError:
        return False
    finally:
        s.close()


for _ in range(runs):
    t0 = time.perf_counter()
    p = subprocess.Popen([exe, "--config", cfg], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ok = False
    while time.perf_counter() - t0 < 5:
        if ready():
            ok = True
            break
        time.sleep(0.0002)
    ms = (time.perf_counter() - t0) * 1000
    print(f"{ms:.2f}" if ok else "timeout", flush=True)
    p.send_signal(signal.SIGTERM)
    try:
        p.wait(5)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()
