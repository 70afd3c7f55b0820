// One run, live: its graph drawn with each node's state, the node table,
// the waits inside steps, the selected node's details (definition,
// attempts, error, input, output, logs),
// and the event log, followed over SSE and resumed across reconnects.
import { useCallback, useEffect, useMemo, useRef, useState, type FormEvent } from "react";
import { api, unwrap, type RunView } from "../api/client";
import { follow, type Connection, type RunEvent } from "../api/events";
import { GraphView, type Live } from "../graph/GraphView";
import { drawing as toDrawing, type Box } from "../graph/model";
import { Failure, Json, State, time } from "./common";

/// Larger graphs are listed, not drawn.
const MAX_DRAWN = 400;
/// The event log shows this many latest events.
const MAX_LISTED = 5000;

export function Run({ runId }: { runId: string }) {
  const [view, setView] = useState<RunView>();
  const [graph, setGraph] = useState<unknown>();
  const [error, setError] = useState<string>();
  const [events, setEvents] = useState<RunEvent[]>([]);
  const [connection, setConnection] = useState<{ state: Connection; detail?: string }>({
    state: "connecting",
  });
  const [selected, setSelected] = useState<string>();
  // Bumped when the run runs again (a re-driven dead letter): its events
  // are followed again.
  const [generation, setGeneration] = useState(0);

  const load = useCallback(async () => {
    try {
      setView(unwrap(await api.GET("/v1/runs/{id}", { params: { path: { id: runId } } })));
      setError(undefined);
    } catch (e) {
      setError(e instanceof Error ? e.message : String(e));
    }
  }, [runId]);

  useEffect(() => {
    load();
    (async () => {
      try {
        const r = await api.GET("/v1/runs/{id}/graph", { params: { path: { id: runId } } });
        setGraph(unwrap(r).graph);
      } catch (e) {
        setError(e instanceof Error ? e.message : String(e));
      }
    })();
  }, [runId, load]);

  useFollow(runId, generation, setEvents, setConnection, load);

  const drawing = useMemo(() => (graph ? toDrawing(graph) : undefined), [graph]);
  const live = useMemo(() => liveStates(view, events), [view, events]);

  const cancel = async () => {
    try {
      unwrap(await api.POST("/v1/runs/{id}/cancel", { params: { path: { id: runId } } }));
    } catch (e) {
      setError(e instanceof Error ? e.message : String(e));
    }
  };

  const running = view?.status === "running";
  return (
    <section aria-labelledby="run-title" className="run">
      <h1 id="run-title">
        Run <code>{runId}</code> {view && <State state={view.status} />}
      </h1>
      <Failure error={error} />
      {view && (
        <p className="run-meta">
          {view.graph_name ?? view.origin} · created {time(view.created_ms)}
          {view.owner ? ` · by ${view.owner}` : ""} ·{" "}
          <span className={`connection connection-${connection.state}`} role="status">
            events: {connection.state}
            {connection.detail ? ` (${connection.detail})` : ""}
          </span>{" "}
          {running && (
            <button type="button" onClick={cancel}>
              Cancel run
            </button>
          )}
        </p>
      )}
      <div className="run-body">
        <div className="run-graph">
          {drawing && drawing.boxes.length <= MAX_DRAWN && (
            <GraphView drawing={drawing} live={live} onSelect={setSelected} />
          )}
          {drawing && drawing.boxes.length > MAX_DRAWN && (
            <p>{drawing.boxes.length} nodes: too many to draw; listed below.</p>
          )}
          {drawing && (
            <NodeTable boxes={drawing.boxes} live={live} view={view} onSelect={setSelected} />
          )}
          {running && graph !== undefined && <StepWaits runId={runId} graph={graph} live={live} />}
        </div>
        {selected && drawing ? (
          <NodePanel
            box={drawing.boxes.find((b) => b.id === selected)}
            id={selected}
            view={view}
            events={events}
            onClose={() => setSelected(undefined)}
            onRerun={() => {
              setGeneration((g) => g + 1);
              load();
            }}
          />
        ) : (
          <aside className="node-panel">
            <p>Select a node to see its definition, attempts, input, output and logs.</p>
          </aside>
        )}
      </div>
      <EventLog events={events} />
    </section>
  );
}

