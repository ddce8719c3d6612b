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
. loadtest/lib.sh
lt_build
lt_workdir
lt_serve 28080 21935 28189
lt_feed "$rate" 21935
for n in ${counts[@]}; do
  "$bin/onair-loadtest" whep --http 127.0.0.1:28080 --viewers "$n" --seconds 10 --pid "$pid" \
    --json "target/whep-${rate}k-$n.json"
  sleep 2
done
