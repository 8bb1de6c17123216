#!/usr/bin/env bash
# bench/nodes.sh: one room of CLIENTS members on one node, then spread over
# NODES nodes that share a throwaway MariaDB and redis-server; for each, the
# fanout scenario at each rate of RATES (messages/s into the room). Prints
# the tables; the highest rate whose p99 stays within 200 ms with no loss is
# the sustained one.
#
# With SECTIONS=failover (or "fanout failover") it also kills a node: NODES
# nodes, KILL_CLIENTS clients on the last one and the rest of KILL_TOTAL on
# the others, rooms of 5-10 members, KILL_RATE msgs/s; after 10 s the load
# tool sends SIGKILL to that node's process and times its clients' move to
# the others (all back; all holding every message acked before the kill).
#
# Several nodes each get GOMAXPROCS = cores / NODES (at least 1), their share
# of this machine; NODE_GOMAXPROCS sets another (0: Go's default, every core
# to every node, which oversubscribes the cores NODES times over). ONE_NODE=0
# skips the one-node runs, SEVERAL=0 the several-node ones. SENDERS (4) of
# the room's members send; clients go to the nodes in turn, so with 3
# nodes 4 senders put two on the first node, and 6 spread evenly.
#
# PIN=1 runs the load tool on the last core and the servers (nodes,
# MariaDB, Redis) on the others (taskset): on two cores the tool's own
# work, about a core at these rates, then takes nothing from the servers,
# and the comparison measures what the servers do. Each fan-out run also
# saves how busy each core was over 10 s of the measured time, and how
# much of a core MariaDB, Redis and each node used in those 10 s
# (bench/out/nodes-cpu-*.txt). BENCH_ARGS adds arguments to every run of
# the load tool (for example -cpuprofile FILE).
#
# PROFILE=1 gives every node a DEBUG_ADDR and saves, for each fan-out run,
# a CPU profile of each node over 10 s of the measured time and its
# /debug/vars and /metrics before and after, and MariaDB's row-lock
# counters (bench/out/nodes-prof-*). TRACE=1 with it also saves a 3 s
# execution trace of each node (`go tool trace -pprof=sched FILE` shows
# what waited for a processor, and where).
#
#   bench/nodes.sh                       CLIENTS=1000 NODES=3 RATES="10 20 40"
#   CLIENTS=1000 RATES="30 60" bench/nodes.sh
#   PIN=1 SENDERS=6 CLIENTS=1000 RATES="200 230 260" bench/nodes.sh
#   SECTIONS=failover KILL_CLIENTS=5000 KILL_TOTAL=7000 KILL_USERS=3500 bench/nodes.sh
#
# Everything it starts is stopped by pid on exit; all traffic is on 127.0.0.x.
set -euo pipefail
export GOTOOLCHAIN="${GOTOOLCHAIN:-auto}"
cd "$(dirname "$0")/.."
CLIENTS=${CLIENTS:-1000} NODES=${NODES:-3} RATES=${RATES:-"10 20 40"} DURATION=${DURATION:-20s}
SECTIONS=${SECTIONS:-fanout} PROFILE=${PROFILE:-} ONE_NODE=${ONE_NODE:-1} SEVERAL=${SEVERAL:-1} SENDERS=${SENDERS:-4}
# PIN=1 (see above): SRV and TOOL prefix the servers' and the tool's commands.
PIN=${PIN:-} SRV=() TOOL=() SRV_CORES=$(nproc)
if [ -n "$PIN" ]; then
  [ "$(nproc)" -ge 2 ] || { echo "PIN=1 needs at least 2 cores" >&2; exit 2; }
  SRV_CORES=$(( $(nproc) - 1 ))
  SRV=(taskset -c "0-$((SRV_CORES - 1))") TOOL=(taskset -c "$SRV_CORES")