/// Follow the run's events from the first, in batches (one render per
/// batch, not per event); reload the run when a node ends or the run does.
function useFollow(
  runId: string,
  generation: number,
  setEvents: (f: (e: RunEvent[]) => RunEvent[]) => void,
  setConnection: (c: { state: Connection; detail?: string }) => void,
  reload: () => void,
) {
  const pending = useRef<RunEvent[]>([]);
  useEffect(() => {
    const stop = new AbortController();
    let stale = false;
    const flush = setInterval(() => {
      if (pending.current.length === 0) return;
      const batch = pending.current;
      pending.current = [];
      setEvents((e) => e.concat(batch));
      if (stale) {
        stale = false;
        reload();
      }
    }, 100);
    setEvents(() => []);
    follow(
      runId,
      0,
      {
        onEvent(event) {
          pending.current.push(event);
          if (event.type === "run_finished") stale = true;
          if (event.type === "node" && event.status !== "running") stale = true;
        },
        onConnection: (state, detail) => setConnection({ state, detail }),
      },
      stop.signal,
    );
    return () => {
      stop.abort();
      clearInterval(flush);
    };
  }, [runId, generation, setEvents, setConnection, reload]);
}

/// Each node's state: the run's last read state, then the events after it.
function liveStates(view: RunView | undefined, events: RunEvent[]): Map<string, Live> {
  const live = new Map<string, Live>();
  for (const [id, n] of Object.entries(view?.nodes ?? {})) {
    live.set(id, { state: n.status, instances: n.instances as Record<string, number> });
  }
  const seen = view?.events ?? 0;
  for (const e of events) {
    if (e.type === "node" && e.seq > seen) {
      live.set(e.node, { ...live.get(e.node), state: e.status, cached: e.cached });
    } else if (e.type === "node" && e.cached) {
      live.set(e.node, { ...live.get(e.node)!, cached: true });
    } else if (e.type === "progress" && e.seq > seen) {
      const prior = live.get(e.node) ?? { state: "running" };
      live.set(e.node, { ...prior, progress: e.fraction });
    }
  }
  return live;
}

function NodeTable({
  boxes,
  live,
  view,
  onSelect,
}: {
  boxes: Box[];
  live: Map<string, Live>;
  view?: RunView;
  onSelect: (id: string) => void;
}) {
  return (
    <table className="nodes" aria-label="Nodes">
      <thead>
        <tr>
          <th scope="col">Node</th>
          <th scope="col">Type</th>
          <th scope="col">State</th>
          <th scope="col">Attempt</th>
        </tr>
      </thead>
      <tbody>
        {boxes
          .filter((b) => !b.compound)
          .map((b) => {
            const state = live.get(b.id)?.state ?? "pending";
            return (
              <tr key={b.id} data-node-row={b.id} data-state={state}>
                <td>
                  <button type="button" className="link" onClick={() => onSelect(b.id)}>
                    {b.id}
                  </button>
                </td>
                <td>{b.type}</td>
                <td>
                  <State state={state} />
                </td>
                <td>{view?.nodes[b.id]?.attempt ?? "—"}</td>
              </tr>
            );
          })}
      </tbody>
    </table>
  );
}

