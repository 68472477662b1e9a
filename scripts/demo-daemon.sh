#!/usr/bin/env bash
# The daemon on its embedded default next to a demo service: the real split cx_Freeze bundle (Debian's
# python3-cryptography beside the bundle's own libcrypto) running in a cgroup named product-api.service.
# Shows `crypto-sentinel status`, the socket, and the journal alert; then stops what it started
# (KEEP=1 leaves the daemon and the service running and prints how to stop them).
# Usage: scripts/demo-daemon.sh FIXTURES [BIN_DIR]
set -euo pipefail
FIXTURES=${1:?usage: demo-daemon.sh FIXTURES [BIN_DIR]}
BIN=${2:-.build/release}
BUNDLE=$FIXTURES/cxfreeze/debian
source "$(dirname "$0")/lib/split-service.sh"
DEMO=$(mktemp -d /tmp/crypto-sentinel-demo.XXXXXX)
SOCK=$DEMO/run/api.sock
started_journald=""
cleanup() {
  [ -n "${KEEP:-}" ] && return
  [ -n "${DAEMON:-}" ] && kill -TERM "$DAEMON" 2>/dev/null && wait "$DAEMON" 2>/dev/null || true
  [ -n "${SERVICE:-}" ] && kill -KILL "$SERVICE" 2>/dev/null && wait "$SERVICE" 2>/dev/null || true
  [ -n "${CG:-}" ] && { rmdir "$CG/product-api.service" "$CG" 2>/dev/null || true; }
  [ -n "$started_journald" ] && kill -TERM "$started_journald" 2>/dev/null || true
  rm -rf "$DEMO"
}
trap cleanup EXIT

# journald: PID 1 is not systemd on a build machine; start it by hand when nothing listens.
if ! python3 -c 'import socket,sys; s=socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM); s.connect("/run/systemd/journal/socket")' 2>/dev/null; then
  /lib/systemd/systemd-journald >/dev/null 2>&1 & started_journald=$!
  for _ in $(seq 50); do [ -S /run/systemd/journal/socket ] && break; sleep 0.1; done
fi
# The catalog, so `journalctl -x` explains each alert.
install -D -m 0644 systemd/crypto-sentinel.catalog /usr/lib/systemd/catalog/crypto-sentinel.catalog
journalctl --update-catalog

echo "\$ $BUNDLE/app --serve    # the demo service, in cgroup product-api.service"
OPENSSL_MODULES=/usr/lib/x86_64-linux-gnu/ossl-modules "$BUNDLE/app" --serve > "$DEMO/service.log" 2>&1 & SERVICE=$!
for root in /sys/fs/cgroup/unified /sys/fs/cgroup; do
  if [ -e "$root/cgroup.procs" ] && mkdir -p "$root/crypto-sentinel-demo.slice/product-api.service" 2>/dev/null; then
    CG=$root/crypto-sentinel-demo.slice; echo "$SERVICE" > "$CG/product-api.service/cgroup.procs"; break
  fi
done
wait_split_mapped "$SERVICE"

echo "\$ crypto-sentinel daemon    # embedded default: every process that maps OpenSSL"
mkdir -p "$DEMO/run" "$DEMO/state"
# Pids wrap: the journal query below also starts at this second, so an older daemon's entry under the
# same pid is never shown.
START=$(date +%s)
RUNTIME_DIRECTORY=$DEMO/run STATE_DIRECTORY=$DEMO/state "$BIN/crypto-sentinel" daemon 2> "$DEMO/daemon.log" & DAEMON=$!
for _ in $(seq 300); do
  curl -sf --unix-socket "$SOCK" http://localhost/v1/health 2>/dev/null | grep -q '"ready":true' && break
  kill -0 "$DAEMON" 2>/dev/null || { cat "$DEMO/daemon.log"; exit 2; }
  sleep 0.1
done
echo
echo "\$ crypto-sentinel status --socket $SOCK"
"$BIN/crypto-sentinel" status --socket "$SOCK" || echo "(exit status $? — 1 means a target is degraded or failed)"
echo
echo "\$ curl --unix-socket $SOCK http://localhost/v1/health"
curl -s --unix-socket "$SOCK" http://localhost/v1/health; echo
echo
echo "\$ journalctl -x -o short SYSLOG_IDENTIFIER=crypto-sentinel SENTINEL_CODE=process-split-libcrypto _PID=$DAEMON --since @$START"
for _ in $(seq 50); do
  journalctl -q SYSLOG_IDENTIFIER=crypto-sentinel SENTINEL_CODE=process-split-libcrypto _PID=$DAEMON --since "@$START" | grep -q . && break; sleep 0.1
done
journalctl -x --no-pager -o short SYSLOG_IDENTIFIER=crypto-sentinel SENTINEL_CODE=process-split-libcrypto _PID=$DAEMON --since "@$START" | cut -c1-400
if [ -n "${KEEP:-}" ]; then
  echo; echo "left running: daemon pid $DAEMON (socket $SOCK), service pid $SERVICE; stop with: kill $DAEMON $SERVICE"
fi
