#!/usr/bin/env bash
# A join wave: an audience of WATCHING WebRTC viewers settles on one release
# server fed a pre-encoded clip at BITRATE_KBPS, then JOINS more join over
# OVER seconds. Prints how long the wave's joins took (offer to DTLS
# connected) and the longest gap the audience saw while they joined.
# The audience is a load generator of its own, at a higher priority
# (nice -n -10; needs root): one process for both would report the load
# generator's own stalls, at 100 handshakes a second, as the server's gaps.
# DECRYPT_EVERY=N as in whep-ramp.sh, for both.
# Usage: loadtest/whep-joins.sh BITRATE_KBPS WATCHING JOINS OVER   e.g. 600 100 1000 10
set -euo pipefail
cd "$(dirname "$0")/.."
rate=${1:-600}; watching=${2:-100}; joins=${3:-1000}; over=${4:-10}
. loadtest/lib.sh
lt_build
out=${OUT:-target/joins}
mkdir -p "$out"
lt_workdir
lt_serve 28080 21935 28189
lt_feed "$rate" 21935
aud="$out/audience-${rate}k-$watching.json"
wave="$out/wave-${rate}k-$joins-$over.json"
# The audience's window (after its 2 s warm-up) spans the whole wave.
nice -n -10 "$bin/onair-loadtest" whep --http 127.0.0.1:28080 --viewers "$watching" --ramp-ms 10 --decrypt-every "${DECRYPT_EVERY:-1}" \
  --seconds $((over + joins / 50 + 10)) --pid "$pid" --quiet --json "$aud" >&2 &
audience=$!
sleep $((watching / 100 + 4))
timeout $((over + joins / 10 + 120)) "$bin/onair-loadtest" whep --http 127.0.0.1:28080 --decrypt-every "${DECRYPT_EVERY:-1}" \
  --viewers "$joins" --ramp-ms $((over * 1000 / joins)) --seconds 2 --pid "$pid" --quiet --json "$wave" >&2 || true
wait "$audience" || true
cp "$work/server.log" "$out/server.log"
python3 - "$aud" "$wave" <<'PY'
import json, sys
a, w = (json.load(open(p)) for p in sys.argv[1:3])
g = lambda v, d: "-" if v is None else f"{v:.{d}f}"
print("| watching | joins | connected | join p50 / p99 (ms) | audience's longest gap (ms) | audience's freezes, loss |")
print("|---|---|---|---|---|---|")
print(f"| {a['viewers']} | {w['viewers']} | {w['connected']} | {g(w.get('join_ms_p50'),0)} / {g(w.get('join_ms_p99'),0)} "
      f"| {a.get('longest_freeze_ms')} | {a.get('freezes')}, {g(a.get('loss_percent'),2)} % |")
PY
