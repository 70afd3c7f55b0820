// Your saved graphs (and those shared with you), newest version each, to
// open in the editor; and a new one.
import { api, unwrap } from "../api/client";
import { href } from "../route";
import { Failure, time, usePolled } from "./common";

export function Graphs() {
  const { value, error } = usePolled(async () => unwrap(await api.GET("/v1/graphs")), 0, []);
  return (
    <section aria-labelledby="graphs-title">
      <h1 id="graphs-title">Graphs</h1>
      <p>
        <a href={href("editor")}>New graph</a>
      </p>
      <Failure error={error} />
      {value && value.length === 0 && <p>No saved graphs.</p>}
      {value && value.length > 0 && (
        <table>
          <thead>
            <tr>
              <th scope="col">Graph</th>
              <th scope="col">Version</th>
              <th scope="col">Nodes</th>
              <th scope="col">Saved</th>
            </tr>
          </thead>
          <tbody>
            {value.map((g) => (
              <tr key={`${g.owner}/${g.name}`} data-graph={g.name}>
                <td>
                  <a href={href("editor", g.name)}>{g.name}</a>
                  {g.owner ? ` (${g.owner})` : ""}
                </td>
                <td>{g.version}</td>
                <td>{g.tasks}</td>
                <td>{time(g.saved_ms)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </section>
  );
}
