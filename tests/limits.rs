//! A whole run's limits (a graph's `limits`, within the host's ceilings): a
//! run past its deadline, or about to start more tasks than it may, is
//! cancelled, and every node it stopped says why.

use crate::common;

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use weft::events::{EventKind, NodeStatus, RunStatus};
use weft::graph::RunLimits;

fn map_of(limits: Value) -> weft::graph::Graph {
    common::graph(json!({
        "limits": limits,
        "tasks": [{"id": "m", "type": "map", "config": {"task": "math.add-one", "concurrency": 1}}]
    }))
}

fn values(n: usize) -> Value {
    json!({"value": (0..n).collect::<Vec<_>>()})
}

/// The reason the run's last event gives.
async fn finished_reason(host: &weft::Host, run_id: &str) -> Option<String> {
    let events = host.store().events(run_id, 0).await.unwrap();
    match &events.last().unwrap().kind {
        EventKind::RunFinished { reason, .. } => reason.clone(),
        other => panic!("the last event is {other:?}"),
    }
}

#[tokio::test]
async fn a_run_past_its_deadline_is_cancelled_saying_so() {
    let host = common::host(None).await;
    let slow = common::graph(json!({
        "limits": {"timeout_ms": 300},
        "tasks": [
            {"id": "nap", "type": "util.delay", "defaults": {"ms": 20000}},
            {"id": "after", "type": "math.add-one"}
        ],
        "dataflows": [{"sourceTaskId": "nap", "sourceTaskPortId": "value",
                       "targetTaskId": "after", "targetTaskPortId": "value"}]
    }));
    let began = Instant::now();
    let result = host.run(&slow, json!({"value": 1})).await.unwrap();
    assert!(
        began.elapsed() < Duration::from_secs(10),
        "{:?}",
        began.elapsed()
    );
    assert_eq!(result.status, RunStatus::Cancelled);
    assert_eq!(result.nodes["after"], NodeStatus::Cancelled);
    let why = finished_reason(&host, &result.run_id).await.unwrap();
    assert!(
        why.contains("deadline: 300 ms after it was submitted"),
        "{why}"
    );
    let after = result.failures.iter().find(|f| f.node == "after").unwrap();
    assert_eq!(after.error, why, "the node it never started says why");
}

#[tokio::test]
async fn map_elements_count_towards_the_task_cap() {
    let host = common::host(None).await;
    // The map node and its ten elements: eleven tasks.
    let enough = map_of(json!({"max_tasks": 11}));
    let result = host.run(&enough, values(10)).await.unwrap();
    assert_eq!(result.status, RunStatus::Succeeded, "{:?}", result.failures);

    let short = map_of(json!({"max_tasks": 6}));
    let result = host.run(&short, values(10)).await.unwrap();
    assert_eq!(result.status, RunStatus::Cancelled, "{:?}", result.failures);
    let why = finished_reason(&host, &result.run_id).await.unwrap();
    assert!(why.contains("more than 6 tasks"), "{why}");
    // The elements past the cap never ran.
    let stored = host.store().load_run(&result.run_id).await.unwrap();
    let completed = stored
        .nodes
        .iter()
        .filter(|n| n.node.starts_with("m[") && n.status == NodeStatus::Completed)
        .count();
    assert_eq!(completed, 5, "{:?}", stored.nodes);
}

#[tokio::test]
async fn the_hosts_ceilings_lower_what_a_graph_asks() {
    let host = common::builder(None)
        .run_ceilings(RunLimits {
            timeout_ms: None,
            max_tasks: Some(3),
        })
        .build()
        .await
        .unwrap();
    for limits in [json!({"max_tasks": 100}), json!({})] {
        let result = host.run(&map_of(limits), values(10)).await.unwrap();
        assert_eq!(result.status, RunStatus::Cancelled);
        let why = finished_reason(&host, &result.run_id).await.unwrap();
        assert!(why.contains("more than 3 tasks"), "{why}");
    }
    // A limit the graph does not know is refused, naming it.
    let e = weft::graph::Graph::from_json(
        &json!({"limits": {"max_task": 3}, "tasks": []}).to_string(),
        "g.json",
    )
    .unwrap_err();
    assert!(e.to_string().contains("max_task"), "{e}");
}
