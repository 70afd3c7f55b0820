#!/usr/bin/env bash
# Weft on PostgreSQL: 10,000 math.add-one tasks (100 runs of 100-node chains,
# then of 100 independent nodes; every run a distinct input, so no task is an
# output-cache hit) and the submit-to-first-task latency of 1,000 one-node
# runs: on the embedded redb store for comparison, then through one host and
# three hosts sharing the database. Then as a job queue, on the same
# server: 10,000 add-one jobs through a concurrency-8 queue (`weft run` on
# PostgreSQL), 10,000 one-node runs submitted to one host by 64 clients
# (each following its run to the end, then none following: drained; then
# 100,000 drained), and,
# when node is there, the peer graphile-worker (npm, pinned in
# examples/bench/graphile, its own database and schema, logging off)
# draining 10,000 trivial jobs added in bulk at concurrency 8. A release
# build and a throwaway PostgreSQL on this machine (tests/postgres.sh),
# loopback only.
#   examples/bench/postgres.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
rustup target add wasm32-wasip2 >/dev/null 2>&1 || true
cargo build --release -p weft-cli -p weft-load --quiet
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
start() { # N [CONFIG]: start host N on PostgreSQL; its URL in $url
  mkdir -p "$work/$1"
  "$bin/weft" serve --listen 127.0.0.1:0 --database-url "$WEFT_TEST_DATABASE_URL" \
    --plugins "$work/plugins" --config "${2:-/dev/null}" > "$work/$1/out" 2> "$work/$1/log" &
  pids+=($!)
  for _ in $(seq 100); do grep -q listening "$work/$1/out" 2>/dev/null && break; sleep 0.1; done
  url=$(sed -n 's/.*listening on \(http:[^ ]*\).*/\1/p' "$work/$1/out")
}
echo "($(nproc) cores, load $(cut -d' ' -f1 /proc/loadavg))"
work_load() { # the same three loads against the given hosts: throughput, then latency
  local servers=() s
  for s in "$@"; do servers+=(--server "$s"); done
  local n=$#
  "$bin/weft-load" "${servers[@]}" --clients $((32 * n)) --runs 100 --chain 100
  "$bin/weft-load" "${servers[@]}" --clients $((8 * n)) --runs 100 --chain 100 --independent
  # Latency under a light load: 8 clients in all, whatever the hosts.
  "$bin/weft-load" "${servers[@]}" --clients 8 --runs 1000 --chain 1
}
# The embedded store first, for comparison: the same loads on redb.
mkdir -p "$work/redb"
"$bin/weft" serve --listen 127.0.0.1:0 --data-dir "$work/redb" --plugins "$work/plugins" \
  --config /dev/null > "$work/redb/out" 2> "$work/redb/log" &
pids+=($!)
for _ in $(seq 100); do grep -q listening "$work/redb/out" 2>/dev/null && break; sleep 0.1; done
embedded=$(sed -n 's/.*listening on \(http:[^ ]*\).*/\1/p' "$work/redb/out")
"$bin/weft-load" --server "$embedded" --clients 4 --runs 20 --chain 10 > /dev/null # warm up
echo "one host, redb:"
work_load "$embedded"
kill "${pids[0]}"; wait "${pids[0]}" 2>/dev/null || true; pids=()
start 1; one=$url
"$bin/weft-load" --server "$one" --clients 4 --runs 20 --chain 10 > /dev/null # warm up
echo "one host, PostgreSQL:"
work_load "$one"
start 2; two=$url
start 3; three=$url
echo "three hosts, PostgreSQL:"
work_load "$one" "$two" "$three"
for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
wait 2>/dev/null || true; pids=()

echo "as a job queue, PostgreSQL, the same server:"
[[ -f examples/bench/queue-10000.json ]] || examples/bench/generate.sh
out=$("$bin/weft" run examples/bench/queue-10000.json --json --config examples/bench/queue.toml \
  --database-url "$WEFT_TEST_DATABASE_URL" --no-cache --parallelism 16)
ms=$(sed -n 's/^ *"run_ms": \([0-9.]*\),\{0,1\}$/\1/p' <<< "$out" | head -n1)
awk -v ms="$ms" 'BEGIN { printf "weft queue: 10000 jobs at concurrency 8 in %.2f s: %.0f jobs/s\n", ms / 1000, 10000 / (ms / 1000) }'
# 64 clients each follow a run's events: more streams than the default 32.
printf '[server]\nmax_streams_per_user = 64\n' > "$work/streams.toml"
start 4 "$work/streams.toml"
"$bin/weft-load" --server "$url" --clients 64 --runs 10000 --chain 1
# graphile-worker's shape: submitted without anyone following them, drained.
"$bin/weft-load" --server "$url" --clients 64 --runs 10000 --chain 1 --drain
# Linear: a backlog ten times larger drains at the same rate.
"$bin/weft-load" --server "$url" --clients 64 --runs 100000 --chain 1 --drain
if command -v node > /dev/null; then
  npm ci --prefix examples/bench/graphile --no-audit --no-fund --loglevel=error
  "$WEFT_TEST_PG_BIN/psql" -q "$WEFT_TEST_DATABASE_URL" -c 'CREATE DATABASE graphile'
  DATABASE_URL="${WEFT_TEST_DATABASE_URL%/*}/graphile" node examples/bench/graphile/drain.mjs 10000
fi
