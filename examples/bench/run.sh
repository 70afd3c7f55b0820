#!/usr/bin/env bash
# Runs the benchmark graphs with a release build and prints tasks/s and peak
# memory for each, measured side by side in one run (best of 3; the compiled-
# plugin cache is warmed first):
#   ephemeral     in memory, output cache off
#   durable       redb, output cache off
#   cache cold    redb, output cache on, no output cached yet
#   cache warm    redb, output cache on, after one run of the same graph
#   queue-10000   10,000 add-one jobs through a queue with concurrency 8, durable
# then the scaling series (chains and fan-outs of 100 … 100,000 add-one
# nodes, in memory and on redb, best of 3 up to 10,000: µs per node, which should stay flat; the
# graph size limit raised for it with `[quotas] graph_nodes`), the
# floor (add-one called straight through wasmtime, a fresh instance per call,
# beside Weft's chains in the same process) and, when node is there, the
# Workglow peer (@workglow/task-graph 0.2.37, tests/workglow) on a chain of 300.
#   examples/bench/run.sh            (SCALE="100 1000" for a shorter series)
set -euo pipefail
cd "$(dirname "$0")/../.."
rustup target add wasm32-wasip2 >/dev/null 2>&1 || true
cargo build --release -p weft-cli -p weft-load --quiet
weft=${CARGO_TARGET_DIR:-target}/release/weft
bench=examples/bench
[[ -f $bench/queue-10000.json ]] || $bench/generate.sh

data=$(mktemp -d)
trap 'rm -rf "$data"' EXIT
field() { sed -n "s/^ *\"$1\": \([0-9.]*\),\{0,1\}$/\1/p" | head -n1; }

"$weft" run "$bench/chain-1000.json" --json --ephemeral > /dev/null # warm the compiled-artifact cache
# Durable runs start from a data directory that already keeps the plugins'
# components (a fresh one stores them first: ~20 MB, a few ms and up to
# redb's 32 MiB page cache, once per data directory, not per run).
"$weft" run "$bench/chain-1000.json" --json --no-cache --data-dir "$data/components" > /dev/null
kept() { rm -rf "$1"; cp -r "$data/components" "$1"; }
kept "$data/durable"
printf '%-26s %8s %10s %12s %14s\n' graph tasks run_ms nodes/s peak_rss_MiB
for g in chain-1000 fanout-1000; do
  "$weft" run "$bench/$g.json" --json --data-dir "$data/warm-$g" > /dev/null # fill the cache
  for mode in ephemeral durable "cache cold" "cache warm"; do
    best=""
    for rep in 1 2 3; do
      case $mode in
        ephemeral) args=(--ephemeral --no-cache) ;;
        durable) args=(--data-dir "$data/durable" --no-cache) ;;
        "cache cold") kept "$data/cold-$g-$rep"; args=(--data-dir "$data/cold-$g-$rep") ;;
        "cache warm") args=(--data-dir "$data/warm-$g") ;;
      esac
      out=$("$weft" run "$bench/$g.json" --json "${args[@]}")
      ms=$(field run_ms <<< "$out")
      if [[ -z $best ]] || awk "BEGIN{exit !($ms < $best)}"; then
        best=$ms
        nodes=$(( $(field tasks_executed <<< "$out") + $(field cache_hits <<< "$out") ))
        rss=$(field peak_rss_kb <<< "$out")
      fi
    done
    awk -v g="$g $mode" -v t="$nodes" -v ms="$best" -v rss="$rss" \
      'BEGIN { printf "%-26s %8d %10.1f %12.0f %14.1f\n", g, t, ms, t / (ms / 1000), rss / 1024 }'
  done
done
# 10,000 jobs through a queue with concurrency 8, durable, output cache off.
best=""
for rep in 1 2 3; do
  out=$("$weft" run "$bench/queue-10000.json" --json --config "$bench/queue.toml" \
    --data-dir "$data/queue" --no-cache --parallelism 16)
  ms=$(field run_ms <<< "$out")
  if [[ -z $best ]] || awk "BEGIN{exit !($ms < $best)}"; then
    best=$ms
    rss=$(field peak_rss_kb <<< "$out")
  fi
done
awk -v ms="$best" -v rss="$rss" \
  'BEGIN { printf "%-26s %8d %10.1f %12.0f %14.1f\n", "queue-10000 conc. 8", 10000, ms, 10000 / (ms / 1000), rss / 1024 }'

# Scaling: the cost per node from 100 to 100,000 nodes, one run each.
printf '[quotas]\ngraph_nodes = 100000\ngraph_dataflows = 200000\n' > "$data/large.toml"
echo
printf '%-8s %-10s %8s %10s %12s %14s\n' graph store nodes run_ms "µs/node" peak_rss_MiB
for g in chain fanout; do
  for n in ${SCALE:-100 1000 10000 100000}; do
    # A fan-out of n - 2 has n nodes with its source and merge.
    width=$n
    [[ $g == fanout ]] && width=$((n - 2))
    $bench/generate.sh "$g" "$width" > "$data/$g-$n.json"
    # Best of 3 up to 10,000 nodes (a run of 100 takes ~2 ms: one run is
    # mostly noise); one run beyond.
    reps=3
    [[ $n -gt 10000 ]] && reps=1
    for mode in ephemeral durable; do
      best=""
      for ((rep = 0; rep < reps; rep++)); do
        case $mode in
          ephemeral) args=(--ephemeral) ;;
          durable) kept "$data/scale"; args=(--data-dir "$data/scale") ;;
        esac
        out=$("$weft" run "$data/$g-$n.json" --json --no-cache --config "$data/large.toml" "${args[@]}")
        ms=$(field run_ms <<< "$out")
        if [[ -z $best ]] || awk "BEGIN{exit !($ms < $best)}"; then
          best=$ms
          tasks=$(field tasks_executed <<< "$out")
          rss=$(field peak_rss_kb <<< "$out")
        fi
      done
      awk -v g="$g" -v m="$mode" -v ms="$best" -v t="$tasks" -v rss="$rss" \
        'BEGIN { printf "%-8s %-10s %8d %10.1f %12.1f %14.1f\n", g, m, t, ms, ms * 1000 / t, rss / 1024 }'
    done
  done
done

# The floor: the same component called straight through wasmtime.
echo
"${CARGO_TARGET_DIR:-target}/release/floor-bench" 100 1000 10000

# The Workglow peer on a chain of 300, beside Weft's.
if command -v node > /dev/null; then
  [[ -d tests/workglow/node_modules ]] || npm ci --prefix tests/workglow --silent
  $bench/generate.sh chain 300 > "$data/chain-300.json"
  peer=$(node tests/workglow/bench.mjs "$data/chain-300.json" | sed -n 's/.*"run_ms":\([0-9.]*\).*/\1/p')
  ours=$("$weft" run "$data/chain-300.json" --json --ephemeral --no-cache | field run_ms)
  awk -v p="$peer" -v o="$ours" \
    'BEGIN { printf "\nchain of 300: Workglow %.1f ms, Weft in memory %.1f ms: %.1fx\n", p, o, p / o }'
fi
echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), load $(cut -d' ' -f1-3 /proc/loadavg)"
