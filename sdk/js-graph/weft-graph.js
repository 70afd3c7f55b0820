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

const KINDS = new Set(["conditional", "pass", "map", "reduce", "while", "fallback"]);
// Scope → the node type it builds.
const SCOPES = { subgraph: "graph", map: "map", reduce: "reduce", while: "while", fallback: "fallback" };

function short(taskType) {
  for (const sep of [".", ":", "/"]) taskType = taskType.slice(taskType.lastIndexOf(sep) + 1);
  return taskType.split("@")[0];
}

function flow(s, sp, t, tp, transforms) {
  const f = { sourceTaskId: s, sourceTaskPortId: sp, targetTaskId: t, targetTaskPortId: tp };
  if (transforms && transforms.length) f.transforms = transforms;
  return f;
}

/** One graph being built: the root, or the body of an open scope. */
class Frame {
  constructor(scope = null) {
    this.graph = { tasks: [], dataflows: [] };
    this.last = [];
    this.renames = new Map();
    this.counts = new Map();
    // By id: each node, and the dataflows touching it (so a workflow of
    // 100,000 tasks costs in proportion).
    this.nodes = new Map();
    this.touching = new Map();
    // {scope, node: its id in the frame below, before: that frame's `last`}.
    this.scope = scope;
  }

  push(f) {
    this.graph.dataflows.push(f);
    for (const end of new Set([f.sourceTaskId, f.targetTaskId])) {
      if (!this.touching.has(end)) this.touching.set(end, []);
      this.touching.get(end).push(f);
    }
  }

  rename(old, id) {
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
    this.last = this.last.map((l) => (l === old ? id : l));
  }
}

/**
 * A graph built a task at a time, with the rules of the Rust builder
 * (`weft::workflow::Workflow`): each task added is fed by the tasks before
 * it through the output ports whose names are its declared input ports and
 * whose JSON types agree; scopes (`map` … `endMap`, `reduce`, `whileLoop`,
 * `fallback`, `subgraph`) build a node's body. `tasks`: what `weft tasks
 * --json` (or `client.tasks()`) lists.
 */
export class Workflow {
  constructor(tasks) {
    this.ports = new Map();
    for (const t of tasks) {
      for (const name of [t.id, ...(t.aliases ?? [])]) this.ports.set(name, t.ports ?? {});
    }
    this.frames = [new Frame()];
    this.current = null;
  }

