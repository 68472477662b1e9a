#!/usr/bin/env bash
# Benchmark (not a test) of `crypto-sentinel daemon`, next to nginx in the same run:
#   - GET /v1/report at $CONNS (64) keep-alive clients for $DURATION s after a $WARMUP s warm-up, and the
#     same load on nginx serving the same bytes as a static file on a Unix socket: p50/p90/p99, rps and
#     the daemon/nginx ratios (targets: p99 <= 2 ms, rps >= 0.5x nginx). Load: scripts/bench/uds-load.c.
#     Then both again with the clients sharing a fixed $RATE (1,000) req/s (open loop; RATE=0 skips it).
#     The load generator is pinned to the last core (LOAD_CPU; none to leave it unpinned).
#     The daemon is loaded twice each time: idle, and while POST /v1/scan keeps cycles running.
#   - RSS (VmRSS, VmHWM, RssAnon, RssFile) after READY=1, after the load, and along $CYCLES (1,000) cycles driven by
#     POST /v1/scan (target: <= 20 MiB, no growth); CPU time per cycle from /proc/PID/stat.
# The daemon audits the real split cx_Freeze service (fixtures), started here, through a private config
# with a 1 h interval, so every cycle is one we asked for. It runs with private RUNTIME_DIRECTORY,
# STATE_DIRECTORY and NOTIFY_SOCKET; nothing is installed and no system service is touched.
# Env: SENTINEL_BIN (default .build/release/crypto-sentinel), FIXTURES, CONNS, DURATION, WARMUP, CYCLES, RATE, LOAD_CPU,
#      BENCH_CONFIG (a daemon config of your own instead), DAEMON_SOCKET (when that config moves the socket).
# Needs: gcc, nginx-light (or nginx), python3. Without a daemon, the nginx half still runs and the
# script then exits 1 saying why.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${SENTINEL_BIN:-.build/release/crypto-sentinel}
FIXTURES=${FIXTURES:-/tmp/crypto-sentinel-fixtures}
CONNS=${CONNS:-64}; DURATION=${DURATION:-5}; WARMUP=${WARMUP:-1}; CYCLES=${CYCLES:-1000}; RATE=${RATE:-1000}
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
for tool in gcc python3 "$NGINX"; do
  command -v "$tool" >/dev/null || { echo "bench-daemon: $tool is missing (apt-get install gcc python3 nginx-light)" >&2; exit 2; }
done

# A short /tmp path: a Unix socket path must fit in 108 bytes.
TMP=$(mktemp -d /tmp/bench-daemon.XXXXXX)
PIDS=()
source scripts/lib/split-service.sh
trap stop_all_and_clean EXIT
trap 'exit 130' INT TERM

# bash runs a trap only after the foreground command ends: the long steps run in the background and
# are waited for, so INT/TERM stops everything at once.
run() { "$@" & PIDS+=($!); wait $!; }
gcc -O2 -Wall -o "$TMP/uds-load" scripts/bench/uds-load.c
# The load generator runs on a core of its own (the last; LOAD_CPU=none to let it float): it is one
# busy thread, and wherever the scheduler puts it beside the server under test it takes that server's
# core for whole time slices, which shows up as the server's tail latency. nginx and the daemon are
# left free to use every core, and both are measured the same way in the same run.
LOAD_CPU=${LOAD_CPU:-$(( $(nproc) - 1 ))}
LOADPIN=(); if [ "$LOAD_CPU" != none ] && [ "$(nproc)" -gt 1 ]; then LOADPIN=(taskset -c "$LOAD_CPU"); fi
load() { run "${LOADPIN[@]}" "$TMP/uds-load" -s "$1" -p "$2" -c "$CONNS" -d "$DURATION" -w "$WARMUP" "${@:3}"; }
memory() { awk '/^(VmRSS|VmHWM|RssAnon|RssFile):/ { v[$1] = $2 } END { print v["VmRSS:"], v["VmHWM:"], v["RssAnon:"], v["RssFile:"] }' "/proc/$1/status"; }  # KiB

## The daemon: start it and wait for READY=1 (a NOTIFY_SOCKET listener, as systemd would be).
daemon_error=
if [ ! -x "$BIN" ]; then
  daemon_error="no executable at $BIN (make release, or set SENTINEL_BIN)"
