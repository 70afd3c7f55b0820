//! The runner: nodes run as soon as their inputs are ready, independent nodes in
//! parallel, dataflows carry ports (or whole objects), cancellation stops a run.

use crate::common;

use std::time::Duration;

use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use weft::events::{EventHub, EventKind, NodeStatus, RunStatus};
use weft::task::{NativeTask, TaskError};

fn flow(s: &str, sp: &str, t: &str, tp: &str) -> Value {
    json!({"sourceTaskId": s, "sourceTaskPortId": sp, "targetTaskId": t, "targetTaskPortId": tp})
}

fn max_running(events: &[weft::events::Event]) -> usize {
    let (mut now, mut max) = (0usize, 0usize);
    for e in events {
        if let EventKind::Node { status, .. } = &e.kind {
            match status {
                NodeStatus::Running => now += 1,
                s if s.is_final() => now = now.saturating_sub(1),
                _ => {}
            }
            max = max.max(now);
        }
    }
    max
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn independent_nodes_run_in_parallel_up_to_the_limit() {
    let tasks: Vec<Value> = (0..6)
        .map(|i| json!({"id": format!("d{i}"), "type": "util.delay", "defaults": {"ms": 150, "value": i}}))
        .collect();
    let g = common::graph(json!({"tasks": tasks}));
    let host = common::builder(None).parallelism(3).build().await.unwrap();
    let (result, events) = common::run(&host, &g, json!({})).await;
    assert_eq!(result.status, RunStatus::Succeeded);
    assert_eq!(
        max_running(&events),
        3,
        "never more than the limit, and the limit is reached"
    );
    assert_eq!(result.outputs["d5"], json!({"value": 5, "slept_ms": 150}));
}

#[tokio::test]
async fn a_node_starts_when_its_inputs_are_ready_not_when_its_layer_is() {
    // a → b, and a slow independent c: b must start before c finishes.
    let g = common::graph(json!({
        "tasks": [
            {"id": "a", "type": "math.add-one", "defaults": {"value": 1}},
            {"id": "b", "type": "math.add-one"},
            {"id": "c", "type": "util.delay", "defaults": {"ms": 300}}
        ],
        "dataflows": [flow("a", "value", "b", "value")]
    }));
    let host = common::host(None).await;
    let (result, events) = common::run(&host, &g, json!({})).await;
    let pos = |node: &str, want: NodeStatus| {
        events
            .iter()
            .position(|e| matches!(&e.kind, EventKind::Node { node: n, status, .. } if n == node && *status == want))
            .unwrap()
    };
    assert!(pos("b", NodeStatus::Completed) < pos("c", NodeStatus::Completed));
    assert_eq!(result.outputs["b"], json!({"value": 3}));
}

#[tokio::test]
async fn ports_whole_objects_and_several_dataflows_between_two_nodes() {
    // Two dataflows from `split` into `tpl`, a whole-object flow into `merge`,
    // the run's input to the root, defaults overridden by dataflows.
    let g = common::graph(json!({
        "tasks": [
            {"id": "split", "type": "text.split", "defaults": {"separator": " "}},
            {"id": "tpl", "type": "text.template", "defaults": {"template": "{{first}} x{{n}}", "n": 0}},
            {"id": "merge", "type": "json.merge", "defaults": {"extra": true}}
        ],
        "dataflows": [
            flow("split", "parts", "tpl", "first"),
            flow("split", "count", "tpl", "n"),
            flow("split", "*", "merge", "*"),
            flow("tpl", "text", "merge", "text")
        ]
    }));
    let host = common::host(None).await;
    let (result, events) = common::run(&host, &g, json!({"text": "a b c", "unrelated": 1})).await;
    assert_eq!(result.status, RunStatus::Succeeded, "{:?}", result.failures);
    assert_eq!(
        result.outputs["tpl"],
        json!({"text": "[\"a\",\"b\",\"c\"] x3"})
    );
    assert_eq!(
        result.outputs["merge"],
        json!({"extra": true, "parts": ["a", "b", "c"], "count": 3, "text": "[\"a\",\"b\",\"c\"] x3"})
    );
    assert_eq!(result.leaves, vec!["merge"]);
    let dataflow_events = events
        .iter()
        .filter(|e| matches!(e.kind, EventKind::Dataflow { .. }))
        .count();
    assert_eq!(dataflow_events, 4);
    // Events are numbered without gaps, starting at 1.
    let seqs: Vec<u64> = events.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, (1..=events.len() as u64).collect::<Vec<_>>());
}

