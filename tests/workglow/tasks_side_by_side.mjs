// Runs Workglow's own task classes (@workglow/tasks, @workglow/ai) on given inputs:
// argv[2] is a JSON file of [[className, input], ...]; prints one JSON
// array: each task's output, or {"error": message}. tests/workglow.rs
// runs the same inputs through Weft's tasks of those class names.
//
// @workglow/tasks' Node entry needs Node 22 (undici 8); its browser entry
// runs on Node 20 given `--conditions=browser` and a `self`.
globalThis.self ??= globalThis;
const { readFileSync } = await import("node:fs");
const tasks = { ...(await import("@workglow/ai")), ...(await import("@workglow/tasks")) };

const cases = JSON.parse(readFileSync(process.argv[2], "utf8"));
const out = [];
for (const [name, input] of cases) {
  try {
    out.push(await new tasks[name]().run(input));
  } catch (e) {
    out.push({ error: String(e?.message ?? e) });
  }
}
console.log(JSON.stringify(out));
