#!/usr/bin/env bash
# Runs the benchmark graphs with a release build and prints tasks/s and peak
# memory for each (best of 3 runs; the compiled-plugin cache is warmed first).
#   examples/bench/run.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
rustup target add wasm32-wasip2 >/dev/null 2>&1 || true
cargo build --release -p weft --quiet
weft=${CARGO_TARGET_DIR:-target}/release/weft
bench=examples/bench
[[ -f $bench/chain-1000.json ]] || $bench/generate.sh

field() { sed -n "s/^ *\"$1\": \([0-9.]*\),\{0,1\}$/\1/p" | head -n1; }

data=$(mktemp -d)
trap 'rm -rf "$data"' EXIT
"$weft" run "$bench/chain-1000.json" --json --ephemeral > /dev/null # warm the compiled-artifact cache
printf '%-24s %8s %10s %12s %14s\n' graph tasks run_ms tasks/s peak_rss_MiB
for run in "chain-1000 --ephemeral" "chain-1000 --data-dir=$data" "fanout-1000 --ephemeral" "fanout-1000 --data-dir=$data"; do
  g=${run%% *}
  mode=${run#* }
  label="$g ${mode%%=*}"
  best=""
  for _ in 1 2 3; do
    out=$("$weft" run "$bench/$g.json" --json $mode)
    ms=$(field run_ms <<< "$out")
    if [[ -z $best ]] || awk "BEGIN{exit !($ms < $best)}"; then
      best=$ms
      tasks=$(field tasks_executed <<< "$out")
      rss=$(field peak_rss_kb <<< "$out")
    fi
  done
  awk -v g="$label" -v t="$tasks" -v ms="$best" -v rss="$rss" \
    'BEGIN { printf "%-24s %8d %10.1f %12.0f %14.1f\n", g, t, ms, t / (ms / 1000), rss / 1024 }'
done
echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo)"
