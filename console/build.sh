#!/usr/bin/env bash
# Build the web console into console/dist, which `cargo build --features
# console` embeds in `weft`:
#   console/build.sh [CARGO ARGS]     e.g. console/build.sh --release
# The API's TypeScript types are generated from the OpenAPI document of the
# `weft` being built (`weft openapi`, built with CARGO ARGS), so the console
# and the daemon cannot drift: a changed API type fails `tsc` here.
# Needs node and npm (packages from the npm registry, pinned in
# package-lock.json).
set -euo pipefail
cd "$(dirname "$0")"

echo "== console: the API's OpenAPI document (weft openapi)"
cargo run --quiet --locked "$@" -p weft-cli --bin weft -- openapi > src/api/openapi.json

echo "== console: npm packages"
npm ci --no-audit --no-fund --loglevel=error

echo "== console: types, check, build"
npm run --silent types
npm run --silent check
npm run --silent build
