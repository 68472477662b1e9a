# Sourced by the daemon and idle benches and the demo: the real split cx_Freeze service as
# a daemon target, and a NOTIFY_SOCKET listener as systemd would be. The caller keeps a PIDS array of
# what it started (these functions append to it) and a TMP folder; stop_all_and_clean stops them (by
# pid, TERM then KILL after 5 s) and removes TMP: the caller's EXIT trap.

# wait_split_mapped PID: its imports take about a second; wait (up to 15 s) until both libcrypto copies
# are mapped, so a daemon's first cycle sees the split (a process already running is re-read only at
# the next interval, not by the start/stop watcher).
wait_split_mapped() {
  for _ in $(seq 150); do
    [ "$(awk '$6 ~ /libcrypto/ { print $6 }' "/proc/$1/maps" 2>/dev/null | sort -u | wc -l)" -ge 2 ] && return 0
    sleep 0.1
  done
}

# start_split_service FIXTURES DIR [EXTRA]: starts FIXTURES/cxfreeze/debian/app --serve, writes its pid
# to DIR/demo.pid and DIR/config.yaml (the bundle, and the service found by that pid file, interval 1 h;
# then the config lines EXTRA), and waits until it maps both copies.
start_split_service() {
  "$1/cxfreeze/debian/app" --serve >/dev/null 2>&1 &
  PIDS+=($!); echo $! > "$2/demo.pid"
  cat > "$2/config.yaml" <<YAML
interval: 1h
bundles:
  - name: demo
    root: $1/cxfreeze/debian
services:
  - name: demo-api
    pid_file: $2/demo.pid
    bundle: demo
YAML
  [ -z "${3:-}" ] || printf '%s\n' "$3" >> "$2/config.yaml"
  wait_split_mapped "$(cat "$2/demo.pid")"
}

# start_notify_listener SOCKET LOG: every datagram on SOCKET becomes a line of LOG; waits for the socket.
start_notify_listener() {
  python3 -c '
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM); s.bind(sys.argv[1])
with open(sys.argv[2], "ab", buffering=0) as out:
    while True:
        out.write(s.recv(65536) + b"\n")
' "$1" "$2" &
  PIDS+=($!)
  for _ in $(seq 50); do [ -S "$1" ] && break; sleep 0.1; done
}

stop_all_and_clean() {
  for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do
    for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$p" 2>/dev/null || true
  done
  wait 2>/dev/null || true
  rm -rf "$TMP"
}
