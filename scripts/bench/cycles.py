"""Drives daemon cycles for scripts/bench-daemon.sh: POST /v1/scan, then wait for GET /v1/health's
"cycles" to grow, CYCLES times, over one keep-alive connection to the daemon's Unix socket. At each
checkpoint it reads VmRSS/VmHWM/RssAnon/RssFile from /proc/PID/status and utime/stime/cutime/cstime from /proc/PID/stat,
and prints one JSON line. Usage: cycles.py SOCKET PID CYCLES [CHECKPOINT...]
`cycles.py --get SOCKET PATH` prints one GET's body instead (it must answer 200).
"""
import http.client
import json
import os
import socket
import sys
import time


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path):
        super().__init__("localhost", timeout=120)
        self.path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.path)


def sample(pid):
    """Memory (KiB) and CPU (seconds, own and waited-for children) of the daemon right now."""
    status = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM", "RssAnon", "RssFile"):
                status[key] = int(value.split()[0])
    with open(f"/proc/{pid}/stat") as f:
        # the fields after ") " are fixed; the command name before it may hold spaces
        fields = f.read().rsplit(") ", 1)[1].split()
    hz = os.sysconf("SC_CLK_TCK")
    utime, stime, cutime, cstime = (int(x) / hz for x in fields[11:15])
    return {"rss_kib": status["VmRSS"], "hwm_kib": status["VmHWM"], "anon_kib": status["RssAnon"],
            "file_kib": status["RssFile"], "utime": utime, "stime": stime,
            "cutime": cutime, "cstime": cstime}


def request(conn, method, path):
    conn.request(method, path, headers={"Content-Length": "0"} if method == "POST" else {})
    resp = conn.getresponse()
    return resp.status, resp.read()


def main():
    if len(sys.argv) == 4 and sys.argv[1] == "--get":
        status, body = request(UnixHTTPConnection(sys.argv[2]), "GET", sys.argv[3])
        if status != 200:
            sys.exit(f"GET {sys.argv[3]} answered {status}: {body[:200]!r}")
        sys.stdout.buffer.write(body)
        return
    if len(sys.argv) < 4:
        sys.exit("usage: cycles.py SOCKET PID CYCLES [CHECKPOINT...]")
    sock, pid, total = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    pending = sorted({int(x) for x in sys.argv[4:] if 0 < int(x) < total} | {total})
    conn = UnixHTTPConnection(sock)

    def cycles():
        status, body = request(conn, "GET", "/v1/health")
        if status != 200:
            sys.exit(f"GET /v1/health answered {status}: {body[:200]!r}")
        return json.loads(body)["cycles"]

    done, polls, start = 0, 0, time.monotonic()
    base = cycles()
    print(json.dumps({"cycles": 0, "seconds": 0.0, "health_polls": 0, **sample(pid)}), flush=True)
    while done < total:
        status, body = request(conn, "POST", "/v1/scan")
        if status == 409 or status == 429:  # a cycle is already running: it counts once it ends
            time.sleep(0.01)
        elif status >= 300:
            sys.exit(f"POST /v1/scan answered {status}: {body[:200]!r}")
        # Poll with a growing pause, so the health queries cost the daemon little next to a cycle.
        pause, deadline = 0.001, time.monotonic() + 120
        while (now := cycles()) <= base + done:
            polls += 1
            if time.monotonic() > deadline:
                sys.exit(f"cycle {done + 1}: /v1/health still says {now} cycles after 120 s")
            time.sleep(pause)
            pause = min(pause * 2, 0.05)
        done = now - base
        if pending and done >= pending[0]:
            print(json.dumps({"cycles": done, "seconds": round(time.monotonic() - start, 3),
                              "health_polls": polls, **sample(pid)}), flush=True)
            pending = [c for c in pending if c > done]


if __name__ == "__main__":
    main()
