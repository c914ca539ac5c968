#!/usr/bin/env python3
"""Packet delay, jitter and reordering without sch_netem, for scripts/chaos.sh.

Binds an NFQUEUE (iptables `-j NFQUEUE --queue-num Q --queue-bypass` sends packets to it)
and gives each queued packet its verdict (accept) only after DELAY_MS +- JITTER_MS,
uniformly drawn per packet. The kernel holds the packet meanwhile and re-injects it when
the verdict arrives, so verdicts issued out of arrival order reorder packets on the wire:
with a jitter larger than the gap between two packets of a flow, they swap. This is
network-level delay (TCP sees the extra RTT, retransmits, SACKs), not application latency.

Talks nfnetlink directly (Python's standard library only: no libnetfilter_queue). Run it
inside the network namespace whose iptables rule feeds the queue. On SIGTERM or SIGINT it
accepts whatever it still holds and prints one JSON line of what it measured: packets,
actual hold time (mean, p50, max), how late verdicts were against their schedule (this
process's own lag on a loaded machine), and how many packets left after a later packet
of the same TCP flow (reordered).
"""
import argparse
import heapq
import json
import os
import random
import select
import signal
import socket
import struct
import sys
import time

NETLINK_NETFILTER = 12
NFNL_SUBSYS_QUEUE = 3
NFQNL_MSG_PACKET, NFQNL_MSG_VERDICT, NFQNL_MSG_CONFIG = 0, 1, 2
NLM_F_REQUEST, NLM_F_ACK = 0x1, 0x4
NLMSG_ERROR = 2
NFQA_CFG_CMD, NFQA_CFG_PARAMS, NFQA_CFG_QUEUE_MAXLEN = 1, 2, 3
NFQNL_CFG_CMD_BIND = 1
NFQNL_COPY_PACKET = 2
NFQA_PACKET_HDR, NFQA_VERDICT_HDR, NFQA_PAYLOAD = 1, 2, 10
NF_ACCEPT = 1
SOL_NETLINK, NETLINK_NO_ENOBUFS = 270, 5
HEADER_BYTES = 60  # copied per packet: IPv4 header (up to 40 with options) + TCP ports


def attr(kind, payload):
    n = 4 + len(payload)
    return struct.pack("=HH", n, kind) + payload + b"\0" * (-n % 4)


def message(msg_type, flags, seq, queue, attrs):
    body = struct.pack("=BB", socket.AF_UNSPEC, 0) + struct.pack("!H", queue) + attrs
    return struct.pack("=IHHII", 16 + len(body), (NFNL_SUBSYS_QUEUE << 8) | msg_type, flags, seq, 0) + body


def attrs_of(data, off, end):
    out = {}
    while off + 4 <= end:
        n, kind = struct.unpack_from("=HH", data, off)
        if n < 4:
            break
        out[kind & 0x7FFF] = data[off + 4:off + n]
        off += (n + 3) & ~3
    return out


