#!/usr/bin/env bash
# Builds everything (host, standard plugins) and runs the example pipeline:
#   examples/demo.sh
set -euo pipefail
cd "$(dirname "$0")/.."
rustup target add wasm32-wasip2
cargo run --release -p weft-cli -- run examples/hello.json --input '{"text": "weft, warp, loom"}' "$@"
