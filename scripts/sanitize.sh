#!/usr/bin/env bash
# The whole test suite under AddressSanitizer (+ LeakSanitizer) and/or ThreadSanitizer: the README's
# commands, plus a count of the sanitizer reports every process wrote (the test runner and each child
# it started: the daemon, the CLI, sentinel-bench). Exits non-zero if a test failed or any report exists.
#
#   scripts/sanitize.sh [address|thread|all] [extra swift test arguments, e.g. --filter PostTests]
#
# The probe is built once WITHOUT sanitizers and named by SENTINEL_PROBE: it is itself under test (it
# must link libc only, and die by the signal its libcrypto raises), and it starts with an empty
# environment, so no *SAN_OPTIONS could reach it anyway. The options go to every child through the
# environment (Tests/SentinelTestSupport/Sanitizers.swift forwards them where a test sets one explicitly).
# Reports go to $SAN_OUT/<asan|tsan>/report.<pid> (log_path), so a child's report is never lost in a
# temporary folder a test removes.
set -euo pipefail
cd "$(dirname "$0")/.."
WHICH=${1:-all}
[ $# -gt 0 ] && shift
FIXTURES=${SENTINEL_FIXTURES:-/tmp/crypto-sentinel-fixtures}
OUT=${SAN_OUT:-/tmp/crypto-sentinel-san}
case $WHICH in address|thread|all) ;; *) echo "usage: $0 [address|thread|all] [swift test args...]" >&2; exit 2 ;; esac

swift build --disable-local-rpath --product sentinel-probe --scratch-path .build-san >/dev/null
export SENTINEL_FIXTURES=$FIXTURES SENTINEL_PROBE=$PWD/.build-san/debug/sentinel-probe

status=0
run() {  # run NAME SANITIZER ENV...
    local name=$1 sanitizer=$2; shift 2
    rm -rf "${OUT:?}/$name"; mkdir -p "$OUT/$name"
    chmod 1777 "$OUT/$name"   # children run as other users (setpriv) write their reports here too
    local t0=$SECONDS rc=0
    env "$@" swift test --disable-local-rpath --sanitize="$sanitizer" --scratch-path ".build-$name" "${EXTRA[@]}" \
        >"$OUT/$name/test.log" 2>&1 || rc=$?
    local reports; reports=$(find "$OUT/$name" -name 'report.*' | sort)
    echo "== $sanitizer: swift test exit $rc in $((SECONDS - t0)) s; $(grep -E '^(✔|✘) Test run' "$OUT/$name/test.log" | tail -1)"
    grep -E '^✘ Test .*(failed|recorded an issue)' "$OUT/$name/test.log" | head -20 || true
    if [ -n "$reports" ]; then
        echo "   $(echo "$reports" | wc -l) process(es) wrote sanitizer reports:"
        for r in $reports; do echo "   $r: $(grep -m1 -E 'SUMMARY|ERROR' "$r" || head -1 "$r")"; done
    else
        echo "   no sanitizer report (log: $OUT/$name/test.log)"
    fi
    [ "$rc" -eq 0 ] && [ -z "$reports" ] || status=1
}
EXTRA=("$@")
if [ "$WHICH" = address ] || [ "$WHICH" = all ]; then
    run asan address ASAN_OPTIONS="detect_leaks=1:log_path=$OUT/asan/report" \
        LSAN_OPTIONS="suppressions=$PWD/sanitizers/lsan.supp:print_suppressions=0"
fi
if [ "$WHICH" = thread ] || [ "$WHICH" = all ]; then
    run tsan thread TSAN_OPTIONS="log_path=$OUT/tsan/report"
fi
exit $status
