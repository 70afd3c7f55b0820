// Runs with plain Node: `node test.mjs` (the task function is an ordinary function).
import assert from "node:assert/strict";
const source = (await import("node:fs")).readFileSync(new URL("./app.js", import.meta.url), "utf8");
// Evaluate just the task function, without the component imports.
const greet = new Function(`${source.match(/export function greet[\s\S]*?\n}\n/)[0].replace("export ", "")}; return greet;`)();
assert.equal(greet({ name: "loom" }, { log() {} }).greeting, "Hello, loom!");
console.log("ok");
