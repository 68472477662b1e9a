#!/usr/bin/env python3
"""hostile-api: issue 14's pipelining attack on the API's Unix socket, and /v1/health latency (benchmark, not a test).

  hostile-api.py pipeline SOCKET PID [CONNS] [REQUESTS]
      CONNS connections (200) each send REQUESTS (1300) pipelined HTTP/1.0 keep-alive GET /v1/report and
      never read. Prints the server's VmRSS before, at its peak while they stay open, and after they close,
      and the /v1/health latency meanwhile.
  hostile-api.py health SOCKET [SECONDS] [DELAY]
      Sequential GET /v1/health on new connections, DELAY (0.02) s apart, for SECONDS (10): p50, p99, max.
      Run beside scripts/bench/drip.c for the header drip.
"""
import socket
import statistics
import sys
import time

PIPELINED = b"GET /v1/report HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"


def connect(path):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(path)
    return s


def rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def health_once(path, timeout=60.0):
    t0 = time.perf_counter()
    s = connect(path)
    s.settimeout(timeout)
    s.sendall(b"GET /v1/health HTTP/1.1\r\nConnection: close\r\n\r\n")
    data = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    s.close()
    if not data.startswith(b"HTTP/1.1 200"):
        raise RuntimeError(f"health answered {data[:40]!r}")
    return (time.perf_counter() - t0) * 1000


def summary(ms):
    ms = sorted(ms)
    return f"p50 {statistics.median(ms):.2f} ms, p99 {ms[min(len(ms) - 1, int(len(ms) * 0.99))]:.2f} ms, max {ms[-1]:.2f} ms ({len(ms)} samples)"


def pipeline(path, pid, conns, requests):
    before = rss_mib(pid)
    payload = PIPELINED * requests
    clients, sent = [], 0
    for _ in range(conns):
        s = connect(path)
        s.setblocking(False)
        clients.append([s, 0])
    # Whatever the sockets take, for at most 10 s: a server that stopped reading refuses the rest.
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(off < len(payload) for _, off in clients):
        for c in clients:
            if c[1] < len(payload):
                try:
                    c[1] += c[0].send(payload[c[1]:])
                except BlockingIOError:
                    pass
        time.sleep(0.01)
    sent = sum(off for _, off in clients)
    peak = before
    for _ in range(20):  # 10 s: the server answers what it read
        peak = max(peak, rss_mib(pid))
        time.sleep(0.5)
    latency = [health_once(path) for _ in range(20)]
    peak = max(peak, rss_mib(pid))
    for s, _ in clients:
        s.close()
    time.sleep(3)
    after = rss_mib(pid)
    print(f"{conns} clients sent {sent // len(PIPELINED)} of {conns * requests} requests "
          f"({sent / conns / 1024:.0f} KiB each on average)")
    print(f"VmRSS before {before:.1f} MiB, peak {peak:.1f} MiB, 3 s after they closed {after:.1f} MiB")
    print(f"/v1/health meanwhile: {summary(latency)}")


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    mode, path = sys.argv[1], sys.argv[2]
    args = [float(a) for a in sys.argv[3:]]
    if mode == "pipeline":
        pipeline(path, int(args[0]), int(args[1]) if len(args) > 1 else 200, int(args[2]) if len(args) > 2 else 1300)
    elif mode == "health":
        seconds, delay = (args[0] if args else 10), (args[1] if len(args) > 1 else 0.02)
        ms = []
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            ms.append(health_once(path))
            time.sleep(delay)
        print(f"/v1/health: {summary(ms)}")
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