elif ! "$BIN" daemon --help >/dev/null 2>&1; then
  daemon_error="$BIN has no 'daemon' subcommand yet (issue 5 has not landed in this build)"
fi
if [ -z "$daemon_error" ]; then
  mkdir -p "$TMP/run" "$TMP/state"
  start_notify_listener "$TMP/notify.sock" "$TMP/notify.log"
  CONFIG_ARGS=()
  if [ -n "${BENCH_CONFIG:-}" ]; then
    CONFIG_ARGS=(--config "$BENCH_CONFIG")
    target="the targets of $BENCH_CONFIG"
  elif [ -x "$FIXTURES/cxfreeze/debian/app" ]; then
    # The real split service (two libcrypto copies mapped), as a target found by its pid file.
    start_split_service "$FIXTURES" "$TMP"
    CONFIG_ARGS=(--config "$TMP/config.yaml")
    target="the real split cx_Freeze service ($FIXTURES/cxfreeze/debian, pid $(cat "$TMP/demo.pid")), interval 1h"
  else
    target="the embedded default (every process mapping OpenSSL; no fixtures at $FIXTURES/cxfreeze)"
  fi
  SOCK=${DAEMON_SOCKET:-$TMP/run/api.sock}
  t0=$(date +%s.%N)
  RUNTIME_DIRECTORY="$TMP/run" STATE_DIRECTORY="$TMP/state" NOTIFY_SOCKET="$TMP/notify.sock" \
    "$BIN" daemon "${CONFIG_ARGS[@]}" > "$TMP/daemon.log" 2>&1 &
  DPID=$!; PIDS+=("$DPID")
  for _ in $(seq 1200); do
    grep -qx 'READY=1' "$TMP/notify.log" 2>/dev/null && break
    kill -0 "$DPID" 2>/dev/null || break
    sleep 0.1
  done
  t1=$(date +%s.%N)
  if ! grep -qx 'READY=1' "$TMP/notify.log" 2>/dev/null; then
    if kill -0 "$DPID" 2>/dev/null; then daemon_error="no READY=1 within 120 s"
    else wait "$DPID" && rc=0 || rc=$?; daemon_error="the daemon exited ($rc) before READY=1"; fi
    daemon_error="$daemon_error; its output: $(tail -5 "$TMP/daemon.log" | tr '\n' ' ')"
  elif [ ! -S "$SOCK" ]; then
    daemon_error="READY=1 came but there is no socket at $SOCK (set DAEMON_SOCKET)"
  fi
fi

if [ -z "$daemon_error" ]; then
  read -r -a start < <(memory "$DPID")
  python3 scripts/bench/cycles.py --get "$SOCK" /v1/report > "$TMP/report.json" ||
    daemon_error="GET /v1/report failed on $SOCK"
fi
if [ -n "$daemon_error" ] || [ ! -s "$TMP/report.json" ]; then
  # Without a daemon, nginx still serves a body of a plausible report size, so its half is checked.
  head -c "${BODY_BYTES:-16384}" /dev/zero | tr '\0' 'x' > "$TMP/report.json"
fi
body=$(stat -c %s "$TMP/report.json")

## nginx: a private prefix, the same bytes as a static file, one worker per core, no access log.
mkdir -p "$TMP/nginx/www/v1" "$TMP/nginx/tmp"
cp "$TMP/report.json" "$TMP/nginx/www/v1/report"
chmod 0755 "$TMP" "$TMP/nginx" "$TMP/nginx/www" "$TMP/nginx/www/v1"  # workers run as an unprivileged user
cat > "$TMP/nginx/nginx.conf" <<EOF
worker_processes $(nproc);
daemon off;
pid $TMP/nginx/nginx.pid;
error_log $TMP/nginx/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  default_type application/json;
  keepalive_requests 1000000;   # the 1.22 default (1000) would close each client's connection mid-run
  sendfile on;                  # nginx at its best for a static file (Debian's own nginx.conf sets it),
  open_file_cache max=16;       # and no open()/fstat() per request: the daemon serves from memory too
  client_body_temp_path $TMP/nginx/tmp/body;
  proxy_temp_path $TMP/nginx/tmp/proxy;
  fastcgi_temp_path $TMP/nginx/tmp/fastcgi;
  uwsgi_temp_path $TMP/nginx/tmp/uwsgi;
  scgi_temp_path $TMP/nginx/tmp/scgi;
  server {
    listen unix:$TMP/nginx.sock;
    root $TMP/nginx/www;
  }
}
EOF
"$NGINX" -p "$TMP/nginx" -e "$TMP/nginx/error.log" -c "$TMP/nginx/nginx.conf" &
PIDS+=($!)
for _ in $(seq 50); do [ -S "$TMP/nginx.sock" ] && break; sleep 0.1; done
[ -S "$TMP/nginx.sock" ] || { echo "bench-daemon: nginx did not start: $(cat "$TMP/nginx/error.log")" >&2; exit 2; }

