#!/usr/bin/env bash
# Installs the guest toolchains the Python and JavaScript SDKs build with, from
# the package registries, into DIR (default ./.weft/tools):
#   DIR/py/bin/componentize-py           componentize-py 0.25.1 (PyPI, in a venv)
#   DIR/js/node_modules/.bin/componentize-js   @bytecodealliance/componentize-js 0.23.0 (npm)
# `weft build` finds them through WEFT_COMPONENTIZE_PY / WEFT_COMPONENTIZE_JS
# (printed at the end), the PATH, or a project's node_modules. Idempotent.
#   sdk/install-tools.sh [DIR]
set -euo pipefail
dest=$(realpath -m "${1:-.weft/tools}")
py="$dest/py/bin/componentize-py"
js="$dest/js/node_modules/.bin/componentize-js"
if [[ ! -x $py ]]; then
  python=$(command -v python3) || { echo "install-tools.sh needs python3 (for componentize-py)" >&2; exit 1; }
  "$python" -m venv "$dest/py"
  "$dest/py/bin/pip" install --quiet componentize-py==0.25.1
fi
if [[ ! -x $js ]]; then
  command -v npm >/dev/null || { echo "install-tools.sh needs node and npm (for componentize-js)" >&2; exit 1; }
  mkdir -p "$dest/js"
  npm install --silent --no-audit --no-fund --prefix "$dest/js" @bytecodealliance/componentize-js@0.23.0 >&2
fi
echo "export WEFT_COMPONENTIZE_PY=$py"
echo "export WEFT_COMPONENTIZE_JS=$js"
