//! The graph language beyond plain dataflows: conditional branches and the
//! `disabled` state, error ports, fan-in into array ports, edge transforms;
//! each run on the standard wasm tasks (and native ones where a test needs a
//! task that fails or counts), through the real runner and a real redb store
//! where durability matters.

use crate::common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::{Value, json};
use weft::events::{DataflowStatus, EventKind, NodeStatus, RunStatus};
use weft::graph::Graph;
use weft::store::RedbStore;
use weft::task::{NativeTask, TaskError};

fn flow(s: &str, sp: &str, t: &str, tp: &str) -> Value {
    json!({"sourceTaskId": s, "sourceTaskPortId": sp, "targetTaskId": t, "targetTaskPortId": tp})
}

/// A task that always fails (not retryable), counting its runs.
fn failing(runs: Arc<AtomicUsize>) -> NativeTask {
    let mut t = NativeTask::new("test.fail", move |_, _| {
        runs.fetch_add(1, Ordering::SeqCst);
        async { Err(TaskError::Failed("the provider is down".into())) }
    });
    t.output_schema = json!({"type": "object", "properties": {"text": {"type": "string"}}});
    t
}

fn triage() -> Value {
    json!({
        "tasks": [
            {"id": "route", "type": "conditional", "config": {"branches": [
                {"id": "urgent", "when": "input.priority > 3"},
                {"id": "spam", "field": "label", "operator": "equals", "value": "spam"},
                {"id": "normal", "when": "true"}
            ]}},
            {"id": "page", "type": "math.add-one"},
            {"id": "page_again", "type": "math.add-one"},
            {"id": "drop", "type": "math.add-one"},
            {"id": "file", "type": "math.add-one"},
            {"id": "report", "type": "math.sum"}
        ],
        "dataflows": [
            flow("route", "urgent", "page", "*"),
            flow("page", "value", "page_again", "value"),
            flow("route", "spam", "drop", "*"),
            flow("route", "normal", "file", "*"),
            flow("page_again", "value", "report", "values"),
            flow("drop", "value", "report", "values"),
            flow("file", "value", "report", "values")
        ]
    })
}

fn status_of(result: &weft::runner::RunResult, node: &str) -> NodeStatus {
    result.nodes[node]
}

#[tokio::test]
async fn a_conditional_takes_the_first_branch_that_holds_and_disables_the_rest() {
    let host = common::host(None).await;
    let g = common::graph(triage());
    let (result, events) = common::run(
        &host,
        &g,
        json!({"value": 500, "priority": 5, "label": "spam"}),
    )
    .await;
    assert_eq!(result.status, RunStatus::Succeeded, "{:?}", result.failures);
    assert_eq!(
        result.outputs["route"]["_activeBranches"],
        json!(["urgent"])
    );
    assert_eq!(status_of(&result, "page_again"), NodeStatus::Completed);
    // Not taken: disabled, and so is everything only they feed.
    for node in ["drop", "file"] {
        assert_eq!(status_of(&result, node), NodeStatus::Disabled, "{node}");
    }
    // A join runs on the dataflows that were not disabled; a disabled one
    // contributes nothing to its array.
    assert_eq!(result.outputs["report"], json!({"value": 502}));
    assert!(result.failures.is_empty(), "{:?}", result.failures);
    let disabled_flows = events
        .iter()
        .filter(|e| {
            matches!(
                e.kind,
                EventKind::Dataflow {
                    status: DataflowStatus::Disabled,
                    ..
                }
            )
        })
        .count();
    assert_eq!(disabled_flows, 4, "spam, normal, drop→report, file→report");

    // The operator form, and a CEL condition that cannot be evaluated (no
    // `priority`) counting as false, with a warning in the node's log.
    let (result, events) = common::run(&host, &g, json!({"label": "spam", "value": 1})).await;
    assert_eq!(result.outputs["route"]["_activeBranches"], json!(["spam"]));
    assert!(events.iter().any(|e| matches!(&e.kind,
        EventKind::Log { node, message, .. } if node == "route" && message.contains("branch \"urgent\""))));
    assert_eq!(result.outputs["report"], json!({"value": 2}));
}

#[tokio::test]
async fn multi_path_and_default_branches() {
    let host = common::host(None).await;
    let mut g = triage();
    g["tasks"][0]["config"] = json!({
        "exclusive": false,
        "defaultBranch": "normal",
        "branches": [
            {"id": "urgent", "when": "input.value > 100"},
            {"id": "spam", "when": "input.label == 'spam'"},
            {"id": "normal", "when": "false"}
        ]
    });
    let g = common::graph(g);
    let (result, _) = common::run(&host, &g, json!({"value": 500, "label": "spam"})).await;
    assert_eq!(
        result.outputs["route"]["_activeBranches"],
        json!(["urgent", "spam"])
    );
    assert_eq!(result.outputs["report"], json!({"value": 502 + 501}));
    let (result, _) = common::run(&host, &g, json!({"value": 5, "label": "ham"})).await;
    assert_eq!(
        result.outputs["route"]["_activeBranches"],
        json!(["normal"])
    );
    assert_eq!(result.outputs["report"], json!({"value": 6}));
}

