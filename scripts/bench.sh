#!/usr/bin/env bash
# Benchmarks (not tests): crypto-sentinel's full bundle audit next to scanelf and libtree on the same
# trees in the same run, as ratios (the machines are noisy), with peak RSS.
#   - /usr/lib/x86_64-linux-gnu and a generated 20,000-file bundle
#   - crypto-sentinel scan (fresh process) vs `scanelf -qR -n -r -S` and `libtree` over the tree's ELF files,
#     interleaved round by round (scripts/bench/interleave.py)
#   - an unchanged tree rescanned in the same process (the stat-keyed cache) vs the first scan
#   - POST: `crypto-sentinel post` (and the bare probe) vs `openssl list -providers && openssl dgst -sha256`,
#     and the FIPS POST with every named operation (--require) against the same POST without them
#     under the same environment (Debian 13's fips.so in Debian 12's libcrypto, and plain system OpenSSL),
#     interleaved; BASE_BIN=another build joins the same rounds
#   - idle: the daemon's CPU while nothing happens at ~1,000 processes (target <= 0.2% of a core), and
#     `inspect --all` next to `grep -l libcrypto /proc/*/maps` over them (scripts/bench-idle.sh)
#   - daemon: GET /v1/report under 64 clients next to nginx, RSS over 1,000 cycles, CPU per cycle
#     (scripts/bench-daemon.sh)
#   - freezers: `scan` of a PyInstaller onefile executable (its archive inflated in memory) next to `scan`
#     of the same app frozen --onedir (the same ELF files on disk), interleaved; target 2x at most
#   - repair: `repair --dry-run` of the 20,000-file bundle next to `scan` of it (interleaved), and
#     `repair --out` next to `cp -a` of the same tree (alternated; each copy removed between rounds, untimed)
# SECTIONS="post" (or scan, freezers, inspect, idle, daemon, repair; space-separated) runs only those parts.
# Needs: make release (or swift build -c release), pax-utils, libtree, hyperfine, GNU time, gcc, nginx-light.
set -euo pipefail
cd "$(dirname "$0")/.."
FIXTURES=${FIXTURES:-/tmp/crypto-sentinel-fixtures}
BIN=${BIN:-.build/release/crypto-sentinel}
PROBE=${PROBE:-$(dirname "$BIN")/sentinel-probe}
SECTIONS=${SECTIONS:-scan freezers repair inspect idle post daemon}
BENCH=${BENCH_BIN:-.build/release/sentinel-bench}
RUNS=${RUNS:-5}
[ -x "$BIN" ] && [ -x "$BENCH" ] || make release >/dev/null
if [[ " $SECTIONS " == *" scan "* || " $SECTIONS " == *" daemon "* ]]; then
  scripts/fixtures/cxfreeze-bundles.sh "$FIXTURES/cxfreeze"  # the daemon section's target service
fi
if [[ " $SECTIONS " == *" scan "* || " $SECTIONS " == *" repair "* ]]; then
  scripts/fixtures/cxfreeze-bundles.sh "$FIXTURES/cxfreeze"
  scripts/make-big-bundle.sh "$FIXTURES/cxfreeze/debian" "$FIXTURES/big-bundle" 20000
fi
TMP=$(mktemp -d); trap 'rm -rf "$TMP"' EXIT

rss() { /usr/bin/time -f %M "$@" >/dev/null 2>"$TMP/rss" || true; tail -1 "$TMP/rss"; }

for TREE in /usr/lib/x86_64-linux-gnu "$FIXTURES/big-bundle"; do
  [[ " $SECTIONS " == *" scan "* ]] || continue
  files=$(find "$TREE" -type f | wc -l)
  scanelf -RBF '%F' "$TREE" 2>/dev/null | sort -u > "$TMP/elfs" || true
  grep -E '\.so' "$TMP/elfs" > "$TMP/libs" || true
  echo "== $TREE ($files files, $(wc -l < "$TMP/elfs") ELF); medians of $((RUNS * 4)) interleaved rounds"
  # Interleaved like the POST rounds below (scripts/bench/interleave.py): each ratio is taken within one
  # round, so load that comes and goes on a 2-core machine falls on every tool alike.
  env -i PATH=/usr/bin:/bin python3 scripts/bench/interleave.py $((RUNS * 4)) \
    "scanelf -qR -n -r -S=scanelf -qR -n -r -S $TREE" \
    "libtree (ELF files)=xargs -a $TMP/libs libtree" \
    "crypto-sentinel scan (target: 1.5x at most)=$BIN scan $TREE --format json"
  rs=$(rss scanelf -qR -n -r -S "$TREE"); rl=$(rss xargs -a "$TMP/libs" libtree); rc=$(rss "$BIN" scan "$TREE" --format json)
  # The first scan and the rescans of the unchanged tree, in one process as the daemon does: medians
  # over RUNS processes of 4 scans each (the first, then three rescans).
  for _ in $(seq "$RUNS"); do "$BENCH" "$TREE" 4; done > "$TMP/repeat"
  python3 - "$rs" "$rl" "$rc" "$TMP/repeat" <<'PY'
