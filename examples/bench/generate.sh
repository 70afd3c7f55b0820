#!/usr/bin/env bash
# Writes the benchmark graphs (the Workglow peer workloads).
#   generate.sh                  writes, next to this script:
#     chain-1000.json   1,000 math.add-one in a line, t0 defaults {value: 0} → 1000
#     fanout-1000.json  one source → 1,000 math.add-one → one json.merge
#     queue-10000.json  10,000 independent math.add-one (not committed: 600 KB)
#   generate.sh chain|fanout|queue N   writes that graph with N tasks to stdout
set -euo pipefail
cd "$(dirname "$0")"

chain() { # N math.add-one in a line
  local n=$1 i
  printf '{"tasks":[\n'
  printf '{"id":"t0","type":"math.add-one","defaults":{"value":0}}'
  for ((i = 1; i < n; i++)); do printf ',\n{"id":"t%d","type":"math.add-one"}' "$i"; done
  printf '\n],"dataflows":['
  for ((i = 1; i < n; i++)); do
    [[ $i -gt 1 ]] && printf ','
    printf '\n{"sourceTaskId":"t%d","sourceTaskPortId":"value","targetTaskId":"t%d","targetTaskPortId":"value"}' $((i - 1)) "$i"
  done
  printf '\n]}\n'
}

fanout() { # one source → N math.add-one → one json.merge
  local n=$1 i
  printf '{"tasks":[\n'
  printf '{"id":"source","type":"math.add-one","defaults":{"value":0}},\n'
  printf '{"id":"merge","type":"json.merge"}'
  for ((i = 0; i < n; i++)); do printf ',\n{"id":"f%d","type":"math.add-one"}' "$i"; done
  printf '\n],"dataflows":[\n'
  for ((i = 0; i < n; i++)); do
    [[ $i -gt 0 ]] && printf ',\n'
    printf '{"sourceTaskId":"source","sourceTaskPortId":"value","targetTaskId":"f%d","targetTaskPortId":"value"},\n' "$i"
    printf '{"sourceTaskId":"f%d","sourceTaskPortId":"value","targetTaskId":"merge","targetTaskPortId":"f%d"}' "$i" "$i"
  done
  printf '\n]}\n'
}

queue() { # N independent math.add-one jobs, each its own input
  local n=$1 i
  printf '{"tasks":[\n'
  for ((i = 0; i < n; i++)); do
    [[ $i -gt 0 ]] && printf ',\n'
    printf '{"id":"j%d","type":"math.add-one","defaults":{"value":%d}}' "$i" "$i"
  done
  printf '\n]}\n'
}

case ${1:-} in
  chain | fanout | queue) "$1" "${2:?how many tasks}" ;;
  "")
    chain 1000 > chain-1000.json
    fanout 1000 > fanout-1000.json
    queue 10000 > queue-10000.json
    echo "wrote chain-1000.json, fanout-1000.json and queue-10000.json"
    ;;
  *) echo "usage: $0 [chain|fanout|queue N]" >&2; exit 2 ;;
esac