#[tokio::test]
async fn disabled_propagates_through_a_long_chain_without_recursion() {
    // 5,000 nodes behind a branch not taken: all disabled, the run succeeds.
    let n = 5_000;
    let mut tasks = vec![json!({"id": "route", "type": "conditional",
        "config": {"branches": [{"id": "never", "when": "false"}]}})];
    let mut flows = vec![flow("route", "never", "n0", "*")];
    for i in 0..n {
        tasks.push(json!({"id": format!("n{i}"), "type": "math.add-one"}));
        if i > 0 {
            flows.push(flow(
                &format!("n{}", i - 1),
                "value",
                &format!("n{i}"),
                "value",
            ));
        }
    }
    let g = common::graph(json!({"tasks": tasks, "dataflows": flows}));
    let host = common::host(None).await;
    let (result, _) = common::run(&host, &g, json!({"value": 1})).await;
    assert_eq!(result.status, RunStatus::Succeeded);
    assert_eq!(
        status_of(&result, &format!("n{}", n - 1)),
        NodeStatus::Disabled
    );
}

#[tokio::test]
async fn an_error_port_carries_the_failure_to_a_handler_and_the_run_succeeds() {
    let runs = Arc::new(AtomicUsize::new(0));
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(RedbStore::open(&dir.path().join("weft.redb")).unwrap());
    let host = common::builder(None)
        .store(store)
        .native(failing(runs.clone()))
        .build()
        .await
        .unwrap();
    let g = common::graph(json!({
        "tasks": [
            {"id": "ask", "type": "test.fail"},
            {"id": "use", "type": "text.template", "defaults": {"template": "got {{text}}"}},
            {"id": "handle", "type": "text.template",
             "defaults": {"template": "{{node}} failed ({{kind}}): {{message}}"}}
        ],
        "dataflows": [
            flow("ask", "text", "use", "text"),
            flow("ask", "[error]", "handle", "*")
        ]
    }));
    let result = host.run(&g, json!({})).await.unwrap();
    assert_eq!(result.status, RunStatus::Succeeded, "{:?}", result.failures);
    assert_eq!(status_of(&result, "ask"), NodeStatus::Failed);
    assert_eq!(status_of(&result, "use"), NodeStatus::Disabled);
    assert_eq!(
        result.outputs["handle"]["text"],
        json!("ask failed (failed): failed: the provider is down")
    );
    assert_eq!(
        runs.load(Ordering::SeqCst),
        1,
        "a plain failure is not retried"
    );

    // Durable: the run and its store agree; a handled failure is no dead
    // letter.
    let run = host.store().load_run(&result.run_id).await.unwrap();
    assert_eq!(run.run.status, RunStatus::Succeeded);
    let letters = host.dead_letters().await.unwrap();
    assert!(letters.is_empty(), "{letters:?}");

    // Without an error port the same failure fails the run, and is one.
    let g = common::graph(json!({
        "tasks": [{"id": "ask", "type": "test.fail"},
                  {"id": "use", "type": "text.template", "defaults": {"template": "{{text}}"}}],
        "dataflows": [flow("ask", "text", "use", "text")]
    }));
    let result = host.run(&g, json!({})).await.unwrap();
    assert_eq!(result.status, RunStatus::Failed);
    assert_eq!(status_of(&result, "use"), NodeStatus::Skipped);
    let letters = host.dead_letters().await.unwrap();
    assert_eq!(letters.len(), 1, "{letters:?}");
    assert_eq!(letters[0].node, "ask");
}

#[tokio::test]
async fn a_node_that_succeeds_disables_its_error_port() {
    let host = common::host(None).await;
    let g = common::graph(json!({
        "tasks": [
            {"id": "a", "type": "math.add-one", "defaults": {"value": 1}},
            {"id": "on_error", "type": "util.debug-log"},
            {"id": "b", "type": "math.add-one"}
        ],
        "dataflows": [flow("a", "[error]", "on_error", "*"), flow("a", "value", "b", "value")]
    }));
    let (result, _) = common::run(&host, &g, json!({})).await;
    assert_eq!(result.status, RunStatus::Succeeded);
    assert_eq!(status_of(&result, "on_error"), NodeStatus::Disabled);
    assert_eq!(result.outputs["b"], json!({"value": 3}));
}

#[tokio::test]
async fn fan_in_collects_in_dataflow_order_not_finishing_order() {
    let host = common::host(None).await;
    // The slow node's dataflow comes first: its value is first in the array.
    let g = common::graph(json!({
        "tasks": [
            {"id": "slow", "type": "util.delay", "defaults": {"ms": 200, "value": 1}},
            {"id": "fast", "type": "math.add-one", "defaults": {"value": 10}},
            {"id": "words", "type": "text.join", "defaults": {"separator": "+", "parts": ["x"]}}
        ],
        "dataflows": [
            {"sourceTaskId": "slow", "sourceTaskPortId": "value", "targetTaskId": "words",
             "targetTaskPortId": "parts", "transforms": [{"id": "numberToString"}]},
            {"sourceTaskId": "fast", "sourceTaskPortId": "value", "targetTaskId": "words",
             "targetTaskPortId": "parts", "transforms": [{"id": "numberToString"}]}
        ]
    }));
    let (result, _) = common::run(&host, &g, json!({})).await;
    assert_eq!(result.status, RunStatus::Succeeded, "{:?}", result.failures);
    assert_eq!(
        result.outputs["words"]["text"],
        json!("1+11"),
        "the default is replaced"
    );
}

