#!/usr/bin/env bash
# Preview latency: a 50-node chain of `math.add-one`, fully cached (one real
# run first), previewed 20 times; prints the median and best `run_ms` (from
# the first node scheduled to the end, inside the process). Release build.
#   examples/bench/preview.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
rustup target add wasm32-wasip2 >/dev/null 2>&1 || true
cargo build --release -p weft-cli --quiet
weft=${CARGO_TARGET_DIR:-target}/release/weft

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
field() { sed -n "s/^ *\"$1\": \([0-9.]*\),\{0,1\}$/\1/p" | head -n1; }
python3 - > "$work/chain-50.json" <<'PY'
import json
tasks = [{"id": "n0", "type": "math.add-one", "defaults": {"value": 0}}]
flows = []
for i in range(1, 50):
    tasks.append({"id": f"n{i}", "type": "math.add-one"})
    flows.append({"sourceTaskId": f"n{i-1}", "sourceTaskPortId": "value",
                  "targetTaskId": f"n{i}", "targetTaskPortId": "value"})
print(json.dumps({"tasks": tasks, "dataflows": flows}))
PY
"$weft" run "$work/chain-50.json" --json --data-dir "$work/data" > /dev/null # fill the cache
times=()
for rep in $(seq 20); do
  times+=("$("$weft" run "$work/chain-50.json" --preview --json --data-dir "$work/data" | field run_ms)")
done
printf '%s\n' "${times[@]}" | sort -n | awk '{ a[NR] = $1 } END {
  printf "preview, 50-node chain, fully cached: median %.2f ms, best %.2f ms (%d runs)\n", a[int((NR + 1) / 2)], a[1], NR }'
