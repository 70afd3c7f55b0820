// The graph editor: add nodes from the catalog, draw dataflows port to
// port, edit defaults and any node's JSON, with the graph checked by the
// daemon (`POST /v1/validate`) after every change and each problem shown
// on its node; undo and redo; import and export JSON (Weft's or
// Workglow's); save as a new version of a saved graph; run it.
import { useCallback, useEffect, useMemo, useReducer, useRef, useState } from "react";
import { api, unwrap, type Schemas, type TaskType } from "../api/client";
import { EditorCanvas, type Positions, type Selection } from "../editor/EditorCanvas";
import { DataflowInspector, NodeInspector, type Edits } from "../editor/Inspector";
import { marksOf, NO_MARKS, portsFrom, type Marks } from "../editor/ports";
import * as ops from "../editor/state";
import type { GraphJson } from "../editor/state";
import { layout } from "../graph/layout";
import { href } from "../route";
import { Failure, usePolled } from "./common";

/// How long after the last change the graph is checked.
const CHECK_AFTER_MS = 250;

export function Editor({ name: savedName }: { name?: string }) {
  const catalog = usePolled(async () => unwrap(await api.GET("/v1/tasks")), 0, []);
  const [h, step] = useReducer(ops.history, { past: [], present: ops.EMPTY, future: [] });
  const root = h.present;
  // The subgraph being edited: compound node ids, outermost first.
  const [path, setPath] = useState<string[]>([]);
  const inner = ops.at(root, path);
  const graph = inner ?? root;
  useEffect(() => {
    if (!inner) setPath([]); // what was open is gone (an undo, say)
  }, [inner]);
  const change = useCallback(
    (edit: (g: GraphJson) => GraphJson) =>
      step({ kind: "change", edit: (g) => ops.within(g, path, edit) }),
    [path],
  );
  const [positions, setPositions] = useState<Positions>(new Map());
  const [selection, setSelection] = useState<Selection>({});
  const [fit, setFit] = useState(0);
  const [name, setName] = useState(savedName ?? "");
  const [saved, setSaved] = useState<{ version: number; graph: GraphJson }>();
  const [input, setInput] = useState("{}");
  const [error, setError] = useState<string>();
  const [notice, setNotice] = useState<string>();
  const [preview, setPreview] = useState<{ of: GraphJson; result: Schemas["Preview"] }>();
  const ports = useMemo(() => portsFrom(catalog.value ?? []), [catalog.value]);
  const { marks: rootMarks, checked } = useChecks(root, input);
  // Problems are placed on the outermost graph's nodes.
  const marks = path.length === 0 ? rootMarks : NO_MARKS;

  const tidy = useCallback(async (g: GraphJson) => {
    setPositions(await placeAll(g));
    setFit((f) => f + 1);
  }, []);

  // A saved graph: its newest version.
  useEffect(() => {
    if (!savedName) return;
    (async () => {
      try {
        const r = await api.GET("/v1/graphs/{name}", { params: { path: { name: savedName } } });
        const view = unwrap(r);
        const g = ops.parseGraph(JSON.stringify(view.graph));
        step({ kind: "reset", graph: g });
        setSaved({ version: view.version, graph: g });
        await tidy(g);
      } catch (e) {
        setError(e instanceof Error ? e.message : String(e));
      }
    })();
  }, [savedName, tidy]);

  const guard = (f: () => void) => {
    try {
      f();
      setError(undefined);
    } catch (e) {
      setError(e instanceof Error ? e.message : String(e));
    }
  };
  const edits: Edits = {
    rename: (from, to) =>
      guard(() => {
        ops.renameNode(graph, from, to); // refused here, not in the history
        change((g) => ops.renameNode(g, from, to));
        setPositions((p) => new Map(p).set(to, p.get(from) ?? { x: 40, y: 40 }));
        setSelection({ node: to });
      }),
    setDefault: (id, port, value) => change((g) => ops.setDefault(g, id, port, value)),
    connect: (a, ap, b, bp) => change((g) => ops.connect(g, a, ap, b, bp)),
    replaceNode: (id, node) =>
      guard(() => {
        ops.replaceNode(graph, id, node);
        change((g) => ops.replaceNode(g, id, node));
      }),
    replaceDataflow: (i, flow) => change((g) => ops.replaceDataflow(g, i, flow)),
    removeNode: (id) => {
      change((g) => ops.removeNode(g, id));
      setSelection({});
    },
    removeDataflow: (i) => {
      change((g) => ops.removeDataflow(g, i));
      setSelection({});
    },
  };

  // A node just added is selected and brought into view.
  const added = useRef(false);
  useEffect(() => {
    if (!added.current) return;
    added.current = false;
    setSelection({ node: graph.tasks[graph.tasks.length - 1]?.id });
    setFit((f) => f + 1);
  }, [graph]);
  const add = (type: string) => {
    added.current = true;
    change((g) => ops.addNode(g, type));
  };

  const save = async () => {
    try {
      const r = await api.PUT("/v1/graphs/{name}", { params: { path: { name } }, body: root });
      const done = unwrap(r);
      setSaved({ version: done.version, graph: root });
      setNotice(`Saved ${done.name} version ${done.version}.`);
      setError(undefined);
    } catch (e) {
      setError(e instanceof Error ? e.message : String(e));
    }
  };

  const run = async () => {
    try {
      const body = JSON.parse(input) as Record<string, unknown>;
      // The saved version when nothing changed since, so the run names it.
      const unchanged = saved && saved.graph === root && name;
      const r = await api.POST("/v1/runs", {
        body: unchanged ? { graph: name, version: saved.version, input: body } : { graph: root, input: body },
      });
      const answer = unwrap(r);
      if (!("run_id" in answer)) throw new Error("the daemon answered a run with a preview");
      window.location.hash = href("runs", answer.run_id);
    } catch (e) {
      setError(e instanceof Error ? e.message : String(e));
    }
  };

  // Only nodes without effects run; nothing is stored.
  const runPreview = async () => {
    try {
      const body = JSON.parse(input) as Record<string, unknown>;
      const r = await api.POST("/v1/runs", { body: { graph: root, input: body, preview: true } });
      const answer = unwrap(r);
      if (!("previewed" in answer)) throw new Error("the daemon started a run instead of a preview");
      setPreview({ of: root, result: answer });
      setError(undefined);
    } catch (e) {
      setError(e instanceof Error ? e.message : String(e));
    }
  };

  useUndoKeys(step);

  const open = (to: string[]) => {
    setPath(to);
    setSelection({});
    const g = ops.at(root, to);
    if (g) tidy(g);
  };

  const task = graph.tasks.find((t) => t.id === selection.node);
  const flow = selection.dataflow !== undefined ? graph.dataflows[selection.dataflow] : undefined;
  return (
    <section aria-labelledby="editor-title" className="editor">
      <h1 id="editor-title">{savedName ? `Graph ${savedName}` : "New graph"}</h1>
      <Toolbar
        name={name}
        setName={setName}
        canUndo={h.past.length > 0}
        canRedo={h.future.length > 0}
        valid={checked?.valid ?? false}
        onSave={save}
        onRun={run}
        onPreview={runPreview}
        onUndo={() => step({ kind: "undo" })}
        onRedo={() => step({ kind: "redo" })}
        onTidy={() => tidy(graph)}
      />
      <Breadcrumb path={path} onOpen={open} problems={path.length ? rootMarks.nodes.get(path[0]) : undefined} />
      <Failure error={error ?? catalog.error} />
      {notice && <p role="status">{notice}</p>}
      <div className="editor-body">
        <Palette catalog={catalog.value ?? []} onAdd={add} />
        <div className="editor-main">
          <EditorCanvas
            graph={graph}
            ports={ports}
            marks={marks}
            positions={positions}
            selection={selection}
            fit={fit}
            preview={preview?.of === root && path.length === 0 ? preview.result : undefined}
            onMove={(id, at) => setPositions((p) => new Map(p).set(id, at))}
            onSelect={setSelection}
            onConnect={edits.connect}
            onRemoveNode={edits.removeNode}
            onRemoveDataflow={edits.removeDataflow}
          />
          <Checks checked={checked} marks={marks} onShow={(node) => setSelection({ node })} />
          <label className="field">
            Run input (JSON)
            <textarea aria-label="Run input" rows={3} value={input} onChange={(e) => setInput(e.target.value)} />
          </label>
          <ImportExport
            graph={root}
            onImport={(g) => {
              step({ kind: "change", edit: () => g });
              setPath([]);
              setSelection({});
              tidy(g);
            }}
          />
        </div>
        {task && (
          <NodeInspector
            graph={graph}
            task={task}
            ports={ports}
            edits={edits}
            problems={marks.nodes.get(task.id) ?? []}
            onOpen={() => open([...path, task.id])}
          />
        )}
        {flow && selection.dataflow !== undefined && (
          <DataflowInspector
            index={selection.dataflow}
            flow={flow}
            edits={edits}
            problems={marks.dataflows.get(selection.dataflow) ?? []}
          />
        )}
      </div>
    </section>
  );
}

