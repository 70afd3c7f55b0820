// Every task class Workglow's utility and AI packages export
// (@workglow/tasks, @workglow/ai 0.2.37): one JSON array of
// {"class", "package", "category", "title", "inputs", "outputs"} (the
// port names of its schemas), sorted by class. tests/coverage.rs
// matches them against Weft's registry to write docs/tasks.md.
globalThis.self ??= globalThis;
const { Task } = await import("@workglow/task-graph");
const out = [];
for (const pkg of ["@workglow/tasks", "@workglow/ai"]) {
  const mod = await import(pkg);
  for (const [name, value] of Object.entries(mod)) {
    if (typeof value !== "function" || !(value.prototype instanceof Task)) continue;
    if (typeof value.type !== "string" || value.type !== name) continue;
    const ports = (schema) => {
      try {
        const s = typeof schema === "function" ? schema.call(value) : schema;
        return Object.keys(s?.properties ?? {});
      } catch {
        return [];
      }
    };
    out.push({
      class: name,
      package: pkg,
      category: value.category ?? "",
      title: value.title ?? "",
      inputs: ports(value.inputSchema),
      outputs: ports(value.outputSchema),
    });
  }
}
out.sort((a, b) => a.class.localeCompare(b.class));
console.log(JSON.stringify(out));