#[tokio::test]
async fn each_node_keeps_the_input_it_started_with_after_transforms_and_fan_in() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(RedbStore::open(&dir.path().join("weft.redb")).unwrap());
    let host = common::builder(None).store(store).build().await.unwrap();
    let g = common::graph(json!({
        "tasks": [
            {"id": "one", "type": "math.add-one"},
            {"id": "two", "type": "math.add-one", "defaults": {"value": 10}},
            {"id": "words", "type": "text.join", "defaults": {"separator": "+", "parts": ["x"]}},
            {"id": "handler", "type": "json.parse"}
        ],
        "dataflows": [
            {"sourceTaskId": "one", "sourceTaskPortId": "value", "targetTaskId": "words",
             "targetTaskPortId": "parts", "transforms": [{"id": "numberToString"}]},
            {"sourceTaskId": "two", "sourceTaskPortId": "value", "targetTaskId": "words",
             "targetTaskPortId": "parts", "transforms": [{"id": "numberToString"}]},
            {"sourceTaskId": "words", "sourceTaskPortId": "[error]", "targetTaskId": "handler",
             "targetTaskPortId": "*"}
        ]
    }));
    let result = host.run(&g, json!({"value": 1})).await.unwrap();
    assert_eq!(result.status, RunStatus::Succeeded, "{:?}", result.failures);
    let input = |node: &'static str| {
        let (store, run) = (host.store().clone(), result.run_id.clone());
        async move { store.node_input(&run, node).await.unwrap() }
    };
    // The run's input at the roots (over a default), and a default kept
    // beside the fan-in's array, transformed, which replaces its default.
    assert_eq!(input("one").await, Some(json!({"value": 1})));
    assert_eq!(input("two").await, Some(json!({"value": 1})));
    assert_eq!(
        input("words").await,
        Some(json!({"separator": "+", "parts": ["2", "2"]}))
    );
    // A node that never started has none.
    assert_eq!(status_of(&result, "handler"), NodeStatus::Disabled);
    assert_eq!(input("handler").await, None);
}

#[tokio::test]
async fn transforms_apply_in_order_and_a_failing_one_fails_its_target() {
    let host = common::host(None).await;
    let g = common::graph(json!({
        "tasks": [
            {"id": "parse", "type": "json.parse", "defaults": {"text": "{\"user\": {\"name\": \"ada lovelace\", \"born\": -4857696000}}"}},
            {"id": "greet", "type": "text.template", "defaults": {"template": "{{name}} / {{born}}"}}
        ],
        "dataflows": [
            {"sourceTaskId": "parse", "sourceTaskPortId": "value", "targetTaskId": "greet",
             "targetTaskPortId": "name", "transforms": [
                {"id": "pick", "params": {"path": "user.name"}},
                {"id": "uppercase"},
                {"id": "truncate", "params": {"max": 3}}]},
            {"sourceTaskId": "parse", "sourceTaskPortId": "value", "targetTaskId": "greet",
             "targetTaskPortId": "born", "transforms": [
                {"id": "pick", "params": {"path": "user.born"}},
                {"id": "unixToIsoDate", "params": {"unit": "s"}},
                {"id": "substring", "params": {"start": 0, "end": 10}}]}
        ]
    }));
    let (result, _) = common::run(&host, &g, json!({})).await;
    assert_eq!(result.status, RunStatus::Succeeded, "{:?}", result.failures);
    assert_eq!(result.outputs["greet"]["text"], json!("ADA / 1816-01-25"));

    // A transform that fails on the value it gets fails the node it feeds,
    // naming the dataflow.
    let g = common::graph(json!({
        "tasks": [
            {"id": "a", "type": "text.template", "defaults": {"template": "not json"}},
            {"id": "b", "type": "json.stringify"}
        ],
        "dataflows": [{"sourceTaskId": "a", "sourceTaskPortId": "text", "targetTaskId": "b",
            "targetTaskPortId": "value", "transforms": [{"id": "parseJson"}]}]
    }));
    let (result, _) = common::run(&host, &g, json!({})).await;
    assert_eq!(result.status, RunStatus::Failed);
    let error = common::error_of(&result, "b");
    assert!(
        error.contains("dataflows[0]") && error.contains("parseJson"),
        "{error}"
    );
}

