// The runs list: newest first, filtered by state and graph, a page at a
// time (the API's cursors), read again every few seconds.
import { useState } from "react";
import { api, unwrap, type RunSummary } from "../api/client";
import { href } from "../route";
import { Failure, State, time, usePolled } from "./common";

const STATES = ["", "running", "succeeded", "failed", "cancelled"] as const;
const PAGE = 50;

export function Runs() {
  const [status, setStatus] = useState<(typeof STATES)[number]>("");
  const [graph, setGraph] = useState("");
  // The cursors of the pages before this one, and this one's.
  const [cursors, setCursors] = useState<(string | undefined)[]>([undefined]);
  const cursor = cursors[cursors.length - 1];
  const { value, error } = usePolled(
    async () =>
      unwrap(
        await api.GET("/v1/runs", {
          params: {
            query: {
              status: status || undefined,
              graph: graph.trim() || undefined,
              limit: PAGE,
              cursor,
            },
          },
        }),
      ),
    3000,
    [status, graph, cursor],
  );
  const restart = () => setCursors([undefined]);

  return (
    <section aria-labelledby="runs-title">
      <h1 id="runs-title">Runs</h1>
      <form className="filters" onSubmit={(e) => e.preventDefault()}>
        <label>
          State{" "}
          <select
            value={status}
            onChange={(e) => {
              setStatus(e.target.value as (typeof STATES)[number]);
              restart();
            }}
          >
            {STATES.map((s) => (
              <option key={s} value={s}>
                {s || "any"}
              </option>
            ))}
          </select>
        </label>
        <label>
          Graph{" "}
          <input
            value={graph}
            placeholder="saved graph name"
            onChange={(e) => {
              setGraph(e.target.value);
              restart();
            }}
          />
        </label>
      </form>
      <Failure error={error} />
      {value && <RunTable runs={value.runs} />}
      <nav className="pages" aria-label="Pages">
        <button
          type="button"
          disabled={cursors.length < 2}
          onClick={() => setCursors((c) => c.slice(0, -1))}
        >
          Newer
        </button>
        <button
          type="button"
          disabled={!value?.next_cursor}
          onClick={() => value?.next_cursor && setCursors((c) => [...c, value.next_cursor!])}
        >
          Older
        </button>
      </nav>
    </section>
  );
}

function RunTable({ runs }: { runs: RunSummary[] }) {
  if (runs.length === 0) return <p>No runs.</p>;
  return (
    <table className="runs">
      <thead>
        <tr>
          <th scope="col">Run</th>
          <th scope="col">State</th>
          <th scope="col">Graph</th>
          <th scope="col">Owner</th>
          <th scope="col">Created</th>
        </tr>
      </thead>
      <tbody>
        {runs.map((r) => (
          <tr key={r.run_id} data-run-id={r.run_id}>
            <td>
              <a href={href("runs", r.run_id)}>{r.run_id}</a>
            </td>
            <td>
              <State state={r.status} />
            </td>
            <td>{r.graph_name ?? r.origin}</td>
            <td>{r.owner ?? "—"}</td>
            <td>{time(r.created_ms)}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}
