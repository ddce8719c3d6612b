#!/bin/sh
# Empty stand-ins for every target of the workspace's crates, so the
# Dockerfile can build the dependencies before the sources are copied
# (`create`), and take them away again (`remove`). Keep the lists in step
# with the [[bin]], [[bench]] and [lib] entries of the Cargo.toml files.
set -eu
libs="src/lib.rs loadtest/src/lib.rs turn/src/lib.rs"
bins="src/main.rs loadtest/src/main.rs turn/src/main.rs benches/fanout.rs benches/transcode.rs benches/srtp.rs"
case "${1:-}" in
  create)
    for f in $libs $bins web/dist/index.html; do mkdir -p "$(dirname "$f")"; done
    for f in $libs; do : > "$f"; done
    for f in $bins; do echo 'fn main() {}' > "$f"; done
    echo '<!doctype html><title>onair</title>' > web/dist/index.html
    ;;
  remove)
    rm -rf src loadtest/src turn/src benches web/dist
    rm -rf target/release/.fingerprint/onair-* target/release/deps/onair* target/release/deps/libonair*
    ;;
  *) echo "usage: $0 create|remove" >&2; exit 2 ;;
esac
