#!/usr/bin/env bash
# Benchmark (not a test) of what the daemon costs while nothing happens, at about $PROCS (1,000)
# processes on the host ($MAPPERS (100) of them mapping the system's libcrypto, the rest `sleep`):
#   - the daemon at interval 1h, discover enabled (as the embedded default), after READY=1 and its
#     young-process ticks: CPU time (utime+stime from /proc/PID/stat) over $SECONDS_IDLE (60) s as % of
#     a core (target <= 0.2%); BASE_BIN=another build is measured the same way in the same run, and
#     the ratio printed
#   - then, the daemons stopped, `inspect --all --format json` next to `grep -l libcrypto /proc/*/maps`
#     over the same processes, interleaved (scripts/bench/interleave.py; target <= 1.5x grep)
# As root it runs in a pid namespace of its own (unshare), so the daemon sees exactly these processes:
# on a shared machine, other sessions' processes that map OpenSSL starting and stopping would run
# cycles inside the window measured. The cycles that ran in the window are printed either way.
# Private RUNTIME_DIRECTORY, STATE_DIRECTORY and NOTIFY_SOCKET; every process started here is stopped
# by pid in the trap (and in the namespace, with it). Needs: a release build, gcc, python3.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${IDLE_NAMESPACE:-}" ] && [ "$(id -u)" = 0 ] && command -v unshare >/dev/null; then
  exec env IDLE_NAMESPACE=1 unshare --pid --fork --kill-child --mount-proc scripts/bench-idle.sh "$@"
fi
FIXTURES=${FIXTURES:-/tmp/crypto-sentinel-fixtures}
BIN=${BIN:-.build/release/crypto-sentinel}
PROCS=${PROCS:-1000}; MAPPERS=${MAPPERS:-100}; SECONDS_IDLE=${SECONDS_IDLE:-60}; RUNS=${RUNS:-5}
LIBCRYPTO=${LIBCRYPTO:-/usr/lib/x86_64-linux-gnu/libcrypto.so.3}
[ -x "$BIN" ] || make release >/dev/null
scripts/fixtures/processes.sh "$FIXTURES/proc"
TMP=$(mktemp -d /tmp/bench-idle.XXXXXX)  # short: the notify socket path must fit in 108 bytes
PIDS=()
source scripts/lib/split-service.sh
trap stop_all_and_clean EXIT
trap 'exit 130' INT TERM

# The host's own processes count towards $PROCS.
extra=$(( PROCS - $(ls -d /proc/[0-9]* | wc -l) ))
for i in $(seq "$extra"); do
  if [ "$i" -le "$MAPPERS" ]; then "$FIXTURES/proc/holdlibs" "$LIBCRYPTO" >/dev/null &
  else sleep 3600 & fi
  PIDS+=($!); disown $!
done
for _ in $(seq 100); do
  [ "$({ grep -l libcrypto /proc/[0-9]*/maps 2>/dev/null || true; } | wc -l)" -ge "$MAPPERS" ] && break; sleep 0.1
done
procs=$(ls -d /proc/[0-9]* | wc -l)
printf 'interval: 1h\ndiscover:\n  enabled: true\n' > "$TMP/config.yaml"

# idle BIN LABEL: starts BIN's daemon, waits for READY=1 and the watcher's young ticks, prints
# "LABEL PERCENT CYCLES" (CPU over SECONDS_IDLE s as % of one core, cycles run meanwhile) and stops it.
idle() {
  local dir="$TMP/$2" pid ticks0 ticks1 t0 t1
  mkdir -p "$dir/run" "$dir/state"
  start_notify_listener "$dir/notify.sock" "$dir/notify.log"
  RUNTIME_DIRECTORY="$dir/run" STATE_DIRECTORY="$dir/state" NOTIFY_SOCKET="$dir/notify.sock" \
    "$1" daemon --config "$TMP/config.yaml" > "$dir/daemon.log" 2>&1 &
  pid=$!; PIDS+=("$pid")
  for _ in $(seq 1200); do grep -qx 'READY=1' "$dir/notify.log" 2>/dev/null && break; sleep 0.1; done
  grep -qx 'READY=1' "$dir/notify.log" || { echo "bench-idle: $2: no READY=1: $(tail -3 "$dir/daemon.log")" >&2; exit 1; }
  sleep 15  # past the first cycle's young-process ticks (5 ticks of 2 s)
  cpu() { awk '{ sub(/.*\) /, ""); print $12 + $13 }' "/proc/$pid/stat"; }  # utime + stime, fields 14-15
  cycles() { python3 scripts/bench/cycles.py --get "$dir/run/api.sock" /v1/health | python3 -c 'import json,sys; print(json.load(sys.stdin)["cycles"])'; }
  c0=$(cycles); ticks0=$(cpu); t0=$(date +%s.%N)
  sleep "$SECONDS_IDLE"
  ticks1=$(cpu); t1=$(date +%s.%N); c1=$(cycles)
  kill -TERM "$pid"; wait "$pid" 2>/dev/null || true
  python3 -c 'import sys; a, b, t0, t1, hz = map(float, sys.argv[2:7]); print(sys.argv[1], 100 * (b - a) / hz / (t1 - t0), sys.argv[7])' \
    "$2" "$ticks0" "$ticks1" "$t0" "$t1" "$(getconf CLK_TCK)" $((c1 - c0))
}

where=host; [ -n "${IDLE_NAMESPACE:-}" ] && where="a pid namespace of their own"
echo "== idle daemon, $procs processes in $where ($MAPPERS mapping $LIBCRYPTO), interval 1h, discover enabled; CPU over ${SECONDS_IDLE} s"
{ idle "$BIN" this; [ -z "${BASE_BIN:-}" ] || idle "$BASE_BIN" base; } > "$TMP/idle"
python3 - "$TMP/idle" <<'PY'
import sys
got = {l.split()[0]: (float(l.split()[1]), int(l.split()[2])) for l in open(sys.argv[1])}
(this, cycles) = got["this"]
line = f"  crypto-sentinel daemon  {this:6.3f}% of a core, {cycles} cycles meanwhile   (target <= 0.2%: {'met' if this <= 0.2 else 'NOT met'})"
if "base" in got:
    base, cycles = got["base"]
    line += f";  BASE_BIN {base:6.3f}%, {cycles} cycles ({this / base:.2f}x of it)"
print(line)
PY

echo "== inspect --all, the same $procs processes; medians of $((RUNS * 4)) interleaved rounds, target: <= 1.5x grep"
CMDS=("grep -l libcrypto /proc/*/maps=sh -c 'grep -l libcrypto /proc/*/maps'"
      "crypto-sentinel inspect --all --format json=$BIN inspect --all --format json")
[ -z "${BASE_BIN:-}" ] || CMDS+=("BASE_BIN inspect --all --format json=$BASE_BIN inspect --all --format json")
env -i PATH=/usr/bin:/bin python3 scripts/bench/interleave.py $((RUNS * 4)) "${CMDS[@]}"