/// The daemon's check of the graph and input, a moment after each change.
/// `checked` is only ever the check of the graph and input shown now
/// (Save and Run wait for it); the marks stay until the next check.
function useChecks(graph: GraphJson, input: string) {
  const [result, setResult] = useState<{ of: [GraphJson, string]; checked: Schemas["Validation"] }>();
  const [marks, setMarks] = useState<Marks>(NO_MARKS);
  useEffect(() => {
    const done = (checked: Schemas["Validation"]) => {
      setResult({ of: [graph, input], checked });
      setMarks(marksOf(graph, checked.problems));
    };
    let parsed: Record<string, unknown>;
    try {
      parsed = JSON.parse(input || "{}");
    } catch {
      done({ valid: false, problems: [{ message: "the run input is not JSON" }] });
      return;
    }
    const stop = new AbortController();
    const timer = setTimeout(async () => {
      try {
        const r = await api.POST("/v1/validate", { body: { graph, input: parsed }, signal: stop.signal });
        done(unwrap(r));
      } catch (e) {
        if (stop.signal.aborted) return;
        done({ valid: false, problems: [{ message: `could not check: ${e instanceof Error ? e.message : String(e)}` }] });
      }
    }, CHECK_AFTER_MS);
    return () => {
      clearTimeout(timer);
      stop.abort();
    };
  }, [graph, input]);
  const current = result && result.of[0] === graph && result.of[1] === input;
  return { checked: current ? result.checked : undefined, marks };
}

