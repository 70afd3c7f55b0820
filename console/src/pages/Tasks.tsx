// The task catalog: every task type the daemon runs, searched by id, title,
// category or alias; a selected one's ports shown as the form its input
// and output make, with their descriptions.
import { useMemo, useState } from "react";
import { api, unwrap, type TaskType } from "../api/client";
import { href } from "../route";
import { Failure, Json, usePolled } from "./common";

export function Tasks({ selected }: { selected?: string }) {
  const { value, error } = usePolled(async () => unwrap(await api.GET("/v1/tasks")), 0, []);
  const [query, setQuery] = useState("");
  const shown = useMemo(() => {
    const q = query.trim().toLowerCase();
    return (value ?? []).filter(
      (t) =>
        !q ||
        [t.id, t.title, t.category, ...(t.aliases ?? [])].some((s) => s.toLowerCase().includes(q)),
    );
  }, [value, query]);
  const task = value?.find((t) => t.id === selected);

  return (
    <section aria-labelledby="tasks-title" className="tasks">
      <h1 id="tasks-title">Tasks</h1>
      <Failure error={error} />
      <div className="catalog">
        <div>
          <label>
            Search{" "}
            <input
              type="search"
              value={query}
              placeholder="id, title, category"
              onChange={(e) => setQuery(e.target.value)}
            />
          </label>
          <p>
            {shown.length} of {value?.length ?? 0} task types
          </p>
          <ul className="task-list">
            {shown.map((t) => (
              <li key={t.id} data-task-id={t.id}>
                <a href={href("tasks", t.id)} aria-current={t.id === selected ? "true" : undefined}>
                  <code>{t.id}</code> {t.title}
                </a>{" "}
                <span className="category">{t.category}</span>
              </li>
            ))}
          </ul>
        </div>
        {task && <TaskDetail task={task} />}
        {selected && value && !task && <p role="alert">No task type `{selected}`.</p>}
      </div>
    </section>
  );
}

function TaskDetail({ task }: { task: TaskType }) {
  return (
    <article className="task-detail" aria-labelledby="task-title">
      <h2 id="task-title">
        {task.title} <code>{task.id}</code>
      </h2>
      <p>{task.description}</p>
      <p className="task-facts">
        {task.category} · version {task.version} · from {task.plugin}
        {task.side_effects ? " · has side effects" : ""}
        {task.cacheable ? " · cacheable" : ""} · time limit {task.timeout_ms} ms
        {task.aliases?.length ? ` · also ${task.aliases.join(", ")}` : ""}
      </p>
      <h3>Input</h3>
      <Ports schema={task.input_schema} direction="input" />
      <h3>Output</h3>
      <Ports schema={task.output_schema} direction="output" />
      <details>
        <summary>JSON Schemas</summary>
        <Json value={{ input: task.input_schema, output: task.output_schema }} />
      </details>
    </article>
  );
}

interface PropertySchema {
  type?: string | string[];
  description?: string;
  default?: unknown;
  enum?: unknown[];
  title?: string;
}

/// A schema's properties as read-only form fields: name, type, whether
/// required, default, allowed values and description.
function Ports({ schema, direction }: { schema: unknown; direction: string }) {
  const s = schema as { properties?: Record<string, PropertySchema>; required?: string[] };
  const entries = Object.entries(s.properties ?? {});
  if (entries.length === 0) return <p>No declared ports.</p>;
  return (
    <dl className="ports" data-direction={direction}>
      {entries.map(([name, p]) => {
        const type = Array.isArray(p.type) ? p.type.join(" | ") : (p.type ?? "any");
        return (
          <div key={name} className="port" data-port={name}>
            <dt>
              <code>{name}</code> <span className="port-type">{type}</span>
              {s.required?.includes(name) ? <span className="required"> required</span> : ""}
            </dt>
            <dd>
              {p.description ?? p.title ?? ""}
              {p.default !== undefined && <> Default: <code>{JSON.stringify(p.default)}</code>.</>}
              {p.enum && <> One of: {p.enum.map((v) => JSON.stringify(v)).join(", ")}.</>}
            </dd>
          </div>
        );
      })}
    </dl>
  );
}
