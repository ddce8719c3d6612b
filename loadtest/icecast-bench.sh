#!/usr/bin/env bash
# The Icecast path's cost, on loopback, server pinned to CPU 0 and the load
# tool to CPU 1 (taskset), so each side's CPU is its own:
#  1. CPU per Icecast MP3 stream: N sources (128 kbit/s, 44.1 kHz stereo),
#     each decoded once and encoded to AAC (HLS, recording), alone and then
#     with one WebRTC viewer each (so the Opus form is made too).
#  2. CPU per plain listener: one source and N listeners of it.
# Marginal cost = the slope between rows. JSON reports in target/icecast-bench/.
# Usage: loadtest/icecast-bench.sh [SOURCES...] -- [LISTENERS...]
#   e.g. loadtest/icecast-bench.sh 1 5 10 -- 250 500 1000
set -euo pipefail
cd "$(dirname "$0")/.."
sources=(); listeners=()
target=sources
for a in "$@"; do
  if [ "$a" = "--" ]; then target=listeners; continue; fi
  eval "$target+=(\"\$a\")"
done
[ ${#sources[@]} -gt 0 ] || sources=(1 5 10)
[ ${#listeners[@]} -gt 0 ] || listeners=(250 500 1000)
SECS=${SECS:-20}
. loadtest/lib.sh
lt_build
out=${OUT:-target/icecast-bench}
mkdir -p "$out"
lt_workdir
TASKSET=0 lt_serve 26080 26935 26189 26000
lt="taskset -c 1 $bin/onair-loadtest"
max=$(printf '%s\n' "${sources[@]}" | sort -n | tail -1)
args=()
for i in $(seq 1 "$max"); do
  k=$("$bin/onair" channel create "radio$i" --data-dir "$work")
  args+=("radio$i:$k")
done
row() {
  python3 - "$1" "$2" <<'PY'
import json, sys
r = json.load(open(sys.argv[1])); s = r.get("server") or {}
g = lambda v, d: "-" if v is None else f"{v:.{d}f}"
p = r.get("publisher") or {}
print(f"| {sys.argv[2]} | {g(s.get('cpu_percent_of_one_core'),2)} | {g(s.get('rss_mib'),1)} MiB | {p.get('webrtc_audio_packets', '')} | {r.get('connected', '')} | {g(r.get('mbps_per_viewer'),3)} | {r.get('stalls', '')} | {g(s.get('load_generator_cpu_percent_of_one_core'),1)} |")
PY
}
echo "| run | server CPU (% of a core) | server RSS | WebRTC audio packets | listeners connected | Mbit/s per listener | stalls | load tool CPU |"
echo "|---|---|---|---|---|---|---|---|"
for n in "${sources[@]}"; do
  for webrtc in "" "--icecast-webrtc"; do
    f="$out/sources-$n${webrtc:+-webrtc}.json"
    srcs=(); for s in "${args[@]:0:$n}"; do srcs+=(--icecast-source "$s"); done
    $lt publish --http 127.0.0.1:26080 --icecast 127.0.0.1:26000 "${srcs[@]}" $webrtc \
      --pid "$pid" --seconds "$SECS" --quiet --json "$f" >&2
    row "$f" "$n MP3 source(s)${webrtc:+ + 1 WebRTC viewer each}"
    sleep 3
  done
done
for n in 0 "${listeners[@]}"; do
  f="$out/listeners-$n.json"
  $lt listen --http 127.0.0.1:26080 --icecast 127.0.0.1:26000 --channel radio1 \
    --icecast-source "${args[0]}" --viewers "$n" --ramp-ms "${RAMP_MS:-5}" \
    --pid "$pid" --seconds "$SECS" --quiet --json "$f" >&2
  row "$f" "1 source, $n listeners"
  sleep 3
done
