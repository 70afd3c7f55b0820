// The plugins the daemon found: each one's task types, whether it serves
// models, and why it failed to load; read again every few seconds, so a
// plugin dropped into (or removed from) the folder shows up as the daemon
// reloads it.
import { api, unwrap } from "../api/client";
import { href } from "../route";
import { Failure, usePolled } from "./common";

export function Plugins() {
  const { value, error } = usePolled(async () => unwrap(await api.GET("/v1/plugins")), 3000, []);
  return (
    <section aria-labelledby="plugins-title">
      <h1 id="plugins-title">Plugins</h1>
      <Failure error={error} />
      <table className="plugins">
        <thead>
          <tr>
            <th scope="col">Plugin</th>
            <th scope="col">Source</th>
            <th scope="col">Tasks</th>
            <th scope="col">State</th>
          </tr>
        </thead>
        <tbody>
          {(value ?? []).map((p) => (
            <tr key={`${p.name} ${p.source}`} data-plugin={p.name}>
              <td>
                {p.name}
                {p.provider ? " (model provider)" : ""}
              </td>
              <td>
                <span title={`SHA-256 ${p.sha256}`}>{p.source}</span>
              </td>
              <td>
                {p.tasks.map((t, i) => (
                  <span key={t}>
                    {i > 0 && ", "}
                    <a href={href("tasks", t)}>{t}</a>
                  </span>
                ))}
              </td>
              <td>
                {p.error ? (
                  <span className="failure">failed to load: {p.error}</span>
                ) : (
                  "loaded"
                )}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </section>
  );
}
