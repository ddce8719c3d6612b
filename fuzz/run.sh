#!/usr/bin/env bash
# Runs the fuzz targets (fuzz_targets/*.rs, listed in Cargo.toml) with
# cargo-fuzz on the stable toolchain: RUSTC_BOOTSTRAP=1 lets stable rustc
# take the -Z flags cargo-fuzz passes (sanitizer, coverage instrumentation).
#
#   fuzz/run.sh TARGET [SECONDS] [-- LIBFUZZER_ARGS...]
#       one target, on its committed corpus (corpus/TARGET), for SECONDS
#       (default 60); new inputs it finds go to target/corpus/TARGET.
#   fuzz/run.sh smoke [SECONDS]
#       builds every target once, then runs each for SECONDS (default 5) on
#       its corpus; what CI runs (scripts/test.sh).
#   fuzz/run.sh merge TARGET
#       adds to corpus/TARGET the inputs from target/corpus/TARGET that
#       reach new coverage (libFuzzer -merge=1), to commit after a long run.
#
# FUZZ_SANITIZER=address (default) or none; FUZZ_BUILD=release (default:
# optimised, with debug assertions and overflow checks) or dev (unoptimised:
# builds in half the time, runs slower); FUZZ_RUNS=N runs N inputs instead
# of a time. A crash stops the run and is saved in artifacts/TARGET/.
set -euo pipefail
cd "$(dirname "$0")"
export RUSTC_BOOTSTRAP=1
export PATH="$HOME/.cargo/bin:$PATH"
if ! cargo fuzz --version >/dev/null 2>&1; then
  cargo install cargo-fuzz --locked
fi
sanitizer=${FUZZ_SANITIZER:-address}
profile=${FUZZ_BUILD:-release}
build_args=(--sanitizer "$sanitizer")
if [ "$profile" = dev ]; then build_args+=(--dev); fi
# Each sanitizer and profile builds everything differently: its own target
# directory, so switching does not rebuild the others.
if [ "$sanitizer-$profile" != address-release ]; then
  build_args+=(--target-dir "target/$sanitizer-$profile")
fi

# libFuzzer's limits: -rss_limit_mb fails a run whose memory passes it (a
# bound that does not hold), -timeout one input that takes longer.
limits=(-rss_limit_mb=2048 -timeout=10)

run() {
  local target=$1 seconds=$2
  shift 2
  local new=target/corpus/$target
  mkdir -p "$new" "corpus/$target"
  local budget=(-max_total_time="$seconds")
  if [ -n "${FUZZ_RUNS:-}" ]; then budget=(-runs="$FUZZ_RUNS"); fi
  cargo fuzz run "${build_args[@]}" "$target" "$new" "corpus/$target" -- \
    "${limits[@]}" "${budget[@]}" -print_final_stats=1 "$@"
}

case "${1:-}" in
  "" | -h | --help)
    sed -n '2,21p' "$0"
    exit 2
    ;;
  smoke)
    seconds=${2:-5}
    cargo fuzz build "${build_args[@]}"
    mkdir -p target
    for target in $(cargo fuzz list); do
      log=target/smoke-$target.log
      status=0
      run "$target" "$seconds" >"$log" 2>&1 || status=$?
      runs=$(awk '/^stat::number_of_executed_units/ {r=$2} /^stat::average_exec_per_sec/ {s=$2}
        END {if (r) print r " inputs, " s "/s"}' "$log")
      echo "fuzz smoke: $target, ${seconds}s: ${runs:-exit $status}"
      if [ "$status" -ne 0 ]; then
        tail -40 "$log" >&2
        echo "fuzz target $target failed (inputs in fuzz/artifacts/$target)" >&2
        exit 1
      fi
    done
    ;;
  merge)
    target=${2:?merge TARGET}
    cargo fuzz run "${build_args[@]}" "$target" "corpus/$target" "target/corpus/$target" -- -merge=1 "${limits[@]}"
    ;;
  *)
    target=$1
    seconds=${2:-60}
    shift $(($# >= 2 ? 2 : 1))
    [ "${1:-}" = "--" ] && shift
    run "$target" "$seconds" "$@"
    ;;
esac
