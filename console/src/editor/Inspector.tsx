// The selected node or dataflow, editable: a node's id, each input port's
// default, a dataflow out of it, and its whole JSON (for node kinds'
// settings, config and transforms); a dataflow's JSON.
import { useEffect, useState, type FormEvent } from "react";
import { hasGraph, type DataflowJson, type GraphJson, type Json, type TaskJson } from "./state";
import type { Ports } from "./ports";

export interface Edits {
  rename: (from: string, to: string) => void;
  setDefault: (id: string, port: string, value: Json | undefined) => void;
  connect: (from: string, fromPort: string, to: string, toPort: string) => void;
  replaceNode: (id: string, node: TaskJson) => void;
  replaceDataflow: (index: number, flow: DataflowJson) => void;
  removeNode: (id: string) => void;
  removeDataflow: (index: number) => void;
}

export function NodeInspector(props: {
  graph: GraphJson;
  task: TaskJson;
  ports: Ports;
  edits: Edits;
  problems: string[];
  onOpen: () => void;
}) {
  const { graph, task, ports, edits, problems } = props;
  const own = ports(task, graph);
  return (
    <aside className="node-panel inspector" aria-label={`Edit node ${task.id}`}>
      <h2>
        Node <code>{task.id}</code>
      </h2>
      <p>
        Type <code>{task.type}</code>
      </p>
      {problems.length > 0 && (
        <ul className="problems" aria-label="Problems of this node">
          {problems.map((p) => (
            <li key={p} className="failure">
              {p}
            </li>
          ))}
        </ul>
      )}
      {hasGraph(task) && (
        <p>
          <button type="button" onClick={props.onOpen}>
            Open its graph
          </button>
        </p>
      )}
      <Rename id={task.id} onRename={(to) => edits.rename(task.id, to)} />
      <h3>Input defaults</h3>
      {own.inputs.length === 0 && <p>No input ports.</p>}
      {own.inputs.map((port) => (
        <DefaultField
          key={`${task.id}.${port}`}
          port={port}
          value={task.defaults?.[port]}
          onChange={(v) => edits.setDefault(task.id, port, v)}
        />
      ))}
      <ConnectForm graph={graph} task={task} ports={ports} onConnect={edits.connect} />
      <JsonEditor
        label="Node JSON"
        value={task}
        onApply={(v) => edits.replaceNode(task.id, v as TaskJson)}
      />
      <button type="button" onClick={() => edits.removeNode(task.id)}>
        Remove node
      </button>
    </aside>
  );
}

export function DataflowInspector(props: { index: number; flow: DataflowJson; edits: Edits; problems: string[] }) {
  const { index, flow, edits, problems } = props;
  return (
    <aside className="node-panel inspector" aria-label={`Edit dataflow ${index}`}>
      <h2>
        Dataflow {flow.sourceTaskId}.{flow.sourceTaskPortId} → {flow.targetTaskId}.{flow.targetTaskPortId}
      </h2>
      {problems.map((p) => (
        <p key={p} className="failure">
          {p}
        </p>
      ))}
      <JsonEditor
        label="Dataflow JSON (transforms, …)"
        value={flow}
        onApply={(v) => edits.replaceDataflow(index, v as DataflowJson)}
      />
      <button type="button" onClick={() => edits.removeDataflow(index)}>
        Remove dataflow
      </button>
    </aside>
  );
}

function Rename({ id, onRename }: { id: string; onRename: (to: string) => void }) {
  const [value, setValue] = useState(id);
  useEffect(() => setValue(id), [id]);
  const submit = (e: FormEvent) => {
    e.preventDefault();
    if (value.trim()) onRename(value.trim());
  };
  return (
    <form onSubmit={submit} className="inline-form">
      <label>
        Id <input value={value} onChange={(e) => setValue(e.target.value)} />
      </label>
      <button type="submit">Rename</button>
    </form>
  );
}

/// A default as JSON (`1`, `"text"`, `[1, 2]`); text that is not JSON is a
/// string; empty removes the default.
function DefaultField(props: { port: string; value: Json | undefined; onChange: (v: Json | undefined) => void }) {
  const shown = props.value === undefined ? "" : JSON.stringify(props.value);
  const [text, setText] = useState(shown);
  useEffect(() => setText(shown), [shown]);
  const commit = () => {
    if (text === shown) return;
    if (text.trim() === "") return props.onChange(undefined);
    try {
      props.onChange(JSON.parse(text) as Json);
    } catch {
      props.onChange(text);
    }
  };
  return (
    <label className="field">
      <code>{props.port}</code>
      <input
        value={text}
        data-default-port={props.port}
        placeholder="no default"
        onChange={(e) => setText(e.target.value)}
        onBlur={commit}
        onKeyDown={(e) => e.key === "Enter" && commit()}
      />
    </label>
  );
}

function ConnectForm(props: {
  graph: GraphJson;
  task: TaskJson;
  ports: Ports;
  onConnect: Edits["connect"];
}) {
  const { graph, task, ports } = props;
  const outputs = ports(task, graph).outputs;
  const others = graph.tasks.filter((t) => t.id !== task.id);
  const [fromPort, setFromPort] = useState(outputs[0] ?? "");
  const [to, setTo] = useState(others[0]?.id ?? "");
  const target = others.find((t) => t.id === to);
  const inputs = target ? ports(target, graph).inputs : [];
  const [toPort, setToPort] = useState("");
  const port = inputs.includes(toPort) ? toPort : (inputs.find((p) => p === fromPort) ?? inputs[0] ?? "");
  if (outputs.length === 0 || others.length === 0) return null;
  const submit = (e: FormEvent) => {
    e.preventDefault();
    if (fromPort && to && port) props.onConnect(task.id, fromPort, to, port);
  };
  return (
    <form onSubmit={submit} className="connect-form" aria-label="Add a dataflow">
      <h3>Add a dataflow</h3>
      <label>
        From output{" "}
        <select value={fromPort} onChange={(e) => setFromPort(e.target.value)}>
          {outputs.map((p) => (
            <option key={p}>{p}</option>
          ))}
        </select>
      </label>{" "}
      <label>
        to node{" "}
        <select value={to} onChange={(e) => setTo(e.target.value)}>
          {others.map((t) => (
            <option key={t.id}>{t.id}</option>
          ))}
        </select>
      </label>{" "}
      <label>
        port{" "}
        <select value={port} onChange={(e) => setToPort(e.target.value)}>
          {inputs.map((p) => (
            <option key={p}>{p}</option>
          ))}
        </select>
      </label>{" "}
      <button type="submit">Connect</button>
    </form>
  );
}

function JsonEditor({ label, value, onApply }: { label: string; value: unknown; onApply: (v: unknown) => void }) {
  const shown = JSON.stringify(value, null, 2);
  const [text, setText] = useState(shown);
  const [error, setError] = useState<string>();
  useEffect(() => setText(shown), [shown]);
  const apply = () => {
    try {
      onApply(JSON.parse(text));
      setError(undefined);
    } catch (e) {
      setError(e instanceof Error ? e.message : String(e));
    }
  };
  return (
    <details className="json-editor">
      <summary>{label}</summary>
      <textarea aria-label={label} value={text} rows={10} onChange={(e) => setText(e.target.value)} />
      {error && <p className="failure">{error}</p>}
      <button type="button" onClick={apply}>
        Apply
      </button>
    </details>
  );
}
