//! The web console in a real browser: headless Chromium (Debian's
//! `chromium` package) driven by Playwright (`console/e2e/*.mjs`) against a
//! real `weft serve` built with the console. Each script checks what a user
//! sees and fails with what it saw; screenshots go to
//! `console/e2e/screenshots/`. Built only with the `console` feature
//! (`tests/run.sh` builds the console and turns it on).
#![cfg(feature = "console")]

#[path = "support/daemon.rs"]
mod support;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use serde_json::{Value, json};
use support::Daemon;

const ALICE: &str = "alice-console-token-0001";
const BOB: &str = "bob-console-token-000002";

fn console_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../console")
}

fn flow(from: &str, to: &str) -> Value {
    json!({"sourceTaskId": from, "sourceTaskPortId": "value",
           "targetTaskId": to, "targetTaskPortId": "value"})
}

/// `first` → `n` delays of `ms` → `end` (an add-one each side).
fn delays(n: usize, ms: u64) -> Value {
    let mut tasks = vec![json!({"id": "first", "type": "math.add-one"})];
    let mut flows = Vec::new();
    let mut previous = "first".to_string();
    for i in 0..n {
        let id = format!("d{i}");
        tasks.push(json!({"id": id, "type": "util.delay", "defaults": {"ms": ms}}));
        flows.push(flow(&previous, &id));
        previous = id;
    }
    tasks.push(json!({"id": "end", "type": "math.add-one"}));
    flows.push(flow(&previous, "end"));
    json!({"tasks": tasks, "dataflows": flows})
}

fn plugins(dir: &Path) -> PathBuf {
    let p = dir.join("plugins");
    std::fs::create_dir_all(&p).unwrap();
    p
}

/// One browser at a time: each test's daemon runs beside the others, but
/// Chromium's processes, memory and descriptors are taken by one script
/// only (five at once ran out of resources on a CI machine:
/// `net::ERR_INSUFFICIENT_RESOURCES`).
static ONE_BROWSER: Mutex<()> = Mutex::new(());

/// A browser script running: its stdout read line by line, its stdin open
/// for the test's answers.
struct Script {
    child: Child,
    stdin: ChildStdin,
    lines: std::sync::mpsc::Receiver<String>,
    _turn: MutexGuard<'static, ()>,
}

