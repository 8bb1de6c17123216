#!/usr/bin/env bash
# bench/run.sh: the standard load matrix against a fresh Mapsim Chat server on
# SQLite and, when mariadbd is installed, on a throwaway MariaDB; writes
# bench/RESULTS.md (machine, exact commands, results next to the targets) and
# the plots in bench/plots/.
#
#   bench/run.sh            small sizes: a few minutes per database
#   FULL=1 bench/run.sh     the issue's sizes: 19,000 connections, 10 million
#                           messages… (hours, mostly registration and the fill)
#   DBS=sqlite bench/run.sh only SQLite
#   REPORT_ONLY=1 bench/run.sh
#                           rewrite RESULTS.md from the last run's bench/out
#
# Everything it starts (servers, MariaDB) is stopped by pid on exit; all
# traffic is on 127.0.0.x. Scratch files go to bench/out/ (git-ignored).
set -euo pipefail
# go.mod names the Go release to build with (see the Makefile).
export GOTOOLCHAIN="${GOTOOLCHAIN:-auto}"
cd "$(dirname "$0")/.."
ROOT=$(pwd)
OUT=$ROOT/bench/out
PLOTS=$ROOT/bench/plots
RESULTS=$ROOT/bench/RESULTS.md
FULL=${FULL:-0}
DBS=${DBS:-sqlite mariadb}
mkdir -p "$OUT" "$PLOTS"
T=$(mktemp -d /tmp/mapsim-bench.XXXXXX)
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

# --- the matrix --------------------------------------------------------------
if [ "$FULL" = 1 ]; then
  MODE="FULL (the issue's sizes)"
  FANOUT=(-clients 1000 -rate 100 -warmup 5s -duration 60s)
  # The rate sweep: the highest rate held with p99 ≤ 200 ms (msgs/s into the room).
  SWEEP_CLIENTS=1000 SWEEP_RATES=(150 180 220)
  ROOMS=(-clients 15000 -room-size 5-10 -rate 3400 -warmup 5s -duration 60s)
  # Real clients reconnect each on its own after its jitter: many workers.
  RECONNECT=(-clients 15000 -room-size 10 -rate 500 -warmup 10s -duration 50s -drain 60s -connect-concurrency 1024)
  COMMITS=(-senders 512 -inflight 4 -warmup 5s -duration 60s)
  HISTORY=(-senders 128 -inflight 8 -rate 0 -messages 10000000 -duration 90m -queries 1000)
  IDLE=(-clients 19000 -duration 5m)
else
  MODE="small (each scenario ≤ 60 s, ≤ 1,000 connections)"
  FANOUT=(-clients 500 -rate 100 -warmup 3s -duration 20s)
  SWEEP_CLIENTS=500 SWEEP_RATES=(360)
  ROOMS=(-clients 1000 -room-size 5-10 -rate 1000 -warmup 3s -duration 20s)
  RECONNECT=(-clients 1000 -room-size 10 -rate 200 -warmup 5s -duration 20s -connect-concurrency 256)
  COMMITS=(-senders 256 -inflight 4 -warmup 2s -duration 10s)
  HISTORY=(-senders 64 -inflight 4 -rate 0 -messages 50000 -duration 5m -queries 300)
  IDLE=(-clients 1000 -duration 30s)
fi
# The commit targets differ by database: 30,000/s on SQLite, 10,000/s on MariaDB.
commits_rate() { if [ "$1" = sqlite ]; then echo 30000; else echo 10000; fi; }

# The server must not rate-limit the load (see the README's rate limits).
SERVER_ENV=(RATE_LIMIT_MESSAGES_PER_SECOND=100000 RATE_LIMIT_MESSAGES_BURST=100000
  RATE_LIMIT_FRAMES_PER_SECOND=100000 RATE_LIMIT_FRAMES_BURST=100000 MAX_CONNECTIONS_PER_IP=0 MAX_CONNECTIONS_PER_USER=0
  REGISTRATION_PER_HOUR=0
  LOG_FORMAT=text GOTRACEBACK=all)

# --- processes we start, stopped by pid on exit --------------------------------
PIDS=()
stop_pid() {
  local pid=$1
  kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 150); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
}
cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do stop_pid "$pid"; done
  wait 2>/dev/null || true
  rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log() { printf '\n### %s\n' "$*" >&2; }

# free_port prints a loopback port nobody listens on, below the ephemeral
# range the load's own connections use.
free_port() {
  local p
  for _ in $(seq 100); do
    p=$((15000 + RANDOM % 17000))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then echo "$p"; return 0; fi
  done
  return 1
}