def flow_of(payload):
    """(src, dst, sport, dport) of an IPv4 TCP packet, else None."""
    if len(payload) < 20 or payload[0] >> 4 != 4 or payload[9] != 6:
        return None
    ihl = (payload[0] & 0xF) * 4
    if len(payload) < ihl + 4:
        return None
    return (payload[12:16], payload[16:20]) + struct.unpack_from("!HH", payload, ihl)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--queue", type=int, required=True)
    ap.add_argument("--delay-ms", type=float, required=True)
    ap.add_argument("--jitter-ms", type=float, default=0.0)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--ready-file", help="created once the queue is bound")
    a = ap.parse_args()
    rng = random.Random(a.seed)

    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
    sock.setsockopt(SOL_NETLINK, NETLINK_NO_ENOBUFS, 1)
    sock.bind((0, 0))
    seq = 0
    for kind, payload in ((NFQA_CFG_CMD, struct.pack("!BBH", NFQNL_CFG_CMD_BIND, 0, socket.AF_INET)),
                          (NFQA_CFG_PARAMS, struct.pack("!IB", HEADER_BYTES, NFQNL_COPY_PACKET)),
                          (NFQA_CFG_QUEUE_MAXLEN, struct.pack("!I", 16384))):
        seq += 1
        sock.send(message(NFQNL_MSG_CONFIG, NLM_F_REQUEST | NLM_F_ACK, seq, a.queue, attr(kind, payload)))
        reply = sock.recv(65536)
        _, rtype, _, _, _ = struct.unpack_from("=IHHII", reply, 0)
        if rtype == NLMSG_ERROR:
            err = -struct.unpack_from("=i", reply, 16)[0]
            if err:
                sys.exit(f"nfq_delay: configuring queue {a.queue} failed: {os.strerror(err)}")
    sock.setblocking(False)
    if a.ready_file:
        open(a.ready_file, "w").close()

    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    signal.signal(signal.SIGINT, lambda *_: stop.append(1))

    pending = []  # heap of (due, arrival index, packet id, arrival time, flow)
    arrivals = 0
    holds, lateness = [], []
    reordered = 0
    max_sent = {}  # flow -> highest arrival index already released
    max_pending = 0

    def verdict(pid):
        nonlocal seq
        seq += 1
        sock.send(message(NFQNL_MSG_VERDICT, NLM_F_REQUEST, seq, a.queue,
                          attr(NFQA_VERDICT_HDR, struct.pack("!II", NF_ACCEPT, pid))))

    def release(now, everything=False):
        nonlocal reordered
        while pending and (everything or pending[0][0] <= now):
            due, index, pid, arrived, flow = heapq.heappop(pending)
            verdict(pid)
            holds.append(now - arrived)
            lateness.append(max(0.0, now - due))
            if flow is not None:
                if index < max_sent.get(flow, -1):
                    reordered += 1
                else:
                    max_sent[flow] = index

    while not stop:
        now = time.monotonic()
        release(now)
        timeout = max(0.0, pending[0][0] - time.monotonic()) if pending else 0.2
        try:
            readable, _, _ = select.select([sock], [], [], timeout)
        except InterruptedError:
            continue
        if not readable:
            continue
        while True:
            try:
                data = sock.recv(1 << 20)
            except BlockingIOError:
                break
            except InterruptedError:
                break
            off = 0
            now = time.monotonic()
            while off + 16 <= len(data):
                n, rtype = struct.unpack_from("=IH", data, off)
                if n < 16:
                    break
                if rtype == (NFNL_SUBSYS_QUEUE << 8) | NFQNL_MSG_PACKET:
                    at = attrs_of(data, off + 20, off + n)
                    hdr = at.get(NFQA_PACKET_HDR)
                    if hdr is not None:
                        pid = struct.unpack_from("!I", hdr, 0)[0]
                        d = max(0.0, a.delay_ms + rng.uniform(-a.jitter_ms, a.jitter_ms)) / 1000.0
                        heapq.heappush(pending, (now + d, arrivals, pid, now, flow_of(at.get(NFQA_PAYLOAD, b""))))
                        arrivals += 1
                        max_pending = max(max_pending, len(pending))
                off += (n + 3) & ~3
    release(time.monotonic(), everything=True)

    def ms(v):
        return round(v * 1000.0, 1)
    holds.sort()
    print(json.dumps({
        "packets": arrivals,
        "delay_ms": a.delay_ms, "jitter_ms": a.jitter_ms,
        "hold_ms": {"mean": ms(sum(holds) / len(holds)) if holds else 0,
                    "p50": ms(holds[len(holds) // 2]) if holds else 0,
                    "max": ms(holds[-1]) if holds else 0},
        "late_ms_max": ms(max(lateness)) if lateness else 0,
        "reordered_in_flow": reordered,
        "max_held": max_pending,
    }), flush=True)


if __name__ == "__main__":
    main()
