#!/usr/bin/env bash
# A site on one machine: an origin and two edges (release binaries) on one
# Postgres database and one redis-server, all pinned to CPU 0, the load on
# CPU 1. Publishes the 600 kbit/s clip to the origin, then:
#   1. VIEWERS WebRTC viewers spread over the two edges (onair-loadtest
#      whep --node A --node B), with each process's CPU over the window;
#   2. CHAT chat sockets spread over all three servers at RATE messages/s
#      (most pairs of writer and reader on different servers).
# Usage: loadtest/site.sh [VIEWERS] [CHAT] [RATE]   (default 300 500 20)
# Needs Postgres (scripts/postgres.sh) and redis-server. Reports in
# target/site-*.json; the per-process CPU table on stdout.
set -euo pipefail
cd "$(dirname "$0")/.."
viewers=${1:-300}; chat=${2:-500}; rate=${3:-20}
. loadtest/lib.sh
lt_build
lt_workdir
admin=$(./scripts/postgres.sh)
db="${admin%/*}/onair_site_$$"
psql -q "$admin" -c "CREATE DATABASE onair_site_$$"
trap 'kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null; rm -rf "$work"; psql -q "$admin" -c "DROP DATABASE IF EXISTS onair_site_$$" || true' EXIT

taskset -c 0 redis-server --bind 127.0.0.1 --port 26379 --save "" --appendonly no >"$work/redis.log" &
redis_pid=$!
key=$("$bin/onair" channel create demo --data-dir "$work" --database-url "$db")
common=(--database-url "$db" --redis-url redis://127.0.0.1:26379 --offer-rate 0
  --register-per-hour 0 --chat-sockets-per-host 100000 --icecast 127.0.0.1:0)
node() { # NAME ROLE HTTP_PORT UDP_PORT RTMP_PORT
  mkdir -p "$work/$1"
  taskset -c 0 "$bin/onair" serve --role "$2" --data-dir "$work/$1" "${common[@]}" \
    --http "127.0.0.1:$3" --webrtc-udp "127.0.0.1:$4" --rtmp "127.0.0.1:$5" \
    --node-url "http://127.0.0.1:$3" 2>"$work/$1.log" &
}
node origin origin 28080 28189 21935; origin=$!
node a edge 28081 28191 21936; edge_a=$!
node b edge 28082 28192 21937; edge_b=$!
sleep 2
for p in $origin $edge_a $edge_b; do kill -0 "$p" || { tail "$work"/*.log; exit 1; }; done
lt_feed 600 21935

ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)
# cpu_window SECONDS: each process's share of a core over the next SECONDS.
cpu_window() {
  local names=(origin edge-a edge-b redis) pids=($origin $edge_a $edge_b $redis_pid) before=() i
  for p in "${pids[@]}"; do before+=("$(ticks "$p")"); done
  sleep "$1"
  for i in "${!pids[@]}"; do
    printf '%-8s %6.1f %% of a core\n' "${names[$i]}" \
      "$(echo "($(ticks "${pids[$i]}") - ${before[$i]}) * 100 / $hz / $1" | bc -l)"
  done
}
echo "== idle: the publisher on the origin, nobody watching (10 s)"
cpu_window 10
echo "== $viewers WebRTC viewers over two edges"
taskset -c 1 "$bin/onair-loadtest" whep --http 127.0.0.1:28080 --node 127.0.0.1:28081 \
  --node 127.0.0.1:28082 --viewers "$viewers" --seconds 30 --metrics 127.0.0.1:28081 \
  --json target/site-whep.json >"$work/whep.out" &
load=$!
# Joins take VIEWERS x 20 ms; the tool then warms up before its window.
sleep $(( viewers / 50 + 10 ))
cpu_window 15
curl -s http://127.0.0.1:28080/metrics | grep -E '^onair_webrtc_relay_sessions|^onair_viewers\{.*webrtc' || true
for p in 28081 28082; do curl -s "http://127.0.0.1:$p/metrics" | grep -E '^onair_viewers\{.*webrtc|^onair_edge_pulls' || true; done
wait $load
cat "$work/whep.out"
echo "== $chat chat sockets over three servers, $rate messages/s"
taskset -c 1 "$bin/onair-loadtest" chat --http 127.0.0.1:28080 --node 127.0.0.1:28080 \
  --node 127.0.0.1:28081 --node 127.0.0.1:28082 --clients "$chat" --rate "$rate" --seconds 20 \
  --json target/site-chat.json >"$work/chat.out" &
load=$!
sleep 12
cpu_window 10
wait $load
cat "$work/chat.out"
