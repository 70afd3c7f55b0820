#!/usr/bin/env bash
# Embeddings/s through the wasm task path vs the host calling ONNX directly,
# batch 1 and 32, side by side (release build; fetches MiniLM and ONNX Runtime
# into ./.weft first):
#   examples/bench/models.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
rustup target add wasm32-wasip2 >/dev/null 2>&1 || true
examples/models/fetch.sh
cargo build --release -p weft-load --bin embed-bench --quiet
echo "($(nproc) cores, load $(cut -d' ' -f1 /proc/loadavg))"
"${CARGO_TARGET_DIR:-target}/release/embed-bench" .weft
