#!/usr/bin/env bash
# The RAG tasks (plugins/rag) at 100, 10,000 and 100,000 units, durable on
# redb, with a release build: each path is one node of one run given its
# whole input, best of 3 (the compiled-plugin cache is warmed first).
# Prints run_ms, µs per unit and peak memory (of the whole `weft run`
# process) for:
#   parse          rag.structural-parser: a Markdown document of N lines,
#                  a section every 5 (two levels)                per line
#   chunk-tree     rag.hierarchical-chunker on that tree         per line
#   text-sentence  rag.text-chunker `sentence` on that text,
#   text-paragraph and `paragraph` (chunkSize 1000)              per line
#   doc-upsert     rag.document-upsert of the tree               per line
#   kb-to-docs     rag.kb-to-documents: that tree back           per line
#   join           rag.hierarchy-join of every chunk of the tree per chunk
#   upsert         rag.chunk-vector-upsert of N chunks with vectors of 8
#                  numbers made here, documents of 1,000 (a map) per chunk
#   retrieve       rag.chunk-retrieval by a query vector, top 5  per chunk
#   hybrid         the same, `hybrid` (BM25 and vectors, RRF)    per chunk
#   kb-search      rag.kb-search (the query embedded)            per chunk
#   kb-delete      rag.kb-delete of every document (a map; once) per chunk
# Per-unit cost should stay flat from 10,000 to 100,000 (at 100 a run's
# fixed cost dominates). Query texts are embedded by a stand-in
# OpenAI-style server on loopback (python3, 8 numbers from a text's
# SHA-256), so no model is downloaded. A knowledge base holds 99,999
# chunks at most: a plugin's storage namespace is capped at 100,000 keys
# and 64 MiB, and the knowledge base's `info` is a key.
#   examples/bench/rag.sh            (SCALE="100 10000" for a shorter series)
set -euo pipefail
cd "$(dirname "$0")/../.."
rustup target add wasm32-wasip2 >/dev/null 2>&1 || true
cargo build --release -p weft-cli --quiet
weft=${CARGO_TARGET_DIR:-target}/release/weft

work=$(mktemp -d)
server=""
trap '[[ -n $server ]] && kill "$server" 2>/dev/null; rm -rf "$work"' EXIT
field() { sed -n "s/^ *\"$1\": \([0-9.]*\),\{0,1\}$/\1/p" | head -n1; }

# Inputs and graphs, made by python3: `gen.py WHAT N OUT`.
cat > "$work/gen.py" <<'PY'
import hashlib, json, math, sys

WORDS = ("river stone lantern copper meadow harbor falcon orchard quartz "
         "velvet ember glacier thistle canyon beacon saffron willow cobalt "
         "prism tundra mosaic juniper plume cedar").split()

def words(i, n):  # n words of line i, a rare one (w<i>) among them
    return " ".join([WORDS[(i * 7 + k * 3) % len(WORDS)] for k in range(n - 1)] + [f"w{i}"])

def document(lines):  # a section every 5 lines: heading, 3 lines, blank
    out = ["# Bench"]
    while len(out) < lines:
        s = len(out) // 5
        out.append(f"## Part {s}" if s % 4 == 0 else f"### Topic {s}")
        out += [words(len(out) + k, 8).capitalize() + "." for k in range(3)]
        out.append("")
    return "\n".join(out[:lines])

def vector(i):
    return [round(math.sin(i * 0.37 + k * 1.3), 5) for k in range(8)]

def chunk(d, i):
    return {"chunkId": f"d{d}:{i}", "doc_id": f"d{d}", "text": f"Part {d} > Topic {i}\n\n" + words(i, 12) + ".",
            "nodePath": [f"d{d}#0", f"d{d}#{i}", f"d{d}#{i + 1}"], "depth": 3, "leafNodeId": f"d{d}#{i + 1}",
            "sectionTitles": [f"Part {d}", f"Topic {i}"]}

