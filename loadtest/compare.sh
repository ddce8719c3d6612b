#!/usr/bin/env bash
# onair side by side with nginx + libnginx-mod-rtmp and node-media-server,
# in one run, on loopback, with the same input:
#   1. RTMP ingest -> playback latency: onair-loadtest's synthetic publisher
#      (openh264 pattern, a send-time stamp in an SEI in every frame) to each
#      server, one viewer reading the stamps: onair LL-HLS (and WebRTC),
#      nginx-rtmp HLS, node-media-server HTTP-FLV.
#   2. Server CPU and memory with many viewers: ffmpeg loops one pre-encoded
#      2.5 Mbit/s clip (-c copy) into each server in turn, and
#      onair-loadtest runs VIEWERS HLS viewers (onair, nginx) or HTTP-FLV
#      viewers (node-media-server, which has no HLS without ffmpeg
#      transcoding) for SECS seconds; CPU comes from /proc/PID. onair's
#      HTTP-FLV (/flv/CHANNEL.flv) runs against node-media-server's, and
#      VIEWERS plain Icecast listeners of one 128 kbit/s MP3 source show
#      what a radio audience costs. Each server is pinned to CPU 0 and the
#      load tool to CPU 1.
# Installs what is missing (apt: nginx libnginx-mod-rtmp; npm:
# node-media-server@4 into $NMS_DIR), prints a table, leaves the JSON
# reports in $OUT. Every step is bounded by `timeout`.
#
# Usage: loadtest/compare.sh            (VIEWERS=100 SECS=15 LAT_SECS=20)
#   CLIP_KBPS=2500: the looped clip's video bitrate.
#   CPU_RUNS="onair-llhls nginx-hls onair-flv nms-flv onair-listeners":
#   which part-2 rows to run, e.g. CPU_RUNS="onair-flv nms-flv
#   onair-listeners" VIEWERS=1000 CLIP_KBPS=600 for the radio/FLV table.
set -euo pipefail
cd "$(dirname "$0")/.."
VIEWERS=${VIEWERS:-100}
CLIP_KBPS=${CLIP_KBPS:-2500}
CPU_RUNS=${CPU_RUNS:-onair-llhls nginx-hls onair-flv nms-flv onair-listeners}
SECS=${SECS:-15}
LAT_SECS=${LAT_SECS:-20}
NMS_DIR=${NMS_DIR:-$HOME/.cache/onair-compare}
OUT=${OUT:-target/compare}
profile=${PROFILE:-release}
mkdir -p "$OUT"

if [ ! -f /usr/lib/nginx/modules/ngx_rtmp_module.so ]; then
  timeout 600 apt-get install -y nginx libnginx-mod-rtmp >&2
fi
if [ ! -d "$NMS_DIR/node_modules/node-media-server" ]; then
  mkdir -p "$NMS_DIR"
  timeout 600 npm install --prefix "$NMS_DIR" --no-audit --no-fund node-media-server@4 >&2
fi
[ -n "${SKIP_BUILD:-}" ] || cargo build --profile "$profile" -p onair -p onair-loadtest >&2
bin=target/$profile
lt="taskset -c 1 $bin/onair-loadtest"

work=$(mktemp -d)
# nginx's workers run as nobody and must read the HLS files.
chmod 755 "$work"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

# onair: non-default ports.
key=$("$bin/onair" channel create demo --data-dir "$work/onair")
radio_key=$("$bin/onair" channel create radio --data-dir "$work/onair")
"$bin/onair" serve --data-dir "$work/onair" --http 127.0.0.1:27080 --rtmp 127.0.0.1:27935 \
  --webrtc-udp 127.0.0.1:27189 --icecast 127.0.0.1:27000 --offer-rate 0 --register-per-hour 0 --chat-sockets-per-host 100000 2>"$work/onair.log" &
onair_pid=$!; pids+=($onair_pid)

# nginx-rtmp: one worker, so one PID does (and is charged for) the work.
mkdir -p "$work/nginx/hls" && chmod -R 755 "$work/nginx"
cat >"$work/nginx/nginx.conf" <<CONF
load_module /usr/lib/nginx/modules/ngx_rtmp_module.so;
worker_processes 1; daemon off; pid $work/nginx/nginx.pid; error_log $work/nginx/error.log;
events { worker_connections 4096; }
rtmp { server { listen 127.0.0.1:27936; application live {
  live on; hls on; hls_path $work/nginx/hls; hls_fragment 1s; hls_playlist_length 4s; } } }
