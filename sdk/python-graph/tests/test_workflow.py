"""The builder against a real daemon: WEFT_URL names it (the Rust test
host/cli/tests/daemon.rs starts one and runs this)."""

import os
import unittest

from weft_graph import Client, WeftError, Workflow, WorkflowError


class WorkflowTest(unittest.TestCase):
    def setUp(self):
        self.client = Client(os.environ["WEFT_URL"])
        self.tasks = self.client.tasks()

    def test_tasks_connect_by_port_name_and_the_graph_runs(self):
        graph = (Workflow(self.tasks)
                 .add("math.add-one", {"value": 1}).named("first")
                 .pipe("math.add-one")
                 .rename("value", "a")
                 .add("math.add", {"b": 10}).named("sum")
                 .to_json())
        flows = [(f["sourceTaskId"], f["sourceTaskPortId"], f["targetTaskId"], f["targetTaskPortId"])
                 for f in graph["dataflows"]]
        self.assertEqual(flows, [("first", "value", "add-one-2", "value"),
                                 ("add-one-2", "value", "sum", "a")])
        run = self.client.wait(self.client.submit(graph))
        self.assertEqual(run["status"], "succeeded", run)
        self.assertEqual(run["outputs"]["sum"], {"value": 13})

    def test_a_scope_builds_a_map_body_that_runs(self):
        graph = (Workflow(self.tasks)
                 .map().pipe("math.add-one", "math.add-one").end_map().named("each")
                 .rename("value", "values").add("math.sum").to_json())
        self.assertEqual(graph["tasks"][0]["graph"]["dataflows"][0]["sourceTaskId"], "add-one-1")
        run = self.client.wait(self.client.submit(graph, {"value": [1, 2, 3]}))
        self.assertEqual(run["status"], "succeeded", run)
        self.assertEqual(run["outputs"]["each"], {"value": [3, 4, 5]})
        self.assertEqual(run["outputs"]["sum-1"], {"value": 12})
        handled = (Workflow(self.tasks).add("math.divide", {"a": 1, "b": 0})
                   .on_error("math.add-one", {"value": 1}).to_json())
        self.assertEqual(handled["dataflows"], [{"sourceTaskId": "divide-1", "sourceTaskPortId": "[error]",
                                                 "targetTaskId": "add-one-1", "targetTaskPortId": "*"}])
        with self.assertRaisesRegex(WorkflowError, "end_reduce\\(\\): a map is open"):
            Workflow(self.tasks).map().end_reduce()

    def test_events_follow_the_run_to_its_end(self):
        graph = Workflow(self.tasks).add("math.add-one", {"value": 1}).to_json()
        run_id = self.client.submit(graph)
        kinds = [e["type"] for e in self.client.events(run_id)]
        self.assertEqual(kinds[0], "run_started")
        self.assertEqual(kinds[-1], "run_finished")

    def test_mistakes_are_named(self):
        with self.assertRaisesRegex(WorkflowError, "unknown task type `math.nope`"):
            Workflow(self.tasks).add("math.nope")
        with self.assertRaisesRegex(WorkflowError, "none of their output ports matches"):
            Workflow(self.tasks).add("math.add-one", {"value": 1}).add("math.multiply", {"b": 2})
        bad = {"tasks": [{"id": "a", "type": "math.add-one", "defaults": {"value": "x"}}]}
        with self.assertRaises(WeftError) as refused:
            self.client.submit(bad)
        self.assertEqual(refused.exception.status, 422)


if __name__ == "__main__":
    unittest.main()
