#!/usr/bin/env bash
# WebRTC viewers per core: ramps `onair-loadtest whep` up a list of viewer
# counts against one release server fed a pre-encoded clip at BITRATE_KBPS
# (ffmpeg -c copy, so encoding costs nothing), and stops at the first step
# where loss passes 1 % or the server uses more than 95 % of a core.
# The load generator runs on the same cores; each row shows its CPU too.
# DECRYPT_EVERY=N: one viewer in N decrypts, the rest count from the clear
# headers (onair-loadtest whep --decrypt-every), for thousands of viewers.
# Usage: loadtest/whep-ramp.sh BITRATE_KBPS COUNT...   e.g. 600 100 200 400 800
set -euo pipefail
cd "$(dirname "$0")/.."
rate=${1:-600}; shift || true
counts=(${@:-100 200 400})
SECS=${SECS:-10}
. loadtest/lib.sh
lt_build
out=${OUT:-target/ramp}
mkdir -p "$out"
lt_workdir
lt_serve 28080 21935 28189
lt_feed "$rate" 21935
echo "| viewers | connected | Mbit/s per viewer | loss | freezes | server CPU (% of a core) | CPU per viewer | RSS per viewer | load generator CPU | server threads (% of a core) |"
echo "|---|---|---|---|---|---|---|---|---|---|"
for n in "${counts[@]}"; do
  f="$out/whep-${rate}k-$n.json"
  timeout $((SECS + n / 10 + 120)) "$bin/onair-loadtest" whep --http 127.0.0.1:28080 --viewers "$n" --decrypt-every "${DECRYPT_EVERY:-1}" \
    --ramp-ms "${RAMP_MS:-10}" --seconds "$SECS" --pid "$pid" --quiet --json "$f" >&2 || true
  stop=$(python3 - "$f" <<'PY'
import json, sys
try: r = json.load(open(sys.argv[1]))
except Exception: print("stop"); sys.exit()
s = r.get("server") or {}
g = lambda v, d: "-" if v is None else f"{v:.{d}f}"
threads = ", ".join(f"{k} {v:.1f}" for k, v in sorted((s.get("threads_cpu_percent_of_one_core") or {}).items()))
print(f"| {r['viewers']} | {r['connected']} | {g(r.get('mbps_per_viewer'),2)} | {g(r.get('loss_percent'),2)} % | {r.get('freezes')} | {g(s.get('cpu_percent_of_one_core'),1)} | {g(s.get('cpu_percent_per_client'),3)} % | {g(s.get('rss_kib_per_client'),0)} KiB | {g(s.get('load_generator_cpu_percent_of_one_core'),1)} | {threads} |", file=sys.stderr)
stop = (r.get("loss_percent") or 0) > 1 or (s.get("cpu_percent_of_one_core") or 0) > 95 or r["connected"] < r["viewers"]
print("stop" if stop else "go")
PY
)
  [ "$stop" = stop ] && { echo "(stopped: loss > 1 %, CPU > 95 % or viewers failed to connect)" >&2; break; }
  sleep 2
done 2>&1