function NodePanel({
  id,
  box,
  view,
  events,
  onClose,
  onRerun,
}: {
  id: string;
  box?: Box;
  view?: RunView;
  events: RunEvent[];
  onClose: () => void;
  onRerun: () => void;
}) {
  const node = view?.nodes[id];
  const output = view?.outputs?.[id];
  const lines = events.filter((e) => (e.type === "log" || e.type === "progress") && e.node === id);
  return (
    <aside className="node-panel" aria-label={`Node ${id}`}>
      <h2>
        {id} {node && <State state={node.status} />}
        <button type="button" onClick={onClose} aria-label="Close node details">
          ×
        </button>
      </h2>
      {box && (
        <p>
          Type <code>{box.type}</code>
          {node ? ` · attempt ${node.attempt}` : ""}
          {node?.retry_at_ms ? ` · next attempt ${time(node.retry_at_ms)}` : ""}
        </p>
      )}
      {node?.error && (
        <p className="failure" role="alert">
          {node.error}
        </p>
      )}
      {view && node?.status === "failed" && view.status === "failed" && (
        <Redrive runId={view.run_id} node={id} onDone={onRerun} />
      )}
      {view && node?.status === "waiting" && box && (
        <SignalForm runId={view.run_id} name={signalName(box)} />
      )}
      {node?.instances && (
        <>
          <h3>Instances</h3>
          <Json value={node.instances} />
        </>
      )}
      {view && <NodeInput runId={view.run_id} node={id} status={node?.status} />}
      <h3>Output</h3>
      {output !== undefined ? (
        <div className="node-output">
          <Json value={output} />
        </div>
      ) : (
        <p>{view?.status === "running" ? "When the run ends." : "None."}</p>
      )}
      {box && (
        <>
          <h3>Definition</h3>
          <Json value={box.definition} />
        </>
      )}
      <h3>Logs</h3>
      {lines.length === 0 ? (
        <p>None.</p>
      ) : (
        <ul className="logs">
          {lines.map((e) => (
            <li key={e.seq}>{describe(e)}</li>
          ))}
        </ul>
      )}
    </aside>
  );
}

/// The input a node started with, asked for once it has left `pending`
/// (again when its state changes). Nodes inside a compound node's body are
/// not kept one by one: the daemon has none for them.
function NodeInput({ runId, node, status }: { runId: string; node: string; status?: string }) {
  const [input, setInput] = useState<unknown>();
  const [error, setError] = useState<string>();
  const started = status !== undefined && status !== "pending";
  useEffect(() => {
    setInput(undefined);
    setError(undefined);
    if (!started) return;
    let live = true;
    api
      .GET("/v1/runs/{id}/nodes/{node}/input", { params: { path: { id: runId, node } } })
      .then((r) => {
        if (!live) return;
        if (r.response.status === 404) setInput(null);
        else setInput(unwrap(r).input);
      })
      .catch((e) => live && setError(e instanceof Error ? e.message : String(e)));
    return () => {
      live = false;
    };
  }, [runId, node, started, status]);
  return (
    <>
      <h3>Input</h3>
      <Failure error={error} />
      {!started ? (
        <p>None yet.</p>
      ) : input === undefined ? (
        <p>Loading…</p>
      ) : input === null ? (
        <p>None kept (it never started, or it runs inside a compound node).</p>
      ) : (
        <div className="node-input">
          <Json value={input} />
        </div>
      )}
    </>
  );
}

/// Send a dead letter (a node that failed for good) back to run; the run
/// goes on from it.
function Redrive({ runId, node, onDone }: { runId: string; node: string; onDone: () => void }) {
  const [error, setError] = useState<string>();
  const redrive = async () => {
    try {
      const id = `${runId}:${node}`;
      unwrap(await api.POST("/v1/dead-letters/{id}/retry", { params: { path: { id } } }));
      setError(undefined);
      onDone();
    } catch (e) {
      setError(e instanceof Error ? e.message : String(e));
    }
  };
  return (
    <p>
      <button type="button" onClick={redrive}>
        Re-drive this node
      </button>
      {error && <span className="failure"> {error}</span>}
    </p>
  );
}

/// The signal a wait node waits for: its `config.signal`, or its id (an
/// inner node's `outer/inner` as `outer.inner`).
function signalName(box: Box): string {
  const config = box.definition.config as { signal?: unknown } | undefined;
  return typeof config?.signal === "string" ? config.signal : box.id.replaceAll("/", ".");
}