# --- build -------------------------------------------------------------------
COMMANDS=()
record() { COMMANDS+=("$*"); }
log "building"
# (REPORT_ONLY keeps the binary the profiles were taken from.)
if [ "${REPORT_ONLY:-0}" != 1 ] || [ ! -x "$OUT/mapsim-chat" ]; then
  record "CGO_ENABLED=0 go build -o bench/out/mapsim-chat ./cmd/mapsim-chat"
  CGO_ENABLED=0 go build -o "$OUT/mapsim-chat" ./cmd/mapsim-chat
fi
record "CGO_ENABLED=0 go build -o bench/out/mapsim-bench ./cmd/mapsim-bench"
CGO_ENABLED=0 go build -o "$OUT/mapsim-bench" ./cmd/mapsim-bench

# --- MariaDB, as a plain process (as internal/testutil/mariadbtest does) --------
MDB_PORT=
find_sbin() { command -v "$1" 2>/dev/null || { [ -x "/usr/sbin/$1" ] && echo "/usr/sbin/$1"; } || true; }
start_mariadb() {
  local mariadbd install admin client asuser=()
  mariadbd=$(find_sbin mariadbd); install=$(find_sbin mariadb-install-db)
  admin=$(find_sbin mariadb-admin); client=$(find_sbin mariadb)
  if [ -z "$mariadbd" ] || [ -z "$install" ] || [ -z "$admin" ] || [ -z "$client" ]; then
    echo "mariadbd not found: skipping MariaDB (apt-get install mariadb-server)" >&2
    return 1
  fi
  [ "$(id -u)" = 0 ] && asuser=(--user=root)
  mkdir -p "$T/mdb/tmp"
  record "mariadb-install-db --no-defaults --datadir=\$T/db --auth-root-authentication-method=normal --skip-test-db ${asuser[*]}"
  "$install" --no-defaults --datadir="$T/mdb/db" --auth-root-authentication-method=normal --skip-test-db "${asuser[@]}" \
    >"$T/mdb/install.log" 2>&1 || { cat "$T/mdb/install.log" >&2; return 1; }
  local attempt pid
  for attempt in 1 2 3; do
    MDB_PORT=$(free_port)
    # Its own tmpdir: MariaDB's on-disk temporary tables must not share /tmp
    # with whatever else cleans it.
    "$mariadbd" --no-defaults --datadir="$T/mdb/db" --socket="$T/mdb/sock" --port="$MDB_PORT" \
      --bind-address=127.0.0.1 --pid-file="$T/mdb/pid" --skip-name-resolve --tmpdir="$T/mdb/tmp" \
      --innodb-buffer-pool-size=512M --max-connections=1000 "${asuser[@]}" >"$OUT/mariadbd.log" 2>&1 &
    pid=$!
    PIDS+=("$pid")
    for _ in $(seq 600); do
      if "$admin" --socket="$T/mdb/sock" -uroot ping >/dev/null 2>&1; then
        record "mariadbd --no-defaults --datadir=\$T/db --socket=\$T/sock --port=$MDB_PORT --bind-address=127.0.0.1 --pid-file=\$T/pid --skip-name-resolve --tmpdir=\$T/tmp --innodb-buffer-pool-size=512M --max-connections=1000 ${asuser[*]}"
        record "mariadb --socket=\$T/sock -uroot -e 'CREATE DATABASE mapsim_bench CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci'"
        "$client" --socket="$T/mdb/sock" -uroot -e \
          "CREATE DATABASE mapsim_bench CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"
        MDB_VERSION=$("$mariadbd" --version 2>/dev/null | head -1)
        return 0
      fi
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    stop_pid "$pid"
    echo "mariadbd did not start (attempt $attempt):" >&2
    tail -20 "$OUT/mariadbd.log" >&2
  done
  return 1
}

# --- the server -----------------------------------------------------------------
SERVER_PID= URL= DEBUG_URL=
# start_server DB LOGFILE: a server process on a free port, with its pprof
# listener (DEBUG_ADDR) on another; sets SERVER_PID, URL, DEBUG_URL.
start_server() {
  local debug_port
  debug_port=$(free_port)
  DEBUG_URL=http://127.0.0.1:$debug_port
  local db=$1 logf=$2 env=("${SERVER_ENV[@]}" DATA_DIR="$T/$db/data" UPLOAD_DIR="$T/$db/uploads" LISTEN_ADDR=127.0.0.1:0 DEBUG_ADDR=127.0.0.1:$debug_port)
  if [ "$db" = mariadb ]; then
    env+=(DB_HOST=127.0.0.1 DB_PORT="$MDB_PORT" DB_USER=root DB_NAME=mapsim_bench)
  fi
  mkdir -p "$T/$db"
  record "env ${env[*]//$T/\$T} bench/out/mapsim-chat serve"
  env "${env[@]}" "$OUT/mapsim-chat" serve >"$logf" 2>&1 &
  SERVER_PID=$!
  PIDS+=("$SERVER_PID")
  for _ in $(seq 600); do
    URL=$(sed -n 's/^Mapsim Chat listening on \(http:\/\/[0-9.:]*\).*/\1/p' "$logf" | head -1)
    [ -n "$URL" ] && return 0
    kill -0 "$SERVER_PID" 2>/dev/null || break
    sleep 0.1
  done
  echo "the server did not start:" >&2
  tail -20 "$logf" >&2
  return 1
}