def node(task, defaults, id="n"):
    return {"id": id, "type": task, "defaults": defaults}

def mapped(task, over, defaults):
    return {"id": "n", "type": "map", "config": {"task": task, "over": over, "concurrency": 8},
            "defaults": defaults}

what, n, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
kb = {"knowledgeBase": "bench"}
if what == "doc":
    value = {"text": document(n), "title": "Bench", "doc_id": "bench", "format": "markdown"}
elif what == "chunks":  # documents of 1,000 chunks, n in all
    sizes = [min(1000, n - s) for s in range(0, n, 1000)]
    value = {"chunks": [[chunk(d, d * 1000 + i) for i in range(k)] for d, k in enumerate(sizes)],
             "vector": [[vector(d * 1000 + i) for i in range(k)] for d, k in enumerate(sizes)]}
elif what == "docs":  # the ids of those documents
    value = {"doc_id": [f"d{d}" for d in range((n + 999) // 1000)]}
elif what == "graphs":
    graphs = {
        "parse": node("rag.structural-parser", {}),
        "chunk-tree": node("rag.hierarchical-chunker", {}),
        "text-sentence": node("rag.text-chunker", {"strategy": "sentence", "chunkSize": 1000}),
        "text-paragraph": node("rag.text-chunker", {"strategy": "paragraph", "chunkSize": 1000}),
        "upsert": mapped("rag.chunk-vector-upsert", ["chunks", "vector"], dict(kb, model="hash")),
        "retrieve": node("rag.chunk-retrieval", dict(kb, query=vector(7), topK=5)),
        "hybrid": node("rag.chunk-retrieval", dict(kb, query=words(70, 4), model="hash", method="hybrid", topK=5)),
        "kb-search": node("rag.kb-search", dict(kb, query=words(70, 4), topK=5)),
        "doc-upsert": node("rag.document-upsert", dict(kb, title="Bench")),
        "kb-to-docs": node("rag.kb-to-documents", dict(kb, onlyStale=False)),
        "join": node("rag.hierarchy-join", kb),
        "kb-delete": mapped("rag.kb-delete", ["doc_id"], kb),
    }
    for name, task in graphs.items():
        with open(f"{out}/graph-{name}.json", "w") as f:
            json.dump({"tasks": [task], "dataflows": []}, f)
    sys.exit()
with open(out, "w") as f:
    json.dump(value, f)
PY
gen() { python3 "$work/gen.py" "$@"; }
# From a run's JSON: node n's output as a new input ({"PORT": value, …}),
# ports renamed `from:to`; none if that run failed.
pass() { # OUT FILE PORT[:TO]…
  rm -f "$1"
  [[ -f $2 ]] || return 0
  python3 - "$@" <<'PY'
import json, sys
out, run, ports = sys.argv[1], json.load(open(sys.argv[2])), sys.argv[3:]
got = run["outputs"]["n"]
json.dump({p.split(":")[-1]: got[p.split(":")[0]] for p in ports}, open(out, "w"))
PY
}

# The stand-in embedding model: POST /v1/embeddings → 8 numbers per text.
cat > "$work/embed.py" <<'PY'
import hashlib, http.server, json, sys

class Embed(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["content-length"])))
        texts = body["input"] if isinstance(body["input"], list) else [body["input"]]
        data = [{"index": i, "embedding": [b / 255 - 0.5 for b in hashlib.sha256(t.encode()).digest()[:8]]}
                for i, t in enumerate(texts)]
        answer = json.dumps({"data": data}).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *args):
        pass

server = http.server.HTTPServer(("127.0.0.1", 0), Embed)
print(server.server_address[1], flush=True)
server.serve_forever()
PY
python3 "$work/embed.py" > "$work/port" &
server=$!
for _ in $(seq 50); do [[ -s $work/port ]] && break; sleep 0.1; done
cat > "$work/weft.toml" <<EOF
[models.hash]
provider = "openai"
kind = "embedding"
model = "hash"
base_url = "http://127.0.0.1:$(cat "$work/port")/v1"
EOF