#[tokio::test]
async fn validation_locates_bad_branches_transforms_and_fan_in() {
    let host = common::host(None).await;
    let errors = |g: Value| {
        host.plan(&common::graph(g), "g.json")
            .unwrap_err()
            .to_string()
    };
    let e = errors(
        json!({"tasks": [{"id": "r", "type": "conditional", "config": {"branches": [
        {"id": "a", "when": "input.x >"}, {"id": "a", "when": "true"}]}}]}),
    );
    assert!(
        e.contains("tasks[0] (node \"r\"): branches[0] (\"a\"): not a valid CEL expression"),
        "{e}"
    );
    assert!(
        e.contains("branches[1]: branch id \"a\" is empty or used twice"),
        "{e}"
    );
    let e = errors(json!({"tasks": [{"id": "r", "type": "conditional"}]}));
    assert!(e.contains("needs `branches`"), "{e}");
    let many: Vec<Value> = (0..300)
        .map(|i| json!({"id": format!("b{i}"), "when": "true"}))
        .collect();
    let e = errors(
        json!({"tasks": [{"id": "r", "type": "conditional", "config": {"branches": many}}]}),
    );
    assert!(e.contains("300 branches; at most 256"), "{e}");
    let e = errors(
        json!({"tasks": [{"id": "a", "type": "math.add-one", "config": {"exclusive": true}}]}),
    );
    assert!(
        e.contains("`exclusive` does not apply to a node of type `math.add-one`"),
        "{e}"
    );
    // A branch port that does not exist, by name.
    let e = errors(json!({
        "tasks": [{"id": "r", "type": "conditional", "config": {"branches": [{"id": "yes", "when": "true"}]}},
                  {"id": "b", "type": "math.add-one"}],
        "dataflows": [flow("r", "no", "b", "*")]}));
    assert!(
        e.contains("has no output port `no` (ports: yes, _activeBranches)"),
        "{e}"
    );
    // Transforms: unknown, bad params, and a type the target cannot take.
    let e = errors(json!({
        "tasks": [{"id": "a", "type": "math.add-one", "defaults": {"value": 1}},
                  {"id": "b", "type": "math.add-one"}],
        "dataflows": [{"sourceTaskId": "a", "sourceTaskPortId": "value", "targetTaskId": "b",
            "targetTaskPortId": "value", "transforms": [{"id": "numberToString"}]}]}));
    assert!(e.contains("dataflows[0] (a.value → b.value): output port gives string but input port accepts number"), "{e}");
    let e = errors(json!({
        "tasks": [{"id": "a", "type": "math.add-one", "defaults": {"value": 1}},
                  {"id": "b", "type": "math.add-one"}],
        "dataflows": [{"sourceTaskId": "a", "sourceTaskPortId": "value", "targetTaskId": "b",
            "targetTaskPortId": "value", "transforms": [{"id": "coalesce"}, {"id": "toUpper"}]}]}));
    assert!(
        e.contains("transforms[0]: `coalesce` needs a param `defaultValue`"),
        "{e}"
    );
    // Two dataflows into a port that does not take an array.
    let e = errors(json!({
        "tasks": [{"id": "a", "type": "math.add-one", "defaults": {"value": 1}},
                  {"id": "c", "type": "math.add-one", "defaults": {"value": 1}},
                  {"id": "b", "type": "math.add-one"}],
        "dataflows": [flow("a", "value", "b", "value"), flow("c", "value", "b", "value")]}));
    assert!(
        e.contains("dataflows[1]") && e.contains("only a port that takes an array"),
        "{e}"
    );
    // Fan-in elements are checked against the array's items.
    let e = errors(json!({
        "tasks": [{"id": "a", "type": "text.template", "defaults": {"template": "x"}},
                  {"id": "c", "type": "math.add-one", "defaults": {"value": 1}},
                  {"id": "s", "type": "math.sum"}],
        "dataflows": [flow("a", "text", "s", "values"), flow("c", "value", "s", "values")]}));
    assert!(e.contains("dataflows[0] (a.text → s.values): output port gives string but input port accepts number"), "{e}");
}

/// A cacheable task that fails on odd numbers, counting its runs.
fn evens_only(runs: Arc<AtomicUsize>) -> NativeTask {
    let mut t = NativeTask::new("test.evens", move |input: Value, _| {
        runs.fetch_add(1, Ordering::SeqCst);
        async move {
            let n = input["value"].as_i64().unwrap_or(0);
            if n % 2 == 1 {
                return Err(TaskError::Failed(format!("{n} is odd")));
            }
            Ok(json!({"half": n / 2}))
        }
    });
    t.input_schema = json!({"type": "object", "properties": {"value": {"type": "integer"}}, "required": ["value"]});
    t.output_schema = json!({"type": "object", "properties": {"half": {"type": "integer"}}});
    t.cacheable = true;
    t
}

#[tokio::test]
async fn a_map_runs_its_task_per_element_in_order_with_progress() {
    let host = common::host(None).await;
    let g = common::graph(json!({
        "tasks": [
            {"id": "m", "type": "map", "config": {"task": "math.add", "concurrency": 3}},
            {"id": "total", "type": "math.sum"}
        ],
        "dataflows": [flow("m", "value", "total", "values")]
    }));
    // `a` zips over its elements; `b` is broadcast.
    let (result, events) = common::run(&host, &g, json!({"a": [1, 2, 3, 4, 5], "b": 10})).await;
    assert_eq!(result.status, RunStatus::Succeeded, "{:?}", result.failures);
    assert_eq!(result.outputs["m"], json!({"value": [11, 12, 13, 14, 15]}));
    assert_eq!(result.outputs["total"], json!({"value": 65}));
    let last = events.iter().rev().find_map(|e| match &e.kind {
        EventKind::Progress {
            node,
            message,
            fraction,
        } if node == "m" => Some((message.clone(), *fraction)),
        _ => None,
    });
    assert_eq!(last, Some((Some("map 5 / 5".into()), 1.0)));

    // Two arrays zip; arrays of different lengths fail the node, saying so.
    let (result, _) = common::run(&host, &g, json!({"a": [1, 2], "b": [10, 20]})).await;
    assert_eq!(result.outputs["m"], json!({"value": [11, 22]}));
    let (result, _) = common::run(&host, &g, json!({"a": [1, 2], "b": [10]})).await;
    let error = common::error_of(&result, "m");
    assert!(
        error.contains("`a` (2 elements) and `b` (1) are zipped but differ in length"),
        "{error}"
    );
    // No elements: empty arrays, at once.
    let (result, _) = common::run(&host, &g, json!({"a": [], "b": 1})).await;
    assert_eq!(result.outputs["m"], json!({"value": []}));
}

