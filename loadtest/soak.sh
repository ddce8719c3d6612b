#!/usr/bin/env bash
# The soak (issue 10, item 13): one release server on loopback with a fresh
# data dir, pinned to CPU 0, and `onair-loadtest soak` on CPU 1 for MINUTES
# (default 30): restarting RTMP and WHIP publishers, WebRTC and LL-HLS
# viewers, chat and a spammer, every attack in rotation (TURN too: the
# server runs its built-in relay), and a victim channel with a decoding
# viewer. Then SIGTERM (the server must exit within 10 s, with status 0),
# and every recording must be finalized: each broadcast row has an end and
# a duration, each playlist ends with EXT-X-ENDLIST, and ffprobe reads it.
#
# The server runs with its default limits: the tool's clients each come
# from their own 127.0.0.0/8 address (attackers from theirs), so no limit
# has to be lifted for the load itself.
#
# Usage: loadtest/soak.sh [MINUTES]   (OUT=target/soak; extra tool flags in SOAK_FLAGS)
set -euo pipefail
cd "$(dirname "$0")/.."
MINUTES=${1:-30}
. loadtest/lib.sh
lt_build
out=${OUT:-target/soak}
mkdir -p "$out"
lt_workdir
http=127.0.0.1:30080 rtmp=127.0.0.1:30935 udp=127.0.0.1:30189 turn=127.0.0.1:30478
secret=soak-$RANDOM$RANDOM
taskset -c 0 "$bin/onair" serve --data-dir "$work" --http "$http" --rtmp "$rtmp" \
  --webrtc-udp "$udp" --turn "$turn" --turn-secret "$secret" --turn-relay-ports 40000-40999 \
  2>"$out/server.log" &
pid=$!
for _ in $(seq 50); do
  curl -fs "http://$http/healthz" >/dev/null 2>&1 && break
  sleep 0.2
done
kill -0 "$pid" || { tail "$out/server.log"; exit 1; }
echo "soak: server pid $pid, $MINUTES min; load average now: $(cut -d' ' -f1-3 /proc/loadavg)"
lscpu | grep -E '^(Model name|CPU\(s\)|Thread|Core)' > "$out/lscpu.txt" || true
# The run is bounded by --minutes; timeout is a backstop.
timeout $(( MINUTES * 60 + 600 )) taskset -c 1 "$bin/onair-loadtest" soak --http "$http" \
  --rtmp "$rtmp" --turn "$turn" --turn-secret "$secret" --minutes "$MINUTES" --pid "$pid" \
  --timeline "$out/timeline.jsonl" --json "$out/summary.json" ${SOAK_FLAGS:-} | tee "$out/summary.txt"
echo "soak: load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"

# SIGTERM: out within 10 s, cleanly (a watchdog kills it at 10 s).
t0=$(date +%s%N)
kill -TERM "$pid"
( sleep 10; kill -KILL "$pid" 2>/dev/null ) &
watchdog=$!
status=0
wait "$pid" || status=$?
stop_ms=$(( ($(date +%s%N) - t0) / 1000000 ))
kill "$watchdog" 2>/dev/null || true
echo "soak: SIGTERM -> exit status $status after $stop_ms ms"
panics=$(grep -c 'panicked' "$out/server.log" || true)

# Every recording finalized (read from the data dir: a restarted server
# would finalize leftovers itself and hide a failure).
# The hostile WHIP publishers (the attacker's channel, `s<run>a`) never send
# a decodable picture: their broadcasts are empty (no duration, no bytes)
# and counted apart. Every other channel's must be a real recording.
bad=0 rows=0 empty=0
while IFS='|' read -r id channel ended duration size recorded; do
  rows=$((rows + 1))
  dir="$work/recordings/$id"
  why=
  if [ -z "$ended" ]; then why="row has no end"
  elif [ "$recorded" = 1 ] && [ "$duration" -le 0 ] && [ "$size" = 0 ] \
    && [[ "$channel" =~ ^s[0-9a-f]{6}a$ ]]; then empty=$((empty + 1))
  elif [ "$recorded" = 1 ]; then
    if [ "$duration" -le 0 ]; then why="recorded, but no duration"
    elif [ ! -f "$dir/index.m3u8" ]; then why="no playlist"
    elif ! tail -n1 "$dir/index.m3u8" | grep -q EXT-X-ENDLIST; then why="playlist without EXT-X-ENDLIST"
    elif ! got=$(ffprobe -v error -show_entries format=duration -of csv=p=0 "$dir/index.m3u8" 2>&1) \
      || [ -z "$got" ]; then why="ffprobe: $got"
    fi
  fi
  if [ -n "$why" ]; then
    bad=$((bad + 1))
    echo "soak: broadcast $id not finalized: $why"
  fi
done < <(sqlite3 "$work/onair.db" "SELECT id, channel, IFNULL(ended_at, ''), duration_ms, size_bytes, recorded FROM broadcasts ORDER BY id")
recorded=$(sqlite3 "$work/onair.db" "SELECT COUNT(*) FROM broadcasts WHERE recorded = 1")
recorded=$((recorded - empty))
echo "soak: $rows broadcasts ($recorded recorded, $empty empty ones of the hostile publishers), $bad not finalized"

python3 - "$out/summary.json" "$status" "$stop_ms" "$panics" "$recorded" "$bad" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
status, stop_ms, log_panics, rows, bad = sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
v = s["verdict"]
checks = [
    ("RSS flat within ±10 % of its median after warm-up", v["rss_flat"], f'{s["rss_mib_min"]:.1f}..{s["rss_mib_max"]:.1f} MiB, median {s["rss_mib_median"]:.1f}, spread {s["rss_spread_percent"]:.1f} % of it, drift {s["rss_drift_percent"]:+.1f} %'),
    ("file descriptors flat", v["fds_flat"], f'{s["fds_min"]:.0f}..{s["fds_max"]:.0f}, between attacks {s["fds_calm_min"]:.0f}..{s["fds_calm_max"]:.0f}'),
    ("zero panics", v["zero_panics"] and log_panics == 0, f'{s["panics"]:.0f} counted, {log_panics} in the log'),
    ("attacks ran, none failed on the attacker's side", s["attacks_run"] > 0 and s["attack_errors"] == 0, f'{s["attacks_run"]} run, {s["attack_errors"]} failed'),
    ("victim kept playing", v["victim_kept_playing"], f'{s["victim_frames"]:.0f} frames, {s["victim_decode_errors"]:.0f} errors, longest gap {s["victim_longest_gap_ms"]:.0f} ms'),
    ("clean exit within 10 s of SIGTERM", status == "0" and stop_ms <= 10000, f"status {status}, {stop_ms} ms"),
    ("every recording finalized", bad == 0 and rows > 0, f"{rows} recorded broadcasts, {bad} not finalized"),
]
ok = all(c[1] for c in checks)
for name, good, detail in checks:
    print(f'{"PASS" if good else "FAIL"}  {name}: {detail}')
print("soak verdict:", "PASS" if ok else "FAIL")
sys.exit(0 if ok else 1)
PY
