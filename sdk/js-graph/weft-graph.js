// Build Weft graphs in JavaScript and run them on a Weft daemon.
//
// `Workflow` connects each task it adds to the tasks before it by port name
// (and JSON type), as the Rust `weft::workflow::Workflow` does; `Client`
// submits a graph to `weft serve` and waits for or follows its run. No
// dependencies (Node >= 20: fetch is built in).

/** A graph that cannot be built as asked. */
export class WorkflowError extends Error {}

/** The daemon refused a request. */
export class WeftError extends Error {
  constructor(status, message) {
    super(`${status}: ${message}`);
    this.status = status;
  }
}

/** The JSON types a port schema allows (null: any). */
function types(schema) {
  if (!schema || typeof schema !== "object") return null;
  let found = typeof schema.type === "string" ? new Set([schema.type])
    : Array.isArray(schema.type) ? new Set(schema.type) : null;
  for (const key of ["anyOf", "oneOf"]) {
    if (!Array.isArray(schema[key])) continue;
    const parts = schema[key].map(types);
    if (parts.some((p) => p === null)) continue;
    const union = new Set(parts.flatMap((p) => [...p]));
    found = found === null ? union : new Set([...found].filter((t) => union.has(t)));
  }
  if (found && (found.has("integer") || found.has("number"))) {
    found.add("integer");
    found.add("number");
  }
  return found;
}

function agree(a, b) {
  const ta = types(a), tb = types(b);
  return ta === null || tb === null || [...ta].some((t) => tb.has(t));
}

function flow(s, sp, t, tp, transforms) {
  const f = { sourceTaskId: s, sourceTaskPortId: sp, targetTaskId: t, targetTaskPortId: tp };
  if (transforms && transforms.length) f.transforms = transforms;
  return f;
}

/** A graph built a task at a time. `tasks`: what `weft tasks --json` prints. */
export class Workflow {
  constructor(tasks) {
    this.types = new Map(tasks.map((t) => [t.id, t]));
    this.graph = { tasks: [], dataflows: [] };
    this.last = [];
    this.renames = new Map();
    this.counts = new Map();
    // By id: each node, and the dataflows touching it (so a workflow of
    // 100,000 tasks costs in proportion).
    this.nodes = new Map();
    this.touching = new Map();
  }

  /** Add a task fed by the tasks before it through the ports they share. */
  add(taskType, defaults) {
    if (!this.types.has(taskType)) throw new WorkflowError(`unknown task type \`${taskType}\``);
    const short = taskType.split(".").pop();
    const n = (this.counts.get(short) ?? 0) + 1;
    this.counts.set(short, n);
    const id = `${short}-${n}`;
    const node = { id, type: taskType };
    if (defaults && Object.keys(defaults).length) node.defaults = defaults;
    this.graph.tasks.push(node);
    this.nodes.set(id, node);
    if (this.last.length && this.#connectFrom(this.last, id) === 0) {
      throw new WorkflowError(`\`${id}\` follows ${this.last.join(", ")} but none of their output ports ` +
        "matches an input port of it by name and type; use rename() or connect()");
    }
    this.renames = new Map();
    this.last = [id];
    return this;
  }

  /** Add the task types one after another. */
  pipe(...taskTypes) {
    for (const t of taskTypes) this.add(t);
    return this;
  }

  /** Add tasks side by side, each fed by the tasks before; the next is fed by all. */
  parallel(...steps) {
    const before = [...this.last], renames = new Map(this.renames), after = [];
    for (const [taskType, defaults] of steps) {
      this.last = [...before];
      this.renames = new Map(renames);
      this.add(taskType, defaults);
      after.push(...this.last);
    }
    this.last = after;
    return this;
  }

  /** Give the last task added the id `id`. */
  named(id) {
    if (!this.last.length) throw new WorkflowError("named(): no task added yet");
    if (this.nodes.has(id)) throw new WorkflowError(`named(): id \`${id}\` is taken`);
    const old = this.last[this.last.length - 1];
    const node = this.nodes.get(old);
    node.id = id;
    this.nodes.delete(old);
    this.nodes.set(id, node);
    const flows = this.touching.get(old) ?? [];
    for (const f of flows) {
      if (f.sourceTaskId === old) f.sourceTaskId = id;
      if (f.targetTaskId === old) f.targetTaskId = id;
    }
    this.touching.delete(old);
    this.touching.set(id, flows);
    this.last[this.last.length - 1] = id;
    return this;
  }

