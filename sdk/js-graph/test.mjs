// The builder against a real daemon: WEFT_URL names it (the Rust test
// host/cli/tests/daemon.rs starts one and runs this).
import assert from "node:assert/strict";
import { Client, WeftError, Workflow, WorkflowError } from "./weft-graph.js";

const client = new Client(process.env.WEFT_URL);
const tasks = await client.tasks();

const graph = new Workflow(tasks)
  .add("math.add-one", { value: 1 }).named("first")
  .pipe("math.add-one")
  .rename("value", "a")
  .add("math.add", { b: 10 }).named("sum")
  .toJSON();
assert.deepEqual(graph.dataflows.map((f) => [f.sourceTaskId, f.sourceTaskPortId, f.targetTaskId, f.targetTaskPortId]),
  [["first", "value", "add-one-2", "value"], ["add-one-2", "value", "sum", "a"]]);
const run = await client.wait(await client.submit(graph));
assert.equal(run.status, "succeeded", JSON.stringify(run));
assert.deepEqual(run.outputs.sum, { value: 13 });

const mapped = new Workflow(tasks)
  .map().pipe("math.add-one", "math.add-one").endMap().named("each")
  .rename("value", "values").add("math.sum").toJSON();
const mapRun = await client.wait(await client.submit(mapped, { value: [1, 2, 3] }));
assert.equal(mapRun.status, "succeeded", JSON.stringify(mapRun));
assert.deepEqual(mapRun.outputs.each, { value: [3, 4, 5] });
assert.deepEqual(mapRun.outputs["sum-1"], { value: 12 });
const handled = new Workflow(tasks).add("math.divide", { a: 1, b: 0 }).onError("math.add-one", { value: 1 }).toJSON();
assert.deepEqual(handled.dataflows, [{ sourceTaskId: "divide-1", sourceTaskPortId: "[error]",
  targetTaskId: "add-one-1", targetTaskPortId: "*" }]);
assert.throws(() => new Workflow(tasks).map().endReduce(), /endReduce\(\): a map is open/);

const kinds = [];
for await (const e of client.events(await client.submit(new Workflow(tasks).add("math.add-one", { value: 1 }).toJSON()))) {
  kinds.push(e.type);
}
assert.equal(kinds[0], "run_started");
assert.equal(kinds.at(-1), "run_finished");

assert.throws(() => new Workflow(tasks).add("math.nope"), WorkflowError);
assert.throws(() => new Workflow(tasks).add("math.add-one", { value: 1 }).add("math.multiply", { b: 2 }),
  /none of their output ports matches/);
await assert.rejects(client.submit({ tasks: [{ id: "a", type: "math.add-one", defaults: { value: "x" } }] }),
  (e) => e instanceof WeftError && e.status === 422);
console.log("ok: 4 checks");