function useUndoKeys(step: (s: ops.Step) => void) {
  useEffect(() => {
    const onKey = (e: KeyboardEvent) => {
      const typing = e.target instanceof HTMLElement && /^(INPUT|TEXTAREA|SELECT)$/.test(e.target.tagName);
      if (typing || !(e.ctrlKey || e.metaKey)) return;
      const key = e.key.toLowerCase();
      if (key === "z" && !e.shiftKey) step({ kind: "undo" });
      else if (key === "y" || (key === "z" && e.shiftKey)) step({ kind: "redo" });
      else return;
      e.preventDefault();
    };
    window.addEventListener("keydown", onKey);
    return () => window.removeEventListener("keydown", onKey);
  }, [step]);
}

/// Every node placed by ELK (top level; compound nodes as one box).
async function placeAll(g: GraphJson): Promise<Positions> {
  const boxes = g.tasks.map((t) => ({ id: t.id, label: t.id, type: t.type, compound: false, definition: {} }));
  const known = new Set(boxes.map((b) => b.id));
  const arrows = g.dataflows
    .filter((d) => known.has(d.sourceTaskId) && known.has(d.targetTaskId))
    .map((d, i) => ({ id: String(i), source: d.sourceTaskId, target: d.targetTaskId, label: "" }));
  const placed = await layout({ boxes, arrows }, () => ({ width: 200, height: 130 }));
  return new Map([...placed].map(([id, p]) => [id, { x: p.x, y: p.y }]));
}

function Toolbar(p: {
  name: string;
  setName: (n: string) => void;
  canUndo: boolean;
  canRedo: boolean;
  valid: boolean;
  onSave: () => void;
  onRun: () => void;
  onPreview: () => void;
  onUndo: () => void;
  onRedo: () => void;
  onTidy: () => void;
}) {
  return (
    <div className="toolbar" role="toolbar" aria-label="Graph">
      <label>
        Name <input value={p.name} placeholder="saved graph name" onChange={(e) => p.setName(e.target.value)} />
      </label>
      <button type="button" onClick={p.onSave} disabled={!p.name.trim() || !p.valid}>
        Save version
      </button>
      <button type="button" onClick={p.onRun} disabled={!p.valid}>
        Run
      </button>
      <button type="button" onClick={p.onPreview} disabled={!p.valid}>
        Preview
      </button>
      <button type="button" onClick={p.onUndo} disabled={!p.canUndo} aria-keyshortcuts="Control+Z">
        Undo
      </button>
      <button type="button" onClick={p.onRedo} disabled={!p.canRedo} aria-keyshortcuts="Control+Shift+Z">
        Redo
      </button>
      <button type="button" onClick={p.onTidy}>
        Tidy layout
      </button>
    </div>
  );
}

