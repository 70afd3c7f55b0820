// A run's graph drawn with its nodes' live states (@xyflow/react, laid out
// by ELK). Clicking a node selects it; the node table beside the drawing
// does the same from the keyboard.
import { useEffect, useMemo, useState } from "react";
import {
  Background,
  Controls,
  Handle,
  Position,
  ReactFlow,
  type Edge,
  type Node,
  type NodeProps,
} from "@xyflow/react";
import { FIT, layout, type Placed } from "./layout";
import { useMeasured } from "./measured";
import { collapse, summary, type Drawing } from "./model";

/// What a box shows besides its definition.
export interface Live {
  state: string;
  cached?: boolean;
  progress?: number;
  instances?: Record<string, number>;
}

type BoxData = {
  label: string;
  type: string;
  live?: Live;
  compound: boolean;
  collapsed?: boolean;
  toggle: () => void;
};

export function GraphView({
  drawing: full,
  live,
  onSelect,
}: {
  drawing: Drawing;
  live: Map<string, Live>;
  onSelect: (id: string) => void;
}) {
  const [placed, setPlaced] = useState<Map<string, Placed>>();
  const [failed, setFailed] = useState<string>();
  const [sizes, onChanges] = useMeasured();
  const [collapsed, setCollapsed] = useState<Set<string>>(new Set());
  const drawing = useMemo(() => collapse(full, collapsed), [full, collapsed]);
  const toggle = (id: string) =>
    setCollapsed((c) => {
      const next = new Set(c);
      if (!next.delete(id)) next.add(id);
      return next;
    });
  useEffect(() => {
    layout(drawing).then(setPlaced, (e: unknown) => setFailed(String(e)));
  }, [drawing]);
  // A collapsed box's state sums up its nodes'.
  const state = (id: string, isCollapsed?: boolean): Live | undefined => {
    if (!isCollapsed) return live.get(id);
    const inside = [...live].filter(([n]) => n.startsWith(`${id}/`)).map(([, l]) => l.state);
    return { state: summary(inside) };
  };

  const nodes = useMemo<Node<BoxData>[]>(() => {
    if (!placed) return [];
    return drawing.boxes.map((b) => {
      const p = placed.get(b.id) ?? { x: 0, y: 0, width: 0, height: 0 };
      return {
        id: b.id,
        type: b.compound ? "compound" : "box",
        parentId: b.parent,
        extent: b.parent ? ("parent" as const) : undefined,
        position: { x: p.x, y: p.y },
        width: p.width,
        height: p.height,
        measured: sizes.get(b.id),
        data: {
          label: b.label,
          type: b.type,
          live: state(b.id, b.collapsed),
          compound: b.compound,
          collapsed: b.collapsed,
          toggle: () => toggle(b.id),
        },
        draggable: false,
        connectable: false,
      };
    });
  }, [drawing, placed, live, sizes]);

  const edges = useMemo<Edge[]>(
    () =>
      drawing.arrows.map((a) => ({
        id: a.id,
        source: a.source,
        target: a.target,
        label: a.label,
        animated: live.get(a.target)?.state === "running",
      })),
    [drawing, live],
  );

  if (failed) return <p role="alert">The graph could not be laid out: {failed}</p>;
  if (!placed) return <p>Laying out…</p>;
  return (
    <div className="graph" aria-label="The run's graph">
      <ReactFlow
        nodes={nodes}
        edges={edges}
        nodeTypes={NODE_TYPES}
        onNodesChange={onChanges}
        onNodeClick={(_, n) => onSelect(n.id)}
        fitView
        fitViewOptions={FIT}
        minZoom={0.1}
        nodesDraggable={false}
        nodesConnectable={false}
        proOptions={{ hideAttribution: true }}
      >
        <Background />
        <Controls showInteractive={false} />
      </ReactFlow>
    </div>
  );
}

function BoxNode({ id, data }: NodeProps<Node<BoxData>>) {
  const state = data.live?.state ?? "pending";
  const counts = data.live?.instances;
  return (
    <div className={`box state-${state}`} data-node-id={id} data-state={state}>
      <Handle type="target" position={Position.Left} />
      <div className="box-title">
        {data.label}
        {data.collapsed && (
          <button type="button" className="toggle nodrag" onClick={(e) => {
            e.stopPropagation();
            data.toggle();
          }} aria-label={`Expand ${id}`}>
            +
          </button>
        )}
      </div>
      <div className="box-type">{data.collapsed ? "graph (closed)" : data.type}</div>
      <div className="box-state">
        {state}
        {data.live?.cached ? " (cached)" : ""}
        {counts ? ` · ${Object.entries(counts).map(([k, v]) => `${v} ${k}`).join(", ")}` : ""}
      </div>
      {data.live?.progress !== undefined && state === "running" && (
        <progress value={data.live.progress} max={1} aria-label={`${data.label} progress`} />
      )}
      <Handle type="source" position={Position.Right} />
    </div>
  );
}

function CompoundNode({ id, data }: NodeProps<Node<BoxData>>) {
  return (
    <div className="compound" data-node-id={id}>
      <Handle type="target" position={Position.Left} />
      <div className="box-title">
        {data.label} <span className="box-type">graph</span>
        <button type="button" className="toggle nodrag" onClick={(e) => {
            e.stopPropagation();
            data.toggle();
          }} aria-label={`Collapse ${id}`}>
          −
        </button>
      </div>
      <Handle type="source" position={Position.Right} />
    </div>
  );
}

const NODE_TYPES = { box: BoxNode, compound: CompoundNode };
