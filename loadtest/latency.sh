#!/usr/bin/env bash
# Glass-to-glass latency and chat delivery on one release server, loopback:
# onair-loadtest's synthetic publisher (openh264 pattern, 720p30 2.5 Mbit/s,
# a send-time stamp in an SEI in every frame) over RTMP or WHIP, and
# viewers that read the stamps when the frame arrives (WebRTC: first RTP
# packet of the frame; LL-HLS: the part holding it). No decode, no player
# buffer: this is what the server and network add.
# Usage: loadtest/latency.sh   (VIEWERS=10 SECS=20 CHAT_CLIENTS=200 CHAT_RATE=20)
set -euo pipefail
cd "$(dirname "$0")/.."
VIEWERS=${VIEWERS:-10}
SECS=${SECS:-20}
. loadtest/lib.sh
lt_build
out=${OUT:-target/latency}
mkdir -p "$out"
lt_workdir
lt_serve 29080 29935 29189
lt() { timeout 300 "$bin/onair-loadtest" "$@" --http 127.0.0.1:29080 --pid "$pid" --quiet; }
src=(--size 1280x720 --kbps 2500 --fps 30)
rtmp="rtmp://127.0.0.1:29935/live/$key"
lt whep --viewers "$VIEWERS" --seconds "$SECS" --rtmp "$rtmp" "${src[@]}" --json "$out/rtmp-webrtc.json"
sleep 2
lt whep --viewers "$VIEWERS" --seconds "$SECS" --whip-key "$key" "${src[@]}" --json "$out/whip-webrtc.json"
sleep 2
lt hls --viewers "$VIEWERS" --seconds "$SECS" --rtmp "$rtmp" "${src[@]}" --json "$out/rtmp-llhls.json"
lt chat --clients "${CHAT_CLIENTS:-200}" --rate "${CHAT_RATE:-20}" --seconds "$SECS" --json "$out/chat.json"
python3 - "$out" <<'PY'
import json, sys
o = sys.argv[1]
g = lambda v, d=1: "-" if v is None else f"{v:.{d}f}"
print("| path | viewers | latency p50 | latency p99 | samples | freezes/stalls | server CPU |")
print("|---|---|---|---|---|---|---|")
for f, name in [("rtmp-webrtc","RTMP -> WebRTC"),("whip-webrtc","WHIP -> WebRTC"),("rtmp-llhls","RTMP -> LL-HLS (part arrival)"),("chat","chat (WebSocket, send -> every client)")]:
    r = json.load(open(f"{o}/{f}.json")); s = r.get("server") or {}
    n = r.get("connected")
    print(f"| {name} | {n} | {g(r.get('latency_ms_p50'))} ms | {g(r.get('latency_ms_p99'))} ms | {r.get('latency_samples')} | {r.get('freezes', r.get('stalls', '-'))} | {g(s.get('cpu_percent_of_one_core'))} % |")
PY