gen graphs 0 "$work"
# run NAME DATA INPUT UNIT COUNT [REPS]: graph NAME on data directory DATA
# with input file INPUT, best of REPS runs (default 3; an upsert each time
# into an empty knowledge base); its JSON kept as $work/out-NAME.json.
run() {
  local out=$work/out-$1.json best="" ms rss rep
  rm -f "$out"
  if [[ ! -f $3 ]]; then
    printf '%-15s %8s %-6s skipped: no input (a path before failed)\n' "$1" "$5" "$4"
    return 0
  fi
  for rep in $(seq "${6:-3}"); do
    [[ $1 == upsert ]] && rm -rf "${work:?}/$2"
    "$weft" run "$work/graph-$1.json" --json --no-cache --config "$work/weft.toml" \
      --data-dir "$work/$2" --input "@$3" > "$out.new" || true
    if ! grep -q '"status": "succeeded"' "$out.new"; then
      printf '%-15s %8d %-6s failed: %s\n' "$1" "$5" "$4" \
        "$(grep -o '"error": "[^"]*' "$out.new" | head -n1 | cut -c11-200)"
      return 0
    fi
    mv "$out.new" "$out"
    ms=$(field run_ms < "$out")
    if [[ -z $best ]] || awk "BEGIN{exit !($ms < $best)}"; then
      best=$ms
      rss=$(field peak_rss_kb < "$out")
    fi
  done
  awk -v g="$1" -v n="$5" -v u="$4" -v ms="$best" -v rss="$rss" \
    'BEGIN { printf "%-15s %8d %-6s %10.1f %10.2f %14.1f\n", g, n, u, ms, ms * 1000 / n, rss / 1024 }'
}
count() { # FILE FIELD: the length of the list FIELD of FILE (0 if no file)
  [[ -f $1 ]] || { echo 0; return; }
  python3 -c 'import json, sys; print(len(json.load(open(sys.argv[1]))[sys.argv[2]]))' "$@"
}

echo '{}' > "$work/none.json"
gen doc 100 "$work/doc.json"
"$weft" run "$work/graph-parse.json" --json --ephemeral --input "@$work/doc.json" > /dev/null # warm the compiled-artifact cache
printf '%-15s %8s %-6s %10s %10s %14s\n' path units unit run_ms "µs/unit" peak_rss_MiB
for n in ${SCALE:-100 10000 100000}; do
  rm -rf "${work:?}"/data-*
  gen doc "$n" "$work/doc.json"
  run parse data-docs "$work/doc.json" line "$n"
  pass "$work/tree.json" "$work/out-parse.json" doc_id documentTree
  run chunk-tree data-docs "$work/tree.json" line "$n"
  run text-sentence data-docs "$work/doc.json" line "$n"
  run text-paragraph data-docs "$work/doc.json" line "$n"
  run doc-upsert data-docs "$work/tree.json" line "$n"
  pass "$work/stored.json" "$work/out-doc-upsert.json" # {} once the tree is kept
  run kb-to-docs data-docs "$work/stored.json" line "$n"
  pass "$work/join-in.json" "$work/out-chunk-tree.json" chunks:metadata
  run join data-docs "$work/join-in.json" chunk "$(count "$work/join-in.json" metadata)"
  chunks=$((n < 99999 ? n : 99999))
  gen chunks "$chunks" "$work/chunks.json"
  run upsert data-kb "$work/chunks.json" chunk "$chunks"
  run retrieve data-kb "$work/none.json" chunk "$chunks"
  run hybrid data-kb "$work/none.json" chunk "$chunks"
  run kb-search data-kb "$work/none.json" chunk "$chunks"
  gen docs "$chunks" "$work/docs.json"
  run kb-delete data-kb "$work/docs.json" chunk "$chunks" 1
done
echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), load $(cut -d' ' -f1-3 /proc/loadavg)"
