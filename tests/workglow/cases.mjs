// Graphs built with Workglow's own API (npm @workglow/task-graph, pinned in
// package.json), each written with Workglow's toJSON() (or
// toDependencyJSON()) and run by Workglow. Prints one JSON line per case:
// {name, json, result}, where result maps each leaf node to its output.
// tests/workglow.rs runs every `json` in Weft and compares.
import {
  TaskGraph, Dataflow, Workflow, GraphAsTask, MapTask, ConditionalTask, WhileTask, FallbackTask,
} from "@workglow/task-graph";
import { AddOne, Add, Divide, Template } from "./tasks.mjs";


/// Leaf outputs by node id, as Weft gives them.
function byLeaf(results) {
  if (!Array.isArray(results)) return results;
  return Object.fromEntries(results.map((r) => [r.id, r.data]));
}

const cases = [];
async function graphCase(name, graph) {
  const json = graph.toJSON();
  cases.push({ name, json, result: byLeaf(await graph.run()) });
}

// A chain whose nodes carry config (title, timeout), with a transform.
{
  const g = new TaskGraph();
  g.addTasks([
    new AddOne({ id: "a", defaults: { value: 41 }, title: "first", timeout: 5000 }),
    new AddOne({ id: "b", description: "second", cacheable: false }),
    new Template({ id: "show", defaults: { template: "got {{text}}" } }),
  ]);
  g.addDataflow(new Dataflow("a", "value", "b", "value"));
  const toText = new Dataflow("b", "value", "show", "text");
  toText.setTransforms([{ id: "numberToString" }, { id: "truncate", params: { max: 1 } }]);
  g.addDataflow(toText);
  await graphCase("chain with config and a transform", g);
}

// Compound nodes: one leaf (PROPERTY_ARRAY is its output), two leaves
// (PROPERTY_ARRAY collects each port), and GRAPH_RESULT_ARRAY.
for (const [name, leaves, merge] of [
  ["compound, one leaf", 1, undefined],
  ["compound, two leaves merged by property", 2, undefined],
  ["compound, graph result array", 2, "GRAPH_RESULT_ARRAY"],
]) {
  const inner = new TaskGraph();
  inner.addTasks([new AddOne({ id: "g1" }), new AddOne({ id: "g2" })]);
  inner.addDataflow(new Dataflow("g1", "value", "g2", "value"));
  if (leaves === 2) inner.addTasks([new Add({ id: "g3", defaults: { a: 100, b: 1 } })]);
  const grp = new GraphAsTask({ id: "grp", ...(merge ? { compoundMerge: merge } : {}) });
  grp.subGraph = inner;
  const g = new TaskGraph();
  g.addTasks([new AddOne({ id: "a", defaults: { value: 1 } }), grp]);
  g.addDataflow(new Dataflow("a", "value", "grp", "value"));
  await graphCase(name, g);
}

// A map over a subgraph: each port an array over the elements.
{
  const inner = new TaskGraph();
  inner.addTasks([new AddOne({ id: "g1" }), new AddOne({ id: "g2" })]);
  inner.addDataflow(new Dataflow("g1", "value", "g2", "value"));
  const m = new MapTask({ id: "m", maxIterations: 100, defaults: { value: [1, 2, 3] } });
  m.subGraph = inner;
  const g = new TaskGraph();
  g.addTasks([m]);
  await graphCase("map over a subgraph", g);
}

// A while loop over a subgraph, its condition in the serialisable form.
{
  const inner = new TaskGraph();
  inner.addTasks([new AddOne({ id: "g1" })]);
  const w = new WhileTask({ id: "w", maxIterations: 10, defaults: { value: 0 },
    conditionField: "value", conditionOperator: "less_than", conditionValue: "5" });
  w.subGraph = inner;
  const g = new TaskGraph();
  g.addTasks([w]);
  await graphCase("while over a subgraph", g);
}

// Fallbacks: over alternative inputs to a subgraph ("data"), and over the
// tasks of a subgraph ("task", the default).
{
  const inner = new TaskGraph();
  inner.addTasks([new Divide({ id: "d" })]);
  const f = new FallbackTask({ id: "f", fallbackMode: "data", alternatives: [{ b: 0 }, { b: 2 }],
    defaults: { a: 8, b: 1 } });
  f.subGraph = inner;
  const g = new TaskGraph();
  g.addTasks([f]);
  await graphCase("fallback over data", g);
}
{
  const inner = new TaskGraph();
  inner.addTasks([new Divide({ id: "d" }), new Add({ id: "s" })]);
  const f = new FallbackTask({ id: "f", defaults: { a: 6, b: 0 } });
  f.subGraph = inner;
  const g = new TaskGraph();
  g.addTasks([f]);
  await graphCase("fallback over tasks", g);
}

// A conditional in its serialisable form (conditionConfig): ports
// `{input port}_{branch number}`, or `_else`. Workglow 0.2.37 writes it but
// does not run it as configured: its edges from those ports deliver nothing
// (the ports are not in ConditionalTask's output schema, so the edges are
// dropped as incompatible) and the nodes after untaken branches run anyway.
// tests/workglow.rs checks that Weft routes it as the config says.
{
  const route = new ConditionalTask({ id: "route", defaults: { value: 5 },
    conditionConfig: { branches: [
      { id: "big", field: "value", operator: "greater_than", value: 3 },
      { id: "small", field: "value", operator: "less_or_equal", value: 3 }] } });
  const g = new TaskGraph();
  g.addTasks([route,
    new Template({ id: "onbig", defaults: { template: "big {{value}}" } }),
    new Template({ id: "onsmall", defaults: { template: "small {{value}}" } }),
    new Template({ id: "onelse", defaults: { template: "else {{value}}" } })]);
  g.addDataflow(new Dataflow("route", "value_1", "onbig", "value"));
  g.addDataflow(new Dataflow("route", "value_2", "onsmall", "value"));
  g.addDataflow(new Dataflow("route", "value_else", "onelse", "value"));
  await graphCase("conditional in conditionConfig form", g);
}

// An error port: the failure goes to a handler, the normal edge is disabled.
{
  const g = new TaskGraph();
  g.addTasks([
    new Divide({ id: "div", defaults: { a: 1, b: 0 } }),
    new AddOne({ id: "next" }),
    new Template({ id: "handle", defaults: { template: "{{errorType}}" } }),
  ]);
  g.addDataflow(new Dataflow("div", "value", "next", "value"));
  g.addDataflow(new Dataflow("div", "[error]", "handle", "*"));
  await graphCase("error port", g);
}

// A Workflow, written with its boundary InputTask and OutputTask nodes.
{
  const wf = new Workflow();
  wf.addTask(AddOne, { value: 1 }).addTask(AddOne);
  const json = wf.toJSON();
  cases.push({ name: "workflow with boundary nodes", json, result: await wf.run() });
}

// The dependency form, fan-in included (two edges into one array port).
{
  const g = new TaskGraph();
  g.addTasks([
    new AddOne({ id: "a", defaults: { value: 1 } }),
    new Add({ id: "sum" }),
  ]);
  g.addDataflow(new Dataflow("a", "value", "sum", "a"));
  g.addDataflow(new Dataflow("a", "value", "sum", "b"));
  cases.push({
    name: "dependency form",
    json: g.toDependencyJSON(),
    result: byLeaf(await g.run()),
  });
}

for (const c of cases) console.log(JSON.stringify(c));
