#!/usr/bin/env bash
# A throwaway PostgreSQL server for the tests, from the machine's PostgreSQL
# binaries (Debian's `postgresql` package is installed when they are missing
# and we are root, as in CI), with pgvector (tests/pgvector.sh builds it
# when it is missing and we are root). Data lives in a temporary folder; the
# server listens on a unix socket there and a free loopback port.
#   eval "$(tests/postgres.sh start)"   # exports WEFT_TEST_DATABASE_URL, WEFT_TEST_PG_DIR,
#                                       # and WEFT_TEST_PGVECTOR=1 when pgvector is there
#   tests/postgres.sh stop "$WEFT_TEST_PG_DIR"
set -euo pipefail
bin=""
find_bin() {
  for d in /usr/lib/postgresql/*/bin /usr/local/bin /usr/bin; do
    if [[ -x $d/initdb && -x $d/pg_ctl ]]; then bin=$d; return 0; fi
  done
  return 1
}
as_owner() { # run as the cluster's owner: `postgres` when we are root
  if [[ $(id -u) == 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi
}
case "${1:-}" in
  start)
    if ! find_bin; then
      if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
        echo "installing postgresql (Debian package)" >&2
        apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >&2
        find_bin || { echo "postgresql installed but initdb not found" >&2; exit 1; }
      else
        echo "PostgreSQL server binaries (initdb, pg_ctl) not found: install Debian's postgresql package" >&2
        exit 1
      fi
    fi
    if [[ $(id -u) == 0 ]]; then
      "$(dirname "$0")/pgvector.sh" "$bin"
    fi
    dir=$(mktemp -d /tmp/weft-pg.XXXXXX)
    [[ $(id -u) == 0 ]] && chown postgres "$dir"
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    as_owner "$bin/initdb" -D "$dir/data" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 \
      || { cat "$dir/initdb.log" >&2; exit 1; }
    as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/log" -w \
      -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c max_connections=200 -c fsync=on" start >&2 \
      || { cat "$dir/log" >&2; exit 1; }
    echo "export WEFT_TEST_DATABASE_URL='postgres://postgres@127.0.0.1:$port/postgres'"
    echo "export WEFT_TEST_PG_DIR='$dir'"
    echo "export WEFT_TEST_PG_BIN='$bin'"
    if [[ -f $("$bin/pg_config" --sharedir 2>/dev/null || echo /nonexistent)/extension/vector.control ]]; then
      echo "export WEFT_TEST_PGVECTOR=1"
    else
      echo "pgvector is not installed (run as root to build it): PostgreSQL tests rank vectors in the host" >&2
      echo "unset WEFT_TEST_PGVECTOR"
    fi
    ;;
  stop)
    dir=${2:?usage: postgres.sh stop DIR}
    find_bin || exit 0
    as_owner "$bin/pg_ctl" -D "$dir/data" -m fast stop >/dev/null 2>&1 || true
    rm -rf "$dir"
    ;;
  *) echo "usage: $0 start | stop DIR" >&2; exit 2 ;;
esac
