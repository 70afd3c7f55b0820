#!/usr/bin/env bash
# Installs the guest toolchains the Python and JavaScript SDKs build with
# (componentize-py 0.25.1 from PyPI, componentize-js 0.23.0 from npm) into the
# cache folder DIR (default ./.weft/cache), and prints the exports that point
# `weft build` at them. A thin wrapper of `weft toolchain install`, run from
# this checkout's build (a user with the `weft` binary runs that, or just
# `weft build`, which installs what it needs). Idempotent.
#   eval "$(sdk/install-tools.sh [DIR])"
set -euo pipefail
dest=$(realpath -m "${1:-.weft/cache}")
cd "$(dirname "$0")/.."
WEFT_CACHE_DIR="$dest" cargo run --quiet -p weft-cli -- toolchain install >&2
echo "export WEFT_COMPONENTIZE_PY=$dest/tools/componentize-py-0.25.1/bin/componentize-py"
echo "export WEFT_COMPONENTIZE_JS=$dest/tools/componentize-js-0.23.0/node_modules/.bin/componentize-js"