# bench DB NAME ARGS…: one scenario; its table goes to the details file.
# NAME may carry a tag for a second run of a scenario: fanout:180.
bench() {
  local db=$1 run=$2; shift 2
  local scenario=${run%%:*} name=${run/:/-}
  local args=(-url "$URL" -scenario "$scenario" -label "$db" -server-pid "$SERVER_PID"
    -json "$OUT/$db.jsonl" -svg "$PLOTS/$db-$name.svg" -token-file "$OUT/tokens-$db.json"
    -debug-url "$DEBUG_URL" -server-profile "$OUT/$db-$name.pprof" "$@")
  log "$db: $name"
  local line="${args[*]}"
  record "bench/out/mapsim-bench ${line//$ROOT\//}"
  local rc=0
  "$OUT/mapsim-bench" "${args[@]}" >"$T/table" 2>"$OUT/$db-$name.log" || rc=$?
  cat "$T/table" >&2
  { echo; echo "#### $db: $name"; echo; echo '```'; cat "$T/table"; echo '```'; } >>"$OUT/$db-details.md"
  if [ $rc -ne 0 ]; then
    tail -5 "$OUT/$db-$name.log" >&2
    { echo; echo "**$name failed** (exit $rc):"; echo; echo '```'; tail -5 "$OUT/$db-$name.log"; echo '```'; } >>"$OUT/$db-details.md"
  fi
}

run_db() {
  local db=$1 logf="$OUT/server-$1.log"
  rm -f "$OUT/$db.jsonl" "$OUT/$db-details.md" "$OUT/tokens-$db.json" "$OUT/$db"-*.pprof
  start_server "$db" "$logf" || return 1
  bench "$db" fanout "${FANOUT[@]}"
  if [ "$db" = sqlite ]; then
    for r in "${SWEEP_RATES[@]}"; do
      bench "$db" "fanout:$r" -clients "$SWEEP_CLIENTS" -rate "$r" -warmup 3s -duration 30s
    done
  fi
  bench "$db" rooms "${ROOMS[@]}"
  bench "$db" reconnect "${RECONNECT[@]}"
  bench "$db" commits "${COMMITS[@]}" -rate "$(commits_rate "$db")"
  bench "$db" history "${HISTORY[@]}"
  # Idle on a freshly started server (same database, so the tokens stay
  # good), so that its RSS baseline holds nothing of the runs before.
  # Goroutines and Go memory per connection come from /debug/vars, and the
  # heap profile at the end. First the users the runs before did not have
  # log in on this server (a short idle run, not recorded), so that the
  # measured run logs in no one: argon2's garbage in its RSS baseline would
  # understate the cost a connection.
  log "$db: logging in the idle users"
  record "bench/out/mapsim-bench -url $URL -scenario idle -label $db -token-file bench/out/tokens-$db.json ${IDLE[*]} -duration 1s"
  "$OUT/mapsim-bench" -url "$URL" -scenario idle -label "$db" -token-file "$OUT/tokens-$db.json" "${IDLE[@]}" -duration 1s \
    >/dev/null 2>"$OUT/$db-idle-logins.log" || { tail -5 "$OUT/$db-idle-logins.log" >&2; }
  log "$db: restarting the server for idle"
  stop_pid "$SERVER_PID"
  start_server "$db" "$OUT/server-$db-idle.log" || return 1
  bench "$db" idle "${IDLE[@]}"
  stop_pid "$SERVER_PID"
}

# --- go --------------------------------------------------------------------------
# busy lists what else uses the CPU over one second (the tool and the server
# share the machine with it), by command, summed.
busy() {
  top -b -n 2 -d 1 2>/dev/null | awk '/^top -/ {n++} n == 2 && $1 ~ /^[0-9]+$/ && $9 + 0 > 0 && $12 != "top" {cpu[$12] += $9}
    END {for (c in cpu) if (cpu[c] >= 5) {printf "%s%s %.0f%%", sep, c, cpu[c]; sep = ", "}}'
}
# REPORT_ONLY=1 rewrites bench/RESULTS.md from the last run's files in
# bench/out (after editing bench/LIMITS.md, or when a run was cut short
# after some scenarios); nothing is run.
META=$OUT/run-meta.sh
if [ "${REPORT_ONLY:-0}" = 1 ]; then
  if [ -f "$META" ]; then
    # shellcheck source=/dev/null
    . "$META"
  else
    MODE="$MODE; cut short, rewritten by REPORT_ONLY=1" STARTED=unknown TREE=unknown
    LOAD_BEFORE=unknown LOAD_AFTER=unknown BUSY_BEFORE=unknown BUSY_AFTER=unknown MDB_VERSION=
    COMMANDS=("(not recorded: the run did not finish; see bench/out/*.log)")
    RAN=()
    for db in sqlite mariadb; do [ -s "$OUT/$db.jsonl" ] && RAN+=("$db"); done
  fi
