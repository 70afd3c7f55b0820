#!/usr/bin/env bash
# A daemon's start: `weft serve` (release build) with the standard plugins,
# first with an empty compiled-component cache (every plugin compiled, as on
# a new machine or after an upgrade), then with the cache that start filled.
# For each: seconds until it listens, its RSS once idle and its peak RSS.
#   examples/bench/start.sh [ROUNDS]   (default 2)
set -euo pipefail
cd "$(dirname "$0")/../.."
rounds=${1:-2}
cargo build --release -p weft-cli --quiet
bin=${CARGO_TARGET_DIR:-target}/release
work=$(mktemp -d)
pid=
cleanup() {
  [[ -n $pid ]] && kill "$pid" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
mb() { awk -v k="$1" '$1 == k ":" { printf "%.1f", $2 / 1024 }' "/proc/$pid/status"; }
start() { # NAME LABEL: start a daemon on a new data directory, report as LABEL, stop it
  local dir="$work/$1" begin end
  mkdir -p "$dir"
  begin=$(date +%s.%N)
  WEFT_CACHE_DIR="$work/cache" "$bin/weft" serve --listen 127.0.0.1:0 --data-dir "$dir/data" \
    --plugins "$dir/plugins" --config /dev/null > "$dir/out" 2> "$dir/log" &
  pid=$!
  for _ in $(seq 1200); do grep -q listening "$dir/out" 2>/dev/null && break; sleep 0.05; done
  grep -q listening "$dir/out" || { cat "$dir/log"; exit 1; }
  end=$(date +%s.%N)
  sleep 1
  printf '%-12s %10.2f %12s %12s\n' "$2" "$(awk -v a="$begin" -v b="$end" 'BEGIN { print b - a }')" \
    "$(mb VmRSS)" "$(mb VmHWM)"
  kill "$pid"; wait "$pid" 2>/dev/null || true; pid=
}
echo "($(nproc) cores)"
printf '%-12s %10s %12s %12s\n' cache listen_s idle_rss_MB peak_rss_MB
for round in $(seq "$rounds"); do
  rm -rf "$work/cache"
  start "cold-$round" empty
  start "warm-$round" filled
done
