//! Retries: a retryable failure is tried again after an exponential, capped,
//! jittered backoff (or at least the delay the task asks for); other failures
//! are not; exhausted retries fail the node with the attempt count.

use crate::common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use serde_json::{Value, json};
use weft::events::{EventKind, NodeStatus, RunStatus};
use weft::runner::RetryPolicy;
use weft::task::{NativeTask, TaskError};

/// `flaky.x`: fails with `error` on its first `failures` attempts, then
/// returns its attempt number.
fn flaky(failures: u32, error: TaskError, calls: Arc<AtomicU32>) -> NativeTask {
    NativeTask::new("flaky.x", move |_: Value, ctx: weft::task::TaskContext| {
        let (error, calls) = (error.clone(), calls.clone());
        async move {
            calls.fetch_add(1, Ordering::SeqCst);
            if ctx.attempt <= failures {
                Err(error)
            } else {
                Ok(json!({"attempt": ctx.attempt}))
            }
        }
    })
}

fn one_node(config: Value) -> weft::graph::Graph {
    common::graph(json!({"tasks": [{"id": "f", "type": "flaky.x", "config": config}]}))
}

fn busy(delay_ms: Option<u64>) -> TaskError {
    TaskError::Retryable {
        message: "busy".into(),
        delay: delay_ms.map(Duration::from_millis),
    }
}

#[tokio::test]
async fn retryable_failures_are_retried_until_success() {
    let calls = Arc::new(AtomicU32::new(0));
    let host = common::builder(None)
        .native(flaky(2, busy(None), calls.clone()))
        .build()
        .await
        .unwrap();
    let (result, events) =
        common::run(&host, &one_node(json!({"retry_backoff_ms": 10})), json!({})).await;
    assert_eq!(result.status, RunStatus::Succeeded);
    assert_eq!(result.outputs["f"], json!({"attempt": 3}));
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    let retrying = events
        .iter()
        .filter(|e| matches!(&e.kind, EventKind::Node { status: NodeStatus::Retrying, error: Some(m), .. } if m == "retryable failure: busy"))
        .count();
    assert_eq!(retrying, 2);
}

#[tokio::test]
async fn the_delay_a_task_asks_for_is_honoured() {
    let calls = Arc::new(AtomicU32::new(0));
    let host = common::builder(None)
        .native(flaky(1, busy(Some(300)), calls))
        .build()
        .await
        .unwrap();
    let (result, events) =
        common::run(&host, &one_node(json!({"retry_backoff_ms": 1})), json!({})).await;
    assert_eq!(result.status, RunStatus::Succeeded);
    let time_of = |want: NodeStatus, nth: usize| {
        events
            .iter()
            .filter(|e| matches!(&e.kind, EventKind::Node { status, .. } if *status == want))
            .nth(nth)
            .map(|e| e.time_ms)
            .unwrap()
    };
    let waited = time_of(NodeStatus::Running, 1) - time_of(NodeStatus::Retrying, 0);
    assert!(
        waited >= 300,
        "the retry came after {waited} ms, before the 300 ms the task asked for"
    );
}

