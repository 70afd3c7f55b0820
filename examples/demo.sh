#!/usr/bin/env bash
# Builds everything (host, standard plugins, the web console) and runs the
# example pipeline:
#   examples/demo.sh
set -euo pipefail
cd "$(dirname "$0")/.."
rustup target add wasm32-wasip2
console/build.sh --release
cargo run --release -p weft-cli --features console -- \
  run examples/hello.json --input '{"text": "weft, warp, loom"}' "$@"
echo "(the same binary serves the API and the web console: target/release/weft serve, then http://127.0.0.1:7878/)" >&2
