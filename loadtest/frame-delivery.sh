#!/usr/bin/env bash
# Frame delivery: how long the server takes from an access unit (RTMP) or a
# datagram (WHIP) coming in to every viewer's copy of it handed to the
# kernel, with VIEWERS WebRTC viewers of 720p30 video at BITRATE_KBPS. The
# server runs pinned to CPU 0 and the load generator to CPU 1. Two runs,
# one per publisher: ffmpeg looping a pre-encoded clip over RTMP, then the
# load tool's own WHIP publisher (a pre-encoded pattern). The figures are
# the server's `onair_frame_delivery_seconds` and
# `onair_forward_latency_seconds` histograms over each run's window
# (p50/p99 interpolated within a bucket, as Prometheus does).
# Usage: loadtest/frame-delivery.sh [BITRATE_KBPS] [VIEWERS] [SECONDS]   e.g. 2500 100 20
set -euo pipefail
cd "$(dirname "$0")/.."
rate=${1:-2500}; viewers=${2:-100}; secs=${3:-20}
. loadtest/lib.sh
lt_build
out=${OUT:-target/frame-delivery}
mkdir -p "$out"
lt_workdir
TASKSET=${TASKSET:-0} lt_serve 28080 21935 28189
lt_feed "$rate" 21935
feed=$!
load() {
  taskset -c "${LOAD_CPU:-1}" "$bin/onair-loadtest" whep --http 127.0.0.1:28080 --viewers "$viewers" \
    --ramp-ms 20 --seconds "$secs" --pid "$pid" --quiet "$@"
}
load --json "$out/rtmp-${rate}k-$viewers.json" >&2
kill "$feed"; wait "$feed" 2>/dev/null || true
sleep 3
load --whip-key "$key" --size 1280x720 --kbps "$rate" --json "$out/whip-${rate}k-$viewers.json" >&2
cp "$work/server.log" "$out/server.log"
python3 - "$out/rtmp-${rate}k-$viewers.json" "$out/whip-${rate}k-$viewers.json" <<'PY'
import json, sys
g = lambda v: "-" if v is None else f"{v:.2f}"
print("| publisher | viewers | connected | loss | server CPU (% of its core) | access units: p50 / p99 (ms) | WHIP packets: p50 / p99 (ms) |")
print("|---|---|---|---|---|---|---|")
for name, path in zip(("RTMP (ffmpeg, clip)", "WHIP (load tool)"), sys.argv[1:3]):
    r = json.load(open(path))
    s = r.get("server") or {}
    lat = s.get("latency") or {}
    fd, wp = lat.get("frame_delivery_ms") or {}, lat.get("whip_packet_forwarding_ms") or {}
    print(f"| {name} | {r['viewers']} | {r['connected']} | {g(r.get('loss_percent'))} % | {g(s.get('cpu_percent_of_one_core'))} "
          f"| {g(fd.get('p50'))} / {g(fd.get('p99'))} ({int(fd.get('count') or 0)}) | {g(wp.get('p50'))} / {g(wp.get('p99'))} ({int(wp.get('count') or 0)}) |")
PY
