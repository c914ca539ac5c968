"""Holds N idle keep-alive client connections to HOST:PORT for bench scenario (d): each
connection sends one `GET /health`, reads the answer, then stays open and silent. Prints
`ready N` once all are open and answered, then waits until stdin closes."""
import socket
import sys

host, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
req = f"GET /health HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()
socks = []
for i in range(n):
    s = socket.create_connection((host, port), timeout=10)
    s.sendall(req)
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = s.recv(4096)
        if not chunk:
            sys.exit(f"connection {i} closed before answering")
        buf += chunk
    socks.append(s)
print(f"ready {len(socks)}", flush=True)
sys.stdin.read()
