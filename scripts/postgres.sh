#!/usr/bin/env bash
# Installs (apt) and starts a local PostgreSQL for the Postgres tests, with a
# role `onair` (password `onair`, CREATEDB: each test makes its own database)
# and a database `onair`. Prints the URL the tests take from
# ONAIR_TEST_POSTGRES_URL. Idempotent; quick when it already runs.
set -euo pipefail
# Only the URL goes to stdout, which callers capture; whatever apt,
# pg_ctlcluster or psql print goes to stderr. (A redirect around a function
# rather than a saved fd: the postgres daemon would inherit a saved fd and
# keep the caller's $(...) open forever.)
start_postgres() {
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  if ! command -v pg_lsclusters >/dev/null; then
    echo "postgres: installing postgresql" >&2
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends postgresql >/dev/null
  fi
  # Start every cluster that is down (Debian's package creates `main`).
  if ! pg_lsclusters -h | grep -q .; then
    ver=$(ls /usr/lib/postgresql | sort -n | tail -1)
    $SUDO pg_createcluster "$ver" main >/dev/null
  fi
  pg_lsclusters -h | while read -r ver name port status _; do
    if [ "$status" != "online" ]; then
      $SUDO pg_ctlcluster "$ver" "$name" start
    fi
  done
  port=$(pg_lsclusters -h | awk '$4=="online"{print $3; exit}')
  as_pg() { if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else sudo -u postgres "$@"; fi; }
  for _ in $(seq 50); do
    as_pg psql -p "$port" -tAc 'SELECT 1' >/dev/null 2>&1 && break
    sleep 0.2
  done
  if [ "$(as_pg psql -p "$port" -tAc "SELECT 1 FROM pg_roles WHERE rolname='onair'")" != "1" ]; then
    as_pg psql -p "$port" -qc "CREATE ROLE onair LOGIN PASSWORD 'onair' CREATEDB"
  fi
  if [ "$(as_pg psql -p "$port" -tAc "SELECT 1 FROM pg_database WHERE datname='onair'")" != "1" ]; then
    as_pg psql -p "$port" -qc "CREATE DATABASE onair OWNER onair"
  fi
  # Databases left by earlier test runs (each test makes its own).
  as_pg psql -p "$port" -tAc "SELECT datname FROM pg_database WHERE datname LIKE 'onair\_t\_%'" |
    while read -r db; do
      [ -n "$db" ] && as_pg psql -p "$port" -qc "DROP DATABASE IF EXISTS \"$db\"" >/dev/null 2>&1 || true
    done
}
start_postgres >&2
port=$(pg_lsclusters -h | awk '$4=="online"{print $3; exit}')
echo "postgres://onair:onair@127.0.0.1:$port/onair"
