//! Waits and signals on real `weft serve` processes: a wait survives the
//! daemon's `kill -9` and is answered from the CLI; on PostgreSQL a signal
//! sent to one host reaches the run another host executes, and a wait goes
//! on on the host that takes over a killed one's run.

#[path = "support/daemon.rs"]
mod support;

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};
use support::{Api, Daemon};

fn flow(s: &str, sp: &str, t: &str, tp: &str) -> Value {
    json!({"sourceTaskId": s, "sourceTaskPortId": sp, "targetTaskId": t, "targetTaskPortId": tp})
}

/// a (1 + 1) → approve (a wait for `{approved}`) → done, which also gets
/// a's value.
fn approval() -> Value {
    json!({
        "tasks": [
            {"id": "a", "type": "math.add-one", "defaults": {"value": 1}},
            {"id": "approve", "type": "wait", "config": {"output_schema": {
                "type": "object",
                "properties": {"approved": {"type": "boolean"}},
                "required": ["approved"]}}},
            {"id": "done", "type": "pass"}
        ],
        "dataflows": [
            flow("a", "value", "approve", "value"),
            flow("approve", "approved", "done", "approved"),
            flow("a", "value", "done", "value")
        ]
    })
}

/// Wait until `api` shows node `node` of run `id` as `status`.
async fn until_node(api: &Api, id: &str, node: &str, status: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (code, run) = api.get(&format!("/v1/runs/{id}")).await;
        if code == StatusCode::OK && run["nodes"][node]["status"] == status {
            return;
        }
        assert!(Instant::now() < deadline, "{node} never {status}: {run}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `weft signal RUN NAME BODY --server URL`, which must succeed: what it
/// printed.
fn weft_signal(url: &str, run: &str, name: &str, body: &str) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_weft"))
        .args(["signal", run, name, body, "--server", url])
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{said} {err}");
    said
}

/// Send signal `name` (as a path segment) with `body` to run `id` over
/// `api`; it must be taken. The answer.
async fn signal(api: &Api, id: &str, name: &str, body: Value) -> Value {
    let (code, sent) = api
        .post(&format!("/v1/runs/{id}/signals/{name}"), body)
        .await;
    assert_eq!(code, StatusCode::ACCEPTED, "{sent}");
    sent
}

/// Wait until run `id`'s log says it was resumed (another process took
/// it) and its wait began again.
async fn until_waiting_again(api: &Api, id: &str) {
    let resumed = |e: &Value| e["type"] == "run_started" && e["resumed"] == true;
    api.events_until(id, None, |events| {
        events
            .iter()
            .skip_while(|e| !resumed(e))
            .any(|e| e["node"] == "approve" && e["status"] == "waiting")
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wait_survives_kill_9_and_is_answered_from_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let plugins = dir.path().join("plugins");
    std::fs::create_dir_all(&plugins).unwrap();
    let mut d = Daemon::start(dir.path(), &plugins, "");
    let id = d.submit(approval(), json!({})).await;
    until_node(&d, &id, "approve", "waiting").await;

    // Refusals name what and where, and change nothing.
    let path = format!("/v1/runs/{id}/signals/approve");
    let (code, body) = d.post(&path, json!({"approved": "yes"})).await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("/approved"),
        "{body}"
    );
    let (code, body) = d
        .post(&format!("/v1/runs/{id}/signals/nope"), json!({}))
        .await;
    assert_eq!(code, StatusCode::NOT_FOUND, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("approve"),
        "{body}"
    );

    d.signal("-KILL");
    d.wait(Duration::from_secs(10));
    let d = Daemon::start(dir.path(), &plugins, "");
    until_waiting_again(&d, &id).await;

    let said = weft_signal(&d.url, &id, "approve", r#"{"approved": true}"#);
    assert!(said.contains("signal approve sent to approve"), "{said}");
    let run = d.finished(&id).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(
        run["outputs"]["done"],
        json!({"approved": true, "value": 2})
    );

    // The log shows the wait, once before the kill and once after.
    let events = d.events(&id, None, 10_000).await;
    let waits = events
        .iter()
        .filter(|e| e["type"] == "node" && e["node"] == "approve" && e["status"] == "waiting")
        .count();
    assert_eq!(waits, 2, "{events:?}");
    // An answer to a run that ended is refused.
    let (code, _) = d.post(&path, json!({"approved": false})).await;
    assert_eq!(code, StatusCode::CONFLICT);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_postgres_a_signal_reaches_the_run_on_another_host_and_survives_its_loss() {
    let url = weft_tests::fresh_postgres().await;
    let dirs: Vec<tempfile::TempDir> = (0..2).map(|_| tempfile::tempdir().unwrap()).collect();
    let plugins = dirs[0].path().join("plugins");
    std::fs::create_dir_all(&plugins).unwrap();
    let config = "[server]\nlease_ms = 1500\n";
    let start = |i: usize| {
        Daemon::start_with(
            dirs[i].path(),
            &plugins,
            config,
            &["--database-url", &url, "--role", "api"],
        )
    };
    let mut a = start(0);
    let b = start(1);

    // A executes the run; the signal goes to B.
    let first = a.submit(approval(), json!({})).await;
    until_node(&b, &first, "approve", "waiting").await;
    let (code, sent) = b
        .post(
            &format!("/v1/runs/{first}/signals/approve"),
            json!({"approved": true}),
        )
        .await;
    assert_eq!(code, StatusCode::ACCEPTED, "{sent}");
    assert_eq!(sent["nodes"], json!(["approve"]));
    let run = b.finished(&first).await;
    assert_eq!(
        run["outputs"]["done"],
        json!({"approved": true, "value": 2})
    );

    // A dies while its run waits: B takes the run over, and it waits there.
    let second = a.submit(approval(), json!({})).await;
    until_node(&b, &second, "approve", "waiting").await;
    a.signal("-KILL");
    a.wait(Duration::from_secs(10));
    until_waiting_again(&b, &second).await;
    let (code, _) = b
        .post(
            &format!("/v1/runs/{second}/signals/approve"),
            json!({"approved": false}),
        )
        .await;
    assert_eq!(code, StatusCode::ACCEPTED);
    let run = b.finished(&second).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(
        run["outputs"]["done"],
        json!({"approved": false, "value": 2})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_loop_asks_at_every_step_over_http_and_from_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let plugins = dir.path().join("plugins");
    std::fs::create_dir_all(&plugins).unwrap();
    let d = Daemon::start(dir.path(), &plugins, "");
    let id = d.submit(support::asking_loop(), json!({"value": 0})).await;

    // The run shows the step's wait and what it waits on; a plain name
    // reaches it.
    until_node(&d, &id, "loop[0]/ask", "waiting").await;
    let (code, input) = d
        .get(&format!("/v1/runs/{id}/nodes/loop%5B0%5D%2Fask/input"))
        .await;
    assert_eq!(code, StatusCode::OK, "{input}");
    assert_eq!(input["input"], json!({"value": 1}));
    let sent = signal(&d, &id, "more", json!({"go": true})).await;
    assert_eq!(sent["signal"], "loop[0]/more");

    // The next step's, by its name at the use: over HTTP (the `/` as
    // `%2F`, one path segment) and from the CLI.
    until_node(&d, &id, "loop[1]/ask", "waiting").await;
    let sent = signal(&d, &id, "loop%5B1%5D%2Fmore", json!({"go": true})).await;
    assert_eq!(sent["nodes"], json!(["loop[1]/ask"]));
    until_node(&d, &id, "loop[2]/ask", "waiting").await;
    let said = weft_signal(&d.url, &id, "loop[2]/more", r#"{"go": false}"#);
    assert!(
        said.contains("signal loop[2]/more sent to loop[2]/ask"),
        "{said}"
    );
    let run = d.finished(&id).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(run["outputs"]["loop"], json!({"value": 3, "go": false}));
}
