#!/usr/bin/env bash
# Run every fuzz target for SECONDS each (default 300), with libFuzzer under
# a nightly toolchain (installed here if missing, with cargo-fuzz). Not part
# of the test suite or CI: a crash is saved under fuzz/artifacts/TARGET/ and
# should become a regression test. Usage: fuzz/run.sh [SECONDS] [TARGET...]
set -euo pipefail
cd "$(dirname "$0")"
seconds=${1:-300}
shift || true
rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
targets=("$@")
if [[ ${#targets[@]} -eq 0 ]]; then
  mapfile -t targets < <(cargo +nightly fuzz list)
fi
for t in "${targets[@]}"; do
  echo "== $t: ${seconds}s"
  mkdir -p "corpus/$t"
  # Safe Rust: what the fuzzer looks for is panics and hangs, not memory
  # errors; without a sanitizer the wasm and SQLite C code builds as is.
  cargo +nightly fuzz run --sanitizer none "$t" "corpus/$t" -- \
    -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10
done