import statistics, sys
rs, rl, rc = (int(v) / 1024 for v in sys.argv[1:4])
scans = [line.split() for line in open(sys.argv[4])]
first = statistics.median(float(s[3]) for s in scans if s[1] == "1")
again = statistics.median(float(s[3]) for s in scans if s[1] != "1")
print(f"  peak RSS: scanelf {rs:.1f} MiB, libtree {rl:.1f} MiB, crypto-sentinel {rc:.1f} MiB")
print(f"  rescan, same process   {again:8.1f} ms vs first {first:.1f} ms   ({again/first:.2f}x; target <= 0.2x)")
PY
done

## freezers: the onefile archive's members inflated and read in memory, against the same files read
## from the onedir tree; both scans resolve the same app under the bootloader's LD_LIBRARY_PATH.
if [[ " $SECTIONS " == *" freezers "* ]]; then
  scripts/fixtures/freezer-bundles.sh "$FIXTURES/freezers"
  ONEDIR="$FIXTURES/freezers/pyinstaller-onedir" ONEFILE="$FIXTURES/freezers/pyinstaller-onefile/app"
  # The anchor: PyInstaller's own archive reader (pyi-archive_viewer's), every binary and data member
  # read into memory and inflated, nothing parsed. Its venv (PyPI) is kept beside the fixtures.
  PYI="$FIXTURES/pyinstaller-reader"
  [ -x "$PYI/bin/python" ] || { /usr/bin/python3 -m venv "$PYI" && "$PYI/bin/pip" install -q pyinstaller==6.22.3; }
  cat > "$TMP/pyi-read.py" <<'PY'
import sys
from PyInstaller.archive.readers import CArchiveReader
archive = CArchiveReader(sys.argv[1])
for name, (_, _, _, _, typecode) in archive.toc.items():
    if typecode in ("b", "x"):
        archive.extract(name)
PY
  echo "== PyInstaller onefile vs onedir, one app ($(find "$ONEDIR" -type f | wc -l) files; $(stat -c %s "$ONEFILE") bytes); medians of $((RUNS * 4)) interleaved rounds"
  env -i PATH=/usr/bin:/bin python3 scripts/bench/interleave.py $((RUNS * 4)) \
    "crypto-sentinel scan ONEDIR=$BIN scan $ONEDIR --format json" \
    "crypto-sentinel scan ONEFILE (target: 2x at most)=$BIN scan $ONEFILE --format json" \
    "PyInstaller CArchiveReader: members inflated, not read=$PYI/bin/python $TMP/pyi-read.py $ONEFILE"
  # CPU time, summed over both cores: what the inflating adds, whatever the machine's core count.
  cpu() { /usr/bin/time -f "%U %S" "$@" >/dev/null 2>"$TMP/cpu" || true; tail -1 "$TMP/cpu" | awk '{print ($1 + $2) * 1000}'; }
  d=0; f=0; for _ in $(seq "$RUNS"); do d=$((d + $(cpu "$BIN" scan "$ONEDIR" --format json | cut -d. -f1))); f=$((f + $(cpu "$BIN" scan "$ONEFILE" --format json | cut -d. -f1))); done
  echo "  CPU time (user + system, mean of $RUNS): onedir $((d / RUNS)) ms, onefile $((f / RUNS)) ms"
fi

## repair: the plan against the scan it starts from, and the repaired copy against cp -a of the tree.
if [[ " $SECTIONS " == *" repair "* ]]; then
  BIG="$FIXTURES/big-bundle"
  echo "== repair, $BIG ($(find "$BIG" -type f | wc -l) files); medians of $((RUNS * 4)) interleaved rounds"
  env -i PATH=/usr/bin:/bin python3 scripts/bench/interleave.py $((RUNS * 4)) \
    "crypto-sentinel scan=$BIN scan $BIG --format json" \
    "crypto-sentinel repair --dry-run (target: 1.2x at most)=$BIN repair $BIG --dry-run --format json"
  # A copy cannot be timed by interleave.py (its destination must not exist): alternated rounds, the
  # destinations removed between them, outside the timing. The page cache is warm for both.
  COPY="$(dirname "$BIG")/bench-copy"
  rm -rf "$COPY"; mkdir -p "$COPY"; trap 'rm -rf "$TMP" "$COPY"' EXIT
  for r in $(seq $((RUNS + 1))); do
    t0=$(date +%s%N); cp -a "$BIG" "$COPY/cp"; t1=$(date +%s%N)
    "$BIN" repair "$BIG" --out "$COPY/repair" --format json > "$COPY/out.json" || true; t2=$(date +%s%N)
    [ "$r" -gt 1 ] && echo "$(( (t1 - t0) / 1000000 )) $(( (t2 - t1) / 1000000 ))"   # the first round warms up
    rm -rf "$COPY/cp" "$COPY/repair"; sync
  done > "$TMP/copies"
  python3 - "$TMP/copies" "$COPY/out.json" <<'PY'