fi
NODE_GOMAXPROCS=${NODE_GOMAXPROCS:-$(( SRV_CORES / NODES > 0 ? SRV_CORES / NODES : 1 ))}
KILL_CLIENTS=${KILL_CLIENTS:-5000} KILL_TOTAL=${KILL_TOTAL:-7000} KILL_USERS=${KILL_USERS:-$KILL_TOTAL} KILL_RATE=${KILL_RATE:-100}
OUT=$PWD/bench/out
mkdir -p "$OUT"
# The databases are fresh each run: tokens of an earlier run are no good.
rm -f "$OUT"/nodes-tokens-*.json
T=$(mktemp -d /tmp/mapsim-nodes.XXXXXX)
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
PIDS=()
stop_pid() {
  kill -0 "$1" 2>/dev/null || return 0
  kill -TERM "$1" 2>/dev/null || true
  for _ in $(seq 150); do kill -0 "$1" 2>/dev/null || return 0; sleep 0.1; done
  kill -KILL "$1" 2>/dev/null || true
}
cleanup() { local p; for p in "${PIDS[@]}"; do stop_pid "$p"; done; wait 2>/dev/null || true; rm -rf "$T"; }
trap cleanup EXIT
trap 'exit 130' INT TERM
free_port() {
  local p
  for _ in $(seq 100); do
    p=$((15000 + RANDOM % 17000))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then echo "$p"; return 0; fi
  done
  return 1
}
sbin() { command -v "$1" 2>/dev/null || echo "/usr/sbin/$1"; }

CGO_ENABLED=0 go build -o "$OUT/mapsim-chat" ./cmd/mapsim-chat
CGO_ENABLED=0 go build -o "$OUT/mapsim-bench" ./cmd/mapsim-bench

# MariaDB and Redis, as plain processes.
asuser=(); [ "$(id -u)" = 0 ] && asuser=(--user=root)
mkdir -p "$T/mdb/tmp"
"$(sbin mariadb-install-db)" --no-defaults --datadir="$T/mdb/db" --auth-root-authentication-method=normal --skip-test-db "${asuser[@]}" >"$T/install.log" 2>&1
MDB_PORT=$(free_port)
"${SRV[@]}" "$(sbin mariadbd)" --no-defaults --datadir="$T/mdb/db" --socket="$T/mdb/sock" --port="$MDB_PORT" --bind-address=127.0.0.1 \
  --pid-file="$T/mdb/pid" --skip-name-resolve --tmpdir="$T/mdb/tmp" --innodb-buffer-pool-size=512M --max-connections=1000 \
  "${asuser[@]}" >"$OUT/nodes-mariadbd.log" 2>&1 &
PIDS+=($!) MDB_PID=$!
for _ in $(seq 600); do "$(sbin mariadb-admin)" --socket="$T/mdb/sock" -uroot ping >/dev/null 2>&1 && break; sleep 0.1; done
REDIS_PORT=$(free_port)
"${SRV[@]}" redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no >"$OUT/nodes-redis.log" 2>&1 &
PIDS+=($!) REDIS_PID=$!

ENV=(RATE_LIMIT_MESSAGES_PER_SECOND=100000 RATE_LIMIT_MESSAGES_BURST=100000 RATE_LIMIT_FRAMES_PER_SECOND=100000
  RATE_LIMIT_FRAMES_BURST=100000 MAX_CONNECTIONS_PER_IP=0 MAX_CONNECTIONS_PER_USER=0 REGISTRATION_PER_HOUR=0
  LOG_FORMAT=text SECRET_KEY=TWFwc2ltQ2hhdFRlc3RTZWNyZXRLZXkwMTIzNDU2Nzg5
  DB_HOST=127.0.0.1 DB_PORT="$MDB_PORT" DB_USER=root UPLOAD_DIR="$T/uploads" DATA_DIR="$T/data")
METRICS_TOKEN=$(od -An -N24 -tx1 /dev/urandom | tr -d ' \n')
[ -n "$PROFILE" ] && ENV+=(METRICS_TOKEN="$METRICS_TOKEN")

