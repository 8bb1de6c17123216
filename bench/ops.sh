#!/usr/bin/env bash
# bench/ops.sh: how long the admin commands take on a SQLite server that
# holds one room of N messages: backup while the server runs, export of
# that room as JSON, and restore of the archive into an empty folder.
#
#   bench/ops.sh            N=20000
#   N=100000 bench/ops.sh
#
# Everything it starts is stopped by pid on exit; all traffic is on 127.0.0.1.
set -euo pipefail
export GOTOOLCHAIN="${GOTOOLCHAIN:-auto}"
cd "$(dirname "$0")/.."
N=${N:-20000}
T=$(mktemp -d /tmp/mapsim-ops.XXXXXX)
PID=
cleanup() {
  if [ -n "$PID" ] && kill -0 "$PID" 2>/dev/null; then kill -TERM "$PID"; wait "$PID" 2>/dev/null || true; fi
  rm -rf "$T"
}
trap cleanup EXIT
CGO_ENABLED=0 go build -o "$T/mapsim-chat" ./cmd/mapsim-chat
CGO_ENABLED=0 go build -o "$T/mapsim-bench" ./cmd/mapsim-bench
free_port() {
  local p
  for _ in $(seq 100); do
    p=$((15000 + RANDOM % 17000))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then echo "$p"; return 0; fi
  done
  return 1
}
PORT=$(free_port)
# The load tool's settings (its rate limits off), a fresh folder, SQLite.
export RATE_LIMIT_MESSAGES_PER_SECOND=100000 RATE_LIMIT_MESSAGES_BURST=100000 \
  RATE_LIMIT_FRAMES_PER_SECOND=100000 RATE_LIMIT_FRAMES_BURST=100000 \
  MAX_CONNECTIONS_PER_IP=0 MAX_CONNECTIONS_PER_USER=0 REGISTRATION_PER_HOUR=0 \
  DATA_DIR="$T/data" UPLOAD_DIR="$T/uploads" LISTEN_ADDR="127.0.0.1:$PORT"
"$T/mapsim-chat" serve >"$T/server.log" 2>&1 &
PID=$!
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null && break; sleep 0.1; done
"$T/mapsim-bench" -url "http://127.0.0.1:$PORT" -scenario history -messages "$N" -queries 5 -settle 1s -senders 8 >"$T/fill.txt" 2>&1 \
  || { tail -20 "$T/fill.txt"; exit 1; }
grep 'history fill' "$T/fill.txt"
CHAT=$(grep -o 'filling room [^ ]*' "$T/fill.txt" | head -1 | cut -d' ' -f3)
timed() {
  local label=$1 start end; shift
  start=$(date +%s.%N)
  "$@" >/dev/null 2>"$T/err.txt" || { cat "$T/err.txt"; exit 1; }
  end=$(date +%s.%N)
  awk -v l="$label" -v a="$start" -v b="$end" 'BEGIN { printf "%s: %.2f s\n", l, b - a }'
}
timed "backup while the server runs" "$T/mapsim-chat" admin backup -out "$T/backup.tar"
echo "archive: $(stat -c %s "$T/backup.tar") bytes"
timed "export -format json of $CHAT" "$T/mapsim-chat" admin export -chat "$CHAT" -format json -out "$T/export.json"
kill -TERM "$PID"; wait "$PID" 2>/dev/null || true; PID=
DATA_DIR="$T/restored/data" UPLOAD_DIR="$T/restored/uploads" timed "restore into an empty folder" "$T/mapsim-chat" admin restore -in "$T/backup.tar"