echo "== GET /v1/report over a Unix socket, $CONNS keep-alive clients, ${DURATION} s per row after ${WARMUP} s warm-up, body $body bytes, load generator ${LOADPIN[*]:-unpinned}"
# Closed loop (each client asks again at once: the targets' load) and open loop (RATE req/s over the
# same clients: the latency of a server that is not saturated); nginx, then the daemon idle, then the
# daemon while POST /v1/scan keeps cycles running back to back (a query must not wait for a cycle).
health_cycles() { python3 scripts/bench/cycles.py --get "$SOCK" /v1/health | python3 -c 'import json,sys; print(json.load(sys.stdin)["cycles"])'; }
for mode in closed open; do
  [ "$mode" = open ] && [ "$RATE" = 0 ] && continue
  rate=(); [ "$mode" = open ] && rate=(-r "$RATE")
  load "$TMP/nginx.sock" /v1/report "${rate[@]}" > "$TMP/nginx-$mode.json"
  if [ -n "$daemon_error" ]; then continue; fi
  load "$SOCK" /v1/report "${rate[@]}" > "$TMP/daemon-$mode.json"
  c0=$(health_cycles)
  python3 scripts/bench/cycles.py "$SOCK" "$DPID" 100000000 > /dev/null &
  busy=$!; PIDS+=("$busy")
  load "$SOCK" /v1/report "${rate[@]}" > "$TMP/busy-$mode.json"
  kill "$busy"; wait "$busy" 2>/dev/null || true
  echo "$(( $(health_cycles) - c0 ))" > "$TMP/busy-$mode.cycles"
done
python3 - "$TMP" "$RATE" <<'PY'
import json, os, sys
tmp, rate = sys.argv[1], sys.argv[2]
row = "  {:<34} {:>9} {:>7} {:>10} {:>8} {:>8} {:>8} {:>8}"
ok = lambda b: "met" if b else "NOT met"
load = lambda name: json.load(open(f"{tmp}/{name}.json")) if os.path.exists(f"{tmp}/{name}.json") else None
for mode, title in (("closed", "as fast as they go"), ("open", f"{rate} req/s in all, latency from the scheduled send")):
    n = load(f"nginx-{mode}")
    if not n:
        continue
    d, b = load(f"daemon-{mode}"), load(f"busy-{mode}")
    print(f"  {mode} loop: {title}")
    print(row.format("", "requests", "errors", "req/s", "p50 ms", "p90 ms", "p99 ms", "max ms"))
    busy_name = "daemon, cycles back to back"
    if b:
        busy_name = f"daemon, {open(f'{tmp}/busy-{mode}.cycles').read().strip()} cycles meanwhile"
    for name, r in (("nginx (static file)", n), ("crypto-sentinel daemon, idle", d), (busy_name, b)):
        if not r:
            continue
        print(row.format(name, r["requests"], r["errors"], f'{r["rps"]:.0f}', f'{r["p50_ms"]:.3f}',
                         f'{r["p90_ms"]:.3f}', f'{r["p99_ms"]:.3f}', f'{r["max_ms"]:.3f}'))
        if r["errors"]:
            print(f'  {"":<34} errors: {r["non_200"]} non-200, {r["timeouts"]} timeouts, {r["connection_errors"]} connection errors')
        if r["server_closes"]:
            print(f'  {"":<34} the server closed {r["server_closes"]} connections between requests (reopened, not errors)')
    for label, r in (("idle", d), ("cycling", b)):
        if r and n["rps"] and n["p50_ms"] and n["p99_ms"]:
            print(f'  daemon {label}/nginx: p50 {r["p50_ms"] / n["p50_ms"]:.2f}x, p99 {r["p99_ms"] / n["p99_ms"]:.2f}x, '
                  f'req/s {r["rps"] / n["rps"]:.2f}x')
    if d and mode == "closed":
        rps = d["rps"] / n["rps"]
        print(f'  targets (idle daemon): p99 <= 2 ms {ok(d["p99_ms"] <= 2)} ({d["p99_ms"]:.3f} ms); '
              f'req/s >= 0.5x nginx {ok(rps >= 0.5)} ({rps:.2f}x)')