# start_nodes N DBNAME [REDIS]: N server processes; sets URLS.
URLS=() NODE_PIDS=() DEBUG_URLS=()
start_nodes() {
  local n=$1 db=$2 redis=${3:-} i logf url
  "$(sbin mariadb)" --socket="$T/mdb/sock" -uroot -e "CREATE DATABASE IF NOT EXISTS $db CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"
  URLS=() NODE_PIDS=() DEBUG_URLS=()
  for i in $(seq "$n"); do
    logf="$OUT/nodes-$db-$i.log"
    local env=("${ENV[@]}" DB_NAME="$db" LISTEN_ADDR=127.0.0.1:0)
    if [ "$n" -gt 1 ] && [ "$NODE_GOMAXPROCS" != 0 ]; then env+=(GOMAXPROCS="$NODE_GOMAXPROCS"); fi
    if [ -n "$PROFILE" ]; then
      local dport; dport=$(free_port)
      env+=(DEBUG_ADDR="127.0.0.1:$dport")
      DEBUG_URLS+=("http://127.0.0.1:$dport")
    fi
    [ -n "$redis" ] && env+=(REDIS_URL="redis://127.0.0.1:$REDIS_PORT" REDIS_PREFIX="$db:")
    "${SRV[@]}" env "${env[@]}" "$OUT/mapsim-chat" serve >"$logf" 2>&1 &
    PIDS+=($!) NODE_PIDS+=($!)
    for _ in $(seq 600); do
      url=$(sed -n 's/^Mapsim Chat listening on \(http:\/\/[0-9.:]*\).*/\1/p' "$logf" | head -1)
      [ -n "$url" ] && break
      sleep 0.1
    done
    URLS+=("$url")
  done
}
stop_nodes() { local p; for p in "${NODE_PIDS[@]}"; do stop_pid "$p"; done; }

# connected LOG: waits until the load tool has printed the last progress
# line of its connect phase (mapsim-bench's progress, setup.go), then 5 s.
connected() {
  for _ in $(seq 1200); do grep -qE '^  connected: [0-9]+/[0-9]+ in ' "$1" 2>/dev/null && break; sleep 0.5; done
  sleep 5
}

# profile LABEL RATE: in the background, once the load tool has connected
# its clients (registration and login, argon2, can take a minute) and its
# 3 s warm-up is over, each node's /debug/vars and /metrics, a 10 s CPU profile,
# and both again.
profile() {
  [ -n "$PROFILE" ] || return 0
  local label=$1 rate=$2 i=0 u log="$OUT/nodes-$1-$2.log" # run removed an earlier one
  # MariaDB's row-lock waits over the same window (the nodes take turns
  # on the chat's row).
  ( connected "$log"
    "$(sbin mariadb)" --socket="$T/mdb/sock" -uroot -N -e "SHOW GLOBAL STATUS LIKE 'Innodb_row_lock%'" >"$OUT/nodes-prof-$label-$rate-locks0.txt"
    sleep 10
    "$(sbin mariadb)" --socket="$T/mdb/sock" -uroot -N -e "SHOW GLOBAL STATUS LIKE 'Innodb_row_lock%'" >"$OUT/nodes-prof-$label-$rate-locks1.txt" ) &
  for u in "${DEBUG_URLS[@]}"; do
    i=$((i + 1))
    local base="$OUT/nodes-prof-$label-$rate-node$i" url=${URLS[$((i - 1))]}
    ( connected "$log"
      curl -s "$u/debug/vars" >"$base-vars0.json"
      curl -s -H "Authorization: Bearer $METRICS_TOKEN" "$url/metrics" >"$base-metrics0.txt"
      if [ -n "${TRACE:-}" ]; then curl -s -o "$base.trace" "$u/debug/pprof/trace?seconds=3" & fi
      curl -s -o "$base.pprof" "$u/debug/pprof/profile?seconds=10"
      wait
      curl -s "$u/debug/vars" >"$base-vars1.json"
      curl -s -H "Authorization: Bearer $METRICS_TOKEN" "$url/metrics" >"$base-metrics1.txt" ) &
  done
}

# ticks PID: the CPU time the process has used so far, user and system, in
# clock ticks (after the name in /proc/PID/stat, utime and stime are the
# 12th and 13th fields).
ticks() { sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | awk '{ print $12 + $13 }'; }

# proc_ticks: ticks of each server process, a line each: mariadb, redis,
# node1, node2...
proc_ticks() {
  local i=0 p
  echo "mariadb $(ticks "$MDB_PID")"
  echo "redis $(ticks "$REDIS_PID")"
  for p in "${NODE_PIDS[@]}"; do i=$((i + 1)); echo "node$i $(ticks "$p")"; done
}

