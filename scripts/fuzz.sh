#!/usr/bin/env bash
# Builds the libFuzzer targets in fuzz/ and runs each for SECONDS (default 60), then prints a table:
# target, executions, exec/s, crashes. Exits non-zero if any target crashed (or failed to build).
#
# SwiftPM renames an executable's entry point, so libFuzzer's main cannot come through it: the library
# modules (SentinelCore, SentinelSystem) are compiled by SwiftPM with coverage + ASan on their own
# scratch path, and each fuzz/<target>.swift is linked against their objects by swiftc. Release mode:
# a -Onone + ASan build ran 10-60x fewer executions per second (ld.so.cache: 98/s against 6,000/s).
# Seeds come from this machine's real files at run time (fuzz/corpus/ holds only small text seeds).
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_EACH=${1:-60}
SCRATCH=${FUZZ_SCRATCH:-.build-fuzz-san}
OUT=${FUZZ_OUT:-/tmp/crypto-sentinel-fuzz}
FIXTURES=${SENTINEL_FIXTURES:-/tmp/crypto-sentinel-fixtures}
TARGETS=${FUZZ_TARGETS:-"elf ldsocache maps environ config http carchive"}
mkdir -p "$OUT/bin" "$OUT/logs"

t0=$(date +%s)
swift build -c release --scratch-path "$SCRATCH" --target SentinelSystem \
    -Xswiftc -sanitize=fuzzer,address -Xswiftc -enable-testing -Xcc -fsanitize=fuzzer-no-link,address >"$OUT/logs/build.log" 2>&1 \
    || { tail -20 "$OUT/logs/build.log"; echo "fuzz: library build failed (log: $OUT/logs/build.log)" >&2; exit 2; }
B=$(swift build -c release --scratch-path "$SCRATCH" --show-bin-path)
objs() { for m in "$@"; do ls "$B/$m.build"/*.o; done; }
CORE_OBJS="$(objs SentinelCore) -lyaml"
SYS_OBJS=$(objs SentinelSystem)
MAPS=(-Xcc "-fmodule-map-file=Sources/CLibElf/module.modulemap" -Xcc "-fmodule-map-file=Sources/CLibSystemd/module.modulemap"
      -Xcc "-fmodule-map-file=Sources/CYAML/module.modulemap" -Xcc "-fmodule-map-file=Sources/CLinux/module.modulemap"
      -Xcc "-fmodule-map-file=Sources/CZlib/module.modulemap")
build_target() {
    local t=$1 extra=()
    case $t in
        elf|environ) extra=($CORE_OBJS $SYS_OBJS -lelf -lsystemd -lz -ldeflate) ;;
        ldsocache|maps|config|carchive) extra=($CORE_OBJS) ;;
        http) extra=(Sources/SentinelDaemon/API/HTTPRequestParser.swift) ;;
    esac
    swiftc -swift-version 6 -O -sanitize=fuzzer,address -parse-as-library -g -I "$B/Modules" "${MAPS[@]}" \
        -module-name "fuzz_$t" "fuzz/$t.swift" "${extra[@]}" -o "$OUT/bin/fuzz-$t"
}
for t in $TARGETS; do
    build_target "$t" >"$OUT/logs/build-$t.log" 2>&1 \
        || { cat "$OUT/logs/build-$t.log"; echo "fuzz: target $t failed to build" >&2; exit 2; }
done
echo "fuzz: built $(wc -w <<<"$TARGETS") targets in $(( $(date +%s) - t0 )) s"

# Seeds: the committed text seeds plus real files from this machine, each at most 64 KiB.
seed() {  # seed TARGET FILE... : copies the readable ones, truncated to 64 KiB
    local dir=$1; shift
    for f in "$@"; do [ -r "$f" ] && head -c 65536 "$f" >"$dir/$(echo "$f" | tr '/' '_')" 2>/dev/null || true; done
}
for t in $TARGETS; do
    c="$OUT/corpus/$t"; mkdir -p "$c"
    [ -d "fuzz/corpus/$t" ] && cp -f fuzz/corpus/"$t"/* "$c"/ 2>/dev/null || true
    case $t in
        elf) seed "$c" $(ls /usr/lib/x86_64-linux-gnu/libz.so.1 /usr/lib/x86_64-linux-gnu/libcrypt.so.1 /bin/true \
                 /usr/lib/x86_64-linux-gnu/ossl-modules/legacy.so 2>/dev/null) \
                 $(find "$FIXTURES/elf" -type f -size -64k 2>/dev/null | head -8) ;;
        ldsocache) seed "$c" /etc/ld.so.cache ;;  # head -c keeps a 64 KiB prefix: a truncated cache is a good seed
        maps) seed "$c" /proc/self/maps /proc/1/maps ;;
        environ) seed "$c" /proc/self/environ /proc/1/environ ;;
        config) seed "$c" config/crypto-sentinel.example.yaml ;;
        carchive) python3 - "$c/small" <<'PY' ;;  # a small archive laid out as PyInstaller's CArchiveWriter does
import struct, sys, zlib
entries, data = [], b""
for name, code, blob, packed in [("pyi-contents-directory _internal", "o", b"", False),
                                 ("lib/libcrypto.so.3", "b", b"\x7fELF" + bytes(60), True),
                                 ("libcrypto.so.3", "n", b"lib/libcrypto.so.3\0", False)]:
    stored = zlib.compress(blob, 9) if packed else blob
    entries.append((len(data), len(stored), len(blob), int(packed), code, name)); data += stored
toc = b""
for offset, length, full, packed, code, name in entries:
    raw = name.encode() + b"\0"; raw += bytes(-(18 + len(raw)) % 16)
    toc += struct.pack("!IIIIBc", 18 + len(raw), offset, length, full, packed, code.encode()) + raw
total = len(data) + len(toc) + 88
open(sys.argv[1], "wb").write(data + toc + struct.pack("!8sIIII64s", b"MEI\014\013\012\013\016", total, len(data), len(toc), 311, b"libpython3.11.so.1.0"))
PY
    esac
done

status=0
printf '%-10s %12s %8s %8s\n' target executions exec/s crashes
for t in $TARGETS; do
    # This run's crashes only: an input kept from an earlier run is not a crash of this build.
    c="$OUT/corpus/$t"; art="$OUT/artifacts/$t/"; rm -rf "$art"; mkdir -p "$art"
    log="$OUT/logs/run-$t.log"
    # -rss_limit_mb: ASan + Swift runtime start near 100 MiB; a real leak or blow-up still trips it.
    "$OUT/bin/fuzz-$t" -max_total_time="$SECONDS_EACH" -rss_limit_mb=2048 -max_len=65536 -timeout=10 \
        -print_final_stats=1 -artifact_prefix="$art" "$c" >"$log" 2>&1 || true
    execs=$(grep -m1 'stat::number_of_executed_units' "$log" | awk '{print $2}')
    rate=$(grep -m1 'stat::average_exec_per_sec' "$log" | awk '{print $2}')
    crashes=$(find "$art" -type f | wc -l)
    printf '%-10s %12s %8s %8s\n' "$t" "${execs:-?}" "${rate:-?}" "$crashes"
    if [ "$crashes" -gt 0 ] || [ -z "$execs" ]; then
        status=1
        echo "  $t: see $log; inputs: $(find "$art" -type f | tr '\n' ' ')"
    fi
done
exit $status
