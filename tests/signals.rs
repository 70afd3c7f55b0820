//! Waits and signals in one process: a wait takes its signal once the body
//! matches its schema; a signal sent before the wait is reached is taken
//! when it is; a wait's timeout takes its default branch (or fails the
//! node); a resumed wait keeps its deadline; waits in the wrong places are
//! refused before anything runs. (Across a `kill -9` and across hosts:
//! `host/cli/tests/signals.rs`.)

#[path = "common/mod.rs"]
mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use weft::Host;
use weft::clock::ManualClock;
use weft::events::{EventKind, NodeStatus, RunStatus};
use weft::signals::SignalError;

fn flow(s: &str, sp: &str, t: &str, tp: &str) -> Value {
    json!({"sourceTaskId": s, "sourceTaskPortId": sp, "targetTaskId": t, "targetTaskPortId": tp})
}

/// a (1 + 1) → approve (a wait for `{approved}`) → done, which also gets
/// a's value; with `timeout`, the wait's `[timeout]` port feeds `late`.
fn approval(timeout: Option<(u64, bool)>) -> weft::graph::Graph {
    let mut wait = json!({"id": "approve", "type": "wait", "config": {"output_schema": {
        "type": "object",
        "properties": {"approved": {"type": "boolean"}, "note": {"type": "string"}},
        "required": ["approved"]
    }}});
    let mut tasks = vec![
        json!({"id": "a", "type": "math.add-one", "defaults": {"value": 1}}),
        json!({"id": "done", "type": "pass"}),
    ];
    let mut flows = vec![
        flow("a", "value", "approve", "value"),
        flow("approve", "approved", "done", "approved"),
        flow("a", "value", "done", "value"),
    ];
    if let Some((ms, branch)) = timeout {
        wait["config"]["timeout_ms"] = json!(ms);
        if branch {
            tasks.push(json!({"id": "late", "type": "pass"}));
            flows.push(flow("approve", "[timeout]", "late", "*"));
        }
    }
    tasks.push(wait);
    common::graph(json!({"tasks": tasks, "dataflows": flows}))
}

/// Start `graph` as a stored run on `host`; its id and its execution.
async fn start(
    host: &Arc<Host>,
    graph: &weft::graph::Graph,
) -> (
    String,
    tokio::task::JoinHandle<Result<weft::runner::RunResult, weft::HostError>>,
) {
    let run = host
        .prepare(graph, "approval.json", json!({}))
        .await
        .unwrap();
    let id = run.run_id.clone();
    let host = host.clone();
    let task = tokio::spawn(async move { host.execute(&run, &CancellationToken::new()).await });
    (id, task)
}