/// The waits inside steps (a loop's, a map's elements) that wait now, by
/// their ids in the run (`chat[3]/reply`), each with what it waits on (its
/// input: a chat's last reply) and its form: the graph
/// draws the node the steps belong to, not each step's wait.
function StepWaits({
  runId,
  graph,
  live,
}: {
  runId: string;
  graph: unknown;
  live: Map<string, Live>;
}) {
  const waiting = [...live.entries()]
    .filter(([id, n]) => n.state === "waiting" && id.includes("]/"))
    .map(([id]) => id)
    .sort();
  if (waiting.length === 0) return null;
  return (
    <section aria-label="Waiting inside steps" className="step-waits">
      <h2>Waiting inside steps</h2>
      {waiting.map((id) => (
        <div key={id} data-step-wait={id}>
          <code>{id}</code>
          <NodeInput runId={runId} node={id} status="waiting" />
          <SignalForm runId={runId} name={stepSignal(graph, id)} />
        </div>
      ))}
    </section>
  );
}

/// The signal wait `id` inside a step waits for, at its step: for
/// `chat[3]/reply`, `chat[3]/` and the `reply` node's `config.signal` (or
/// its id), found by walking `graph` through the steps' bodies.
function stepSignal(graph: unknown, id: string): string {
  const cut = id.lastIndexOf("]/");
  const path = id.slice(0, cut + 1);
  const waitId = id.slice(cut + 2);
  type Node = { id?: unknown; graph?: Graph; config?: { signal?: unknown } };
  type Graph = { tasks?: Node[] };
  let body = graph as Graph | undefined;
  for (const step of path.split("]/")) {
    const owner = step.slice(0, step.lastIndexOf("["));
    body = body?.tasks?.find((t) => t.id === owner)?.graph;
  }
  const signal = body?.tasks?.find((t) => t.id === waitId)?.config?.signal;
  return `${path}/${typeof signal === "string" ? signal : waitId.replaceAll("/", ".")}`;
}

/// Answer a waiting node: the signal's body becomes its output.
function SignalForm({ runId, name }: { runId: string; name: string }) {
  const [body, setBody] = useState("{}");
  const [said, setSaid] = useState<string>();
  const send = async (e: FormEvent) => {
    e.preventDefault();
    try {
      const parsed = JSON.parse(body) as Record<string, unknown>;
      unwrap(
        await api.POST("/v1/runs/{id}/signals/{name}", {
          params: { path: { id: runId, name } },
          body: parsed,
        }),
      );
      setSaid(`Signal ${name} sent.`);
    } catch (e) {
      setSaid(e instanceof Error ? e.message : String(e));
    }
  };
  return (
    <form onSubmit={send} aria-label="Send a signal" className="signal-form">
      <h3>
        Waiting for signal <code>{name}</code>
      </h3>
      <label className="field">
        Body (JSON)
        <textarea rows={4} value={body} onChange={(e) => setBody(e.target.value)} />
      </label>
      <button type="submit">Send signal</button>
      {said && <p role="status">{said}</p>}
    </form>
  );
}

function EventLog({ events }: { events: RunEvent[] }) {
  const shown = events.slice(-MAX_LISTED);
  return (
    <details className="events" open>
      <summary>
        Events <span data-events-count={events.length}>({events.length})</span>
      </summary>
      {events.length > shown.length && <p>The latest {shown.length} of {events.length}.</p>}
      <ol className="event-log">
        {shown.map((e) => (
          <li key={e.seq} data-seq={e.seq}>
            <span className="seq">{e.seq}</span> {describe(e)}
          </li>
        ))}
      </ol>
    </details>
  );
}

function describe(e: RunEvent): string {
  switch (e.type) {
    case "run_started":
      return `run ${e.resumed ? "resumed" : "started"} (${e.nodes} nodes)`;
    case "run_finished":
      return `run ${e.status}${e.reason ? `: ${e.reason}` : ""}`;
    case "node":
      return `${e.node} ${e.status}${e.cached ? " (cached)" : ""}${e.error ? `: ${e.error}` : ""}`;
    case "dataflow":
      return `dataflow ${e.index} ${e.status}`;
    case "progress":
      return `${e.node} progress ${Math.round(e.fraction * 100)}%${e.message ? ` ${e.message}` : ""}`;
    case "log":
      return `${e.node} [${e.level}] ${e.message}`;
  }
}