http { access_log off; server { listen 127.0.0.1:27088; location /hls {
  types { application/vnd.apple.mpegurl m3u8; video/mp2t ts; }
  root $work/nginx; add_header Cache-Control no-cache; } } }
CONF
nginx -c "$work/nginx/nginx.conf" -p "$work/nginx" &
nginx_master=$!; pids+=($nginx_master)

# node-media-server 4: RTMP in, HTTP-FLV out.
mkdir -p "$work/nms"
cat >"$work/nms/config.json" <<CONF
{ "bind": "127.0.0.1", "store": { "path": "$work/nms/data", "maxHistory": 100 },
  "auth": { "play": false, "publish": false, "secret": "x" },
  "rtmp": { "port": 27937 }, "http": { "port": 27089 }, "webadmin": { "enable": false } }
CONF
node "$NMS_DIR/node_modules/node-media-server/bin/app.js" -c "$work/nms/config.json" \
  >"$work/nms.log" 2>&1 &
nms_pid=$!; pids+=($nms_pid)
sleep 2
for p in $onair_pid $nginx_master $nms_pid; do
  kill -0 "$p" 2>/dev/null || { echo "a server did not start (ports in use?); logs in $work" >&2; tail "$work"/*.log >&2; exit 1; }
done
nginx_worker=$(pgrep -P "$nginx_master" | head -1)
for p in $onair_pid $nginx_master $nginx_worker $nms_pid; do taskset -a -cp 0 "$p" >/dev/null; done

run() { # NAME ARGS... : one bounded onair-loadtest run, report in $OUT/NAME.json
  local name=$1; shift
  echo "== $name" >&2
  timeout 300 $lt "$@" --quiet --json "$OUT/$name.json" >&2 || echo "{}" >"$OUT/$name.json"
}

# 1. Latency, one server at a time, the stamped synthetic publisher.
src=(--size 1280x720 --kbps 2500 --fps 30)
run lat-onair-llhls hls --http 127.0.0.1:27080 --channel demo --viewers 1 --seconds "$LAT_SECS" \
  --pid "$onair_pid" --rtmp "rtmp://127.0.0.1:27935/live/$key" "${src[@]}"
sleep 1
run lat-onair-webrtc whep --http 127.0.0.1:27080 --channel demo --viewers 1 --seconds "$LAT_SECS" \
  --pid "$onair_pid" --rtmp "rtmp://127.0.0.1:27935/live/$key" "${src[@]}"
run lat-nginx-hls hls --http 127.0.0.1:27088 --playlist /hls/lat.m3u8 --viewers 1 \
  --seconds "$LAT_SECS" --pid "$nginx_worker" --rtmp rtmp://127.0.0.1:27936/live/lat "${src[@]}"
run lat-onair-flv flv --http 127.0.0.1:27080 --path /flv/demo.flv --viewers 1 \
  --seconds "$LAT_SECS" --pid "$onair_pid" --rtmp "rtmp://127.0.0.1:27935/live/$key" "${src[@]}"
run lat-nms-flv flv --http 127.0.0.1:27089 --path /live/lat.flv --viewers 1 \
  --seconds "$LAT_SECS" --pid "$nms_pid" --rtmp rtmp://127.0.0.1:27937/live/lat "${src[@]}"

# 2. CPU with many viewers: the same ffmpeg input, `-c copy`, one server at a time.
clip=target/loadclip-${CLIP_KBPS}k.flv
if [ ! -f "$clip" ]; then
  ffmpeg -hide_banner -loglevel error -y -f lavfi -i testsrc2=size=1280x720:rate=30 \
    -f lavfi -i sine=frequency=440:sample_rate=48000 -t 20 -vf noise=alls=12:allf=t \
    -c:v libx264 -preset veryfast -tune zerolatency -g 30 -bf 0 -b:v ${CLIP_KBPS}k -maxrate ${CLIP_KBPS}k \
    -bufsize ${CLIP_KBPS}k -x264-params nal-hrd=cbr -c:a aac -b:a 128k -ar 48000 -f flv "$clip"
fi
feed() { # RTMP_URL: loops the clip into a server, bounded
  timeout $((SECS + VIEWERS / 20 + 30)) ffmpeg -hide_banner -loglevel error -stream_loop -1 -re \
    -i "$clip" -c copy -f flv "$1" &
  feeder=$!
  sleep 5
}
unfeed() { kill $feeder 2>/dev/null || true; wait $feeder 2>/dev/null || true; sleep 2; }
for what in $CPU_RUNS; do
  case $what in
    onair-llhls) feed "rtmp://127.0.0.1:27935/live/$key"
      run cpu-onair-llhls hls --http 127.0.0.1:27080 --channel demo --viewers "$VIEWERS" \
        --seconds "$SECS" --pid "$onair_pid"; unfeed ;;
    nginx-hls) feed rtmp://127.0.0.1:27936/live/cpu
      run cpu-nginx-hls hls --http 127.0.0.1:27088 --playlist /hls/cpu.m3u8 --viewers "$VIEWERS" \
        --seconds "$SECS" --pid "$nginx_worker"; unfeed ;;
    onair-flv) feed "rtmp://127.0.0.1:27935/live/$key"
      run cpu-onair-flv flv --http 127.0.0.1:27080 --path /flv/demo.flv --viewers "$VIEWERS" \
        --seconds "$SECS" --pid "$onair_pid"; unfeed ;;
    nms-flv) feed rtmp://127.0.0.1:27937/live/cpu
      run cpu-nms-flv flv --http 127.0.0.1:27089 --path /live/cpu.flv --viewers "$VIEWERS" \
        --seconds "$SECS" --pid "$nms_pid"; unfeed ;;
    onair-listeners)
      run cpu-onair-listeners listen --http 127.0.0.1:27080 --icecast 127.0.0.1:27000 \
        --channel radio --icecast-source "radio:$radio_key" --viewers "$VIEWERS" \
        --seconds "$SECS" --pid "$onair_pid" ;;
    *) echo "unknown CPU_RUNS entry: $what" >&2; exit 2 ;;
  esac
done

python3 - "$OUT" "$VIEWERS" "$CLIP_KBPS" <<'PY'
import json, sys
out, n, kbps = sys.argv[1], sys.argv[2], sys.argv[3]
def r(name):
    try: return json.load(open(f"{out}/{name}.json"))
    except Exception: return {}
def f(v, d=0):
    return "-" if v is None else f"{v:.{d}f}"
print("RTMP ingest -> playback latency (send time of a frame -> its arrival at the client; player buffering not included)")
print(f"| server | delivery | latency p50 | latency p99 | samples | server CPU (% of a core) |")
print("|---|---|---|---|---|---|")
for name, server, how in [("lat-onair-llhls","onair","LL-HLS (blocking reload, 200 ms parts)"),
                          ("lat-onair-webrtc","onair","WebRTC (WHEP)"),
                          ("lat-nginx-hls","nginx-rtmp","HLS (1 s fragments)"),
                          ("lat-onair-flv","onair","HTTP-FLV"),
                          ("lat-nms-flv","node-media-server","HTTP-FLV")]:
    x = r(name); s = x.get("server") or {}
    print(f"| {server} | {how} | {f(x.get('latency_ms_p50'),1)} ms | {f(x.get('latency_ms_p99'),1)} ms | {x.get('latency_samples','-')} | {f(s.get('cpu_percent_of_one_core'),1)} |")
print()
print(f"{n} viewers of the same {kbps} kbit/s RTMP input (ffmpeg -c copy); listeners: one 128 kbit/s MP3 source")
print("| server | viewers | connected | Mbit/s per viewer | stalls | server CPU (% of a core) | CPU per viewer | server RSS |")
print("|---|---|---|---|---|---|---|---|")
for name, server, how in [("cpu-onair-llhls","onair","LL-HLS"),("cpu-nginx-hls","nginx-rtmp","HLS"),
                          ("cpu-onair-flv","onair","HTTP-FLV"),("cpu-nms-flv","node-media-server","HTTP-FLV"),
                          ("cpu-onair-listeners","onair","Icecast listeners")]:
    x = r(name); s = x.get("server") or {}
    if not x: continue
    print(f"| {server} | {how} | {x.get('connected','-')} | {f(x.get('mbps_per_viewer'),2)} | {x.get('stalls','-')} | {f(s.get('cpu_percent_of_one_core'),1)} | {f(s.get('cpu_percent_per_client'),3)} | {f(s.get('rss_mib'),0)} MiB |")
PY
