// What the editor knows of each node: its ports (from the task catalog, and
// any a dataflow already names, for node kinds the catalog does not list)
// and the validation problems marked on nodes and dataflows.
import type { Schemas, TaskType } from "../api/client";
import type { GraphJson, TaskJson } from "./state";

export type Ports = (task: TaskJson, graph: GraphJson) => { inputs: string[]; outputs: string[] };

export function portsFrom(catalog: TaskType[]): Ports {
  const byId = new Map<string, TaskType>();
  for (const t of catalog) {
    byId.set(t.id, t);
    for (const a of t.aliases ?? []) byId.set(a, t);
  }
  return (task, graph) => {
    const declared = (byId.get(task.type)?.ports ?? {}) as {
      input?: Record<string, unknown>;
      output?: Record<string, unknown>;
    };
    const inputs = new Set(Object.keys(declared.input ?? {}));
    const outputs = new Set(Object.keys(declared.output ?? {}));
    for (const d of graph.dataflows) {
      if (d.targetTaskId === task.id) inputs.add(d.targetTaskPortId);
      if (d.sourceTaskId === task.id) outputs.add(d.sourceTaskPortId);
    }
    return { inputs: [...inputs], outputs: [...outputs] };
  };
}

/// Problems by node id and by dataflow index; the rest are the graph's.
export interface Marks {
  nodes: Map<string, string[]>;
  dataflows: Map<number, string[]>;
  graph: string[];
}

export const NO_MARKS: Marks = { nodes: new Map(), dataflows: new Map(), graph: [] };

export function marksOf(graph: GraphJson, problems: Schemas["Problem"][]): Marks {
  const marks: Marks = { nodes: new Map(), dataflows: new Map(), graph: [] };
  const push = <K,>(m: Map<K, string[]>, k: K, message: string) =>
    m.set(k, [...(m.get(k) ?? []), message]);
  for (const p of problems) {
    const node = p.task != null ? graph.tasks[p.task]?.id : undefined;
    if (node !== undefined) push(marks.nodes, node, p.message);
    else if (p.dataflow != null) {
      push(marks.dataflows, p.dataflow, p.message);
      // The dataflow's target shows it too: an arrow is hard to point at.
      const target = graph.dataflows[p.dataflow]?.targetTaskId;
      if (target) push(marks.nodes, target, p.message);
    } else if (p.nodes?.length) p.nodes.forEach((n) => push(marks.nodes, n, p.message));
    else marks.graph.push(p.message);
  }
  return marks;
}