PY

if [ -n "$daemon_error" ]; then
  echo "== daemon: not measured: $daemon_error" >&2
  exit 1
fi

## RSS and CPU along $CYCLES cycles, each asked for with POST /v1/scan.
read -r -a loaded < <(memory "$DPID")
run python3 scripts/bench/cycles.py "$SOCK" "$DPID" "$CYCLES" 10 100 $((CYCLES / 4)) $((CYCLES / 2)) $((CYCLES * 3 / 4)) > "$TMP/cycles.jsonl" ||
  { echo "bench-daemon: the cycle loop failed (above); daemon output: $(tail -5 "$TMP/daemon.log" | tr '\n' ' ')" >&2; exit 1; }
kill -0 "$DPID" 2>/dev/null || { echo "bench-daemon: the daemon died during the cycles: $(tail -5 "$TMP/daemon.log")" >&2; exit 1; }
echo "== daemon memory and CPU: $target; cycles driven by POST /v1/scan"
python3 - "$TMP/cycles.jsonl" "$t0" "$t1" "${start[*]}" "${loaded[*]}" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
ready = float(sys.argv[3]) - float(sys.argv[2])
mem = lambda text: dict(zip(("rss_kib", "hwm_kib", "anon_kib", "file_kib"), map(int, text.split())))
start, loaded = mem(sys.argv[4]), mem(sys.argv[5])
print(f"  READY=1 after {ready:.2f} s (start, socket, first cycle)")
# RssFile is mostly the mapped code of the binary, Swift and Foundation (shared, clean); RssAnon is the heap.
print(f"  {'':<28} {'VmRSS MiB':>10} {'VmHWM MiB':>10} {'RssAnon MiB':>12} {'RssFile MiB':>12}")
line = lambda label, r: print(f"  {label:<28} {r['rss_kib']/1024:>10.1f} {r['hwm_kib']/1024:>10.1f} "
                              f"{r['anon_kib']/1024:>12.2f} {r['file_kib']/1024:>12.2f}")
line("after READY", start)
line("after the load test", loaded)
for r in rows[1:]:
    line(f"after {r['cycles']:,} more cycles", r)
first, last = rows[0], rows[-1]
n = last["cycles"] - first["cycles"]
own = (last["utime"] + last["stime"] - first["utime"] - first["stime"]) / n
user = (last["utime"] - first["utime"]) / n; system = (last["stime"] - first["stime"]) / n
kids = max(0.0, (last["cutime"] + last["cstime"] - first["cutime"] - first["cstime"]) / n)
wall = (last["seconds"] - first["seconds"]) / n
steady = next((r for r in rows if r["cycles"] >= 100 and r is not last), rows[1])
growth = last["rss_kib"] - steady["rss_kib"]
per_cycle = lambda key: (last[key] - steady[key]) * 1024 / max(1, last["cycles"] - steady["cycles"])
peak = max([r["hwm_kib"] for r in rows] + [loaded["hwm_kib"]]) / 1024
ok = lambda b: "met" if b else "NOT met"
# "No growth" read as: VmRSS up by less than 256 KiB from the 100th cycle to the last (allocator
# settling is well under that); the bytes per cycle say whether a rise is a trend.
print(f"  targets: VmHWM <= 20 MiB {ok(peak <= 20)} (peak {peak:.1f} MiB); no growth {ok(growth < 256)} "
      f"(VmRSS {growth / 1024:+.2f} MiB from cycle {steady['cycles']:,} to {last['cycles']:,}: "
      f"{per_cycle('rss_kib'):+.0f} B/cycle, RssAnon {per_cycle('anon_kib'):+.0f} B/cycle; "
      f"{(last['rss_kib'] - start['rss_kib']) / 1024:+.2f} MiB since READY)")
print(f"  CPU per cycle: daemon {own*1000:.1f} ms (user {user*1000:.1f}, sys {system*1000:.1f}), "
      f"its POST children {kids*1000:.1f} ms; wall {wall*1000:.1f} ms per cycle "
      f"({last['health_polls']} /v1/health polls in all)")
PY