impl Script {
    fn start(name: &str, url: &str, env: &[(&str, &str)]) -> Script {
        // A test that failed holding the turn poisoned it; the turn is free.
        let turn = ONE_BROWSER.lock().unwrap_or_else(|e| e.into_inner());
        let mut child = Command::new("node")
            .arg(format!("e2e/{name}"))
            .current_dir(console_dir())
            .env("WEFT_URL", url)
            .envs(env.iter().copied())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("node runs (tests/run.sh installs the console's packages)");
        let stdin = child.stdin.take().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                println!("{line}");
                let _ = tx.send(line);
            }
        });
        Script {
            child,
            stdin,
            lines,
            _turn: turn,
        }
    }

    /// Wait for the script to print `line`.
    fn expect(&mut self, line: &str) {
        loop {
            match self.lines.recv_timeout(Duration::from_secs(120)) {
                Ok(l) if l == line => return,
                Ok(_) => continue,
                Err(_) => panic!("the browser script did not print {line}"),
            }
        }
    }

    fn say(&mut self, line: &str) {
        writeln!(self.stdin, "{line}").unwrap();
    }

    /// Wait for the script to end; it must pass.
    fn passes(mut self) {
        let status = self.child.wait().unwrap();
        assert!(status.success(), "the browser script failed: {status}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_tasks_and_plugins_are_shown_live_in_a_browser() {
    let dir = tempfile::tempdir().unwrap();
    let plugins = plugins(dir.path());
    std::fs::write(plugins.join("broken.wasm"), b"not a component").unwrap();
    let d = Daemon::start(dir.path(), &plugins, "");
    // The page may not be framed, nor load anything from elsewhere.
    let page = d.req(reqwest::Method::GET, "/").send().await.unwrap();
    assert_eq!(page.status(), 200);
    let csp = page.headers()["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("default-src 'self'") && csp.contains("frame-ancestors 'none'"));
    assert_eq!(page.headers()["x-frame-options"], "DENY");
    assert!(page.text().await.unwrap().contains("/assets/"));
    let (status, _) = d.get("/assets/..%2f..%2fCargo.toml").await;
    assert_eq!(status, 404, "only the console's own files are served");
    let ok = d.submit(delays(2, 400), json!({"value": 1})).await;
    let bad = json!({"tasks": [{"id": "parse", "type": "json.parse",
                                 "defaults": {"text": "{nope"}}]});
    let failed = d.submit(bad, json!({})).await;
    let compound = json!({
        "tasks": [
            {"id": "outer", "type": "graph", "graph": {
                "tasks": [{"id": "a", "type": "math.add-one"}, {"id": "b", "type": "math.add-one"}],
                "dataflows": [flow("a", "b")]}},
            {"id": "after", "type": "math.add-one"}
        ],
        "dataflows": [flow("outer", "after")]
    });
    let compound = d.submit(compound, json!({"value": 1})).await;
    let script = Script::start(
        "viewer.mjs",
        &d.url,
        &[
            ("RUN_ID", &ok),
            ("FAILED_RUN_ID", &failed),
            ("COMPOUND_RUN_ID", &compound),
        ],
    );
    script.passes();
    let run = d.finished(&ok).await;
    assert_eq!(run["outputs"]["end"]["value"], 3);
}

/// `first` → `d0` → `approve` (waits for the signal `go`, whose `value`
/// it gives) → `end`: a run that stays mid-way until the page answers.
fn waiting() -> Value {
    json!({
        "tasks": [
            {"id": "first", "type": "math.add-one"},
            {"id": "d0", "type": "util.delay", "defaults": {"ms": 100}},
            {"id": "approve", "type": "wait", "config": {"signal": "go", "output_schema": {
                "type": "object", "properties": {"value": {"type": "number"}},
                "required": ["value"]}}},
            {"id": "end", "type": "math.add-one"}
        ],
        "dataflows": [flow("first", "d0"), flow("d0", "approve"), flow("approve", "end")]
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_view_reconnects_after_the_daemon_is_killed_and_shows_each_event_once() {
    let dir = tempfile::tempdir().unwrap();
    let plugins = plugins(dir.path());
    // A fixed port: the page reconnects to the address it was loaded from.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let listen = format!("127.0.0.1:{port}");
    let mut d = Daemon::start_at(dir.path(), &plugins, "", &listen);
    let id = d.submit(waiting(), json!({"value": 1})).await;
    let mut script = Script::start("restart.mjs", &d.url, &[("RUN_ID", &id)]);
    script.expect("KILL");
    d.signal("-KILL");
    d.wait(Duration::from_secs(10));
    script.expect("RECONNECTING");
    let d2 = Daemon::start_at(dir.path(), &plugins, "", &listen);
    script.say("RESTARTED");
    script.passes();
    let run = d2.finished(&id).await;
    assert_eq!(run["outputs"]["end"]["value"], 11);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_step_of_a_loop_that_asks_is_answered_from_the_run_view() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(dir.path(), &plugins(dir.path()), "");
    let id = d.submit(support::asking_loop(), json!({"value": 0})).await;
    Script::start("steps.mjs", &d.url, &[("RUN_ID", &id)]).passes();
    let run = d.finished(&id).await;
    assert_eq!(run["outputs"]["loop"], json!({"value": 2, "go": false}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_tokens_a_wrong_token_is_refused_and_one_user_cannot_open_anothers_run() {
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        "[[tokens]]\nuser = \"alice\"\ntoken = \"{ALICE}\"\n\n\
         [[tokens]]\nuser = \"bob\"\ntoken = \"{BOB}\"\n"
    );
    let d = Daemon::start(dir.path(), &plugins(dir.path()), &config);
    let alice = d.as_user(ALICE);
    let id = alice.submit(delays(1, 10), json!({"value": 1})).await;
    alice.finished(&id).await;
    let script = Script::start(
        "tokens.mjs",
        &d.url,
        &[("RUN_ID", &id), ("ALICE", ALICE), ("BOB", BOB)],
    );
    script.passes();
}

/// The first of `tests/workglow/cases.mjs`'s graphs: built with the npm
/// package's own API, written by its `toJSON()`, run by it: (JSON, leaf
/// outputs).
fn workglow_case() -> (Value, Value) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/workglow");
    let out = Command::new("node")
        .arg("cases.mjs")
        .current_dir(&dir)
        .output()
        .expect("node runs (tests/run.sh installs tests/workglow's packages)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let first = String::from_utf8(out.stdout).unwrap();
    let case: Value = serde_json::from_str(first.lines().next().unwrap()).unwrap();
    (case["json"].clone(), case["result"].clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_graph_built_in_the_editor_is_checked_saved_and_run_and_a_workglow_graph_imported() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(dir.path(), &plugins(dir.path()), "");
    let (graph, result) = workglow_case();
    let file = dir.path().join("workglow.json");
    std::fs::write(&file, graph.to_string()).unwrap();
    let script = Script::start(
        "editor.mjs",
        &d.url,
        &[
            ("WORKGLOW_GRAPH", file.to_str().unwrap()),
            ("WORKGLOW_RESULT", &result.to_string()),
        ],
    );
    script.passes();
    // What the editor saved is a graph the daemon keeps and runs.
    let (status, saved) = d.get("/v1/graphs/three").await;
    assert_eq!(status, 200, "{saved}");
    assert_eq!(saved["version"], 1);
    assert_eq!(saved["graph"]["tasks"].as_array().unwrap().len(), 3);
}
