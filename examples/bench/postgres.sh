#!/usr/bin/env bash
# Weft on PostgreSQL: 10,000 math.add-one tasks (100 runs of 100-node chains)
# through one host, then through three hosts sharing the database, and the
# submit-to-first-task latency of small runs; a release build and a throwaway
# PostgreSQL on this machine (tests/postgres.sh), loopback only.
#   examples/bench/postgres.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
rustup target add wasm32-wasip2 >/dev/null 2>&1 || true
cargo build --release -p weft -p weft-load --quiet
bin=${CARGO_TARGET_DIR:-target}/release
eval "$(tests/postgres.sh start)"
work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  tests/postgres.sh stop "$WEFT_TEST_PG_DIR"
  rm -rf "$work"
}
trap cleanup EXIT
start() { # N: start host N, print its URL
  mkdir -p "$work/$1"
  "$bin/weft" serve --listen 127.0.0.1:0 --database-url "$WEFT_TEST_DATABASE_URL" \
    --plugins "$work/plugins" --config /dev/null > "$work/$1/out" 2> "$work/$1/log" &
  pids+=($!)
  for _ in $(seq 100); do grep -q listening "$work/$1/out" 2>/dev/null && break; sleep 0.1; done
  sed -n 's/.*listening on \(http:[^ ]*\).*/\1/p' "$work/$1/out"
}
echo "($(nproc) cores, load $(cut -d' ' -f1 /proc/loadavg))"
one=$(start 1)
"$bin/weft-load" --server "$one" --clients 4 --runs 20 --chain 10 > /dev/null # warm up
echo "one host:"
"$bin/weft-load" --server "$one" --clients 8 --runs 100 --chain 100
"$bin/weft-load" --server "$one" --clients 16 --runs 1000 --chain 1
two=$(start 2)
three=$(start 3)
echo "three hosts:"
"$bin/weft-load" --server "$one" --server "$two" --server "$three" --clients 12 --runs 100 --chain 100
"$bin/weft-load" --server "$one" --server "$two" --server "$three" --clients 24 --runs 1000 --chain 1
