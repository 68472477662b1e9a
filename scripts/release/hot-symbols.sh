#!/usr/bin/env bash
# Regenerates release/hot-symbols.txt: the functions the daemon really executes, so the release link
# (Makefile `release`) can place them next to each other (lld --symbol-ordering-file).
# Why: the kernel maps code in 64 KiB fault-around windows, so a few hot functions scattered over a
# 20 MiB .text keep most of it resident. Packed together, the daemon's resident code shrinks by
# several MiB (README, Benchmarks). A stale list is harmless: unknown names are ignored and new
# functions go after the listed ones.
# How: the daemon runs under valgrind's callgrind (every executed function is recorded, unlike a
# sampling profiler) through what a daemon does in service: start-up on the bench's config (the
# real split cx_Freeze service, its bundle, the POST), cycles, every API route, a bad request, a
# reload, the /proc watcher's ticks and SIGTERM. `status`, `scan`, `inspect` and `post` runs are added
# so the CLI's paths are packed too. Nothing of the bundle runs as root; the service runs as it does
# in the bench.
# Usage: scripts/release/hot-symbols.sh [BIN]   (BIN: an unordered release build; needs valgrind, curl)
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=${1:-.build/release/crypto-sentinel-core}   # the Swift binary (the launcher only execs it)
FIXTURES=${FIXTURES:-/tmp/crypto-sentinel-fixtures}
OUT=${OUT:-release/hot-symbols.txt}
PROBE=${SENTINEL_PROBE:-$(dirname "$BIN")/sentinel-probe}
for tool in valgrind curl python3; do
  command -v "$tool" >/dev/null || { echo "hot-symbols: $tool is missing (apt-get install valgrind curl python3)" >&2; exit 2; }
done
[ -x "$BIN" ] || { echo "hot-symbols: no executable at $BIN (swift build -c release first)" >&2; exit 2; }
[ -x "$FIXTURES/cxfreeze/debian/app" ] || { echo "hot-symbols: no split bundle under $FIXTURES (make fixtures)" >&2; exit 2; }

TMP=$(mktemp -d /tmp/hot-symbols.XXXXXX)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$TMP"
}
trap cleanup EXIT
# Debian 12's valgrind cannot read the toolchain's DWARF 5: it runs a copy without debug sections
# (same code, same symbol table).
objcopy --strip-debug "$BIN" "$TMP/crypto-sentinel"
BIN_ORIG=$BIN; BIN=$TMP/crypto-sentinel
CG=(valgrind --tool=callgrind --demangle=no --dump-instr=no --compress-strings=no --compress-pos=no
    --callgrind-out-file="$TMP/cg.%p")

source scripts/lib/split-service.sh
mkdir -p "$TMP/run" "$TMP/state"
start_split_service "$FIXTURES" "$TMP" $'discover:\n  enabled: true'
start_notify_listener "$TMP/notify.sock" "$TMP/notify.log"
SENTINEL_PROBE=$PROBE RUNTIME_DIRECTORY="$TMP/run" STATE_DIRECTORY="$TMP/state" NOTIFY_SOCKET="$TMP/notify.sock" \
  WATCHDOG_USEC=20000000 "${CG[@]}" "$BIN" daemon --config "$TMP/config.yaml" > "$TMP/daemon.log" 2>&1 &
DPID=$!; PIDS+=("$DPID")
for _ in $(seq 1800); do
  grep -qx 'READY=1' "$TMP/notify.log" 2>/dev/null && break; kill -0 "$DPID" 2>/dev/null || break; sleep 0.1
done
grep -qx 'READY=1' "$TMP/notify.log" || { echo "hot-symbols: no READY=1: $(tail -3 "$TMP/daemon.log")" >&2; exit 1; }
SOCK="$TMP/run/api.sock"
q() { curl -s -o /dev/null --max-time 60 --unix-socket "$SOCK" "$@" "http://localhost$P" || true; }
for round in 1 2 3; do
  for P in /v1/health /v1/report /v1/targets/demo-api /v1/targets/nope /metrics /nope /v1/../etc; do q; done
  P=/v1/scan q -X POST
  P=/v1/report q -X DELETE
  sleep 5   # the scan's cycle, and /proc watcher ticks
done
"${CG[@]}" "$BIN" status --socket "$SOCK" > /dev/null 2>&1 || true
"${CG[@]}" "$BIN" status --socket "$SOCK" --format json > /dev/null 2>&1 || true
kill -HUP "$DPID"; sleep 5
kill -TERM "$DPID"; wait "$DPID" || true
"${CG[@]}" "$BIN" scan "$FIXTURES/cxfreeze/debian" --format json > /dev/null 2>&1 || true
"${CG[@]}" "$BIN" scan "$FIXTURES/cxfreeze/debian" > /dev/null 2>&1 || true
"${CG[@]}" "$BIN" inspect --pid "$(cat "$TMP/demo.pid")" > /dev/null 2>&1 || true
SENTINEL_PROBE=$PROBE "${CG[@]}" "$BIN" post --pid "$(cat "$TMP/demo.pid")" > /dev/null 2>&1 || true

# Every function with a cost in any run, as named in the symbol table (--demangle=no): the daemon's
# first, so the resident process's code is one block, then what only the one-shot commands run.
python3 - "$BIN" "$OUT" "$TMP/cg.$DPID" $(ls "$TMP"/cg.* | grep -vx "$TMP/cg.$DPID") <<'PY'
import re, subprocess, sys
binary, out, files = sys.argv[1], sys.argv[2], sys.argv[3:]
# Functions only (some data symbols' names hold spaces: "associated conformance ...").
defined = {f[2] for f in (line.split(" ", 2) for line in subprocess.run(
    ["nm", "--defined-only", binary], capture_output=True, text=True, check=True).stdout.splitlines())
    if len(f) == 3 and f[1] in "tTwW"}
seen, order = set(), []
for path in files:
    for line in open(path, errors="replace"):
        m = re.match(r"c?fn=(?:\(\d+\) )?(.+)$", line.rstrip("\n"))
        if m and m.group(1) in defined and m.group(1) not in seen:
            seen.add(m.group(1)); order.append(m.group(1))
with open(out, "w") as f:
    f.write("\n".join(order) + "\n")
print(f"hot-symbols: {len(order)} functions from {len(files)} runs -> {out}")
PY