#[tokio::test]
async fn a_failed_element_fails_skips_or_is_collected() {
    let runs = Arc::new(AtomicUsize::new(0));
    let host = common::builder(None)
        .native(evens_only(runs.clone()))
        .build()
        .await
        .unwrap();
    let map = |on_error: &str| {
        common::graph(json!({"tasks": [{"id": "m", "type": "map",
            "config": {"task": "test.evens", "on_error": on_error, "retries": 0}}]}))
    };
    let input = json!({"value": [2, 3, 4, 5, 6]});
    let (result, _) = common::run(&host, &map("fail"), input.clone()).await;
    assert_eq!(result.status, RunStatus::Failed);
    let error = common::error_of(&result, "m");
    assert!(
        error.contains("element") && error.contains("3 is odd"),
        "{error}"
    );

    let (result, _) = common::run(&host, &map("skip"), input.clone()).await;
    assert_eq!(result.outputs["m"], json!({"half": [1, 2, 3]}));

    let (result, _) = common::run(&host, &map("collect"), input.clone()).await;
    assert_eq!(result.status, RunStatus::Succeeded);
    assert_eq!(result.outputs["m"]["half"], json!([1, null, 2, null, 3]));
    let errors = result.outputs["m"]["_errors"].as_array().unwrap();
    assert_eq!(errors.len(), 2);
    assert_eq!(errors[0]["index"], json!(1));
    assert_eq!(errors[0]["node"], json!("m[1]"));
    assert_eq!(errors[0]["kind"], json!("failed"));
    assert!(errors[0]["message"].as_str().unwrap().contains("3 is odd"));
}

#[tokio::test]
async fn map_elements_are_cached_and_recorded_each_on_their_own() {
    let runs = Arc::new(AtomicUsize::new(0));
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(RedbStore::open(&dir.path().join("weft.redb")).unwrap());
    let host = common::builder(None)
        .store(store)
        .native(evens_only(runs.clone()))
        .build()
        .await
        .unwrap();
    let g = common::graph(
        json!({"tasks": [{"id": "m", "type": "map", "config": {"task": "test.evens"}}]}),
    );
    let result = host.run(&g, json!({"value": [2, 4, 6]})).await.unwrap();
    assert_eq!(result.outputs["m"], json!({"half": [1, 2, 3]}));
    assert_eq!(runs.load(Ordering::SeqCst), 3);
    // Each element is a node instance in the store.
    let stored = host.store().load_run(&result.run_id).await.unwrap();
    let elements: Vec<_> = stored
        .nodes
        .iter()
        .filter(|n| n.node.starts_with("m["))
        .collect();
    assert_eq!(elements.len(), 3);
    assert!(elements.iter().all(|n| n.status == NodeStatus::Completed));
    // A new run with one new element runs only that one.
    let result = host.run(&g, json!({"value": [2, 4, 6, 8]})).await.unwrap();
    assert_eq!(result.outputs["m"], json!({"half": [1, 2, 3, 4]}));
    assert_eq!(runs.load(Ordering::SeqCst), 4, "three came from the cache");
}

#[tokio::test]
async fn map_settings_are_validated() {
    let host = common::host(None).await;
    let errors = |g: Value| {
        host.plan(&common::graph(g), "g.json")
            .unwrap_err()
            .to_string()
    };
    let e = errors(json!({"tasks": [{"id": "m", "type": "map"}]}));
    assert!(e.contains("a map node needs `task`"), "{e}");
    let e =
        errors(json!({"tasks": [{"id": "m", "type": "map", "config": {"task": "math.add-on"}}]}));
    assert!(
        e.contains("unknown task type `math.add-on` (did you mean `math.add-one`?)"),
        "{e}"
    );
    let e = errors(
        json!({"tasks": [{"id": "m", "type": "map", "config": {"task": "math.add", "over": ["c"]}}]}),
    );
    assert!(
        e.contains("`over`: `math.add` has no input port `c`"),
        "{e}"
    );
    let e = errors(
        json!({"tasks": [{"id": "m", "type": "map", "config": {"task": "math.add", "concurrency": 0}}]}),
    );
    assert!(e.contains("at least 1"), "{e}");
    // Its output ports are arrays of the task's.
    let e = errors(json!({
        "tasks": [{"id": "m", "type": "map", "config": {"task": "math.add-one"}},
                  {"id": "b", "type": "math.add-one"}],
        "dataflows": [flow("m", "value", "b", "value")]}));
    assert!(
        e.contains("output port gives array but input port accepts number"),
        "{e}"
    );
}

#[tokio::test]
async fn the_triage_example_routes_and_joins_its_branches() {
    let host = common::host(None).await;
    let path = std::path::Path::new(weft_tests::ROOT).join("examples/triage.json");
    let g = weft::graph::Graph::from_file(&path).unwrap();
    let cases = [
        (
            json!({"priority": 5, "label": "spam", "text": "disk full"}),
            "PAGE on-call: disk full",
        ),
        (
            json!({"priority": 1, "label": "ham", "text": "database outage"}),
            "PAGE on-call: database outage",
        ),
        (
            json!({"priority": 1, "label": "spam", "text": "win a prize"}),
            "dropped as spam: win a prize",
        ),
        (
            json!({"priority": 1, "label": "ham", "text": "printer jam"}),
            "filed: printer jam",
        ),
    ];
    for (input, want) in cases {
        let (result, _) = common::run(&host, &g, input.clone()).await;
        assert_eq!(
            result.status,
            RunStatus::Succeeded,
            "{input}: {:?}",
            result.failures
        );
        assert_eq!(result.outputs["report"]["text"], json!(want), "{input}");
        let disabled = result
            .nodes
            .values()
            .filter(|s| **s == NodeStatus::Disabled)
            .count();
        assert_eq!(disabled, 2, "{input}: the two branches not taken");
    }
}

