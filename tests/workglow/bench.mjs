// The Workglow peer of examples/bench/run.sh: loads each graph file with
// Workglow's own createGraphFromGraphJSON (the task classes of tasks.mjs),
// runs it once to warm up and then again, timed, and prints one JSON line
// per file: {file, tasks, run_ms}.
import { readFileSync } from "node:fs";
import { createGraphFromGraphJSON } from "@workglow/task-graph";
import "./tasks.mjs";

for (const file of process.argv.slice(2)) {
  const json = JSON.parse(readFileSync(file, "utf8"));
  await createGraphFromGraphJSON(json).run(); // warm up
  const graph = createGraphFromGraphJSON(json);
  const start = performance.now();
  await graph.run();
  const run_ms = performance.now() - start;
  console.log(JSON.stringify({ file, tasks: json.tasks.length, run_ms }));
}
