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
import type { GraphJson } from "./state";
import type { Marks, Ports } from "./ports";

export type Positions = Map<string, { x: number; y: number }>;
export type Selection = { node?: string; dataflow?: number };

type EditorData = {
  type: string;
  inputs: string[];
  outputs: string[];
  problems: string[];
};

export function EditorCanvas(props: {
  graph: GraphJson;
  ports: Ports;
  marks: Marks;
  positions: Positions;
  selection: Selection;
  /// Changed to fit every node into view again (after adding, importing,
  /// tidying).
  fit: number;
  onMove: (id: string, at: { x: number; y: number }) => void;
  onSelect: (s: Selection) => void;
  onConnect: (from: string, fromPort: string, to: string, toPort: string) => void;
  onRemoveNode: (id: string) => void;
  onRemoveDataflow: (index: number) => void;
}) {
  const { graph, ports, marks, positions, selection } = props;
  const nodes = useMemo<Node<EditorData>[]>(() => {
    // Nodes not placed yet go to the right of those that are.
    let right = Math.max(-220, ...[...positions.values()].map((p) => p.x));
    const place = (id: string) => {
      const at = positions.get(id);
      if (at) return at;
      right += 260;
      return { x: right, y: 40 };
    };
    return graph.tasks.map((t) => {
        const p = ports(t, graph);
        return {
          id: t.id,
          type: "editor",
          position: place(t.id),
          selected: selection.node === t.id,
          data: { type: t.type, inputs: p.inputs, outputs: p.outputs, problems: marks.nodes.get(t.id) ?? [] },
        };
      });
  }, [graph, ports, marks, positions, selection]);
  const edges = useMemo<Edge[]>(
    () =>
      graph.dataflows.map((d, i) => ({
        id: `df-${i}`,
        source: d.sourceTaskId,
        sourceHandle: d.sourceTaskPortId,
        target: d.targetTaskId,
        targetHandle: d.targetTaskPortId,
        label: `${d.sourceTaskPortId} → ${d.targetTaskPortId}`,
        selected: selection.dataflow === i,
        className: marks.dataflows.has(i) ? "has-problems" : undefined,
      })),
    [graph, marks, selection],
  );

  const onNodesChange = (changes: NodeChange<Node<EditorData>>[]) => {
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
        fitViewOptions={{ maxZoom: 1, minZoom: 0.5, padding: 0.1 }}
        proOptions={{ hideAttribution: true }}
      >
        <Background />
        <Controls showInteractive={false} />
        <Fit when={props.fit} />
      </ReactFlow>
    </div>
  );
}

function Fit({ when }: { when: number }) {
  const flow = useReactFlow();
  useEffect(() => {
    // Once new nodes are drawn and measured.
    const timer = setTimeout(() => flow.fitView({ maxZoom: 1, minZoom: 0.5, padding: 0.1 }), 60);
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
