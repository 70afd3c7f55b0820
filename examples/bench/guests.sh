#!/usr/bin/env bash
# The per-task cost of a Python and of a JavaScript task against a Rust one,
# in one run, release build: N independent tasks of each (default 200), each
# a fresh instance of its cached compiled component, every input distinct,
# in memory, output cache off; ms per task and the ratio to Rust's
# `math.add-one`, best of 3. The guests are the examples built from source by
# `weft build`: Python `text-stats.analyse` (examples/plugin-python) and
# JavaScript `code.javascript` (examples/plugin-js-code, returning args.a + 1).
#   examples/bench/guests.sh [N]
set -euo pipefail
cd "$(dirname "$0")/../.."
n=${1:-200}
rustup target add wasm32-wasip2 >/dev/null 2>&1 || true
cargo build --release -p weft-cli --quiet
weft=$(realpath "${CARGO_TARGET_DIR:-target}/release/weft")
eval "$(sdk/install-tools.sh)"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/plugins"
for lang in python js; do
  case $lang in
    python) name=text-stats; app=examples/plugin-python/app.py ;;
    js) name=js-code; app=examples/plugin-js-code/app.js ;;
  esac
  (cd "$work" && "$weft" new "$name" --lang "$lang" > /dev/null)
  cp "$app" "$work/$name/"
  (cd "$work" && "$weft" build "$name" > /dev/null)
  cp "$work/$name/dist/$name.wasm" "$work/plugins/"
done
python3 - "$n" "$work" <<'PY'
import json, sys
n, work = int(sys.argv[1]), sys.argv[2]
graphs = {
  "rust": [{"id": f"t{i}", "type": "math.add-one", "defaults": {"value": i}} for i in range(n)],
  "python": [{"id": f"t{i}", "type": "text-stats.analyse",
              "defaults": {"text": f"Weft threads run across the warp, row {i}."}} for i in range(n)],
  "js": [{"id": f"t{i}", "type": "code.javascript",
          "defaults": {"code": "return args.a + 1", "args": {"a": i}}} for i in range(n)],
}
for lang, tasks in graphs.items():
  json.dump({"tasks": tasks}, open(f"{work}/{lang}.json", "w"))
PY
field() { sed -n "s/^ *\"$1\": \([0-9.]*\),\{0,1\}$/\1/p" | head -n1; }
run() { "$weft" run "$work/$1.json" --json --ephemeral --no-cache --plugins "$work/plugins" --config /dev/null; }
for lang in rust python js; do run "$lang" > /dev/null; done # warm the compiled-artifact cache
printf '%-8s %6s %10s %12s %10s %14s\n' guest tasks run_ms ms/task x_rust peak_rss_MiB
rust=""
for lang in rust python js; do
  best=""
  for rep in 1 2 3; do
    out=$(run "$lang")
    ms=$(field run_ms <<< "$out")
    if [[ -z $best ]] || awk "BEGIN{exit !($ms < $best)}"; then
      best=$ms
      rss=$(field peak_rss_kb <<< "$out")
    fi
  done
  rust=${rust:-$best}
  awk -v g="$lang" -v n="$n" -v ms="$best" -v r="$rust" -v rss="$rss" \
    'BEGIN { printf "%-8s %6d %10.1f %12.3f %10.1f %14.1f\n", g, n, ms, ms / n, ms / r, rss / 1024 }'
done