  /** For the next task: its input `targetPort` takes output `sourcePort`. */
  rename(sourcePort, targetPort) {
    this.renames.set(sourcePort, targetPort);
    return this;
  }

  /** An explicit dataflow `node.port` → `node.port`. */
  connect(source, target, transforms) {
    const cut = (s) => [s.slice(0, s.lastIndexOf(".")), s.slice(s.lastIndexOf(".") + 1)];
    const [[s, sp], [t, tp]] = [cut(source), cut(target)];
    for (const end of [s, t]) {
      if (!this.nodes.has(end)) throw new WorkflowError(`connect(): no task \`${end}\``);
    }
    this.#push(flow(s, sp, t, tp, transforms));
    return this;
  }

  /** Remove the last task added, with its dataflows. */
  pop() {
    const gone = this.graph.tasks.pop()?.id;
    if (gone !== undefined) {
      this.nodes.delete(gone);
      const dropped = new Set(this.touching.get(gone) ?? []);
      this.touching.delete(gone);
      this.graph.dataflows = this.graph.dataflows.filter((f) => !dropped.has(f));
      for (const [k, flows] of this.touching) this.touching.set(k, flows.filter((f) => !dropped.has(f)));
      this.last = this.last.filter((l) => l !== gone);
    }
    return this;
  }

  /** The next task starts a new chain. */
  reset() {
    this.last = [];
    this.renames = new Map();
    return this;
  }

  /** The graph, as Weft reads it. */
  toJSON() {
    return structuredClone(this.graph);
  }

  #push(f) {
    this.graph.dataflows.push(f);
    for (const end of new Set([f.sourceTaskId, f.targetTaskId])) {
      if (!this.touching.has(end)) this.touching.set(end, []);
      this.touching.get(end).push(f);
    }
  }

  #connectFrom(sources, target) {
    const into = this.types.get(this.nodes.get(target).type).input_schema.properties ?? {};
    let made = 0;
    for (const s of sources) {
      const outs = this.types.get(this.nodes.get(s).type).output_schema.properties ?? {};
      for (const [port, schema] of Object.entries(outs)) {
        const to = this.renames.get(port) ?? port;
        if (to in into && agree(schema, into[to])) {
          this.#push(flow(s, port, target, to));
          made += 1;
        }
      }
    }
    return made;
  }
}

/** A client of `weft serve`'s HTTP API. */
export class Client {
  constructor(url = "http://127.0.0.1:8080", token) {
    this.url = url.replace(/\/$/, "");
    this.token = token;
  }

  async #request(method, path, body) {
    const headers = {};
    if (body !== undefined) headers["Content-Type"] = "application/json";
    if (this.token) headers.Authorization = `Bearer ${this.token}`;
    const res = await fetch(this.url + path, {
      method, headers, body: body === undefined ? undefined : JSON.stringify(body),
    });
    if (!res.ok) {
      const text = await res.text();
      let message = text;
      try { message = JSON.parse(text).error ?? text; } catch { /* not JSON */ }
      throw new WeftError(res.status, message);
    }
    return res;
  }

  /** Every task type the daemon knows (and your saved graphs). */
  async tasks() {
    return (await this.#request("GET", "/v1/tasks")).json();
  }

  /** Start a run of `graph` (a graph, or the name of a saved one); its id. */
  async submit(graph, input = {}) {
    return (await (await this.#request("POST", "/v1/runs", { graph, input })).json()).run_id;
  }

  /** A run's state, outputs and errors. */
  async run(runId) {
    return (await this.#request("GET", `/v1/runs/${runId}`)).json();
  }

  /** The run's events from the one after `after`, as they happen, to its end. */
  async *events(runId, after = 0) {
    const res = await this.#request("GET", `/v1/runs/${runId}/events${after ? `?after=${after}` : ""}`);
    const decoder = new TextDecoder();
    let buffered = "";
    for await (const chunk of res.body) {
      buffered += decoder.decode(chunk, { stream: true });
      let end;
      while ((end = buffered.indexOf("\n")) >= 0) {
        const line = buffered.slice(0, end).trim();
        buffered = buffered.slice(end + 1);
        if (!line.startsWith("data:")) continue;
        const event = JSON.parse(line.slice(5));
        yield event;
        if (event.type === "run_finished") return;
      }
    }
  }

  /** Follow the run's events to its end; then its state. */
  async wait(runId) {
    for await (const _ of this.events(runId)) { /* to the end */ }
    return this.run(runId);
  }
}
