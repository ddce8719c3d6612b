# Shared by the loadtest/*.sh runs (sourced, not run): build the release
# binaries, a scratch data dir that goes away on exit, one onair server on
# loopback ports, and a pre-encoded clip looped into it with `-c copy`, so
# encoding costs nothing while the load runs.
# Expects `set -euo pipefail` and the repository root as the working dir.

profile=${PROFILE:-release}
bin=target/$profile

# Builds onair and onair-loadtest (skipped with SKIP_BUILD=1).
lt_build() {
  [ -n "${SKIP_BUILD:-}" ] || cargo build --profile "$profile" -p onair -p onair-loadtest >&2
}

# Sets $work, a data dir removed (with every background job killed) on exit.
lt_workdir() {
  work=$(mktemp -d)
  trap 'kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null; rm -rf "$work"' EXIT
}

# lt_serve HTTP_PORT RTMP_PORT UDP_PORT [ICECAST_PORT]: creates channel
# "demo" ($key) and starts onair on 127.0.0.1 ($pid), its log in
# $work/server.log. Without ICECAST_PORT the Icecast port is any free one.
# Under TASKSET=CPUS the server runs pinned to those CPUs.
lt_serve() {
  key=$("$bin/onair" channel create demo --data-dir "$work")
  ${TASKSET:+taskset -c "$TASKSET"} "$bin/onair" serve --data-dir "$work" --http "127.0.0.1:$1" --rtmp "127.0.0.1:$2" \
    --webrtc-udp "127.0.0.1:$3" --icecast "127.0.0.1:${4:-0}" --offer-rate 0 --register-per-hour 0 --chat-sockets-per-host 100000 2>"$work/server.log" &
  pid=$!
  sleep 1
  kill -0 "$pid" || { tail "$work/server.log"; exit 1; }
}

# lt_feed RATE_KBPS RTMP_PORT: encodes target/loadclip-RATEk.flv once (x264
# 720p30, 1 s GOP, no B-frames, CBR) and loops it into channel $key for at
# most an hour, leaving it 3 s to go live.
lt_feed() {
  local rate=$1 clip=target/loadclip-$1k.flv
  if [ ! -f "$clip" ]; then
    ffmpeg -hide_banner -loglevel error -y -f lavfi -i testsrc2=size=1280x720:rate=30 \
      -f lavfi -i sine=frequency=440:sample_rate=48000 -t 20 -vf noise=alls=12:allf=t \
      -c:v libx264 -preset veryfast -tune zerolatency -g 30 -bf 0 -b:v "${rate}k" \
      -maxrate "${rate}k" -bufsize "${rate}k" -x264-params nal-hrd=cbr -c:a aac -b:a 128k \
      -ar 48000 -f flv "$clip"
  fi
  timeout 3600 ffmpeg -hide_banner -loglevel error -stream_loop -1 -re -i "$clip" -c copy \
    -f flv "rtmp://127.0.0.1:$2/live/$key" &
  sleep 3
}
