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
  /// A compound box drawn closed.
  collapsed?: boolean;
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

/// `d` with the compound boxes in `collapsed` drawn as single boxes: their
/// nodes left out, arrows to or from them drawn to or from the box.
export function collapse(d: Drawing, collapsed: Set<string>): Drawing {
  if (collapsed.size === 0) return d;
  const parents = new Map(d.boxes.map((b) => [b.id, b.parent]));
  // The outermost collapsed box holding `id`, or `id` itself.
  const shown = (id: string): string => {
    let at: string | undefined = id;
    let result = id;
    while (at !== undefined) {
      if (collapsed.has(at) && at !== id) result = at;
      at = parents.get(at);
    }
    return result;
  };
  const boxes = d.boxes
    .filter((b) => shown(b.id) === b.id)
    .map((b) => (collapsed.has(b.id) ? { ...b, compound: false, collapsed: true } : b));
  const seen = new Set<string>();
  const arrows: Arrow[] = [];
  for (const a of d.arrows) {
    const source = shown(a.source);
    const target = shown(a.target);
    const key = `${source} ${target} ${a.label}`;
    if (source === target || seen.has(key)) continue;
    seen.add(key);
    arrows.push({ ...a, source, target });
  }
  return { boxes, arrows };
}

/// The state a collapsed box shows: the most telling of its nodes'.
export function summary(states: string[]): string {
  for (const s of ["failed", "running", "retrying", "waiting", "cancelled", "pending"]) {
    if (states.includes(s)) return s;
  }
  return states.length && states.every((s) => s === "completed") ? "completed" : (states[0] ?? "pending");
}
