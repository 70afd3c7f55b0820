"""Build Weft graphs in Python and run them on a Weft daemon.

`Workflow` connects each task it adds to the tasks before it by port name
(and JSON type), as the Rust `weft::workflow::Workflow` does; `Client`
submits a graph to `weft serve` and waits for or follows its run.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any, Iterator

__all__ = ["Workflow", "WorkflowError", "Client", "WeftError"]


class WorkflowError(Exception):
    """A graph that cannot be built as asked."""


_KINDS = {"conditional", "pass", "map", "reduce", "while", "fallback"}
# Scope → the node type it builds and the name its end method carries.
_SCOPES = {"subgraph": "graph", "map": "map", "reduce": "reduce",
           "while": "while", "fallback": "fallback"}


def _short(task_type: str) -> str:
    for sep in ".:/":
        task_type = task_type.rsplit(sep, 1)[-1]
    return task_type.split("@", 1)[0]


class _Frame:
    """One graph being built: the root, or the body of an open scope."""

    def __init__(self, scope: tuple | None = None):
        self.graph: dict[str, list] = {"tasks": [], "dataflows": []}
        self.last: list[str] = []
        self.renames: dict[str, str] = {}
        self.counts: dict[str, int] = {}
        # By id: each node, and the dataflows touching it (so a workflow of
        # 100,000 tasks costs in proportion).
        self.nodes: dict[str, dict] = {}
        self.touching: dict[str, list[dict]] = {}
        # (scope, its node's id in the frame below, that frame's `last`).
        self.scope = scope

    def push(self, flow: dict) -> None:
        self.graph["dataflows"].append(flow)
        for end in {flow["sourceTaskId"], flow["targetTaskId"]}:
            self.touching.setdefault(end, []).append(flow)

    def rename(self, old: str, new: str) -> None:
        node = self.nodes.pop(old)
        node["id"] = new
        self.nodes[new] = node
        flows = self.touching.pop(old, [])
        for f in flows:
            for end in ("sourceTaskId", "targetTaskId"):
                if f[end] == old:
                    f[end] = new
        self.touching[new] = flows
        self.last = [new if x == old else x for x in self.last]


class Workflow:
    """A graph built a task at a time, with the rules of the Rust builder
    (`weft::workflow::Workflow`): each task added is fed by the tasks before
    it through the output ports whose names are its declared input ports
    and whose JSON types agree; scopes (`map` … `end_map`, `reduce`,
    `while_loop`, `fallback`, `subgraph`) build a node's body. `tasks` is
    what `weft tasks --json` (or `Client.tasks()`) lists."""

    def __init__(self, tasks: list[dict[str, Any]]):
        self._ports: dict[str, dict] = {}
        for t in tasks:
            ports = t.get("ports") or {}
            for name in [t["id"], *t.get("aliases", [])]:
                self._ports[name] = ports
        self._frames = [_Frame()]
        self._current: tuple[int, str] | None = None

    @property
    def _top(self) -> _Frame:
        return self._frames[-1]

    def add(self, task_type: str, defaults: dict | None = None) -> "Workflow":
        """Add a task fed by the tasks before it through the ports they share."""
        if task_type not in self._ports and task_type not in _KINDS:
            raise WorkflowError(f"unknown task type `{task_type}`")
        node_id = self._push_node(task_type, defaults)
        self._connect_last(node_id)
        return self

    def pipe(self, *task_types: str) -> "Workflow":
        """Add the task types one after another."""
        for t in task_types:
            self.add(t)
        return self

    def parallel(self, *steps: tuple[str, dict | None]) -> "Workflow":
        """Add tasks side by side, each fed by the tasks before; the next is fed by all."""
        top = self._top
        before, renames, after = list(top.last), dict(top.renames), []
        for task_type, defaults in steps:
            top.last, top.renames = list(before), dict(renames)
            self.add(task_type, defaults)
            after.extend(top.last)
        top.last = after
        return self

    def on_error(self, task_type: str, defaults: dict | None = None) -> "Workflow":
        """Add a task fed by the `[error]` port of the tasks before: it handles their failure."""
        if task_type not in self._ports and task_type not in _KINDS:
            raise WorkflowError(f"unknown task type `{task_type}`")
        failing = self._top.last
        if not failing:
            raise WorkflowError("on_error(): no task added yet")
        node_id = self._push_node(task_type, defaults)
        for source in failing:
            self._top.push(_flow(source, "[error]", node_id, "*", None))
        self._top.last, self._top.renames = [node_id], {}
        return self

    def map(self, defaults: dict | None = None) -> "Workflow":
        """Open a `map` node's body: tasks added until `end_map` run per element."""
        return self._open("map", defaults)

    def end_map(self) -> "Workflow":
        return self._close("map")

    def reduce(self, defaults: dict | None = None) -> "Workflow":
        """Open a `reduce` node's body (one step of the fold)."""
        return self._open("reduce", defaults)

    def end_reduce(self) -> "Workflow":
        return self._close("reduce")

    def while_loop(self, defaults: dict | None = None) -> "Workflow":
        """Open a `while` node's body (one iteration); its condition goes in `config`."""
        return self._open("while", defaults)

    def end_while(self) -> "Workflow":
        return self._close("while")

    def fallback(self, defaults: dict | None = None) -> "Workflow":
        """Open a `fallback` node's body (what its alternatives run)."""
        return self._open("fallback", defaults)

    def end_fallback(self) -> "Workflow":
        return self._close("fallback")

    def subgraph(self, defaults: dict | None = None) -> "Workflow":
        """Open a compound node's body (a node of type `graph`)."""
        return self._open("subgraph", defaults)

    def end_subgraph(self) -> "Workflow":
        return self._close("subgraph")

    def named(self, node_id: str) -> "Workflow":
        """Give the last node added (or the scope just opened or closed) the id `node_id`."""
        if self._current is None:
            raise WorkflowError("named(): no task added yet")
        f, old = self._current
        if node_id in self._frames[f].nodes:
            raise WorkflowError(f"named(): id `{node_id}` is taken")
        self._frames[f].rename(old, node_id)
        if f + 1 < len(self._frames):
            scope, node, before = self._frames[f + 1].scope
            if node == old:
                self._frames[f + 1].scope = (scope, node_id, before)
        self._current = (f, node_id)
        return self

    def label(self, name: str) -> "Workflow":
        """Give the last node added a label for people (its `name`)."""
        self._current_node("label")["name"] = name
        return self

    def config(self, config: dict) -> "Workflow":
        """Set the last node's settings (`config`)."""
        node = self._current_node("config")
        if config:
            node["config"] = config
        else:
            node.pop("config", None)
        return self

    def rename(self, source_port: str, target_port: str) -> "Workflow":
        """For the next task: its input `target_port` takes output `source_port`."""
        self._top.renames[source_port] = target_port
        return self

    def connect(self, source: str, target: str, transforms: list | None = None) -> "Workflow":
        """An explicit dataflow `node.port` → `node.port`."""
        if "." not in source or "." not in target:
            raise WorkflowError("connect(): name ends as `node.port`")
        (s, sp), (t, tp) = source.rsplit(".", 1), target.rsplit(".", 1)
        for end in (s, t):
            if end not in self._top.nodes:
                raise WorkflowError(f"connect(): no task `{end}`")
        self._top.push(_flow(s, sp, t, tp, transforms))
        return self

    def flow_id(self, flow_id: str) -> "Workflow":
        """Give the dataflow made last an id."""
        if not self._top.graph["dataflows"]:
            raise WorkflowError("flow_id(): no dataflow made yet")
        self._top.graph["dataflows"][-1]["id"] = flow_id
        return self

    def pop(self) -> "Workflow":
        """Remove the last task added, with its dataflows."""
        top = self._top
        if top.graph["tasks"]:
            gone = top.graph["tasks"].pop()["id"]
            del top.nodes[gone]
            dropped = {id(f) for f in top.touching.pop(gone, [])}
            top.graph["dataflows"] = [f for f in top.graph["dataflows"] if id(f) not in dropped]
            for flows in top.touching.values():
                flows[:] = [f for f in flows if id(f) not in dropped]
            top.last = [x for x in top.last if x != gone]
        self._current = None
        return self

    def reset(self) -> "Workflow":
        """The next task starts a new chain."""
        self._top.last, self._top.renames = [], {}
        return self

    def to_json(self) -> dict[str, list]:
        """The graph, as Weft reads it."""
        if len(self._frames) > 1:
            scope, node, _ = self._top.scope
            raise WorkflowError(f"to_json(): the {_SCOPES[scope]} `{node}` is still open "
                                f"(end it with end_{scope})")
        return json.loads(json.dumps(self._frames[0].graph))

    def _current_node(self, what: str) -> dict:
        if self._current is None:
            raise WorkflowError(f"{what}(): no task added yet")
        f, node_id = self._current
        return self._frames[f].nodes[node_id]

    def _push_node(self, task_type: str, defaults: dict | None) -> str:
        top = self._top
        short = _short(task_type)
        n = top.counts.get(short, 0)
        while True:
            n += 1
            node_id = f"{short}-{n}"
            if node_id not in top.nodes:
                break
        top.counts[short] = n
        node: dict[str, Any] = {"id": node_id, "type": task_type}
        if defaults:
            node["defaults"] = defaults
        top.graph["tasks"].append(node)
        top.nodes[node_id] = node
        self._current = (len(self._frames) - 1, node_id)
        return node_id

    def _connect_last(self, node_id: str) -> None:
        top = self._top
        sources, top.last = top.last, []
        if sources:
            flows = self._auto_flows([top.nodes[s] for s in sources], top.nodes[node_id],
                                     top.renames)
            if not flows:
                raise WorkflowError(
                    f"`{node_id}` follows {', '.join(sources)} but none of their output ports "
                    "matches an input port of it by name and type; use rename() or connect()")
            for f in flows:
                top.push(f)
        top.renames = {}
        top.last = [node_id]

    def _open(self, scope: str, defaults: dict | None) -> "Workflow":
        node_id = self._push_node(_SCOPES[scope], defaults)
        top = self._top
        before, top.last, top.renames = top.last, [], {}
        self._frames.append(_Frame((scope, node_id, before)))
        return self

    def _close(self, scope: str) -> "Workflow":
        open_scope = self._top.scope[0] if self._top.scope else None
        if open_scope != scope:
            what = f"a {_SCOPES[open_scope]}" if open_scope else "nothing"
            raise WorkflowError(f"end_{scope}(): {what} is open")
        body = self._frames.pop()
        _, node_id, before = body.scope
        top = self._top
        top.nodes[node_id]["graph"] = body.graph
        top.last = before
        self._connect_last(node_id)
        self._current = (len(self._frames) - 1, node_id)
        return self

    def _node_ports(self, node: dict) -> tuple[list, list]:
        """A node's (inputs, outputs), each a list of (port, set of types)."""
        body = node.get("graph")
        if body is None:
            ports = self._ports.get(node["type"], {})
            return ([(p, set(t)) for p, t in (ports.get("input") or {}).items()],
                    [(p, set(t)) for p, t in (ports.get("output") or {}).items()])
        fed = {(f["targetTaskId"], f["targetTaskPortId"]) for f in body["dataflows"]}
        feeds = {f["sourceTaskId"] for f in body["dataflows"]}
        inputs: dict[str, set] = {}
        outputs: dict[str, set] = {}
        for inner in body["tasks"]:
            ins, outs = self._node_ports(inner)
            for p, t in ins:
                if (inner["id"], p) not in fed:
                    inputs[p] = inputs.get(p, set()) | t
            if inner["id"] not in feeds:
                for p, t in outs:
                    outputs[p] = outputs.get(p, set()) | t
        if node["type"] in ("map", "reduce"):
            inputs = {p: t | {"array"} for p, t in inputs.items()}
        if node["type"] == "map":
            outputs = {p: {"array"} for p in outputs}
        return list(inputs.items()), list(outputs.items())

    def _auto_flows(self, sources: list[dict], target: dict, renames: dict) -> list[dict]:
        into = dict(self._node_ports(target)[0])
        flows = []
        for s in sources:
            for port, types in self._node_ports(s)[1]:
                to = renames.get(port, port)
                if to in into and types & into[to]:
                    flows.append(_flow(s["id"], port, target["id"], to, None))
        return flows