  get #top() {
    return this.frames[this.frames.length - 1];
  }

  /** Add a task fed by the tasks before it through the ports they share. */
  add(taskType, defaults) {
    if (!this.ports.has(taskType) && !KINDS.has(taskType)) {
      throw new WorkflowError(`unknown task type \`${taskType}\``);
    }
    this.#connectLast(this.#pushNode(taskType, defaults));
    return this;
  }

  /** Add the task types one after another. */
  pipe(...taskTypes) {
    for (const t of taskTypes) this.add(t);
    return this;
  }

  /** Add tasks side by side, each fed by the tasks before; the next is fed by all. */
  parallel(...steps) {
    const top = this.#top;
    const before = [...top.last], renames = new Map(top.renames), after = [];
    for (const [taskType, defaults] of steps) {
      top.last = [...before];
      top.renames = new Map(renames);
      this.add(taskType, defaults);
      after.push(...top.last);
    }
    top.last = after;
    return this;
  }

  /** Add a task fed by the `[error]` port of the tasks before: it handles their failure. */
  onError(taskType, defaults) {
    if (!this.ports.has(taskType) && !KINDS.has(taskType)) {
      throw new WorkflowError(`unknown task type \`${taskType}\``);
    }
    const failing = this.#top.last;
    if (!failing.length) throw new WorkflowError("onError(): no task added yet");
    const id = this.#pushNode(taskType, defaults);
    for (const source of failing) this.#top.push(flow(source, "[error]", id, "*"));
    this.#top.last = [id];
    this.#top.renames = new Map();
    return this;
  }

  /** Open a `map` node's body: tasks added until `endMap` run per element. */
  map(defaults) { return this.#open("map", defaults); }
  endMap() { return this.#close("map"); }
  /** Open a `reduce` node's body (one step of the fold). */
  reduce(defaults) { return this.#open("reduce", defaults); }
  endReduce() { return this.#close("reduce"); }
  /** Open a `while` node's body (one iteration); its condition goes in `config`. */
  whileLoop(defaults) { return this.#open("while", defaults); }
  endWhile() { return this.#close("while"); }
  /** Open a `fallback` node's body (what its alternatives run). */
  fallback(defaults) { return this.#open("fallback", defaults); }
  endFallback() { return this.#close("fallback"); }
  /** Open a compound node's body (a node of type `graph`). */
  subgraph(defaults) { return this.#open("subgraph", defaults); }
  endSubgraph() { return this.#close("subgraph"); }

  /** Give the last node added (or the scope just opened or closed) the id `id`. */
  named(id) {
    if (!this.current) throw new WorkflowError("named(): no task added yet");
    const [f, old] = this.current;
    if (this.frames[f].nodes.has(id)) throw new WorkflowError(`named(): id \`${id}\` is taken`);
    this.frames[f].rename(old, id);
    const body = this.frames[f + 1];
    if (body && body.scope.node === old) body.scope.node = id;
    this.current = [f, id];
    return this;
  }

  /** Give the last node added a label for people (its `name`). */
  label(name) {
    this.#currentNode("label").name = name;
    return this;
  }

  /** Set the last node's settings (`config`). */
  config(config) {
    const node = this.#currentNode("config");
    if (config && Object.keys(config).length) node.config = config;
    else delete node.config;
    return this;
  }

  /** For the next task: its input `targetPort` takes output `sourcePort`. */
  rename(sourcePort, targetPort) {
    this.#top.renames.set(sourcePort, targetPort);
    return this;
  }

  /** An explicit dataflow `node.port` → `node.port`. */
  connect(source, target, transforms) {
    if (!source.includes(".") || !target.includes(".")) {
      throw new WorkflowError("connect(): name ends as `node.port`");
    }
    const cut = (s) => [s.slice(0, s.lastIndexOf(".")), s.slice(s.lastIndexOf(".") + 1)];
    const [[s, sp], [t, tp]] = [cut(source), cut(target)];
    for (const end of [s, t]) {
      if (!this.#top.nodes.has(end)) throw new WorkflowError(`connect(): no task \`${end}\``);
    }
    this.#top.push(flow(s, sp, t, tp, transforms));
    return this;
  }

  /** Give the dataflow made last an id. */
  flowId(id) {
    const flows = this.#top.graph.dataflows;
    if (!flows.length) throw new WorkflowError("flowId(): no dataflow made yet");
    flows[flows.length - 1].id = id;
    return this;
  }

  /** Remove the last task added, with its dataflows. */
  pop() {
    const top = this.#top;
    const gone = top.graph.tasks.pop()?.id;
    if (gone !== undefined) {
      top.nodes.delete(gone);
      const dropped = new Set(top.touching.get(gone) ?? []);
      top.touching.delete(gone);
      top.graph.dataflows = top.graph.dataflows.filter((f) => !dropped.has(f));
      for (const [k, flows] of top.touching) top.touching.set(k, flows.filter((f) => !dropped.has(f)));
      top.last = top.last.filter((l) => l !== gone);
    }
    this.current = null;
    return this;
  }

  /** The next task starts a new chain. */
  reset() {
    this.#top.last = [];
    this.#top.renames = new Map();
    return this;
  }

  /** The graph, as Weft reads it. */
  toJSON() {
    if (this.frames.length > 1) {
      const { scope, node } = this.#top.scope;
      throw new WorkflowError(`toJSON(): the ${SCOPES[scope]} \`${node}\` is still open ` +
        `(end it with end${scope[0].toUpperCase()}${scope.slice(1)})`);
    }
    return structuredClone(this.frames[0].graph);
  }

  #currentNode(what) {
    if (!this.current) throw new WorkflowError(`${what}(): no task added yet`);
    const [f, id] = this.current;
    return this.frames[f].nodes.get(id);
  }

  #pushNode(taskType, defaults) {
    const top = this.#top;
    const name = short(taskType);
    let n = top.counts.get(name) ?? 0, id;
    do {
      n += 1;
      id = `${name}-${n}`;
    } while (top.nodes.has(id));
    top.counts.set(name, n);
    const node = { id, type: taskType };
    if (defaults && Object.keys(defaults).length) node.defaults = defaults;
    top.graph.tasks.push(node);
    top.nodes.set(id, node);
    this.current = [this.frames.length - 1, id];
    return id;
  }

  #connectLast(id) {
    const top = this.#top;
    const sources = top.last;
    top.last = [];
    if (sources.length) {
      const flows = this.#autoFlows(sources.map((s) => top.nodes.get(s)), top.nodes.get(id), top.renames);
      if (!flows.length) {
        throw new WorkflowError(`\`${id}\` follows ${sources.join(", ")} but none of their output ports ` +
          "matches an input port of it by name and type; use rename() or connect()");
      }
      for (const f of flows) top.push(f);
    }
    top.renames = new Map();
    top.last = [id];
  }

  #open(scope, defaults) {
    const id = this.#pushNode(SCOPES[scope], defaults);
    const top = this.#top;
    const before = top.last;
    top.last = [];
    top.renames = new Map();
    this.frames.push(new Frame({ scope, node: id, before }));
    return this;
  }

  #close(scope) {
    const open = this.#top.scope?.scope;
    if (open !== scope) {
      const what = open ? `a ${SCOPES[open]}` : "nothing";
      throw new WorkflowError(`end${scope[0].toUpperCase()}${scope.slice(1)}(): ${what} is open`);
    }
    const body = this.frames.pop();
    const top = this.#top;
    top.nodes.get(body.scope.node).graph = body.graph;
    top.last = body.scope.before;
    this.#connectLast(body.scope.node);
    this.current = [this.frames.length - 1, body.scope.node];
    return this;
  }

  /** A node's [inputs, outputs], each a Map of port → Set of JSON types. */
  #nodePorts(node) {
    const side = (m) => new Map(Object.entries(m ?? {}).map(([p, t]) => [p, new Set(t)]));
    if (!node.graph) {
      const ports = this.ports.get(node.type) ?? {};
      return [side(ports.input), side(ports.output)];
    }
    const fed = new Set(node.graph.dataflows.map((f) => JSON.stringify([f.targetTaskId, f.targetTaskPortId])));
    const feeds = new Set(node.graph.dataflows.map((f) => f.sourceTaskId));
    const inputs = new Map(), outputs = new Map();
    const join = (into, p, t) => into.set(p, new Set([...(into.get(p) ?? []), ...t]));
    for (const inner of node.graph.tasks) {
      const [ins, outs] = this.#nodePorts(inner);
      for (const [p, t] of ins) {
        if (!fed.has(JSON.stringify([inner.id, p]))) join(inputs, p, t);
      }
      if (!feeds.has(inner.id)) for (const [p, t] of outs) join(outputs, p, t);
    }
    if (node.type === "map" || node.type === "reduce") for (const [p] of inputs) join(inputs, p, ["array"]);
    if (node.type === "map") for (const [p] of outputs) outputs.set(p, new Set(["array"]));
    return [inputs, outputs];
  }

  #autoFlows(sources, target, renames) {
    const into = this.#nodePorts(target)[0];
    const flows = [];
    for (const s of sources) {
      for (const [port, types] of this.#nodePorts(s)[1]) {
        const to = renames.get(port) ?? port;
        if (into.has(to) && [...types].some((t) => into.get(to).has(t))) {
          flows.push(flow(s.id, port, target.id, to));
        }
      }
    }
    return flows;
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
