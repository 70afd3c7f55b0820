//! Waits and signals in one process: a wait takes its signal once the body
//! matches its schema; a signal sent before the wait is reached is taken
//! when it is; a wait's timeout takes its default branch (or fails the
//! node); a resumed wait keeps its deadline; waits in the wrong places are
//! refused before anything runs; a loop waits for a person at every step,
//! each step's wait taking its own signal, and a map's waits each theirs. (Across a `kill -9` and across hosts:
//! `host/cli/tests/signals.rs`.)

use crate::common;

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

/// A host whose clock the test moves, starting at 1,000,000,000 ms.
async fn clocked_host() -> (Arc<ManualClock>, Arc<Host>) {
    let clock = ManualClock::at(1_000_000_000);
    let host = common::builder(None).clock(clock.clone()).build().await;
    (clock, Arc::new(host.unwrap()))
}

/// Start `graph` as a stored run on `host`; its id and its execution.
async fn start(
    host: &Arc<Host>,
    graph: &weft::graph::Graph,
) -> (
    String,
    tokio::task::JoinHandle<Result<weft::runner::RunResult, weft::HostError>>,
) {
    start_on(host, graph, json!({})).await
}

/// Start `graph` as a stored run on `host` on `input`; its id and its
/// execution.
async fn start_on(
    host: &Arc<Host>,
    graph: &weft::graph::Graph,
    input: Value,
) -> (
    String,
    tokio::task::JoinHandle<Result<weft::runner::RunResult, weft::HostError>>,
) {
    let run = host.prepare(graph, "graph.json", input).await.unwrap();
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
    let name = host.signal(&id, "a b", json!({}), None).await;
    assert!(matches!(name, Err(SignalError::BadName(_))), "{name:?}");
    // A use path that names no use of the run's graph.
    let nowhere = host.signal(&id, "../x", json!({}), None).await;
    assert!(
        matches!(nowhere, Err(SignalError::NoWait { .. })),
        "{nowhere:?}"
    );
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
    let (clock, host) = clocked_host().await;
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

/// A while loop that asks at every step: `step` adds one, `ask` waits for
/// `more` (`{go}`), `keep` carries the value; it goes on while `go`.
fn asking_loop() -> weft::graph::Graph {
    common::graph(json!({"tasks": [
        {"id": "loop", "type": "while",
         "config": {"condition": "output.go == true", "max_iterations": 10},
         "graph": {"tasks": [
            {"id": "step", "type": "math.add-one"},
            {"id": "ask", "type": "wait", "config": {"signal": "more", "output_schema": {
                "type": "object", "properties": {"go": {"type": "boolean"}}, "required": ["go"]}}},
            {"id": "keep", "type": "pass"}
         ], "dataflows": [
            flow("step", "value", "ask", "value"),
            flow("step", "value", "keep", "value")
         ]}}
    ], "dataflows": []}))
}

#[tokio::test]
async fn a_loop_waits_at_every_step_for_that_steps_signal_across_a_restart() {
    let host = Arc::new(common::host(None).await);
    let (id, task) = start_on(&host, &asking_loop(), json!({"value": 0})).await;

    // Step 0 waits; a plain name reaches the one wait waiting, at its use.
    until_node(&host, &id, "loop[0]/ask", NodeStatus::Waiting).await;
    let sent = host
        .signal(&id, "more", json!({"go": true}), None)
        .await
        .unwrap();
    assert_eq!(sent.name, "loop[0]/more");
    assert_eq!(sent.nodes, ["loop[0]/ask"]);
    // What the step's wait waited on is kept, as a node's input is.
    let input = host.store().node_input(&id, "loop[0]/ask").await.unwrap();
    assert_eq!(input, Some(json!({"value": 1})));

    // Step 1 waits for its own signal: a body its schema refuses is named
    // at the step; the step that ended takes nothing more.
    until_node(&host, &id, "loop[1]/ask", NodeStatus::Waiting).await;
    let bad = host.signal(&id, "loop[1]/more", json!({"go": "yes"}), None);
    match bad.await {
        Err(SignalError::Body { name, node, .. }) => {
            assert_eq!(
                (name.as_str(), node.as_str()),
                ("loop[1]/more", "loop[1]/ask")
            );
        }
        other => panic!("{other:?}"),
    }
    let again = host.signal(&id, "loop[0]/more", json!({"go": false}), None);
    assert!(
        matches!(
            again.await,
            Err(SignalError::WaitEnded { .. } | SignalError::AlreadySent { .. })
        ),
        "a step that ended took a second signal"
    );
    host.signal(&id, "loop[1]/more", json!({"go": true}), None)
        .await
        .unwrap();

    // The host goes away while step 2 waits; the run resumes from step 2
    // (steps 0 and 1 are not run again) and waits there once more.
    until_node(&host, &id, "loop[2]/ask", NodeStatus::Waiting).await;
    task.abort();
    let _ = task.await;
    let resumed = host.prepare_resume(&id).await.unwrap();
    let task = {
        let host = host.clone();
        tokio::spawn(async move { host.execute(&resumed, &CancellationToken::new()).await })
    };
    let sent = loop {
        match host.signal(&id, "more", json!({"go": false}), None).await {
            Ok(sent) => break sent,
            Err(SignalError::NoWait { .. }) => tokio::time::sleep(Duration::from_millis(10)).await,
            Err(e) => panic!("{e}"),
        }
    };
    assert_eq!(sent.name, "loop[2]/more");
    let result = task.await.unwrap().unwrap();
    assert_eq!(result.status, RunStatus::Succeeded, "{:?}", result.failures);
    assert_eq!(result.outputs["loop"], json!({"value": 3, "go": false}));
    // Steps 0 and 1 ran once; step 2 waited, then (resumed) took its signal.
    use NodeStatus::{Completed, Waiting};
    for k in 0..2 {
        let ask = format!("loop[{k}]/ask");
        assert_eq!(
            states_of(&host, &id, &ask).await,
            [Waiting, Completed],
            "{ask}"
        );
    }
    let last = states_of(&host, &id, "loop[2]/ask").await;
    assert_eq!(
        (last.first(), last.last()),
        (Some(&Waiting), Some(&Completed))
    );
    assert_eq!(last.iter().filter(|s| **s == Completed).count(), 1);
    assert!(
        states_of(&host, &id, "loop[3]/ask").await.is_empty(),
        "the loop stopped when told"
    );
}

#[tokio::test]
async fn each_element_of_a_map_waits_for_its_own_signal() {
    let host = Arc::new(common::host(None).await);
    let graph = common::graph(json!({"tasks": [
        {"id": "m", "type": "map",
         "graph": {"tasks": [{"id": "ok", "type": "wait", "config": {"input_schema": {
            "type": "object", "properties": {"n": {"type": "integer"}}}}}], "dataflows": []}}
    ], "dataflows": []}));
    let (id, task) = start_on(&host, &graph, json!({"n": [1, 2]})).await;
    until_node(&host, &id, "m[0]/ok", NodeStatus::Waiting).await;
    until_node(&host, &id, "m[1]/ok", NodeStatus::Waiting).await;
    // Two waits for `ok`: a plain name does not say which.
    match host.signal(&id, "ok", json!({"yes": 1}), None).await {
        Err(SignalError::Ambiguous { at, example, .. }) => {
            assert_eq!(at, "m[0]/ok, m[1]/ok");
            assert_eq!(example, "m[0]/ok");
        }
        other => panic!("{other:?}"),
    }
    let unknown = host.signal(&id, "nope", json!({}), None).await;
    assert!(
        matches!(&unknown, Err(SignalError::NoWait { known, .. }) if known == "m[0]/ok, m[1]/ok"),
        "{unknown:?}"
    );
    for k in [1, 0] {
        let name = format!("m[{k}]/ok");
        host.signal(&id, &name, json!({"yes": k}), None)
            .await
            .unwrap();
    }
    let result = task.await.unwrap().unwrap();
    assert_eq!(result.status, RunStatus::Succeeded, "{:?}", result.failures);
    assert_eq!(result.outputs["m"], json!({"yes": [0, 1]}));
}

#[tokio::test]
async fn a_wait_inside_a_loop_keeps_its_deadline_when_the_run_resumes() {
    let (clock, host) = clocked_host().await;
    let graph = common::graph(json!({"tasks": [
        {"id": "loop", "type": "while", "config": {"condition": "false", "max_iterations": 1},
         "graph": {"tasks": [
            {"id": "ask", "type": "wait", "config": {"timeout_ms": 60_000}},
            {"id": "late", "type": "pass"}
         ], "dataflows": [flow("ask", "[timeout]", "late", "*")]}}
    ], "dataflows": []}));
    let (id, task) = start_on(&host, &graph, json!({"value": 7})).await;
    until_node(&host, &id, "loop[0]/ask", NodeStatus::Waiting).await;
    let stored = host.store().load_run(&id).await.unwrap();
    let wait = stored.nodes.iter().find(|n| n.node == "loop[0]/ask");
    assert_eq!(wait.unwrap().wait_until_ms, Some(1_000_060_000));

    // The host goes away mid-wait; time passes beyond the deadline: the
    // resumed step times out at once instead of waiting a minute more.
    task.abort();
    let _ = task.await;
    clock.advance(Duration::from_secs(61));
    let resumed = host.prepare_resume(&id).await.unwrap();
    let result = tokio::time::timeout(
        Duration::from_secs(20),
        host.execute(&resumed, &CancellationToken::new()),
    )
    .await
    .expect("the resumed wait kept its deadline")
    .unwrap();
    assert_eq!(result.status, RunStatus::Succeeded, "{:?}", result.failures);
    assert_eq!(result.outputs["loop"]["value"], 7);
}

#[tokio::test]
async fn a_step_out_of_time_leaves_no_wait_waiting() {
    let host = Arc::new(common::host(None).await);
    let graph = common::graph(json!({"tasks": [
        {"id": "loop", "type": "while",
         "config": {"condition": "false", "max_iterations": 1, "timeout_ms": 300, "retries": 0},
         "graph": {"tasks": [{"id": "ask", "type": "wait"}]}}
    ], "dataflows": []}));
    let (id, task) = start_on(&host, &graph, json!({"value": 1})).await;
    until_node(&host, &id, "loop[0]/ask", NodeStatus::Waiting).await;
    let result = task.await.unwrap().unwrap();
    assert_eq!(result.status, RunStatus::Failed);
    let stored = host.store().load_run(&id).await.unwrap();
    let ask = stored
        .nodes
        .iter()
        .find(|n| n.node == "loop[0]/ask")
        .unwrap();
    assert_eq!(ask.status, NodeStatus::Cancelled, "{ask:?}");
}
