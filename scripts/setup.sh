#!/usr/bin/env bash
# Installs what onair needs to build and test on a fresh Debian machine.
# Idempotent and quick when everything is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v cmake >/dev/null || need+=(cmake)
command -v nasm >/dev/null || need+=(nasm)
command -v pkg-config >/dev/null || need+=(pkg-config)
command -v cc >/dev/null || need+=(build-essential)
# The web app (web/) is built with Node.js and embedded in the binary.
command -v node >/dev/null || need+=(nodejs)
command -v npm >/dev/null || need+=(npm)
if [ "${1:-}" = "--test" ]; then
  command -v ffmpeg >/dev/null || need+=(ffmpeg)
  command -v chromium >/dev/null || need+=(chromium)
  # coturn: tests/turn.rs checks the relay test against it too.
  command -v turnserver >/dev/null || need+=(coturn)
  # The local SMTP server the email tests send to.
  /usr/bin/python3 -c 'import aiosmtpd' 2>/dev/null || need+=(python3-aiosmtpd)
  # The ACME test CA and its DNS (tests/tls_acme.rs); curl speaks HTTP/2
  # to the HTTPS listener (tests/tls.rs).
  command -v pebble >/dev/null || need+=(pebble)
  command -v curl >/dev/null || need+=(curl)
  # The reverse proxies tests/proxy.rs runs docs/nginx.conf and
  # docs/Caddyfile with.
  command -v nginx >/dev/null || need+=(nginx)
  command -v caddy >/dev/null || need+=(caddy)
  # Chromium's certificate store, for the TURN-over-TLS test.
  command -v certutil >/dev/null || need+=(libnss3-tools)
  # The Redis the servers of one site share (tests/chat_cluster.rs).
  command -v redis-server >/dev/null || need+=(redis-server)
  # Validates docker-compose.yml, single server and the "site" profile
  # (tests/compose.rs); no Docker engine needed.
  command -v docker-compose >/dev/null || need+=(docker-compose)
  # The S3-compatible server's Python (tests/object_store.rs), below.
  /usr/bin/python3 -c 'import venv, ensurepip' 2>/dev/null || need+=(python3-venv)
fi
if [ ${#need[@]} -gt 0 ]; then
  echo "setup: installing ${need[*]}" >&2
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then
    if ! command -v sudo >/dev/null; then
      echo "setup: these packages are missing and there is no sudo: ${need[*]}" >&2
      echo "setup: install them as root (apt-get install ${need[*]}), then run this again" >&2
      exit 1
    fi
    SUDO="sudo"
  fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
# The web app's build tools (vite 6) need Node.js 18 or newer; Debian 12
# ships 18, older releases less.
node_major=$(node -p 'process.versions.node.split(".")[0]')
if [ "$node_major" -lt 18 ]; then
  echo "setup: Node.js $(node --version) is too old to build the web app: it needs 18 or newer." >&2
  echo "setup: install a newer one (https://nodejs.org, or NodeSource's Debian packages), then run this again." >&2
  exit 1
fi
if ! command -v cargo >/dev/null; then
  echo "setup: cargo is missing; install Rust from https://rustup.rs" >&2
  exit 1
fi
# Install when missing, or when the lock file changed since the last install.
if [ "${1:-}" = "--test" ] && { [ ! -f tests/e2e/node_modules/.package-lock.json ] ||
  [ tests/e2e/package-lock.json -nt tests/e2e/node_modules/.package-lock.json ]; }; then
  echo "setup: installing the browser-test driver (playwright-core)" >&2
  npm ci --prefix tests/e2e --no-audit --no-fund --silent
fi
# The web app: install its tools when the lock file changed, rebuild it when
# any of its sources did (build.rs embeds web/dist, or a placeholder page).
if [ ! -f web/node_modules/.package-lock.json ] ||
  [ web/package-lock.json -nt web/node_modules/.package-lock.json ]; then
  echo "setup: installing the web app's build tools (npm install in web/)" >&2
  # Not `npm ci`: npm 11 leaves other platforms' optional packages (rollup's
  # native builds) out of the lock file and then its `ci` refuses that lock.
  # `install` follows the lock all the same, and --no-save leaves it as is.
  npm install --prefix web --no-audit --no-fund --no-save --silent
fi
if [ ! -f web/dist/index.html ] ||
  [ -n "$(find web/src web/public web/index.html web/package-lock.json web/vite.config.ts web/tsconfig.json \
    -newer web/dist/index.html -print -quit)" ]; then
  echo "setup: building the web app (web/dist)" >&2
  npm run --prefix web build --silent >&2
fi
# The S3-compatible server tests/object_store.rs runs (moto's server mode),
# in its own virtualenv: Debian's Python takes no pip installs of its own.
moto_venv="${HOME}/.cache/onair-test/moto"
if [ "${1:-}" = "--test" ] && [ ! -x "$moto_venv/bin/moto_server" ]; then
  echo "setup: installing the S3-compatible test server (moto) in $moto_venv" >&2
  /usr/bin/python3 -m venv "$moto_venv"
  "$moto_venv/bin/pip" install --quiet --disable-pip-version-check 'moto[server]==5.2.1'
fi
# aiortc, a WebRTC viewer the interop tests run (tests/whep_interop.rs), in
# its own virtualenv too.
aiortc_venv="${HOME}/.cache/onair-test/aiortc"
if [ "${1:-}" = "--test" ] && [ ! -x "$aiortc_venv/bin/python" -o ! -f "$aiortc_venv/.installed-1.16.0" ]; then
  echo "setup: installing the aiortc test viewer in $aiortc_venv" >&2
  /usr/bin/python3 -m venv "$aiortc_venv"
  "$aiortc_venv/bin/pip" install --quiet --disable-pip-version-check 'aiortc==1.16.0'
  touch "$aiortc_venv/.installed-1.16.0"
fi
# One throwaway Chromium start, so the first browser test does not pay for a
# cold start (~20 s seen on a fresh machine) inside its own time limits.
if [ "${1:-}" = "--test" ]; then
  (cd tests/e2e && timeout 60 node -e "import('./browser.mjs').then(async (b) => { const x = await b.launch(); await x.close(); })" >/dev/null 2>&1) || true
fi
