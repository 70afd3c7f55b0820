#!/usr/bin/env bash
# Soak test: one `weft serve` (release build) fed one-node runs by 32
# clients in batches of 10,000, with retention on; after each batch its RSS
# and the store's size on disk. Memory should be flat after warm-up (the
# redb page cache fills to its cap, 32 MiB by default, over the first
# ~15,000 runs) and disk flat once retention deletes as fast as runs come.
#   examples/bench/soak.sh [RUNS] [redb|postgres]   (default 200000 redb)
# With postgres, WEFT_TEST_DATABASE_URL names a server to use (a fresh
# database is made in it), else tests/postgres.sh starts a throwaway one.
set -euo pipefail
cd "$(dirname "$0")/../.."
runs=${1:-200000}
store=${2:-redb}
batch=10000
cargo build --release -p weft-cli -p weft-load --quiet
bin=${CARGO_TARGET_DIR:-target}/release
work=$(mktemp -d)
cleanup() {
  kill "$pid" 2>/dev/null || true
  wait 2>/dev/null || true
  [[ -n ${WEFT_TEST_PG_DIR:-} && -n ${started_pg:-} ]] && tests/postgres.sh stop "$WEFT_TEST_PG_DIR"
  rm -rf "$work"
}
trap cleanup EXIT
args=(--data-dir "$work/data")
if [[ $store == postgres ]]; then
  if [[ -z ${WEFT_TEST_DATABASE_URL:-} ]]; then eval "$(tests/postgres.sh start)"; started_pg=1; fi
  db="weft_soak_$$"
  "$WEFT_TEST_PG_BIN/psql" -q -d "$WEFT_TEST_DATABASE_URL" -c "CREATE DATABASE $db"
  args+=(--database-url "${WEFT_TEST_DATABASE_URL%/*}/$db")
fi
cat > "$work/weft.toml" <<TOML
[retention]
succeeded = "2m"
every_s = 10
per_pass = 20000
TOML
"$bin/weft" serve --listen 127.0.0.1:0 "${args[@]}" --plugins "$work/plugins" \
  --config "$work/weft.toml" > "$work/out" 2> "$work/log" &
pid=$!
for _ in $(seq 200); do grep -q listening "$work/out" 2>/dev/null && break; sleep 0.1; done
url=$(sed -n 's/.*listening on \(http:[^ ]*\).*/\1/p' "$work/out")
[[ -n $url ]] || { cat "$work/log"; exit 1; }
echo "daemon at $url on $store ($(nproc) cores); runs, RSS MB, store MB, runs/s"
rss() { awk '/VmRSS/ {printf "%.1f", $2 / 1024}' "/proc/$pid/status"; }
disk() {
  if [[ $store == redb ]]; then du -sm "$work/data" | cut -f1
  else "$WEFT_TEST_PG_BIN/psql" -Atq -d "${WEFT_TEST_DATABASE_URL%/*}/$db" \
      -c "SELECT pg_database_size(current_database()) / 1048576"; fi
}
echo "0, $(rss), $(disk), -"
done_runs=0
while (( done_runs < runs )); do
  start=$(date +%s.%N)
  "$bin/weft-load" --server "$url" --clients 32 --chain 1 --runs "$batch" --max-seconds 3600 > "$work/batch" 2>&1 \
    || { cat "$work/batch"; exit 1; }
  now=$(date +%s.%N)
  done_runs=$(( done_runs + batch ))
  echo "$done_runs, $(rss), $(disk), $(awk -v n="$batch" -v a="$start" -v b="$now" 'BEGIN { printf "%.0f", n / (b - a) }')"
done
