#!/usr/bin/env bash
# pgvector for the PostgreSQL server in BIN (a folder holding pg_config),
# built from Debian's source package (pgvector is in Debian from trixie on,
# for PostgreSQL 17; bookworm's PostgreSQL 15 gets it built from the same
# source, checked by its SHA-256) against Debian's postgresql-server-dev
# package of the server's major version, and installed into the server's
# folders. Needs root (it installs packages and writes /usr); prints nothing
# on stdout; exits non-zero when it cannot.
#   tests/pgvector.sh /usr/lib/postgresql/15/bin
set -euo pipefail
bin=${1:?usage: pgvector.sh PG_BIN_DIR}
version=0.8.0
sha256=867a2c328d4928a5a9d6f052cd3bc78c7d60228a9b914ad32aa3db88e9de27b0
source_url=http://deb.debian.org/debian/pool/main/p/pgvector/pgvector_${version}.orig.tar.gz

major=$("$bin/postgres" --version | sed -E 's/.* ([0-9]+)\..*/\1/')
share=$("$bin/pg_config" --sharedir 2>/dev/null || echo "/usr/share/postgresql/$major")
if [[ -f $share/extension/vector.control ]]; then
  exit 0
fi
[[ $(id -u) == 0 ]] || { echo "pgvector: not installed, and installing it needs root" >&2; exit 1; }

echo "pgvector $version: building from Debian's source for PostgreSQL $major" >&2
if [[ ! -f /usr/include/postgresql/$major/server/postgres.h ]] || ! command -v make >/dev/null; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -qq --no-install-recommends "postgresql-server-dev-$major" make gcc >&2 \
    || { apt-get update -qq >&2 && apt-get install -y -qq --no-install-recommends "postgresql-server-dev-$major" make gcc >&2; }
fi
work=$(mktemp -d /tmp/weft-pgvector.XXXXXX)
trap 'rm -rf "$work"' EXIT
if command -v curl >/dev/null; then
  curl -fsSL --retry 3 -o "$work/src.tar.gz" "$source_url"
else
  python3 -c 'import sys, urllib.request; urllib.request.urlretrieve(sys.argv[1], sys.argv[2])' \
    "$source_url" "$work/src.tar.gz"
fi
echo "$sha256  $work/src.tar.gz" | sha256sum -c --quiet - >&2
tar -xzf "$work/src.tar.gz" -C "$work"
# OPTFLAGS empty: no -march=native, as Debian builds it.
make -s -C "$work/pgvector-$version" PG_CONFIG="$bin/pg_config" OPTFLAGS="" -j"$(nproc)" >&2
make -s -C "$work/pgvector-$version" PG_CONFIG="$bin/pg_config" OPTFLAGS="" install >&2
echo "pgvector $version installed" >&2
