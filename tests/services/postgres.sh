#!/usr/bin/env bash
# A throwaway PostgreSQL cluster for the tests, on 127.0.0.1 only.
#   postgres.sh install      install Debian's postgresql package if it is missing (needs root)
#   postgres.sh start        start a cluster on a free port; prints "URL DIR"
#   postgres.sh stop DIR     stop that cluster and delete it
# The server refuses to run as root, so as root it runs as the package's `postgres` user.
set -euo pipefail

find_bin() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1; }

install() {
  if [ -n "$(find_bin)" ] && [ -x "$(find_bin)/initdb" ]; then return 0; fi
  if [ "$(id -u)" != 0 ]; then
    echo "postgresql is not installed and installing it needs root" >&2; return 3
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2 && apt-get install -y -qq postgresql >&2
  [ -x "$(find_bin)/initdb" ] || { echo "apt-get installed no initdb" >&2; return 3; }
}

as_pg() {  # run a command line as the cluster owner
  if [ "$(id -u)" = 0 ]; then su postgres -s /bin/bash -c "$1"; else bash -c "$1"; fi
}

start() {
  install
  local bin dir port
  bin=$(find_bin)
  dir=$(mktemp -d -t grokexp-pg.XXXXXX)
  chmod 755 "$dir"
  if [ "$(id -u)" = 0 ]; then chown postgres "$dir"; fi
  port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  as_pg "'$bin/initdb' -D '$dir/data' -A trust -U postgres >'$dir/initdb.log' 2>&1" \
    || { cat "$dir/initdb.log" >&2; exit 4; }
  as_pg "'$bin/pg_ctl' -D '$dir/data' -l '$dir/server.log' -w -t 60 \
    -o \"-c listen_addresses=127.0.0.1 -p $port -k '$dir'\" start >/dev/null" \
    || { cat "$dir/server.log" >&2; exit 5; }
  as_pg "'$bin/createdb' -h 127.0.0.1 -p $port -U postgres grokexp"
  echo "postgresql://postgres@127.0.0.1:$port/grokexp $dir"
}

stop() {
  local dir=$1 bin
  bin=$(find_bin)
  as_pg "'$bin/pg_ctl' -D '$dir/data' -m immediate -w stop >/dev/null" || true
  rm -rf "$dir"
}

case "${1:-start}" in
  install) install ;;
  start) start ;;
  stop) stop "${2:?usage: postgres.sh stop DIR}" ;;
  *) echo "usage: postgres.sh install|start|stop DIR" >&2; exit 2 ;;
esac
