#!/usr/bin/env bash
# The per-task cost of a Python and of a JavaScript task against a Rust one,
# in one run, release build: N independent tasks of each (default 200), each
# a fresh instance of its cached compiled component, every input distinct,
# in memory, output cache off; ms per task and the ratio to Rust's
# `math.add-one`, best of 3. The guests are the examples built from source by
# `weft build`: Python `text-stats.analyse` (examples/plugin-python) and
# JavaScript `code.javascript` (examples/plugin-js-code, returning args.a + 1).
#
# Then the per-run cost (ISSUE-NOTES, part 12): `weft serve` on redb with the
# same plugins, 8 clients each submitting one-node runs of a guest's task and
# following each run's events to its end (`weft-load`), R runs per guest
# (default 400); runs/s, ms per run (the machine's time per run: 1 / runs/s)
# and the ratio to a Rust `math.add-one` run.
#   examples/bench/guests.sh [N [R]]
set -euo pipefail
cd "$(dirname "$0")/../.."
n=${1:-200}
runs=${2:-400}
rustup target add wasm32-wasip2 >/dev/null 2>&1 || true
cargo build --release -p weft-cli -p weft-load --quiet
weft=$(realpath "${CARGO_TARGET_DIR:-target}/release/weft")
eval "$(sdk/install-tools.sh)"
work=$(mktemp -d)
pid=""
trap '[[ -z $pid ]] || kill "$pid" 2>/dev/null; wait 2>/dev/null; rm -rf "$work"' EXIT
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

echo
echo "per run: one-node runs on 'weft serve' (redb), 8 clients following each run"
"$weft" serve --listen 127.0.0.1:0 --data-dir "$work/data" --plugins "$work/plugins" \
  --config /dev/null > "$work/out" 2> "$work/log" &
pid=$!
for _ in $(seq 100); do grep -q listening "$work/out" 2>/dev/null && break; sleep 0.1; done
url=$(sed -n 's/.*listening on \(http:[^ ]*\).*/\1/p' "$work/out")
[[ -n $url ]] || { cat "$work/log"; exit 1; }
echo '{"tasks": [{"id": "t", "type": "text-stats.analyse"}]}' > "$work/python-run.json"
echo '{"tasks": [{"id": "t", "type": "code.javascript"}]}' > "$work/js-run.json"
load() {
  local lang=$1; shift
  case $lang in
    rust) set -- "$@" --chain 1 ;;
    python) set -- "$@" --graph "$work/python-run.json" \
      --input '{"text": "Weft threads run across the warp, run {n}."}' ;;
    js) set -- "$@" --graph "$work/js-run.json" \
      --input '{"code": "return args.a + 1", "args": {"a": "{n}"}}' ;;
  esac
  "$(dirname "$weft")/weft-load" --server "$url" --clients 8 --max-seconds 120 "$@"
}
for lang in rust python js; do load "$lang" --runs 40 > /dev/null; done # warm up
printf '%-8s %6s %10s %10s %10s %10s\n' guest runs runs_per_s ms/run x_rust p50_ms
rust=""
for lang in rust python js; do
  out=$(load "$lang" --runs "$runs")
  rate=$(sed -n 's/.*: \([0-9]*\) runs\/s.*/\1/p' <<< "$out")
  p50=$(sed -n 's/.*p50 \([0-9.]*\) ms.*/\1/p' <<< "$out")
  ms=$(awk -v r="$rate" 'BEGIN { printf "%.3f", 1000 / r }')
  rust=${rust:-$ms}
  awk -v g="$lang" -v n="$runs" -v rate="$rate" -v ms="$ms" -v r="$rust" -v p="$p50" \
    'BEGIN { printf "%-8s %6d %10d %10.3f %10.1f %10.1f\n", g, n, rate, ms, ms / r, p }'
done
