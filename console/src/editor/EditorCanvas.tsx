// The graph being edited, drawn: each node with its input ports (left) and
// output ports (right) as handles; drag from an output to an input to add a
// dataflow; select and press Delete to remove; nodes with problems are
// marked with the first of them.
import { useEffect, useMemo } from "react";
import {
  Background,
  Controls,
  Handle,
  Position,
  ReactFlow,
  useReactFlow,
  type Edge,
  type EdgeChange,
  type Node,
  type NodeChange,
  type NodeProps,
} from "@xyflow/react";
import type { Schemas } from "../api/client";
import type { GraphJson } from "./state";
import type { Marks, Ports } from "./ports";
import { useMeasured } from "../graph/measured";
import { FIT } from "../graph/layout";

export type Positions = Map<string, { x: number; y: number }>;
export type Selection = { node?: string; dataflow?: number };

type EditorData = {
  type: string;
  inputs: string[];
  outputs: string[];
  problems: string[];
  preview?: { state: string; wouldGet?: unknown };
};

/// A value in a few characters.
function short(value: unknown): string {
  const text = JSON.stringify(value) ?? "undefined";
  return text.length > 40 ? `${text.slice(0, 39)}…` : text;
}

export function EditorCanvas(props: {
  graph: GraphJson;
  ports: Ports;
  marks: Marks;
  positions: Positions;
  selection: Selection;
  /// Changed to fit every node into view again (after adding, importing,
  /// tidying).
  fit: number;
  /// A preview of this graph: values shown on the dataflows, states and
  /// would-be inputs on the nodes.
  preview?: Schemas["Preview"];
  onMove: (id: string, at: { x: number; y: number }) => void;
  onSelect: (s: Selection) => void;
  onConnect: (from: string, fromPort: string, to: string, toPort: string) => void;
  onRemoveNode: (id: string) => void;
  onRemoveDataflow: (index: number) => void;
}) {
  const { graph, ports, marks, positions, selection, preview } = props;
  const [sizes, onMeasured] = useMeasured();
  const nodes = useMemo<Node<EditorData>[]>(() => {
    // Nodes not placed yet go to the right of those that are.
    let right = Math.max(-300, ...[...positions.values()].map((p) => p.x));
    const place = (id: string) => {
      const at = positions.get(id);
      if (at) return at;
      right += 340;
      return { x: right, y: 40 };
    };
    return graph.tasks.map((t) => {
        const p = ports(t, graph);
        return {
          id: t.id,
          type: "editor",
          position: place(t.id),
          measured: sizes.get(t.id),
          selected: selection.node === t.id,
          data: {
            type: t.type,
            inputs: p.inputs,
            outputs: p.outputs,
            problems: marks.nodes.get(t.id) ?? [],
            preview: preview && {
              state: preview.nodes[t.id] ?? "pending",
              wouldGet: preview.previewed[t.id],
            },
          },
        };
      });
  }, [graph, ports, marks, positions, selection, preview, sizes]);
  const edges = useMemo<Edge[]>(
    () =>
      graph.dataflows.map((d, i) => ({
        id: `df-${i}`,
        source: d.sourceTaskId,
        sourceHandle: d.sourceTaskPortId,
        target: d.targetTaskId,
        targetHandle: d.targetTaskPortId,
        label: edgeLabel(d.sourceTaskPortId, d.targetTaskPortId, preview?.outputs[d.sourceTaskId]),
        selected: selection.dataflow === i,
        className: marks.dataflows.has(i) ? "has-problems" : undefined,
      })),
    [graph, marks, selection, preview],
  );

  const onNodesChange = (changes: NodeChange<Node<EditorData>>[]) => {
    onMeasured(changes);
    for (const c of changes) {
      if (c.type === "position" && c.position) props.onMove(c.id, c.position);
      else if (c.type === "select" && c.selected) props.onSelect({ node: c.id });
      else if (c.type === "remove") props.onRemoveNode(c.id);
    }
  };
  const onEdgesChange = (changes: EdgeChange[]) => {
    // Highest index first, so each index still names its dataflow.
    const removed = changes
      .filter((c) => c.type === "remove")
      .map((c) => Number(c.id.slice(3)))
      .sort((a, b) => b - a);
    removed.forEach(props.onRemoveDataflow);
    for (const c of changes) {
      if (c.type === "select" && c.selected) props.onSelect({ dataflow: Number(c.id.slice(3)) });
    }
  };

  return (
    <div className="graph editor-canvas" aria-label="The graph being edited">
      <ReactFlow
        nodes={nodes}
        edges={edges}
        nodeTypes={NODE_TYPES}
        onNodesChange={onNodesChange}
        onEdgesChange={onEdgesChange}
        onConnect={(c) =>
          c.sourceHandle && c.targetHandle && props.onConnect(c.source, c.sourceHandle, c.target, c.targetHandle)
        }
        onPaneClick={() => props.onSelect({})}
        deleteKeyCode={["Delete", "Backspace"]}
        fitView
        fitViewOptions={FIT}
        proOptions={{ hideAttribution: true }}
      >
        <Background />
        <Controls showInteractive={false} />
        <Fit when={props.fit} />
      </ReactFlow>
    </div>
  );
}

/// `out → in`, and with a preview that ran the source, the value it gives.
function edgeLabel(from: string, to: string, output: unknown): string {
  const ports = `${from} → ${to}`;
  if (typeof output !== "object" || output === null || !(from in output)) return ports;
  return `${ports}: ${short((output as Record<string, unknown>)[from])}`;
}

function Fit({ when }: { when: number }) {
  const flow = useReactFlow();
  useEffect(() => {
    // Once new nodes are drawn and measured.
    const timer = setTimeout(() => flow.fitView(FIT), 60);
    return () => clearTimeout(timer);
  }, [when, flow]);
  return null;
}

function EditorNode({ id, data, selected }: NodeProps<Node<EditorData>>) {
  return (
    <div
      className={`enode${data.problems.length ? " has-problems" : ""}${selected ? " selected" : ""}`}
      data-node-id={id}
      data-problems={data.problems.length}
    >
      <div className="box-title">{id}</div>
      <div className="box-type">{data.type}</div>
      <div className="enode-ports">
        <ul>
          {data.inputs.map((p) => (
            <li key={p} className="port-in" data-port-in={p}>
              <Handle type="target" position={Position.Left} id={p} />
              {p}
            </li>
          ))}
        </ul>
        <ul>
          {data.outputs.map((p) => (
            <li key={p} className="port-out" data-port-out={p}>
              {p}
              <Handle type="source" position={Position.Right} id={p} />
            </li>
          ))}
        </ul>
      </div>
      {data.preview && (
        <div className="enode-preview" data-preview-state={data.preview.state}>
          preview: {data.preview.state}
          {data.preview.wouldGet !== undefined && <> · would get {short(data.preview.wouldGet)}</>}
        </div>
      )}
      {data.problems.length > 0 && (
        <div className="enode-problem" role="note">
          {data.problems[0]}
          {data.problems.length > 1 ? ` (+${data.problems.length - 1})` : ""}
        </div>
      )}
    </div>
  );
}

const NODE_TYPES = { editor: EditorNode };
