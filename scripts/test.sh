#!/usr/bin/env bash
# The whole test suite: installs what the tests need (ffmpeg, chromium,
# playwright-core), then runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh --test
cargo test --workspace --all-targets "$@"