def _flow(s: str, sp: str, t: str, tp: str, transforms: list | None) -> dict[str, Any]:
    flow: dict[str, Any] = {"sourceTaskId": s, "sourceTaskPortId": sp,
                            "targetTaskId": t, "targetTaskPortId": tp}
    if transforms:
        flow["transforms"] = transforms
    return flow


class WeftError(Exception):
    """The daemon refused a request (its status and message)."""

    def __init__(self, status: int, message: str):
        super().__init__(f"{status}: {message}")
        self.status = status


class Client:
    """A client of `weft serve`'s HTTP API."""

    def __init__(self, url: str = "http://127.0.0.1:8080", token: str | None = None):
        self.url = url.rstrip("/")
        self.token = token

    def _request(self, method: str, path: str, body: Any = None, timeout: float = 30):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method)
        if data is not None:
            req.add_header("Content-Type", "application/json")
        if self.token:
            req.add_header("Authorization", f"Bearer {self.token}")
        try:
            return urllib.request.urlopen(req, timeout=timeout)
        except urllib.error.HTTPError as e:
            text = e.read().decode(errors="replace")
            try:
                text = json.loads(text).get("error", text)
            except ValueError:
                pass
            raise WeftError(e.code, text) from None

    def tasks(self) -> list[dict[str, Any]]:
        """Every task type the daemon knows (and your saved graphs)."""
        with self._request("GET", "/v1/tasks") as r:
            return json.load(r)

    def submit(self, graph: dict | str, input: dict | None = None) -> str:
        """Start a run of `graph` (a graph, or the name of a saved one); its id."""
        with self._request("POST", "/v1/runs", {"graph": graph, "input": input or {}}) as r:
            return json.load(r)["run_id"]

    def run(self, run_id: str) -> dict[str, Any]:
        """A run's state, outputs and errors."""
        with self._request("GET", f"/v1/runs/{run_id}") as r:
            return json.load(r)

    def events(self, run_id: str, after: int = 0) -> Iterator[dict[str, Any]]:
        """The run's events from the one after `after`, as they happen, to its end."""
        path = f"/v1/runs/{run_id}/events"
        req = self._request("GET", path + (f"?after={after}" if after else ""), timeout=3600)
        with req as stream:
            for line in stream:
                line = line.decode().strip()
                if line.startswith("data:"):
                    event = json.loads(line[5:])
                    yield event
                    if event.get("type") == "run_finished":
                        return

    def wait(self, run_id: str) -> dict[str, Any]:
        """Follow the run's events to its end; then its state."""
        for _ in self.events(run_id):
            pass
        return self.run(run_id)
