#!/usr/bin/env bash
# The whole test suite: installs what the tests need (ffmpeg, chromium,
# playwright-core), then runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh --test
# The DB tests run against SQLite and this real PostgreSQL server.
if [ -z "${ONAIR_TEST_POSTGRES_URL:-}" ]; then
  ONAIR_TEST_POSTGRES_URL=$(./scripts/postgres.sh)
  case "$ONAIR_TEST_POSTGRES_URL" in
    postgres://*) ;;
    *) echo "scripts/postgres.sh gave no URL: '$ONAIR_TEST_POSTGRES_URL'" >&2; exit 1 ;;
  esac
  export ONAIR_TEST_POSTGRES_URL
fi
cargo test --workspace --all-targets --no-fail-fast "$@"
