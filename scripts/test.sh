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
# One build, never rebuilt: incremental artifacts would only double the
# disk a clean build takes (some sixty test binaries).
export CARGO_INCREMENTAL=${CARGO_INCREMENTAL:-0}
cargo test --workspace --all-targets --no-fail-fast "$@"
# Every fuzz target for a few seconds on its committed corpus (fuzz/README.md):
# a separate build of the dependency tree, unoptimised and without the
# address sanitizer: it builds in half the time of an optimised one (a panic or
# a broken bound still fails it); long runs use the full build.
FUZZ_SANITIZER=${FUZZ_SANITIZER:-none} FUZZ_BUILD=${FUZZ_BUILD:-dev} ./fuzz/run.sh smoke 5