# cpu_busy LABEL RATE: in the background, once the load tool has connected
# and warmed up, how busy each core was over 10 s of the measured time
# (from /proc/stat), and how much of a core each server process used
# meanwhile, in bench/out/nodes-cpu-LABEL-RATE.txt. With PIN=1 the
# servers' cores show how close they were to their limit, and the
# processes' shares who had them.
cpu_busy() {
  local label=$1 rate=$2 log="$OUT/nodes-$1-$2.log" out="$OUT/nodes-cpu-$1-$2.txt"
  ( connected "$log"
    local t0 t1
    grep '^cpu[0-9]' /proc/stat >"$T/stat0-$label-$rate"
    proc_ticks >"$T/ticks0-$label-$rate"; t0=$(date +%s%N)
    sleep 10
    grep '^cpu[0-9]' /proc/stat >"$T/stat1-$label-$rate"
    proc_ticks >"$T/ticks1-$label-$rate"; t1=$(date +%s%N)
    # user nice system idle iowait irq softirq steal: busy is all but idle and iowait.
    paste -d' ' "$T/stat0-$label-$rate" "$T/stat1-$label-$rate" | awk '{
      b0 = $2 + $3 + $4 + $7 + $8 + $9; t0 = b0 + $5 + $6
      b1 = $13 + $14 + $15 + $18 + $19 + $20; t1 = b1 + $16 + $17
      printf "%s %.0f%% busy\n", $1, 100 * (b1 - b0) / (t1 - t0) }' >"$out"
    awk -v hz="$(getconf CLK_TCK)" -v s="$(( (t1 - t0) / 1000000 ))" 'NR == FNR { u0[$1] = $2; next }
      { printf "%s %.0f%% of a core\n", $1, 100 * ($2 - u0[$1]) / hz / (s / 1000) }' \
      "$T/ticks0-$label-$rate" "$T/ticks1-$label-$rate" >>"$out" ) &
}

run() {
  local label=$1 rate=$2; shift 2
  echo "### $label, $CLIENTS members, $rate msgs/s" >&2
  # profile and cpu_busy wait for this run's log: not an earlier run's.
  rm -f "$OUT/nodes-$label-$rate.log"
  profile "$label" "$rate"
  cpu_busy "$label" "$rate"
  "${TOOL[@]}" "$OUT/mapsim-bench" -scenario fanout -clients "$CLIENTS" -senders "$SENDERS" -rate "$rate" -warmup 3s -duration "$DURATION" \
    -label "$label" -token-file "$OUT/nodes-tokens-fanout.json" -json "$OUT/nodes.jsonl" "$@" ${BENCH_ARGS:-} 2>"$OUT/nodes-$label-$rate.log" \
    || tail -5 "$OUT/nodes-$label-$rate.log" >&2
}

if [[ " $SECTIONS " == *" fanout "* ]]; then
  # One database for both, so the users are registered (argon2) once.
  if [ "$ONE_NODE" = 1 ]; then
    start_nodes 1 fanout
    for r in $RATES; do run one-node "$r" -url "${URLS[0]}"; done
    stop_nodes
  fi

  if [ "$SEVERAL" = 1 ]; then
    start_nodes "$NODES" fanout redis
    echo "### $NODES nodes, GOMAXPROCS=$NODE_GOMAXPROCS each (0: Go's default)" >&2
    args=(); for u in "${URLS[@]}"; do args+=(-url "$u"); done
    for r in $RATES; do run "$NODES-nodes" "$r" "${args[@]}" -redis-addr "127.0.0.1:$REDIS_PORT"; done
    stop_nodes
  fi
fi

if [[ " $SECTIONS " == *" failover "* ]]; then
  start_nodes "$NODES" failover redis
  args=(); for u in "${URLS[@]}"; do args+=(-url "$u"); done
  echo "### failover: $KILL_CLIENTS of $KILL_TOTAL clients on the node killed, $KILL_RATE msgs/s" >&2
  "${TOOL[@]}" "$OUT/mapsim-bench" -scenario failover "${args[@]}" -kill-pid "${NODE_PIDS[-1]}" -kill-clients "$KILL_CLIENTS" \
    -clients "$KILL_TOTAL" -users "$KILL_USERS" -room-size 5-10 -rate "$KILL_RATE" -warmup 10s -duration 20s -drain 30s \
    -label "$NODES-nodes-kill" -token-file "$OUT/nodes-tokens-failover.json" -json "$OUT/nodes.jsonl" \
    -redis-addr "127.0.0.1:$REDIS_PORT" 2>"$OUT/nodes-failover.log" || tail -5 "$OUT/nodes-failover.log" >&2
  stop_nodes
fi
