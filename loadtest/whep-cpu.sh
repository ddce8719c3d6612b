#!/usr/bin/env bash
# Server CPU and memory per WebRTC viewer, on loopback.
# Usage: loadtest/whep-cpu.sh [BITRATE_KBPS] [VIEWERS...]
#   e.g. loadtest/whep-cpu.sh 2500 10 50 100
# Builds release binaries, encodes a test clip at the bitrate once (x264,
# 720p30, 1 s GOP, no B-frames, CBR), loops it into onair with ffmpeg
# `-c copy` (so encoding costs nothing during the run), then runs
# `onair-loadtest whep` for each viewer count: a table on stdout, the JSON
# report in target/whep-RATEk-N.json. (loadtest/whep-ramp.sh ramps until
# loss or CPU runs out.)
set -euo pipefail
cd "$(dirname "$0")/.."
rate=${1:-2500}; shift || true
counts=("${@:-10 50 100}")
profile=${PROFILE:-release}
cargo build --profile "$profile" -p onair -p onair-loadtest >&2
bin=target/$profile
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
clip=target/loadclip-${rate}k.flv
if [ ! -f "$clip" ]; then
  ffmpeg -hide_banner -loglevel error -y -f lavfi -i testsrc2=size=1280x720:rate=30 \
    -f lavfi -i sine=frequency=440:sample_rate=48000 -t 20 -vf noise=alls=12:allf=t \
    -c:v libx264 -preset veryfast -tune zerolatency -g 30 -bf 0 -b:v ${rate}k -maxrate ${rate}k \
    -bufsize ${rate}k -x264-params nal-hrd=cbr -c:a aac -b:a 128k -ar 48000 -f flv "$clip"
fi
key=$("$bin/onair" channel create demo --data-dir "$work")
"$bin/onair" serve --data-dir "$work" --http 127.0.0.1:28080 --rtmp 127.0.0.1:21935 \
  --webrtc-udp 127.0.0.1:28189 --offer-rate 0 2>"$work/server.log" &
pid=$!
sleep 1
ffmpeg -hide_banner -loglevel error -stream_loop -1 -re -i "$clip" -c copy -f flv \
  "rtmp://127.0.0.1:21935/live/$key" &
sleep 3
for n in ${counts[@]}; do
  "$bin/onair-loadtest" whep --http 127.0.0.1:28080 --viewers "$n" --seconds 10 --pid "$pid" \
    --json "target/whep-${rate}k-$n.json"
  sleep 2
done