#[tokio::test]
async fn cancellation_interrupts_running_tasks_and_skips_the_rest() {
    let g = common::graph(json!({
        "tasks": [
            {"id": "slow", "type": "util.delay", "defaults": {"ms": 60000}},
            {"id": "next", "type": "json.merge"}
        ],
        "dataflows": [flow("slow", "*", "next", "*")]
    }));
    let host = common::host(None).await;
    let plan = host.plan(&g, "g.json").unwrap();
    let hub = EventHub::new("cancel-run", 1);
    let mut rx = hub.subscribe();
    let cancel = CancellationToken::new();
    let stop = cancel.clone();
    tokio::spawn(async move {
        while let Some(e) = rx.recv().await {
            if matches!(
                e.kind,
                EventKind::Node {
                    status: NodeStatus::Running,
                    ..
                }
            ) {
                stop.cancel();
            }
        }
    });
    let result = tokio::time::timeout(
        Duration::from_secs(20),
        host.run_plan(&plan, &json!({}), &hub, &cancel),
    )
    .await
    .expect("a cancelled run ends promptly")
    .unwrap();
    assert_eq!(result.status, RunStatus::Cancelled);
    assert_eq!(
        result.nodes["slow"],
        NodeStatus::Cancelled,
        "{:?}",
        result.failures
    );
    assert_eq!(result.nodes["next"], NodeStatus::Cancelled);
}

#[tokio::test]
async fn native_rust_tasks_mix_with_wasm_tasks() {
    let mut square = NativeTask::new("native.square", |v: Value, _| async move {
        let n = v["value"]
            .as_f64()
            .ok_or_else(|| TaskError::InvalidInput("value".into()))?;
        Ok(json!({"value": n * n}))
    });
    square.input_schema =
        json!({"type":"object","properties":{"value":{"type":"number"}},"required":["value"]});
    square.output_schema = json!({"type":"object","properties":{"value":{"type":"number"}}});
    let host = common::builder(None).native(square).build().await.unwrap();
    let g = common::graph(json!({
        "tasks": [
            {"id": "a", "type": "math.add-one", "defaults": {"value": 2}},
            {"id": "sq", "type": "native.square"},
            {"id": "b", "type": "math.add-one"}
        ],
        "dataflows": [flow("a", "value", "sq", "value"), flow("sq", "value", "b", "value")]
    }));
    let (result, _) = common::run(&host, &g, json!({})).await;
    assert_eq!(result.outputs["b"], json!({"value": 10.0}));
}

#[tokio::test]
async fn progress_and_logs_from_tasks_become_events() {
    let g = common::graph(json!({"tasks": [
        {"id": "d", "type": "util.delay", "defaults": {"ms": 1}},
        {"id": "log", "type": "util.debug-log", "defaults": {"message": {"k": 1}, "level": "warn"}}
    ]}));
    let host = common::host(None).await;
    let (_, events) = common::run(&host, &g, json!({})).await;
    assert!(events.iter().any(|e| matches!(&e.kind,
        EventKind::Progress { node, fraction, .. } if node == "d" && *fraction == 1.0)));
    assert!(events.iter().any(|e| matches!(&e.kind,
        EventKind::Log { node, level: weft::events::LogLevel::Warn, message } if node == "log" && message == "{\"k\":1}")));
}