/// Where in the graph the editor is: the outermost graph, then each
/// compound node opened; each a button back to it.
function Breadcrumb(p: { path: string[]; onOpen: (path: string[]) => void; problems?: string[] }) {
  if (p.path.length === 0) return null;
  return (
    <nav className="breadcrumb" aria-label="Subgraph">
      <button type="button" className="link" onClick={() => p.onOpen([])}>
        Graph
      </button>
      {p.path.map((id, i) => (
        <span key={i}>
          {" › "}
          {i === p.path.length - 1 ? (
            <strong aria-current="location">{id}</strong>
          ) : (
            <button type="button" className="link" onClick={() => p.onOpen(p.path.slice(0, i + 1))}>
              {id}
            </button>
          )}
        </span>
      ))}
      {p.problems?.map((m) => (
        <p key={m} className="failure">
          {m}
        </p>
      ))}
    </nav>
  );
}

function Palette({ catalog, onAdd }: { catalog: TaskType[]; onAdd: (type: string) => void }) {
  const [query, setQuery] = useState("");
  const q = query.trim().toLowerCase();
  const shown = catalog
    .filter((t) => !q || [t.id, t.title, t.category].some((s) => s.toLowerCase().includes(q)))
    .slice(0, 100);
  return (
    <nav className="palette" aria-label="Add a node">
      <label>
        Add a node{" "}
        <input type="search" placeholder="search tasks" value={query} onChange={(e) => setQuery(e.target.value)} />
      </label>
      <ul>
        {shown.map((t) => (
          <li key={t.id}>
            <button type="button" data-add-task={t.id} onClick={() => onAdd(t.id)} title={t.description}>
              + <code>{t.id}</code>
            </button>
          </li>
        ))}
      </ul>
    </nav>
  );
}

function Checks({
  checked,
  marks,
  onShow,
}: {
  checked?: Schemas["Validation"];
  marks: Marks;
  onShow: (node: string) => void;
}) {
  if (!checked) return <p role="status">Checking…</p>;
  return (
    <div className="checks" role="status" data-valid={checked.valid} aria-label="Validation">
      {checked.valid ? (
        <p>Valid: ready to save and run.</p>
      ) : (
        <>
          <p className="failure">
            {checked.problems.length} problem{checked.problems.length === 1 ? "" : "s"}
          </p>
          <ul>
            {[...marks.nodes].map(([node, messages]) => (
              <li key={node}>
                <button type="button" className="link" onClick={() => onShow(node)}>
                  {node}
                </button>
                : {messages.join("; ")}
              </li>
            ))}
            {marks.graph.map((m) => (
              <li key={m}>{m}</li>
            ))}
          </ul>
        </>
      )}
    </div>
  );
}

/// Import a graph in Weft's JSON or Workglow's (either of its forms; the
/// daemon writes it as Weft's), and export the graph in either.
function ImportExport({ graph, onImport }: { graph: GraphJson; onImport: (g: GraphJson) => void }) {
  const [text, setText] = useState("");
  const [error, setError] = useState<string>();
  const [format, setFormat] = useState<"weft" | "workglow">("weft");
  const [written, setWritten] = useState<string>();
  const convert = async (value: unknown, to: "weft" | "workglow") => {
    const r = await api.POST("/v1/convert", {
      params: { query: { to } },
      body: value as Record<string, unknown>,
    });
    return unwrap(r).graph;
  };
  const importIt = async () => {
    try {
      const weft = await convert(JSON.parse(text), "weft");
      onImport(ops.parseGraph(JSON.stringify(weft)));
      setError(undefined);
    } catch (e) {
      setError(e instanceof Error ? e.message : String(e));
    }
  };
  useEffect(() => {
    if (format === "weft") return setWritten(JSON.stringify(graph, null, 2));
    setWritten(undefined);
    convert(graph, "workglow").then(
      (g) => setWritten(JSON.stringify(g, null, 2)),
      (e: unknown) => setWritten(`cannot be written as Workglow's JSON: ${e instanceof Error ? e.message : e}`),
    );
  }, [graph, format]);
  return (
    <details className="import-export">
      <summary>Import or export JSON</summary>
      <p>Paste a graph in Weft's or Workglow's JSON (what Workglow's toJSON or toDependencyJSON writes) and import it.</p>
      <textarea aria-label="Graph JSON to import" rows={8} value={text} onChange={(e) => setText(e.target.value)} />
      <button type="button" onClick={importIt}>
        Import
      </button>
      {error && <p className="failure">{error}</p>}
      <h3>This graph</h3>
      <label>
        As{" "}
        <select value={format} onChange={(e) => setFormat(e.target.value as "weft" | "workglow")}>
          <option value="weft">Weft's JSON</option>
          <option value="workglow">Workglow's JSON</option>
        </select>
      </label>
      <textarea aria-label="This graph's JSON" rows={8} readOnly value={written ?? "writing…"} />
    </details>
  );
}
