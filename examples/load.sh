#!/usr/bin/env bash
# Load test of the daemon, loopback only and bounded (count and time): starts
# `weft serve` (release build) on a free local port with a fresh data
# directory, has many clients submit small runs and follow each one's event
# stream, and prints runs/s and submit-to-first-task latency p50/p99.
#   examples/load.sh [CLIENTS [RUNS]]        (defaults: 16 clients, 400 runs)
set -euo pipefail
cd "$(dirname "$0")/.."
clients=${1:-16}
runs=${2:-400}
rustup target add wasm32-wasip2 >/dev/null 2>&1 || true
cargo build --release -p weft-cli -p weft-load --quiet
bin=${CARGO_TARGET_DIR:-target}/release
data=$(mktemp -d)
trap 'kill "$pid" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$data"' EXIT
# Every client follows one run's event stream at a time (all as the same
# loopback user, allowed 32 streams by default).
printf '[server]\nmax_streams_per_user = %d\n' $((clients * 2)) > "$data/weft.toml"
"$bin/weft" serve --listen 127.0.0.1:0 --data-dir "$data/data" --plugins "$data/plugins" \
  --config "$data/weft.toml" > "$data/out" 2> "$data/log" &
pid=$!
for _ in $(seq 100); do grep -q listening "$data/out" 2>/dev/null && break; sleep 0.1; done
url=$(sed -n 's/.*listening on \(http:[^ ]*\).*/\1/p' "$data/out")
[[ -n $url ]] || { cat "$data/log"; exit 1; }
echo "daemon at $url ($(nproc) cores, load $(cut -d' ' -f1 /proc/loadavg))"
"$bin/weft-load" --server "$url" --clients "$clients" --runs 50 > /dev/null # warm up
"$bin/weft-load" --server "$url" --clients "$clients" --runs "$runs" --max-seconds 60