#[tokio::test]
async fn a_fallback_tries_alternatives_in_order_and_logs_each_failure() {
    let runs = Arc::new(AtomicUsize::new(0));
    let host = common::builder(None)
        .native(evens_only(runs.clone()))
        .build()
        .await
        .unwrap();
    // One task over alternative inputs: 3 fails, 4 works, 6 is never tried.
    let g = common::graph(json!({"tasks": [{"id": "f", "type": "fallback", "config": {
        "task": "test.evens", "retries": 0,
        "alternatives": [{"defaults": {"value": 3}}, {"defaults": {"value": 4}}, {"defaults": {"value": 6}}]}}]}));
    let (result, events) = common::run(&host, &g, json!({})).await;
    assert_eq!(
        result.outputs["f"],
        json!({"half": 2}),
        "{:?}",
        result.failures
    );
    assert_eq!(runs.load(Ordering::SeqCst), 2);
    assert!(events.iter().any(|e| matches!(&e.kind, EventKind::Log { node, message, .. }
        if node == "f" && message.contains("alternative 1 of 3 (`test.evens`) failed") && message.contains("3 is odd"))));
    // Different task types; all failing fails the node, naming the last.
    let g = common::graph(
        json!({"tasks": [{"id": "f", "type": "fallback", "config": {"retries": 0,
        "alternatives": [{"task": "test.evens", "defaults": {"value": 1}}, {"task": "test.evens", "defaults": {"value": 5}}]}}]}),
    );
    let (result, _) = common::run(&host, &g, json!({})).await;
    let error = common::error_of(&result, "f");
    assert!(
        error.contains("all 2 alternatives failed; the last: failed: 5 is odd"),
        "{error}"
    );
    let g = common::graph(json!({"tasks": [{"id": "f", "type": "fallback", "config": {
        "alternatives": [{"task": "math.add-one"}, {"task": "math.add-one", "defaults": {"value": 9}}]}}]}));
    let (result, _) = common::run(&host, &g, json!({"value": 1})).await;
    assert_eq!(result.outputs["f"], json!({"value": 2}));
}

#[tokio::test]
async fn reduce_carries_an_accumulator_and_while_repeats_until_its_condition_fails() {
    let host = common::host(None).await;
    let g = common::graph(json!({"tasks": [{"id": "r", "type": "reduce",
        "config": {"task": "math.add", "over": ["b"], "accumulator": "a", "carry": "value"},
        "defaults": {"a": 100}}]}));
    let (result, events) = common::run(&host, &g, json!({"b": [1, 2, 3, 4]})).await;
    assert_eq!(
        result.outputs["r"],
        json!({"value": 110}),
        "{:?}",
        result.failures
    );
    assert!(events.iter().any(
        |e| matches!(&e.kind, EventKind::Progress { node, message: Some(m), .. }
        if node == "r" && m == "reduce 4 / 4")
    ));
    let (result, _) = common::run(&host, &g, json!({"b": []})).await;
    assert_eq!(
        result.outputs["r"],
        json!({"value": 100}),
        "no items: the initial accumulator"
    );

    let w = |max: usize| {
        common::graph(json!({"tasks": [{"id": "w", "type": "while", "config": {
            "task": "math.add-one", "condition": "output.value < 5", "max_iterations": max}}]}))
    };
    let (result, events) = common::run(&host, &w(10), json!({"value": 0})).await;
    assert_eq!(
        result.outputs["w"],
        json!({"value": 5}),
        "{:?}",
        result.failures
    );
    let last = events.iter().rev().find_map(|e| match &e.kind {
        EventKind::Progress { node, message, .. } if node == "w" => message.clone(),
        _ => None,
    });
    assert_eq!(last.as_deref(), Some("while 5 / 10"));
    let (result, events) = common::run(&host, &w(3), json!({"value": 0})).await;
    assert_eq!(result.outputs["w"], json!({"value": 3}));
    assert!(events.iter().any(|e| matches!(&e.kind, EventKind::Log { message, .. } if message.contains("max_iterations (3)"))));

    let errors = |g: Value| {
        host.plan(&common::graph(g), "g.json")
            .unwrap_err()
            .to_string()
    };
    let e = errors(
        json!({"tasks": [{"id": "w", "type": "while", "config": {"task": "math.add-one", "condition": "true"}}]}),
    );
    assert!(e.contains("a while node needs `max_iterations`"), "{e}");
    let e = errors(
        json!({"tasks": [{"id": "w", "type": "while", "config": {"task": "math.add-one", "condition": "output.value <", "max_iterations": 2}}]}),
    );
    assert!(e.contains("`condition`: not a valid CEL expression"), "{e}");
    let e = errors(
        json!({"tasks": [{"id": "r", "type": "reduce", "config": {"task": "math.add", "over": ["b"], "accumulator": "x"}}]}),
    );
    assert!(
        e.contains("`accumulator`: `math.add` has no port `x`"),
        "{e}"
    );
    let e = errors(
        json!({"tasks": [{"id": "f", "type": "fallback", "config": {"alternatives": [{"task": "nope"}]}}]}),
    );
    assert!(
        e.contains("`alternatives[0].task`: unknown task type `nope`"),
        "{e}"
    );
}

