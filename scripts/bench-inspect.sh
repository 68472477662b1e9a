#!/usr/bin/env bash
# Benchmark (not a test): `crypto-sentinel inspect --all` (the full verdict, JSON) with 200 and 1,000
# extra fixture processes that each map two libcrypto copies, next to `grep -l libcrypto
# /proc/[0-9]*/maps` in the same run, as ratios. Target: <= 3x grep at 1,000 processes.
# Needs: a release build, hyperfine, gcc. The fixture processes are killed by the trap.
set -euo pipefail
cd "$(dirname "$0")/.."
FIXTURES=${FIXTURES:-/tmp/crypto-sentinel-fixtures}
BIN=${BIN:-.build/release/crypto-sentinel}
RUNS=${RUNS:-10}
[ -x "$BIN" ] || make release >/dev/null
scripts/fixtures/processes.sh "$FIXTURES/proc"
TMP=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done; rm -rf "$TMP"; }
trap cleanup EXIT INT TERM

median() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["results"][0]["median"])' "$1"; }
mapping() { { grep -l libcrypto /proc/[0-9]*/maps 2>/dev/null || true; } | wc -l; }

base=$(mapping)
for N in 200 1000; do
  while [ ${#PIDS[@]} -lt "$N" ]; do
    "$FIXTURES/proc/holdlibs" "$FIXTURES/proc/fake/a/libcrypto.so.3" "$FIXTURES/proc/fake/b/libcrypto.so.3" >/dev/null &
    PIDS+=($!)
    disown $!  # killed by pid in the trap; no "Killed" job notices
  done
  for _ in $(seq 100); do [ "$(mapping)" -ge $((base + N)) ] && break; sleep 0.1; done
  procs=$(ls -d /proc/[0-9]* | wc -l)
  # Both through a shell (the glob needs one); -i: grep exits 2 on maps it may not read.
  hyperfine -i -w 2 -r "$RUNS" --export-json "$TMP/grep.json" "grep -l libcrypto /proc/[0-9]*/maps" >/dev/null 2>&1
  hyperfine -i -w 2 -r "$RUNS" --export-json "$TMP/inspect.json" "$BIN inspect --all --format json > /dev/null" >/dev/null 2>&1
  targets=$("$BIN" inspect --all --format json | python3 -c 'import json,sys; d=json.load(sys.stdin); print(len(d["targets"]), sum(1 for t in d["targets"] for f in t["findings"] if f["code"]=="process-split-libcrypto"))' || true)
  g=$(median "$TMP/grep.json"); i=$(median "$TMP/inspect.json")
  python3 - "$N" "$procs" "$g" "$i" "$targets" <<'PY'
import sys
n, procs, g, i, targets = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4]), sys.argv[5]
t, s = targets.split()
print(f"== inspect --all, {n} extra fixture processes ({procs} processes in /proc)")
print(f"  grep -l libcrypto /proc/[0-9]*/maps  {g*1000:8.1f} ms   (1.00x)")
print(f"  crypto-sentinel inspect --all        {i*1000:8.1f} ms   ({i/g:.2f}x grep; target <= 3x at 1,000)  {t} targets, {s} split verdicts")
PY
done