#[tokio::test]
async fn the_fluent_builder_makes_the_same_graph_as_json() {
    let built = weft::graph::Graph::builder()
        .task("t0", "math.add-one")
        .defaults(json!({"value": 0}))
        .task("t1", "math.add-one")
        .flow("t0.value", "t1.value")
        .build();
    let host = common::host(None).await;
    let result = host.run(&built, json!({})).await.unwrap();
    assert_eq!(result.outputs["t1"], json!({"value": 2}));
    assert_eq!(result.stats.tasks_executed, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_side_effecting_task_starts_only_once_its_inputs_are_durable() {
    use std::sync::Arc;
    use weft::store::{MemoryStore, RunLog};
    let store = Arc::new(MemoryStore::new());
    let seen = store.clone();
    let mut effect = NativeTask::new(
        "native.effect",
        move |_: Value, ctx: weft::task::TaskContext| {
            let store = seen.clone();
            async move {
                let run = store
                    .load_run(&ctx.run_id)
                    .await
                    .map_err(|e| TaskError::Failed(e.to_string()))?;
                let state = |id: &str| {
                    run.nodes
                        .iter()
                        .find(|n| n.node == id)
                        .map(|n| (n.status, n.attempt))
                };
                Ok(json!({
                    "upstream": format!("{:?}", state("a")),
                    "self": format!("{:?}", state(&ctx.node_id)),
                }))
            }
        },
    );
    effect.side_effects = true;
    let host = common::builder(None)
        .store(store.clone())
        .native(effect)
        .build()
        .await
        .unwrap();
    let g = common::graph(json!({
        "tasks": [
            {"id": "a", "type": "math.add-one", "defaults": {"value": 1}},
            {"id": "fx", "type": "native.effect"}
        ],
        "dataflows": [flow("a", "value", "fx", "value")]
    }));
    let result = host.run(&g, json!({})).await.unwrap();
    assert_eq!(
        result.outputs["fx"],
        json!({"upstream": "Some((Completed, 1))", "self": "Some((Running, 1))"})
    );
}

/// add-one twice, as a subgraph: `value` in, `value` + 2 out.
fn plus_two() -> Value {
    json!({
        "tasks": [{"id": "inc", "type": "math.add-one"}, {"id": "twice", "type": "math.add-one"}],
        "dataflows": [flow("inc", "value", "twice", "value")]
    })
}

#[tokio::test]
async fn a_compound_node_runs_its_subgraph_between_its_neighbours() {
    let g = common::graph(json!({
        "tasks": [
            {"id": "src", "type": "math.add-one", "defaults": {"value": 1}},
            {"id": "plus2", "type": "graph", "graph": plus_two()},
            {"id": "after", "type": "math.add-one"},
            // Nested: a compound node of two compound nodes.
            {"id": "plus4", "type": "graph", "defaults": {"value": 100}, "graph": {
                "tasks": [
                    {"id": "a", "type": "graph", "graph": plus_two()},
                    {"id": "b", "type": "graph", "graph": plus_two()}
                ],
                "dataflows": [flow("a", "value", "b", "value")]
            }},
            // Its defaults feed its roots.
            {"id": "ten", "type": "graph", "defaults": {"value": 10}, "graph": plus_two()}
        ],
        "dataflows": [flow("src", "value", "plus2", "value"), flow("plus2", "value", "after", "value")]
    }));
    let host = common::host(None).await;
    let (result, _) = common::run(&host, &g, json!({})).await;
    assert_eq!(result.status, RunStatus::Succeeded, "{:?}", result.failures);
    assert_eq!(result.outputs["plus2/inc"], json!({"value": 3}));
    assert_eq!(result.outputs["after"], json!({"value": 5}));
    assert_eq!(result.outputs["plus4/b/twice"], json!({"value": 104}));
    assert_eq!(result.outputs["ten/twice"], json!({"value": 12}));
    assert_eq!(
        result.nodes.len(),
        1 + 2 + 1 + 4 + 2,
        "every inner node is a node of the run"
    );
    // A compound node that is a root takes the run's input.
    let g = common::graph(json!({"tasks": [{"id": "c", "type": "graph", "graph": plus_two()}]}));
    let (result, _) = common::run(&host, &g, json!({"value": 7})).await;
    assert_eq!(result.outputs["c/twice"], json!({"value": 9}));
}

#[tokio::test]
async fn the_builder_makes_compound_nodes() {
    let inner = weft::graph::Graph::builder()
        .task("inc", "math.add-one")
        .task("twice", "math.add-one")
        .flow("inc.value", "twice.value")
        .build();
    let g = weft::graph::Graph::builder()
        .task("src", "math.add-one")
        .defaults(json!({"value": 0}))
        .subgraph("plus2", inner)
        .flow("src.value", "plus2.value")
        .build();
    let host = common::host(None).await;
    let (result, _) = common::run(&host, &g, json!({})).await;
    assert_eq!(result.outputs["plus2/twice"], json!({"value": 3}));
}

/// A chain of `n` add-one nodes `n0..`, the first given `start`; nodes
/// `from..to` wrapped in a compound node `c` when `wrap`.
fn chain(n: usize, start: i64, wrap: Option<(usize, usize)>) -> Value {
    let node = |i: usize| json!({"id": format!("n{i}"), "type": "math.add-one"});
    let link = |i: usize| flow(&format!("n{i}"), "value", &format!("n{}", i + 1), "value");
    let Some((from, to)) = wrap else {
        let mut tasks: Vec<Value> = (0..n).map(node).collect();
        tasks[0]["defaults"] = json!({"value": start});
        let flows: Vec<Value> = (0..n - 1).map(link).collect();
        return json!({"tasks": tasks, "dataflows": flows});
    };
    let inner = json!({
        "tasks": (from..to).map(node).collect::<Vec<_>>(),
        "dataflows": (from..to - 1).map(link).collect::<Vec<_>>(),
    });
    let mut tasks: Vec<Value> = (0..from).map(node).collect();
    tasks.push(json!({"id": "c", "type": "graph", "graph": inner}));
    tasks.extend((to..n).map(node));
    let name = |i: usize| {
        if (from..to).contains(&i) {
            "c".to_string()
        } else {
            format!("n{i}")
        }
    };
    let flows: Vec<Value> = (0..n - 1)
        .filter(|&i| !(from..to - 1).contains(&i))
        .map(|i| flow(&name(i), "value", &name(i + 1), "value"))
        .collect();
    // The first node (or the compound node holding it) is given `start`.
    tasks[0]["defaults"] = json!({"value": start});
    json!({"tasks": tasks, "dataflows": flows})
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig {
        cases: 48,
        failure_persistence: None,
        ..Default::default()
    })]

    /// Wrapping any stretch of a graph in a compound node changes no result:
    /// every node computes what it computed flat (named `c/NODE` inside).
    #[test]
    fn compound_expansion_preserves_results(
        n in 2usize..8,
        start in -1_000i64..1_000,
        cut in (0usize..8, 1usize..8),
    ) {
        let (a, b) = (cut.0 % n, cut.1 % n);
        let (from, to) = (a.min(b), a.max(b) + 1);
        static RT: std::sync::OnceLock<(tokio::runtime::Runtime, weft::Host)> = std::sync::OnceLock::new();
        let (rt, host) = RT.get_or_init(|| {
            let rt = tokio::runtime::Runtime::new().unwrap();
            let host = rt.block_on(common::host(None));
            (rt, host)
        });
        let flat = common::graph(chain(n, start, None));
        let wrapped = common::graph(chain(n, start, Some((from, to))));
        let (flat, _) = rt.block_on(common::run(host, &flat, json!({})));
        let (wrapped, _) = rt.block_on(common::run(host, &wrapped, json!({})));
        proptest::prop_assert_eq!(flat.status, RunStatus::Succeeded);
        proptest::prop_assert_eq!(wrapped.status, RunStatus::Succeeded);
        for i in 0..n {
            let inside = if (from..to).contains(&i) { format!("c/n{i}") } else { format!("n{i}") };
            proptest::prop_assert_eq!(&flat.outputs[&format!("n{i}")], &wrapped.outputs[&inside]);
        }
        proptest::prop_assert_eq!(&flat.outputs[&format!("n{}", n - 1)]["value"], &json!(start + n as i64));
    }
}
