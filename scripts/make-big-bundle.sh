#!/usr/bin/env bash
# Generates a 20,000-file bundle for the benchmark from the real Debian cx_Freeze bundle: 100 copies
# of its lib/ ELF files (distinct inodes) and enough small Python files to reach the count.
# Usage: scripts/make-big-bundle.sh SOURCE_BUNDLE OUT [FILES]
set -euo pipefail
SRC=${1:?source bundle}; OUT=${2:?out}; TOTAL=${3:-20000}
[ -e "$OUT/.done-$TOTAL" ] && exit 0
rm -rf "$OUT"; mkdir -p "$OUT"
cp -a "$SRC/." "$OUT/"
mapfile -t elfs < <(find "$SRC/lib" -maxdepth 1 -name '*.so*' -type f)
n=$(find "$OUT" -type f | wc -l)
for i in $(seq -w 1 100); do
  d="$OUT/lib/site/pkg$i"; mkdir -p "$d"
  cp "${elfs[@]}" "$d/"
done
n=$(find "$OUT" -type f | wc -l)
i=0
# One mkdir per folder of 200, not per file: forks dominated the run (about 2 min, now seconds).
while [ "$n" -lt "$TOTAL" ]; do
  if [ $((i % 200)) -eq 0 ]; then d="$OUT/lib/python/mod$((i / 200))"; mkdir -p "$d"; fi
  printf 'VALUE = %d\n' "$i" > "$d/m$i.py"; i=$((i + 1)); n=$((n + 1))
done
touch "$OUT/.done-$TOTAL"
