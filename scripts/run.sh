#!/usr/bin/env bash
# Builds and runs onair with its defaults (HTTP :8080, RTMP :1935,
# WebRTC UDP :8189, data in ./data). Extra arguments go to `onair`.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
exec cargo run --release --bin onair -- "$@"
