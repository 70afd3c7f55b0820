// The graph being edited, as its JSON (Workglow's shape: `tasks` and
// `dataflows`), so anything an imported graph carries that the editor does
// not know is kept as it was. Every change makes a new graph; the history
// keeps the ones before (undo) and after (redo).

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

export interface TaskJson {
  id: string;
  type: string;
  defaults?: Record<string, Json>;
  [key: string]: Json | undefined;
}

export interface DataflowJson {
  sourceTaskId: string;
  sourceTaskPortId: string;
  targetTaskId: string;
  targetTaskPortId: string;
  [key: string]: Json | undefined;
}

export interface GraphJson {
  tasks: TaskJson[];
  dataflows: DataflowJson[];
  [key: string]: Json | TaskJson[] | DataflowJson[] | undefined;
}

export const EMPTY: GraphJson = { tasks: [], dataflows: [] };

/// The graph in `text`, or why it is not one the editor can hold.
export function parseGraph(text: string): GraphJson {
  const value = JSON.parse(text) as unknown;
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new Error("a graph is a JSON object with `tasks` and `dataflows`");
  }
  const g = value as Partial<GraphJson>;
  if (!Array.isArray(g.tasks)) throw new Error("the graph has no `tasks` array");
  if (g.dataflows !== undefined && !Array.isArray(g.dataflows)) {
    throw new Error("`dataflows` must be an array");
  }
  return { ...g, tasks: g.tasks, dataflows: g.dataflows ?? [] } as GraphJson;
}

/// A node id for a new node of `type`, unused in `graph`.
export function freshId(graph: GraphJson, type: string): string {
  const base = type.split(".").pop() || "node";
  const used = new Set(graph.tasks.map((t) => t.id));
  if (!used.has(base)) return base;
  for (let i = 2; ; i++) if (!used.has(`${base}-${i}`)) return `${base}-${i}`;
}

export function addNode(graph: GraphJson, type: string): GraphJson {
  return { ...graph, tasks: [...graph.tasks, { id: freshId(graph, type), type }] };
}

export function removeNode(graph: GraphJson, id: string): GraphJson {
  return {
    ...graph,
    tasks: graph.tasks.filter((t) => t.id !== id),
    dataflows: graph.dataflows.filter((d) => d.sourceTaskId !== id && d.targetTaskId !== id),
  };
}

export function connect(
  graph: GraphJson,
  from: string,
  fromPort: string,
  to: string,
  toPort: string,
): GraphJson {
  const exists = graph.dataflows.some(
    (d) =>
      d.sourceTaskId === from &&
      d.sourceTaskPortId === fromPort &&
      d.targetTaskId === to &&
      d.targetTaskPortId === toPort,
  );
  if (exists) return graph;
  const flow = { sourceTaskId: from, sourceTaskPortId: fromPort, targetTaskId: to, targetTaskPortId: toPort };
  return { ...graph, dataflows: [...graph.dataflows, flow] };
}

export function removeDataflow(graph: GraphJson, index: number): GraphJson {
  return { ...graph, dataflows: graph.dataflows.filter((_, i) => i !== index) };
}

/// Rename a node, and every dataflow's end that names it.
export function renameNode(graph: GraphJson, from: string, to: string): GraphJson {
  if (from === to) return graph;
  if (graph.tasks.some((t) => t.id === to)) throw new Error(`there is already a node "${to}"`);
  const rename = (id: string) => (id === from ? to : id);
  return {
    ...graph,
    tasks: graph.tasks.map((t) => (t.id === from ? { ...t, id: to } : t)),
    dataflows: graph.dataflows.map((d) => ({
      ...d,
      sourceTaskId: rename(d.sourceTaskId),
      targetTaskId: rename(d.targetTaskId),
    })),
  };
}

/// Set (or with `undefined`, remove) one input port's default.
export function setDefault(graph: GraphJson, id: string, port: string, value: Json | undefined) {
  return {
    ...graph,
    tasks: graph.tasks.map((t) => {
      if (t.id !== id) return t;
      const defaults = { ...(t.defaults ?? {}) };
      if (value === undefined) delete defaults[port];
      else defaults[port] = value;
      const { defaults: _, ...rest } = t;
      return Object.keys(defaults).length ? { ...rest, defaults } : (rest as TaskJson);
    }),
  };
}

/// Replace one node's whole JSON (its kind's settings, config, anything).
export function replaceNode(graph: GraphJson, id: string, node: TaskJson): GraphJson {
  const renamed = node.id !== id ? renameNode(graph, id, node.id) : graph;
  return { ...renamed, tasks: renamed.tasks.map((t) => (t.id === node.id ? node : t)) };
}

/// Replace one dataflow's whole JSON (its transforms, say).
export function replaceDataflow(graph: GraphJson, index: number, flow: DataflowJson): GraphJson {
  return { ...graph, dataflows: graph.dataflows.map((d, i) => (i === index ? flow : d)) };
}

export interface History {
  past: GraphJson[];
  present: GraphJson;
  future: GraphJson[];
}

/// How many changes undo reaches back.
const DEPTH = 200;

export type Step =
  | { kind: "change"; edit: (graph: GraphJson) => GraphJson }
  | { kind: "reset"; graph: GraphJson }
  | { kind: "undo" }
  | { kind: "redo" };

export function history(h: History, step: Step): History {
  switch (step.kind) {
    case "change": {
      // Applied to the newest graph, however quickly changes come.
      const next = step.edit(h.present);
      if (next === h.present) return h;
      return { past: [...h.past, h.present].slice(-DEPTH), present: next, future: [] };
    }
    case "reset":
      return { past: [], present: step.graph, future: [] };
    case "undo":
      if (h.past.length === 0) return h;
      return {
        past: h.past.slice(0, -1),
        present: h.past[h.past.length - 1],
        future: [h.present, ...h.future],
      };
    case "redo":
      if (h.future.length === 0) return h;
      return { past: [...h.past, h.present], present: h.future[0], future: h.future.slice(1) };
  }
}

/// The subgraph at `path` (compound node ids, outermost first): a node's
/// `graph` (a compound node's, or a map's, reduce's, while's or fallback's
/// body); `undefined` if there is none there.
export function at(graph: GraphJson, path: string[]): GraphJson | undefined {
  let g: GraphJson | undefined = graph;
  for (const id of path) {
    const inner: unknown = g?.tasks.find((t) => t.id === id)?.graph;
    if (typeof inner !== "object" || inner === null || Array.isArray(inner)) return undefined;
    const body = inner as Partial<GraphJson>;
    g = { ...body, tasks: body.tasks ?? [], dataflows: body.dataflows ?? [] } as GraphJson;
  }
  return g;
}

/// `graph` with `edit` applied to its subgraph at `path`.
export function within(graph: GraphJson, path: string[], edit: (g: GraphJson) => GraphJson): GraphJson {
  if (path.length === 0) return edit(graph);
  const [first, ...rest] = path;
  const inner = at(graph, [first]);
  if (!inner) return graph;
  const changed = within(inner, rest, edit);
  if (changed === inner) return graph;
  return { ...graph, tasks: graph.tasks.map((t) => (t.id === first ? { ...t, graph: changed as Json } : t)) };
}

/// Whether a node holds a subgraph the editor can open.
export function hasGraph(task: TaskJson): boolean {
  return typeof task.graph === "object" && task.graph !== null && !Array.isArray(task.graph);
}