/// Retry due times are measured by the host's clock: with a clock that
/// stands still, the retry waits however long the machine takes, and runs
/// once the clock reaches its due time, not a millisecond before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_retry_runs_when_the_clock_reaches_its_due_time() {
    use weft::clock::{Clock, ManualClock};
    use weft::store::{MemoryStore, RunStore};
    let calls = Arc::new(AtomicU32::new(0));
    let clock = ManualClock::at(7_000_000);
    let store: Arc<dyn RunStore> = Arc::new(MemoryStore::new());
    let host = common::builder(None)
        .native(flaky(1, busy(Some(300)), calls.clone()))
        .store(store.clone())
        .clock(clock.clone())
        .build()
        .await
        .unwrap();
    let host = Arc::new(host);
    let graph = one_node(json!({"retry_backoff_ms": 1}));
    let running = tokio::spawn({
        let host = host.clone();
        async move { host.run(&graph, json!({})).await }
    });
    let due = loop {
        let runs = store.list_runs().await.unwrap();
        if let Some(run) = runs.first() {
            let stored = store.load_run(&run.run_id).await.unwrap();
            if let Some(at) = stored.nodes.iter().find_map(|n| n.retry_at_ms) {
                break at;
            }
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert_eq!(due, clock.now_ms() + 300, "due exactly when the task asked");
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "not due: the clock stood still"
    );
    clock.advance(Duration::from_millis(299));
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(calls.load(Ordering::SeqCst), 1, "1 ms before its due time");
    clock.advance(Duration::from_millis(1));
    let result = tokio::time::timeout(Duration::from_secs(30), running)
        .await
        .expect("the retry ran once due")
        .unwrap()
        .unwrap();
    assert_eq!(result.status, RunStatus::Succeeded);
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn other_failures_are_not_retried_and_exhausted_retries_fail() {
    let calls = Arc::new(AtomicU32::new(0));
    let host = common::builder(None)
        .native(flaky(
            5,
            TaskError::InvalidInput("no".into()),
            calls.clone(),
        ))
        .build()
        .await
        .unwrap();
    let (result, _) = common::run(&host, &one_node(json!({})), json!({})).await;
    assert_eq!(common::error_of(&result, "f"), "invalid input: no");
    assert_eq!(calls.load(Ordering::SeqCst), 1);

    let calls = Arc::new(AtomicU32::new(0));
    let host = common::builder(None)
        .native(flaky(5, busy(None), calls.clone()))
        .build()
        .await
        .unwrap();
    let (result, _) = common::run(
        &host,
        &one_node(json!({"retries": 1, "retry_backoff_ms": 5})),
        json!({}),
    )
    .await;
    assert_eq!(
        common::error_of(&result, "f"),
        "retryable failure: busy (after 2 attempts)"
    );
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

#[test]
fn backoff_is_exponential_capped_jittered_and_stable() {
    let p = RetryPolicy {
        retries: 10,
        initial_backoff: Duration::from_millis(100),
        max_backoff: Duration::from_millis(1000),
    };
    let d = |attempt| p.delay(attempt, None, None, "g/n");
    for (attempt, base) in [
        (1u32, 100u64),
        (2, 200),
        (3, 400),
        (4, 800),
        (5, 1000),
        (9, 1000),
    ] {
        let ms = d(attempt).as_millis() as u64;
        assert!(
            ms >= base * 8 / 10 && ms <= base * 12 / 10,
            "attempt {attempt}: {ms} ms vs {base} ± 20%"
        );
    }
    assert_eq!(d(3), d(3), "the same node and attempt get the same delay");
    assert_eq!(
        p.delay(1, None, Some(Duration::from_secs(5)), "g/n"),
        Duration::from_secs(5)
    );
}

#[tokio::test]
async fn exhausted_nodes_become_dead_letters_that_can_be_re_driven() {
    use std::sync::atomic::AtomicBool;
    let broken = Arc::new(AtomicBool::new(true));
    let flag = broken.clone();
    let task = NativeTask::new("flaky.x", move |_: Value, ctx: weft::task::TaskContext| {
        let broken = flag.load(Ordering::SeqCst);
        async move {
            if broken {
                Err(TaskError::Retryable {
                    message: format!("down (attempt {})", ctx.attempt),
                    delay: None,
                })
            } else {
                Ok(json!({"attempt": ctx.attempt}))
            }
        }
    });
    let host = common::builder(None).native(task).build().await.unwrap();
    let g = common::graph(json!({
        "tasks": [
            {"id": "f", "type": "flaky.x", "config": {"retries": 1, "retry_backoff_ms": 5}},
            {"id": "after", "type": "json.merge"},
            {"id": "other", "type": "math.add-one", "defaults": {"value": 1}}
        ],
        "dataflows": [{"sourceTaskId": "f", "sourceTaskPortId": "*", "targetTaskId": "after", "targetTaskPortId": "*"}]
    }));
    let failed = host.run(&g, json!({})).await.unwrap();
    assert_eq!(failed.status, RunStatus::Failed);
    assert_eq!(failed.nodes["after"], NodeStatus::Skipped);

    let letters = host.dead_letters().await.unwrap();
    assert_eq!(letters.len(), 1);
    let letter = &letters[0];
    assert_eq!(
        (
            letter.run_id.as_str(),
            letter.node.as_str(),
            letter.task_type.as_str()
        ),
        (failed.run_id.as_str(), "f", "flaky.x")
    );
    assert_eq!(letter.attempts, 2);
    assert_eq!(
        letter.errors,
        vec![
            "retryable failure: down (attempt 1)",
            "retryable failure: down (attempt 2) (after 2 attempts)"
        ]
    );
    // Only a failed node of a failed run is a dead letter.
    let err = host.redrive(&failed.run_id, "other").await.err().unwrap();
    assert!(
        matches!(err, weft::HostError::NotDeadLetter { .. }),
        "{err}"
    );

    broken.store(false, Ordering::SeqCst);
    let run = host.redrive(&failed.run_id, "f").await.unwrap();
    let done = host
        .execute(&run, &tokio_util::sync::CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(done.status, RunStatus::Succeeded);
    assert_eq!(done.run_id, failed.run_id);
    assert_eq!(
        done.outputs["f"],
        json!({"attempt": 1}),
        "a fresh retry budget"
    );
    assert_eq!(done.outputs["after"], json!({"attempt": 1}));
    assert_eq!(
        done.stats.tasks_executed, 2,
        "`other` completed before and does not run again"
    );
    assert!(host.dead_letters().await.unwrap().is_empty());
}

#[tokio::test]
async fn a_queue_sets_the_retry_policy_of_its_task_types_and_a_node_overrides_it() {
    let calls = Arc::new(AtomicU32::new(0));
    let host = common::builder(None)
        .native(flaky(3, busy(None), calls.clone()))
        .queue(
            "patient",
            weft::limiter::QueueConfig {
                retries: Some(5),
                retry_backoff_ms: Some(5),
                tasks: vec!["flaky.x".into()],
                ..Default::default()
            },
        )
        .build()
        .await
        .unwrap();
    // The host default is 2 retries; the queue routing `flaky.x` allows 5.
    let (result, _) = common::run(&host, &one_node(json!({})), json!({})).await;
    assert_eq!(result.status, RunStatus::Succeeded);
    assert_eq!(result.outputs["f"], json!({"attempt": 4}));
    // A node's own setting wins over its queue's.
    let (result, _) = common::run(&host, &one_node(json!({"retries": 1})), json!({})).await;
    assert_eq!(result.status, RunStatus::Failed);
    assert!(
        common::error_of(&result, "f").contains("after 2 attempts"),
        "{}",
        common::error_of(&result, "f")
    );
}
