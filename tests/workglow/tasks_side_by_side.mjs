// Runs Workglow's own task classes (@workglow/tasks, @workglow/ai) on given inputs:
// argv[2] is a JSON file of [[className, input], ...]; prints one JSON
// array: each task's output, or {"error": message}. tests/workglow.rs
// runs the same inputs through Weft's tasks of those class names.
//
// JSON has no typed arrays: an input {"$typed": "Float64Array", "values":
// [...]} is given to the class as that typed array, and typed arrays in
// outputs are written as plain arrays.
//
// @workglow/tasks' Node entry needs Node 22 (undici 8); its browser entry
// runs on Node 20 given `--conditions=browser` and a `self`.
globalThis.self ??= globalThis;
const { readFileSync } = await import("node:fs");
const tasks = { ...(await import("@workglow/ai")), ...(await import("@workglow/tasks")) };

const typed = (_, v) => (v?.$typed ? new globalThis[v.$typed](v.values) : v);
const plain = (_, v) => (ArrayBuffer.isView(v) ? Array.from(v) : v);
const cases = JSON.parse(readFileSync(process.argv[2], "utf8"), typed);
const out = [];
for (const [name, input] of cases) {
  try {
    out.push(await new tasks[name]().run(input));
  } catch (e) {
    out.push({ error: String(e?.message ?? e) });
  }
}
console.log(JSON.stringify(out, plain));
