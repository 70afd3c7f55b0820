// A summary of the daemon's Prometheus metrics (`/metrics`): each metric
// with its description and samples; a histogram as its count and mean.
// Read again every 3 seconds.
import { authHeaders } from "../api/client";
import { Failure, usePolled } from "./common";

interface Metric {
  name: string;
  help: string;
  samples: { labels: string; value: number }[];
}

async function load(): Promise<Metric[]> {
  const r = await fetch("/metrics", { headers: authHeaders() });
  if (!r.ok) throw new Error(`/metrics: ${r.status} ${r.statusText}`);
  return parse(await r.text());
}

/// Prometheus' text format: `# HELP name text` lines and `name{labels}
/// value` samples; histogram buckets are left out (their sum and count
/// stay).
export function parse(text: string): Metric[] {
  const metrics = new Map<string, Metric>();
  const metric = (name: string) => {
    let m = metrics.get(name);
    if (!m) metrics.set(name, (m = { name, help: "", samples: [] }));
    return m;
  };
  for (const line of text.split("\n")) {
    const help = /^# HELP (\S+) (.*)$/.exec(line);
    if (help) {
      metric(help[1]).help = help[2];
      continue;
    }
    const sample = /^([a-zA-Z_:][\w:]*)(\{[^}]*\})? (\S+)/.exec(line);
    if (!sample || sample[1].endsWith("_bucket")) continue;
    const family = sample[1].replace(/_(sum|count|total)$/, "");
    const owner = metrics.has(sample[1]) ? sample[1] : metrics.has(family) ? family : sample[1];
    metric(owner).samples.push({ labels: sample[1] + (sample[2] ?? ""), value: Number(sample[3]) });
  }
  return [...metrics.values()].filter((m) => m.samples.length > 0);
}

export function Metrics() {
  const { value, error } = usePolled(load, 3000, []);
  return (
    <section aria-labelledby="metrics-title">
      <h1 id="metrics-title">Metrics</h1>
      <p>
        From <a href="/metrics">/metrics</a> (Prometheus' format), read every 3 seconds.
      </p>
      <Failure error={error} />
      <table className="metrics">
        <thead>
          <tr>
            <th scope="col">Metric</th>
            <th scope="col">Value</th>
            <th scope="col">What</th>
          </tr>
        </thead>
        <tbody>
          {(value ?? []).flatMap((m) =>
            m.samples.map((s, i) => (
              <tr key={s.labels} data-sample={s.labels}>
                <td>
                  <code>{s.labels}</code>
                </td>
                <td className="number">{format(s.value)}</td>
                <td>{i === 0 ? m.help : ""}</td>
              </tr>
            )),
          )}
        </tbody>
      </table>
    </section>
  );
}

function format(v: number): string {
  return Number.isInteger(v) ? v.toLocaleString() : v.toPrecision(4);
}
