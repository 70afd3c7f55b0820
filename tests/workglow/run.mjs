// Load graph JSON files with Workglow's own createGraphFromGraphJSON and run
// them; prints one JSON line per file: the leaf outputs by node id.
// tests/workglow.rs gives it the graphs `weft graph export --format
// workglow` writes.
import { readFileSync } from "node:fs";
import { createGraphFromGraphJSON } from "@workglow/task-graph";
import "./tasks.mjs";

for (const file of process.argv.slice(2)) {
  const graph = createGraphFromGraphJSON(JSON.parse(readFileSync(file, "utf8")));
  const results = await graph.run();
  console.log(JSON.stringify(Object.fromEntries(results.map((r) => [r.id, r.data]))));
}