/// Wait until node `node` of run `id` is stored with `status`.
async fn until_node(host: &Host, id: &str, node: &str, status: NodeStatus) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let stored = host.store().load_run(id).await.unwrap();
        if stored
            .nodes
            .iter()
            .any(|n| n.node == node && n.status == status)
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{node} never {status:?}: {:?}",
            stored.nodes
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The node states run `id`'s events announced for `node`, in order.
async fn states_of(host: &Host, id: &str, node: &str) -> Vec<NodeStatus> {
    let events = host.store().events(id, 0).await.unwrap();
    events
        .into_iter()
        .filter_map(|e| match e.kind {
            EventKind::Node {
                node: n, status, ..
            } if n == node => Some(status),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn a_wait_takes_its_signal_once_the_body_matches_and_the_run_goes_on() {
    let host = Arc::new(common::host(None).await);
    let (id, run) = start(&host, &approval(None)).await;
    until_node(&host, &id, "approve", NodeStatus::Waiting).await;

    // Refused, each saying what and where; nothing is stored.
    let bad = host
        .signal(&id, "approve", json!({"approved": "yes"}), None)
        .await;
    match bad {
        Err(SignalError::Body { node, problems, .. }) => {
            assert_eq!(node, "approve");
            assert!(problems.contains("/approved"), "{problems}");
        }
        other => panic!("{other:?}"),
    }
    let unknown = host.signal(&id, "nope", json!({}), None).await;
    assert!(
        matches!(&unknown, Err(SignalError::NoWait { known, .. }) if known == "approve"),
        "{unknown:?}"
    );
    let name = host.signal(&id, "../x", json!({}), None).await;
    assert!(matches!(name, Err(SignalError::BadName(_))), "{name:?}");
    let reserved = host.signal(
        &id,
        "approve",
        json!({"approved": true, "[timeout]": 1}),
        None,
    );
    assert!(matches!(reserved.await, Err(SignalError::Body { .. })));
    assert!(
        host.store()
            .signal_get(&id, "approve")
            .await
            .unwrap()
            .is_none()
    );

    let sent = host
        .signal(
            &id,
            "approve",
            json!({"approved": true, "note": "ship it"}),
            Some("ann"),
        )
        .await
        .unwrap();
    assert_eq!(sent.nodes, ["approve"]);
    let result = run.await.unwrap().unwrap();
    assert_eq!(result.status, RunStatus::Succeeded, "{:?}", result.failures);
    assert_eq!(
        result.outputs["done"],
        json!({"approved": true, "value": 2})
    );
    assert_eq!(result.outputs["approve"]["note"], "ship it");
    assert_eq!(
        states_of(&host, &id, "approve").await,
        [NodeStatus::Waiting, NodeStatus::Completed]
    );
    // The run has ended: a second signal is refused.
    let late = host
        .signal(&id, "approve", json!({"approved": false}), None)
        .await;
    assert!(
        matches!(late, Err(SignalError::RunEnded { .. })),
        "{late:?}"
    );
}

#[tokio::test]
async fn a_signal_sent_before_the_wait_is_reached_is_taken_when_it_is() {
    let host = Arc::new(common::host(None).await);
    let graph = common::graph(json!({
        "tasks": [
            {"id": "nap", "type": "util.delay", "defaults": {"ms": 400, "value": 1}},
            {"id": "go", "type": "wait"}
        ],
        "dataflows": [flow("nap", "value", "go", "value")]
    }));
    let (id, run) = start(&host, &graph).await;
    until_node(&host, &id, "nap", NodeStatus::Running).await;
    host.signal(&id, "go", json!({"ready": 1}), None)
        .await
        .unwrap();
    // The first of a name stays.
    let again = host.signal(&id, "go", json!({"ready": 2}), None).await;
    assert!(
        matches!(again, Err(SignalError::AlreadySent { .. })),
        "{again:?}"
    );
    let result = run.await.unwrap().unwrap();
    assert_eq!(result.status, RunStatus::Succeeded, "{:?}", result.failures);
    assert_eq!(result.outputs["go"], json!({"ready": 1}));
    assert_eq!(states_of(&host, &id, "go").await, [NodeStatus::Completed]);
}

#[tokio::test]
async fn a_wait_that_times_out_takes_its_default_branch_or_fails() {
    let host = Arc::new(common::host(None).await);
    let (_, run) = start(&host, &approval(Some((200, true)))).await;
    let result = run.await.unwrap().unwrap();
    assert_eq!(result.status, RunStatus::Succeeded, "{:?}", result.failures);
    // The wait's input went out on `[timeout]`; its other ports are
    // disabled (`done` still runs on what `a` gave it).
    assert_eq!(result.outputs["late"], json!({"value": 2}));
    assert_eq!(result.outputs["done"], json!({"value": 2}));

    let (_, run) = start(&host, &approval(Some((200, false)))).await;
    let result = run.await.unwrap().unwrap();
    assert_eq!(result.status, RunStatus::Failed);
    assert_eq!(
        common::error_of(&result, "approve"),
        "timed out after 200 ms"
    );
    assert_eq!(result.nodes["done"], NodeStatus::Skipped);
}

#[tokio::test]
async fn a_resumed_wait_keeps_its_deadline() {
    let clock = ManualClock::at(1_000_000_000);
    let host = Arc::new(
        common::builder(None)
            .clock(clock.clone())
            .build()
            .await
            .unwrap(),
    );
    let (id, run) = start(&host, &approval(Some((60_000, true)))).await;
    until_node(&host, &id, "approve", NodeStatus::Waiting).await;
    let stored = host.store().load_run(&id).await.unwrap();
    let wait = stored.nodes.iter().find(|n| n.node == "approve").unwrap();
    assert_eq!(wait.wait_until_ms, Some(1_000_060_000));

    // The host goes away mid-wait; time passes beyond the deadline.
    run.abort();
    let _ = run.await;
    clock.advance(Duration::from_secs(61));
    let resumed = host.prepare_resume(&id).await.unwrap();
    let result = host
        .execute(&resumed, &CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(result.status, RunStatus::Succeeded, "{:?}", result.failures);
    assert_eq!(result.outputs["late"], json!({"value": 2}));
}

#[tokio::test]
async fn a_run_no_signal_can_reach_fails_its_wait_saying_why() {
    let host = common::host(None).await;
    let (result, _) = common::run(&host, &approval(None), json!({})).await;
    assert_eq!(result.status, RunStatus::Failed);
    let why = common::error_of(&result, "approve");
    assert!(
        why.contains("not stored, so no signal can reach it"),
        "{why}"
    );
}

#[tokio::test]
async fn waits_in_the_wrong_places_are_refused_before_anything_runs() {
    let host = common::host(None).await;
    let refused = |graph: Value| {
        let graph = common::graph(graph);
        host.plan(&graph, "g.json").unwrap_err().to_string()
    };
    let in_map = refused(json!({"tasks": [{"id": "m", "type": "map", "graph": {
        "tasks": [{"id": "w", "type": "wait"}], "dataflows": []}}]}));
    assert!(in_map.contains("node `w` waits for a signal"), "{in_map}");
    let bad_name =
        refused(json!({"tasks": [{"id": "w", "type": "wait", "config": {"signal": "a b"}}]}));
    assert!(bad_name.contains("signal name \"a b\""), "{bad_name}");
    let misplaced =
        refused(json!({"tasks": [{"id": "t", "type": "math.add-one", "config": {"signal": "x"}}]}));
    assert!(misplaced.contains("signal"), "{misplaced}");
    let reserved = refused(json!({"tasks": [{"id": "w", "type": "wait", "config": {
        "output_schema": {"type": "object", "properties": {"[timeout]": {}}}}}]}));
    assert!(reserved.contains("reserved"), "{reserved}");
    let forever =
        refused(json!({"tasks": [{"id": "w", "type": "wait", "config": {"timeout_ms": 0}}]}));
    assert!(forever.contains("`timeout_ms` of a wait"), "{forever}");
}

#[tokio::test]
async fn workglows_human_approval_is_a_wait_for_its_answer() {
    let host = Arc::new(common::host(None).await);
    let workglow = json!({
        "tasks": [{"id": "ok?", "type": "HumanApprovalTask",
                   "config": {"message": "Ship it?", "targetHumanId": "lead"}}],
        "dataflows": []
    });
    let graph = weft::graph::Graph::from_json(&workglow.to_string(), "wg.json").unwrap();
    // Its id is no signal name; so it says, and names the setting to use.
    let err = host.plan(&graph, "wg.json").unwrap_err().to_string();
    assert!(err.contains("set `signal`"), "{err}");

    let workglow = json!({
        "tasks": [{"id": "ship", "type": "HumanApprovalTask", "config": {"message": "Ship it?"}}],
        "dataflows": []
    });
    let graph = weft::graph::Graph::from_json(&workglow.to_string(), "wg.json").unwrap();
    let (id, run) = start(&host, &graph).await;
    until_node(&host, &id, "ship", NodeStatus::Waiting).await;
    let wrong = host
        .signal(&id, "ship", json!({"approved": true}), None)
        .await;
    assert!(
        matches!(wrong, Err(SignalError::Body { .. })),
        "an answer has an action"
    );
    let answer = json!({"action": "accept", "approved": true, "reason": "tests pass"});
    host.signal(&id, "ship", answer.clone(), None)
        .await
        .unwrap();
    let result = run.await.unwrap().unwrap();
    assert_eq!(result.outputs["ship"], answer);
}
