//! Queues and limiters, asserted from the event log: concurrency, sliding-window
//! rate (per key, and across a restart), priorities, and a task's Retry-After
//! pausing its queue.

use crate::common;

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use weft::events::{Event, EventKind, NodeStatus};
use weft::limiter::{QueueConfig, RateConfig};
use weft::store::{RedbStore, RunStore};
use weft::task::{NativeTask, TaskError};

/// When each node started (its first `running` event), in ms.
fn starts(events: &[Event]) -> Vec<(String, u64)> {
    let mut out: Vec<(String, u64)> = Vec::new();
    for e in events {
        if let EventKind::Node {
            node,
            status: NodeStatus::Running,
            ..
        } = &e.kind
            && !out.iter().any(|(n, _)| n == node)
        {
            out.push((node.clone(), e.time_ms));
        }
    }
    out
}

fn start_of(events: &[Event], node: &str) -> u64 {
    starts(events)
        .into_iter()
        .find(|(n, _)| n == node)
        .unwrap()
        .1
}

fn max_running(events: &[Event]) -> usize {
    let (mut now, mut max) = (0usize, 0usize);
    for e in events {
        if let EventKind::Node { status, .. } = &e.kind {
            match status {
                NodeStatus::Running => now += 1,
                NodeStatus::Retrying => now = now.saturating_sub(1),
                s if s.is_final() => now = now.saturating_sub(1),
                _ => {}
            }
            max = max.max(now);
        }
    }
    max
}

fn nodes(
    n: usize,
    task: &str,
    config: Value,
    defaults: impl Fn(usize) -> Value,
) -> weft::graph::Graph {
    let tasks: Vec<Value> = (0..n)
        .map(|i| json!({"id": format!("n{i}"), "type": task, "defaults": defaults(i), "config": config}))
        .collect();
    common::graph(json!({ "tasks": tasks }))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_concurrency_limit_holds_for_task_types_routed_to_the_queue() {
    let slow = QueueConfig {
        concurrency: Some(2),
        tasks: vec!["util.delay".into()],
        ..QueueConfig::default()
    };
    let host = common::builder(None)
        .parallelism(16)
        .queue("slow", slow)
        .build()
        .await
        .unwrap();
    let (result, events) = common::run(
        &host,
        &nodes(6, "util.delay", json!({}), |_| json!({"ms": 80})),
        json!({}),
    )
    .await;
    assert_eq!(result.stats.tasks_executed, 6);
    assert_eq!(max_running(&events), 2);
}

#[tokio::test]
async fn a_rate_limit_is_a_sliding_window_per_key_and_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("weft.redb");
    let api = || QueueConfig {
        rate: Some(RateConfig {
            max: 2,
            per_ms: 400,
        }),
        ..QueueConfig::default()
    };
    let graph = |n, base: usize| {
        nodes(
            n,
            "math.add-one",
            json!({"queue": "api", "cache": false}),
            move |i| json!({"value": base + i}),
        )
    };
    let first_starts;
    {
        let store: Arc<dyn RunStore> = Arc::new(RedbStore::open(&path).unwrap());
        let host = common::builder(None)
            .store(store)
            .queue("api", api())
            .build()
            .await
            .unwrap();
        let (_, events) = common::run(&host, &graph(5, 0), json!({})).await;
        let mut t: Vec<u64> = starts(&events).into_iter().map(|(_, t)| t).collect();
        t.sort();
        for k in 0..t.len() - 2 {
            // Events are stamped a little after admission (up to ~50 ms when busy).
            assert!(t[k + 2] - t[k] >= 350, "3 starts within 400 ms: {t:?}");
        }
        first_starts = t;
    }
    // A new host on the same file: the window's starts are remembered.
    let store: Arc<dyn RunStore> = Arc::new(RedbStore::open(&path).unwrap());
    let host = common::builder(None)
        .store(store)
        .queue("api", api())
        .build()
        .await
        .unwrap();
    let (_, events) = common::run(&host, &graph(1, 100), json!({})).await;
    let t = start_of(&events, "n0");
    let last_two = &first_starts[first_starts.len() - 2..];
    assert!(
        t >= last_two[0] + 350,
        "the restarted host started {} ms after the window's first start",
        t - last_two[0]
    );
}

#[tokio::test]
async fn each_key_has_its_own_budget() {
    let per_user = QueueConfig {
        rate: Some(RateConfig {
            max: 1,
            per_ms: 600,
        }),
        key_from: Some("user".into()),
        ..QueueConfig::default()
    };
    let host = common::builder(None)
        .queue("per-user", per_user)
        .build()
        .await
        .unwrap();
    let users = ["a", "b", "a"];
    let g = nodes(
        3,
        "json.merge",
        json!({"queue": "per-user", "cache": false}),
        |i| json!({"user": users[i]}),
    );
    let (_, events) = common::run(&host, &g, json!({})).await;
    let (a1, b, a2) = (
        start_of(&events, "n0"),
        start_of(&events, "n1"),
        start_of(&events, "n2"),
    );
    assert!(a2 >= a1 + 590, "user a started twice within 600 ms");
    assert!(b < a2, "user b waited for user a's budget");
}

#[tokio::test]
async fn retry_after_pauses_the_queue_and_priorities_order_starts() {
    let mut busy = NativeTask::new(
        "api.call",
        |_: Value, ctx: weft::task::TaskContext| async move {
            if ctx.node_id == "first" && ctx.attempt == 1 {
                return Err(TaskError::Retryable {
                    message: "429".into(),
                    delay: Some(Duration::from_millis(300)),
                });
            }
            Ok(json!({"ok": true}))
        },
    );
    busy.cacheable = false;
    let serial = QueueConfig {
        concurrency: Some(1),
        tasks: vec!["api.call".into()],
        ..QueueConfig::default()
    };
    let host = common::builder(None)
        .native(busy)
        .queue("api", serial)
        .build()
        .await
        .unwrap();
    let g = common::graph(json!({"tasks": [
        {"id": "second", "type": "api.call", "config": {"priority": 0}},
        {"id": "first", "type": "api.call", "config": {"priority": 5}}
    ]}));
    let (result, events) = common::run(&host, &g, json!({})).await;
    assert_eq!(result.failures.len(), 0, "{:?}", result.failures);
    let first = start_of(&events, "first");
    let second = start_of(&events, "second");
    assert!(first <= second, "the higher priority starts first");
    let failed_at = events
        .iter()
        .find(|e| matches!(&e.kind, EventKind::Node { node, status: NodeStatus::Retrying, .. } if node == "first"))
        .unwrap()
        .time_ms;
    assert!(
        second >= failed_at + 290,
        "the queue was not paused for the 300 ms the task asked"
    );
}

#[tokio::test]
async fn an_unknown_queue_is_a_validation_error() {
    let host = common::host(None).await;
    let g = common::graph(
        json!({"tasks": [{"id": "a", "type": "math.add-one", "defaults": {"value": 1}, "config": {"queue": "nope"}}]}),
    );
    let err = host.plan(&g, "g.json").unwrap_err().to_string();
    assert!(
        err.contains("tasks[0] (node \"a\"): unknown queue `nope`"),
        "{err}"
    );
}
