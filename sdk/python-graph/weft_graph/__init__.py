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


def _types(schema: Any) -> set[str] | None:
    """The JSON types a port schema allows (None: any)."""
    if not isinstance(schema, dict):
        return None
    t = schema.get("type")
    if isinstance(t, str):
        found = {t}
    elif isinstance(t, list):
        found = set(t)
    else:
        found = None
    for key in ("anyOf", "oneOf"):
        if key in schema:
            parts = [_types(s) for s in schema[key]]
            if any(p is None for p in parts):
                return found
            union = set().union(*parts)
            found = union if found is None else found & union
    if found is not None and "integer" in found:
        found.add("number")
    if found is not None and "number" in found:
        found.add("integer")
    return found


def _agree(a: Any, b: Any) -> bool:
    ta, tb = _types(a), _types(b)
    return ta is None or tb is None or bool(ta & tb)


class Workflow:
    """A graph built a task at a time; see the module docs."""

    def __init__(self, tasks: list[dict[str, Any]]):
        self._tasks = {t["id"]: t for t in tasks}
        self._graph: dict[str, list] = {"tasks": [], "dataflows": []}
        self._last: list[str] = []
        self._renames: dict[str, str] = {}
        self._counts: dict[str, int] = {}
        # By id: each node, and the dataflows touching it (so a workflow of
        # 100,000 tasks costs in proportion).
        self._nodes: dict[str, dict] = {}
        self._touching: dict[str, list[dict]] = {}

    def add(self, task_type: str, defaults: dict | None = None) -> "Workflow":
        """Add a task fed by the tasks before it through the ports they share."""
        if task_type not in self._tasks:
            raise WorkflowError(f"unknown task type `{task_type}`")
        short = task_type.rsplit(".", 1)[-1]
        self._counts[short] = self._counts.get(short, 0) + 1
        node_id = f"{short}-{self._counts[short]}"
        node: dict[str, Any] = {"id": node_id, "type": task_type}
        if defaults:
            node["defaults"] = defaults
        self._graph["tasks"].append(node)
        self._nodes[node_id] = node
        if self._last and self._connect_from(self._last, node_id) == 0:
            raise WorkflowError(
                f"`{node_id}` follows {', '.join(self._last)} but none of their output ports "
                "matches an input port of it by name and type; use rename() or connect()")
        self._renames = {}
        self._last = [node_id]
        return self

    def pipe(self, *task_types: str) -> "Workflow":
        """Add the task types one after another."""
        for t in task_types:
            self.add(t)
        return self

    def parallel(self, *steps: tuple[str, dict | None]) -> "Workflow":
        """Add tasks side by side, each fed by the tasks before; the next is fed by all."""
        before, renames, after = list(self._last), dict(self._renames), []
        for task_type, defaults in steps:
            self._last, self._renames = list(before), dict(renames)
            self.add(task_type, defaults)
            after.extend(self._last)
        self._last = after
        return self

    def named(self, node_id: str) -> "Workflow":
        """Give the last task added the id `node_id`."""
        if not self._last:
            raise WorkflowError("named(): no task added yet")
        if node_id in self._nodes:
            raise WorkflowError(f"named(): id `{node_id}` is taken")
        old = self._last[-1]
        node = self._nodes.pop(old)
        node["id"] = node_id
        self._nodes[node_id] = node
        flows = self._touching.pop(old, [])
        for f in flows:
            for end in ("sourceTaskId", "targetTaskId"):
                if f[end] == old:
                    f[end] = node_id
        self._touching[node_id] = flows
        self._last[-1] = node_id
        return self

    def rename(self, source_port: str, target_port: str) -> "Workflow":
        """For the next task: its input `target_port` takes output `source_port`."""
        self._renames[source_port] = target_port
        return self

    def connect(self, source: str, target: str, transforms: list | None = None) -> "Workflow":
        """An explicit dataflow `node.port` → `node.port`."""
        (s, sp), (t, tp) = source.rsplit(".", 1), target.rsplit(".", 1)
        for end in (s, t):
            if end not in self._nodes:
                raise WorkflowError(f"connect(): no task `{end}`")
        self._push(_flow(s, sp, t, tp, transforms))
        return self

    def pop(self) -> "Workflow":
        """Remove the last task added, with its dataflows."""
        if self._graph["tasks"]:
            gone = self._graph["tasks"].pop()["id"]
            del self._nodes[gone]
            dropped = {id(f) for f in self._touching.pop(gone, [])}
            self._graph["dataflows"] = [
                f for f in self._graph["dataflows"] if id(f) not in dropped]
            for flows in self._touching.values():
                flows[:] = [f for f in flows if id(f) not in dropped]
            self._last = [x for x in self._last if x != gone]
        return self

    def reset(self) -> "Workflow":
        """The next task starts a new chain."""
        self._last, self._renames = [], {}
        return self

    def to_json(self) -> dict[str, list]:
        """The graph, as Weft reads it."""
        return json.loads(json.dumps(self._graph))

    def _push(self, flow: dict) -> None:
        self._graph["dataflows"].append(flow)
        for end in {flow["sourceTaskId"], flow["targetTaskId"]}:
            self._touching.setdefault(end, []).append(flow)

    def _connect_from(self, sources: list[str], target: str) -> int:
        into = self._tasks[self._nodes[target]["type"]]["input_schema"].get("properties", {})
        made = 0
        for s in sources:
            outs = self._tasks[self._nodes[s]["type"]]["output_schema"].get("properties", {})
            for port, schema in outs.items():
                to = self._renames.get(port, port)
                if to in into and _agree(schema, into[to]):
                    self._push(_flow(s, port, target, to, None))
                    made += 1
        return made


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
