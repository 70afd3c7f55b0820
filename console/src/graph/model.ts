// A graph's JSON (Workglow's shape: `tasks` and `dataflows`) as boxes and
// arrows to draw. A compound node (type `graph`) is a box holding its
// subgraph's nodes, whose run-time ids are prefixed with its own
// (`outer/inner`), as the runner names them; other kinds with a body (map,
// reduce, while, fallback) are one box, with their instance counts.

export interface Box {
  id: string; // the run-time node id
  label: string; // the id within its own graph
  type: string;
  parent?: string;
  compound: boolean;
  definition: Record<string, unknown>;
}

export interface Arrow {
  id: string;
  source: string;
  target: string;
  label: string;
}

export interface Drawing {
  boxes: Box[]; // parents before their children
  arrows: Arrow[];
}

interface TaskJson {
  id?: unknown;
  type?: unknown;
  graph?: GraphJson;
  [key: string]: unknown;
}

interface GraphJson {
  tasks?: TaskJson[];
  dataflows?: {
    sourceTaskId?: unknown;
    sourceTaskPortId?: unknown;
    targetTaskId?: unknown;
    targetTaskPortId?: unknown;
  }[];
}

export function drawing(graph: unknown): Drawing {
  const out: Drawing = { boxes: [], arrows: [] };
  add(out, graph as GraphJson, undefined);
  return out;
}

function add(out: Drawing, graph: GraphJson, parent: string | undefined) {
  const prefix = parent ? `${parent}/` : "";
  for (const task of graph.tasks ?? []) {
    const id = prefix + String(task.id);
    const type = String(task.type);
    const compound = type === "graph" && !!task.graph;
    const { graph: body, ...definition } = task;
    out.boxes.push({ id, label: String(task.id), type, parent, compound, definition });
    if (compound && body) add(out, body, id);
  }
  (graph.dataflows ?? []).forEach((d, i) => {
    const source = prefix + String(d.sourceTaskId);
    const target = prefix + String(d.targetTaskId);
    const ports = `${String(d.sourceTaskPortId)} → ${String(d.targetTaskPortId)}`;
    out.arrows.push({ id: `${prefix}${i}`, source, target, label: ports });
  });
}
