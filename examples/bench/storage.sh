#!/usr/bin/env bash
# The `storage` import from a wasm task: N single-key writes, then N single-key
# reads, each a host call, timed inside the task (`kv.bench` of the storage
# test guest), on the embedded redb store and on PostgreSQL (a throwaway
# server on this machine, tests/postgres.sh), at N = 100, 1,000, 10,000 and
# 100,000.
# Release builds; operations/s.
#   examples/bench/storage.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
rustup target add wasm32-wasip2 >/dev/null 2>&1 || true
target=${CARGO_TARGET_DIR:-target}
cargo build --release -p weft-cli --quiet
cargo build --release --target wasm32-wasip2 -p weft-guest-storage --quiet
eval "$(tests/postgres.sh start)"
work=$(mktemp -d)
trap 'tests/postgres.sh stop "$WEFT_TEST_PG_DIR"; rm -rf "$work"' EXIT
mkdir -p "$work/plugins"
cp "$target/wasm32-wasip2/release/weft_guest_storage.wasm" "$work/plugins/kv.wasm"
field() { python3 -c "import json,sys; print(json.load(sys.stdin)['outputs']['b']['$1'])"; }
printf '%-10s %8s %12s %12s\n' store n sets/s gets/s
for store in redb postgres; do
  for n in ${BENCH_SIZES:-100 1000 10000 100000}; do
    echo "{\"tasks\": [{\"id\": \"b\", \"type\": \"kv.bench\", \"defaults\": {\"n\": $n}}]}" > "$work/g.json"
    args=(run "$work/g.json" --json --plugins "$work/plugins" --data-dir "$work/data-$store-$n")
    [[ $store == postgres ]] && args+=(--database-url "$WEFT_TEST_DATABASE_URL")
    out=$("$target/release/weft" "${args[@]}")
    set_ms=$(field set_ms <<< "$out")
    get_ms=$(field get_ms <<< "$out")
    awk -v s="$store" -v n="$n" -v a="$set_ms" -v b="$get_ms" \
      'BEGIN { printf "%-10s %8d %12.0f %12.0f\n", s, n, n / (a / 1000), n / (b / 1000) }'
  done
done
echo "machine: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