import json, statistics, sys
rounds = [tuple(map(int, line.split())) for line in open(sys.argv[1])]
cp = statistics.median(r[0] for r in rounds); rep = statistics.median(r[1] for r in rounds)
ratios = sorted(r[1] / r[0] for r in rounds)
status = json.load(open(sys.argv[2]))["result"]["status"]
print(f"  cp -a                                          {cp:8.1f} ms   (1.000x)")
print(f"  crypto-sentinel repair --out ({status}, target: 1.5x at most) {rep:8.1f} ms   "
      f"({statistics.median(ratios):.3f}x, per-round {ratios[0]:.2f}-{ratios[-1]:.2f})")
PY
fi

## inspect: `inspect --all` with 200 and 1,000 extra fixture processes next to `grep -l libcrypto
## /proc/[0-9]*/maps`, as ratios (its own script, so its fixture processes are cleaned up by its trap).
if [[ " $SECTIONS " == *" inspect "* ]]; then
  BIN="$BIN" FIXTURES="$FIXTURES" scripts/bench-inspect.sh
fi

## idle: its own script, so its 1,000 processes and daemons are stopped by its trap. BASE_BIN joins it too.
if [[ " $SECTIONS " == *" idle "* ]]; then
  BIN="$BIN" FIXTURES="$FIXTURES" BASE_BIN="${BASE_BIN:-}" RUNS="$RUNS" scripts/bench-idle.sh
fi

# POST latency: one probe process (config, providers, FIPS self-test, SHA-256, MD5, DRBG, trust) next
# to the two openssl commands a person would run, under the same environment, in the same run. The
# commands are interleaved round by round (scripts/bench/interleave.py): each ratio is taken within
# one round, so load from other work on the machine falls on all of them alike. BASE_BIN=another
# crypto-sentinel build (its sentinel-probe beside it) joins the same rounds: before/after in one run.
if [[ " $SECTIONS " == *" post "* ]]; then
  scripts/fixtures/fips-lab.sh "$TMP/lab"
  for CASE in fips system; do
    if [ $CASE = fips ]; then ENVV=(OPENSSL_CONF="$TMP/lab/openssl-fips.cnf" OPENSSL_MODULES="$TMP/lab/modules"); FLAG=--expect-fips
    else ENVV=(); FLAG=; fi
    POSTENV=(); for kv in "${ENVV[@]}"; do POSTENV+=(--env "$kv"); done
    echo "== POST, $CASE OpenSSL (${ENVV[*]:-system defaults}); medians of $((RUNS * 4)) interleaved rounds, $([ "$CASE" = fips ] && echo "target: post <= 1.1x" || echo "reported, not targeted")"
    CMDS=("openssl list -providers && openssl dgst -sha256=sh -c 'openssl list -providers >/dev/null && openssl dgst -sha256 </dev/null >/dev/null'"
          "crypto-sentinel post (CLI + probe child)=$BIN post ${POSTENV[*]} $FLAG --format json"
          "sentinel-probe alone (the POST child)=$PROBE libcrypto.so.3")
    if [ -n "${BASE_BIN:-}" ]; then
      CMDS+=("BASE_BIN post=$BASE_BIN post ${POSTENV[*]} $FLAG --format json"
             "BASE_BIN's sentinel-probe alone=$(dirname "$BASE_BIN")/sentinel-probe libcrypto.so.3")
    fi
    env -i PATH=/usr/bin:/bin "${ENVV[@]}" python3 scripts/bench/interleave.py $((RUNS * 4)) "${CMDS[@]}"
    if [ $CASE = fips ]; then
      # The product's operations (post --list-operations, every one) against today's FIPS POST.
      OPS=$("$BIN" post --list-operations | awk '{printf " --require %s", $1}')
      echo "== POST with every named operation, against the FIPS POST above; medians of $((RUNS * 4)) interleaved rounds"
      env -i PATH=/usr/bin:/bin python3 scripts/bench/interleave.py $((RUNS * 4)) \
        "crypto-sentinel post --expect-fips=$BIN post ${POSTENV[*]} $FLAG --format json" \
        "the same with all $(echo "$OPS" | wc -w | awk '{print $1 / 2}') operations (target: 1.5x at most)=$BIN post ${POSTENV[*]} $FLAG$OPS --format json"
    fi
  done
fi

## daemon: its own script, so the daemon, nginx and the demo service are stopped by its trap. Last,
## because it exits 1 (after the nginx half) while the build has no daemon.
if [[ " $SECTIONS " == *" daemon "* ]]; then
  SENTINEL_BIN="$BIN" FIXTURES="$FIXTURES" scripts/bench-daemon.sh
fi