else
  LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
  BUSY_BEFORE=$(busy)
  STARTED=$(date -u +%Y-%m-%dT%H:%M:%SZ)
  TREE="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet 2>/dev/null || echo ' + local changes')"
  MDB_VERSION=
  RAN=()
  rm -f "$META"
  for db in $DBS; do
    case $db in
      sqlite) run_db sqlite && RAN+=(sqlite) ;;
      mariadb) if start_mariadb; then run_db mariadb && RAN+=(mariadb); fi ;;
      *) echo "unknown database $db (sqlite, mariadb)" >&2; exit 2 ;;
    esac
  done
  LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)
  BUSY_AFTER=$(busy)
  declare -p MODE STARTED TREE LOAD_BEFORE LOAD_AFTER BUSY_BEFORE BUSY_AFTER MDB_VERSION COMMANDS RAN >"$META"
fi

# --- bench/RESULTS.md ----------------------------------------------------------------
{
  echo "# Load test results"
  echo
  echo "Written by \`bench/run.sh\` ($MODE), $STARTED. Tree: \`$TREE\`."
  echo "The tool and the server share the machine, so every number includes the tool's own CPU"
  echo "(the \"tool\" line of each table); all traffic is on 127.0.0.x."
  echo
  echo "## Machine"
  echo
  echo "| | |"
  echo "|---|---|"
  echo "| CPUs (\`nproc\`) | $(nproc) × $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//') |"
  echo "| memory | $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo) |"
  echo "| kernel | $(uname -srm) |"
  echo "| Go | $(go version | cut -d' ' -f3-) |"
  echo "| \`ulimit -n\` | $(ulimit -n) |"
  echo "| MariaDB | ${MDB_VERSION:-not run} |"
  echo "| load average (1, 5, 15 min) | $LOAD_BEFORE before, $LOAD_AFTER after |"
  echo "| other processes at ≥ 5 % of a core (over 1 s) | before: ${BUSY_BEFORE:-none}; after: ${BUSY_AFTER:-none} |"
  echo
  echo "## Commands"
  echo
  echo "\`\$T\` is a temporary directory; each server listens on a free port (\`LISTEN_ADDR=127.0.0.1:0\`)."
  echo
  echo '```sh'
  printf '%s\n' "${COMMANDS[@]}"
  echo '```'
  echo
  echo "## Results against the targets"
  echo
  echo "\"met at this size\" means the run was smaller than the target's size (the default small"
  echo "mode) and met the target's thresholds there; only \`FULL=1\` can meet a target outright."
  echo
  for db in "${RAN[@]}"; do
    "$OUT/mapsim-bench" report "$OUT/$db.jsonl"
  done
  # What limits each number: the analysis written from the profiles below.
  if [ -f bench/LIMITS.md ]; then
    cat bench/LIMITS.md
    echo
  fi
  echo "## Profiles"
  echo
  echo "CPU profiles of the server over each measured window (idle: its heap at the end), from its"
  echo "\`DEBUG_ADDR\` pprof listener; the files are in \`bench/out/\` (\`go tool pprof bench/out/mapsim-chat FILE\`)."
  echo "The top entries by cumulative share:"
  for db in "${RAN[@]}"; do
    for f in "$OUT/$db"-*.pprof; do
      [ -e "$f" ] || continue
      echo
      echo "#### $(basename "$f" .pprof)"
      echo
      echo '```'
      go tool pprof -top -cum -nodecount=14 "$OUT/mapsim-chat" "$f" 2>/dev/null | sed -n '/flat%/,$p' | cut -c1-150
      echo '```'
    done
  done
  echo
  echo "## Plots"
  echo
  for db in "${RAN[@]}"; do
    for f in "$PLOTS/$db"-*.svg; do
      [ -e "$f" ] && echo "- [$(basename "$f" .svg)](plots/$(basename "$f"))"
    done
  done
  echo
  echo "## Every table"
  for db in "${RAN[@]}"; do
    echo
    echo "### $db"
    cat "$OUT/$db-details.md"
  done
} >"$RESULTS"
log "wrote $RESULTS"