#[tokio::test]
async fn a_redriven_reduce_goes_on_from_the_step_that_failed() {
    // A step that fails on item 3 until told otherwise.
    let broken = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let runs = Arc::new(AtomicUsize::new(0));
    let (b, r) = (broken.clone(), runs.clone());
    let mut add = NativeTask::new("test.add", move |input: Value, _| {
        r.fetch_add(1, Ordering::SeqCst);
        let fail = b.load(Ordering::SeqCst) && input["item"] == json!(3);
        async move {
            if fail {
                return Err(TaskError::Failed("item 3 is broken".into()));
            }
            let sum = input["acc"].as_i64().unwrap_or(0) + input["item"].as_i64().unwrap_or(0);
            Ok(json!({"acc": sum}))
        }
    });
    add.input_schema = json!({"type": "object", "properties": {"acc": {"type": "integer"}, "item": {"type": "integer"}}});
    add.output_schema = json!({"type": "object", "properties": {"acc": {"type": "integer"}}});
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(RedbStore::open(&dir.path().join("weft.redb")).unwrap());
    let host = common::builder(None)
        .store(store)
        .native(add)
        .build()
        .await
        .unwrap();
    let g = common::graph(json!({"tasks": [{"id": "r", "type": "reduce",
        "config": {"task": "test.add", "over": ["item"], "accumulator": "acc", "retries": 0},
        "defaults": {"acc": 0}}]}));
    let result = host.run(&g, json!({"item": [1, 2, 3, 4]})).await.unwrap();
    assert_eq!(result.status, RunStatus::Failed);
    assert!(common::error_of(&result, "r").contains("step 2 failed"));
    assert_eq!(runs.load(Ordering::SeqCst), 3);
    // Each step is durable: re-driven, steps 0 and 1 are not run again.
    broken.store(false, Ordering::SeqCst);
    let again = host.redrive(&result.run_id, "r").await.unwrap();
    let result = host
        .execute(&again, &tokio_util::sync::CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(
        result.outputs["r"],
        json!({"acc": 10}),
        "{:?}",
        result.failures
    );
    assert_eq!(runs.load(Ordering::SeqCst), 5, "steps 2 and 3 only");
}

/// A map, reduce, while or fallback node whose body is a subgraph.
fn over_subgraph(kind: &str, config: Value, inner: Value) -> Graph {
    common::graph(json!({"tasks": [{"id": "k", "type": kind, "config": config, "graph": inner}]}))
}

fn twice_add_one() -> Value {
    json!({
        "tasks": [{"id": "one", "type": "math.add-one"}, {"id": "two", "type": "math.add-one"}],
        "dataflows": [flow("one", "value", "two", "value")]
    })
}

#[tokio::test]
async fn map_reduce_and_while_run_a_subgraph_per_element_step_and_iteration() {
    let host = common::host(None).await;
    let map = over_subgraph("map", json!({"concurrency": 2}), twice_add_one());
    // The builder writes the same node.
    let inner: Graph = serde_json::from_value(twice_add_one()).unwrap();
    let built = Graph::builder()
        .map("k", "graph")
        .configure(|c| c.concurrency = Some(2))
        .body(inner)
        .build();
    assert_eq!(built, map);
    let (result, _) = common::run(&host, &map, json!({"value": [1, 5, 10]})).await;
    assert_eq!(
        result.outputs["k"],
        json!({"value": [3, 7, 12]}),
        "{:?}",
        result.failures
    );

    // Each step: acc + item, then + 1; the sum is carried.
    let step = json!({
        "tasks": [{"id": "sum", "type": "math.add"}, {"id": "inc", "type": "math.add-one"}],
        "dataflows": [flow("sum", "value", "inc", "value")]
    });
    let config = json!({"over": ["b"], "accumulator": "a", "carry": "value"});
    let reduce = over_subgraph("reduce", config, step);
    let (result, _) = common::run(&host, &reduce, json!({"a": 0, "b": [1, 2, 3]})).await;
    assert_eq!(
        result.outputs["k"],
        json!({"value": 9}),
        "{:?}",
        result.failures
    );

    let config = json!({"condition": "output.value < 5", "max_iterations": 10});
    let repeat = over_subgraph("while", config, twice_add_one());
    let (result, _) = common::run(&host, &repeat, json!({"value": 0})).await;
    assert_eq!(
        result.outputs["k"],
        json!({"value": 6}),
        "{:?}",
        result.failures
    );
}

#[tokio::test]
async fn a_fallback_tries_its_subgraph_over_alternative_inputs() {
    let runs = Arc::new(AtomicUsize::new(0));
    let host = common::builder(None)
        .native(evens_only(runs.clone()))
        .build()
        .await
        .unwrap();
    let inner = json!({
        "tasks": [{"id": "halve", "type": "test.evens", "config": {"retries": 0}},
                  {"id": "inc", "type": "math.add-one"}],
        "dataflows": [flow("halve", "half", "inc", "value")]
    });
    let config = json!({"alternatives": [{"defaults": {"value": 3}}, {"defaults": {"value": 8}}]});
    let g = over_subgraph("fallback", config, inner);
    let (result, events) = common::run(&host, &g, json!({})).await;
    assert_eq!(
        result.outputs["k"],
        json!({"value": 5}),
        "{:?}",
        result.failures
    );
    // The first alternative's failure names the inner node that failed.
    assert!(events.iter().any(|e| matches!(&e.kind,
        EventKind::Log { message, .. } if message.contains("alternative 1 of 2")
            && message.contains("node `halve`") && message.contains("3 is odd"))));
}

#[tokio::test]
async fn subgraph_elements_are_durable_and_their_inner_tasks_cached() {
    let runs = Arc::new(AtomicUsize::new(0));
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(RedbStore::open(&dir.path().join("weft.redb")).unwrap());
    let host = common::builder(None)
        .store(store)
        .native(evens_only(runs.clone()))
        .build()
        .await
        .unwrap();
    let inner = json!({
        "tasks": [{"id": "halve", "type": "test.evens", "config": {"retries": 0}},
                  {"id": "inc", "type": "math.add-one"}],
        "dataflows": [flow("halve", "half", "inc", "value")]
    });
    let g = over_subgraph("map", json!({"on_error": "collect"}), inner);
    let result = host.run(&g, json!({"value": [2, 3, 4]})).await.unwrap();
    assert_eq!(result.outputs["k"]["value"], json!([2, null, 3]));
    let errors = result.outputs["k"]["_errors"].as_array().unwrap();
    assert_eq!(errors.len(), 1);
    assert!(
        errors[0]["message"]
            .as_str()
            .unwrap()
            .contains("node `halve`: failed: 3 is odd"),
        "{errors:?}"
    );
    assert_eq!(runs.load(Ordering::SeqCst), 3);
    // Each element is one instance in the store; the nodes inside are not.
    let stored = host.store().load_run(&result.run_id).await.unwrap();
    let mut ids: Vec<&str> = stored.nodes.iter().map(|n| n.node.as_str()).collect();
    ids.sort_unstable();
    assert_eq!(ids, ["k", "k[0]", "k[1]", "k[2]"]);
    // Another run: the inner cacheable task comes from the output cache.
    let result = host.run(&g, json!({"value": [2, 4, 6]})).await.unwrap();
    assert_eq!(result.outputs["k"]["value"], json!([2, 3, 4]));
    assert_eq!(runs.load(Ordering::SeqCst), 4, "only 6 is new");
}

#[tokio::test]
async fn subgraph_bodies_are_validated_where_they_are() {
    let host = common::host(None).await;
    let errors = |g: Graph| host.plan(&g, "g.json").unwrap_err().to_string();
    let e = errors(over_subgraph(
        "map",
        json!({"task": "math.add-one"}),
        twice_add_one(),
    ));
    assert!(e.contains("`task` and `graph` both set"), "{e}");
    let two_leaves = json!({"tasks": [{"id": "x", "type": "math.add-one"}, {"id": "y", "type": "math.add-one"}]});
    let e = errors(over_subgraph("map", json!({}), two_leaves));
    assert!(
        e.contains("node \"k\"") && e.contains("leaves `x` and `y` both give output port `value`"),
        "{e}"
    );
    let unknown = json!({"tasks": [{"id": "x", "type": "math.add-onee"}]});
    let e = errors(over_subgraph("map", json!({}), unknown));
    assert!(e.contains("math.add-onee") && e.contains("\"k\""), "{e}");
    // A map's `over` names a port of the subgraph's roots.
    let e = errors(over_subgraph(
        "map",
        json!({"over": ["nope"]}),
        twice_add_one(),
    ));
    assert!(e.contains("no input port `nope`"), "{e}");
    // Not for a conditional: a graph on it is refused as on any task.
    let g = common::graph(json!({"tasks": [{"id": "c", "type": "conditional",
        "config": {"branches": [{"id": "a", "when": "true"}]}, "graph": twice_add_one()}]}));
    assert!(host.plan(&g, "g.json").is_err());
}

#[tokio::test]
async fn a_compound_nodes_error_port_takes_a_failure_from_inside_it() {
    let runs = Arc::new(AtomicUsize::new(0));
    let host = common::builder(None)
        .native(evens_only(runs.clone()))
        .build()
        .await
        .unwrap();
    let g = |value: i64| {
        common::graph(json!({
            "tasks": [
                {"id": "c", "type": "graph", "defaults": {"value": value}, "graph": {
                    "tasks": [{"id": "halve", "type": "test.evens", "config": {"retries": 0}},
                              {"id": "inc", "type": "math.add-one"}],
                    "dataflows": [flow("halve", "half", "inc", "value")]}},
                {"id": "after", "type": "math.add-one"},
                {"id": "handle", "type": "text.template",
                 "defaults": {"template": "{{node}}: {{message}}"}}
            ],
            "dataflows": [flow("c", "value", "after", "value"), flow("c", "[error]", "handle", "*")]
        }))
    };
    let (result, _) = common::run(&host, &g(3), json!({})).await;
    assert_eq!(result.status, RunStatus::Succeeded, "{:?}", result.failures);
    assert_eq!(status_of(&result, "c"), NodeStatus::Failed);
    assert_eq!(status_of(&result, "after"), NodeStatus::Disabled);
    assert_eq!(
        result.outputs["handle"]["text"],
        json!("c: failed: node `halve`: failed: 3 is odd")
    );
    // It ran as one node: no inner ids in the run.
    assert!(!result.nodes.contains_key("c/halve"));
    let (result, _) = common::run(&host, &g(8), json!({})).await;
    assert_eq!(result.outputs["after"], json!({"value": 6}));
    assert_eq!(status_of(&result, "handle"), NodeStatus::Disabled);
}
