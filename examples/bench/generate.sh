#!/usr/bin/env bash
# Writes the benchmark graphs (the Workglow peer workloads) next to this script:
#   chain-1000.json   1,000 math.add-one in a line, t0 defaults {value: 0} → 1000
#   fanout-1000.json  one source → 1,000 math.add-one → one json.merge
#   queue-10000.json  10,000 independent math.add-one (not committed: 600 KB)
set -euo pipefail
cd "$(dirname "$0")"
n=1000

{
  printf '{"tasks":[\n'
  printf '{"id":"t0","type":"math.add-one","defaults":{"value":0}}'
  for ((i = 1; i < n; i++)); do printf ',\n{"id":"t%d","type":"math.add-one"}' "$i"; done
  printf '\n],"dataflows":[\n'
  for ((i = 1; i < n; i++)); do
    [[ $i -gt 1 ]] && printf ',\n'
    printf '{"sourceTaskId":"t%d","sourceTaskPortId":"value","targetTaskId":"t%d","targetTaskPortId":"value"}' $((i - 1)) "$i"
  done
  printf '\n]}\n'
} > chain-1000.json

{
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
} > fanout-1000.json
# queue-10000.json: 10,000 independent math.add-one jobs (each its own input),
# run through the queue of queue.toml (concurrency 8).
{
  printf '{"tasks":[\n'
  for ((i = 0; i < 10000; i++)); do
    [[ $i -gt 0 ]] && printf ',\n'
    printf '{"id":"j%d","type":"math.add-one","defaults":{"value":%d}}' "$i" "$i"
  done
  printf '\n]}\n'
} > queue-10000.json
echo "wrote chain-1000.json, fanout-1000.json and queue-10000.json"
