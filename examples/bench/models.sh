#!/usr/bin/env bash
# Embeddings/s through the wasm task path vs the host calling ONNX directly,
# batch 1 and 32, side by side; then the output cache on the same task: N
# independent `ai.text-embedding` nodes (distinct sentences, a few ms each),
# cache cold then warm on redb (release build; fetches MiniLM and ONNX
# Runtime into ./.weft first):
#   examples/bench/models.sh          (CACHE_NODES=200 by default)
set -euo pipefail
cd "$(dirname "$0")/../.."
rustup target add wasm32-wasip2 >/dev/null 2>&1 || true
examples/models/fetch.sh
cargo build --release -p weft-load --bin embed-bench -p weft-cli --quiet
release=${CARGO_TARGET_DIR:-target}/release
echo "($(nproc) cores, load $(cut -d' ' -f1 /proc/loadavg))"
"$release/embed-bench" .weft

# The output cache on a task that costs milliseconds.
n=${CACHE_NODES:-200}
data=$(mktemp -d)
trap 'rm -rf "$data"' EXIT
{
  printf '{"tasks":[\n'
  for ((i = 0; i < n; i++)); do
    [[ $i -gt 0 ]] && printf ',\n'
    printf '{"id":"e%d","type":"ai.text-embedding","defaults":{"model":"minilm","text":"Sentence %d: the output cache keeps what a task made for the same input."}}' "$i" "$i"
  done
  printf '\n],"dataflows":[]}\n'
} > "$data/embed.json"
export WEFT_MODELS_DIR=$PWD/.weft/models
export ORT_DYLIB_PATH=$PWD/.weft/onnxruntime/libonnxruntime.so.1.31.1
field() { sed -n "s/^ *\"$1\": \([0-9.]*\),\{0,1\}$/\1/p" | head -n1; }
echo
printf '%-12s %8s %8s %10s %12s\n' cache nodes hits run_ms "ms/node"
for mode in cold warm; do
  out=$("$release/weft" run "$data/embed.json" --json --data-dir "$data/store")
  ms=$(field run_ms <<< "$out")
  hits=$(field cache_hits <<< "$out")
  awk -v m="$mode" -v n="$n" -v h="$hits" -v ms="$ms" \
    'BEGIN { printf "%-12s %8d %8d %10.1f %12.3f\n", m, n, h, ms, ms / n }'
done
