//! A misbehaving plugin (trap, panic, infinite loop, memory bomb, invalid JSON,
//! output violating its schema, a 100 MB output) fails only its own task, with
//! a clear error; the rest of the graph and the host go on.

use crate::common;

use serde_json::json;
use weft::events::{NodeStatus, RunStatus};
use weft_tests::{MISBEHAVE, PluginDir};

fn misbehaving_graph() -> serde_json::Value {
    json!({
        "tasks": [
            {"id": "trap", "type": "bad.trap"},
            {"id": "panic", "type": "bad.panic"},
            {"id": "spin", "type": "bad.spin", "config": {"timeout_ms": 300}},
            {"id": "bomb", "type": "bad.memory-bomb"},
            {"id": "huge", "type": "bad.huge-output", "defaults": {"n": 100_000_000}},
            {"id": "badjson", "type": "bad.bad-json"},
            {"id": "wrong", "type": "bad.wrong-output"},
            {"id": "fail", "type": "bad.fail"},
            {"id": "after_trap", "type": "math.add-one", "defaults": {"value": 1}},
            {"id": "good1", "type": "math.add-one", "defaults": {"value": 1}},
            {"id": "good2", "type": "math.add-one"}
        ],
        "dataflows": [
            {"sourceTaskId": "trap", "sourceTaskPortId": "value", "targetTaskId": "after_trap", "targetTaskPortId": "value"},
            {"sourceTaskId": "good1", "sourceTaskPortId": "value", "targetTaskId": "good2", "targetTaskPortId": "value"}
        ]
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_misbehaving_task_fails_alone_with_a_clear_error() {
    // 100 MB of output needs more than the default 64 MiB of memory.
    let dir = PluginDir::new()
        .add("misbehave", MISBEHAVE)
        .manifest("misbehave", "[limits]\nmemory_mib = 512\n");
    let host = common::host(Some(dir.path())).await;
    let (result, _) = common::run(&host, &common::graph(misbehaving_graph()), json!({})).await;

    assert_eq!(result.status, RunStatus::Failed);
    let trap = common::error_of(&result, "trap");
    assert!(trap.contains("plugin `misbehave` trapped"), "{trap}");
    assert!(trap.contains("unreachable"), "{trap}");
    let panic = common::error_of(&result, "panic");
    assert!(
        panic.contains("this task panics on purpose"),
        "the guest's panic message reaches the error: {panic}"
    );
    assert_eq!(common::error_of(&result, "spin"), "timed out after 300 ms");
    let bomb = common::error_of(&result, "bomb");
    assert_eq!(
        bomb,
        "plugin `misbehave` exceeded its memory limit of 512 MiB"
    );
    let huge = common::error_of(&result, "huge");
    assert!(
        huge.starts_with("output is 100000012 bytes, over the limit of 16777216 bytes"),
        "{huge}"
    );
    let badjson = common::error_of(&result, "badjson");
    assert!(
        badjson.starts_with("output is not a JSON object: not JSON"),
        "{badjson}"
    );
    let wrong = common::error_of(&result, "wrong");
    assert!(
        wrong.contains("output does not match the output schema of `bad.wrong-output`"),
        "{wrong}"
    );
    assert!(wrong.contains("at /value"), "{wrong}");
    assert_eq!(
        common::error_of(&result, "fail"),
        "failed: this task fails on purpose"
    );

    // Only what depends on a failed node is skipped; the rest completes.
    assert_eq!(result.nodes["after_trap"], NodeStatus::Skipped);
    assert!(common::error_of(&result, "after_trap").contains("upstream node \"trap\""));
    assert_eq!(result.nodes["good2"], NodeStatus::Completed);
    assert_eq!(result.outputs["good2"], json!({"value": 3}));

    // The host goes on serving.
    let again = common::graph(
        json!({"tasks": [{"id": "a", "type": "math.add-one", "defaults": {"value": 41}}]}),
    );
    let (result, _) = common::run(&host, &again, json!({})).await;
    assert_eq!(result.status, RunStatus::Succeeded);
    assert_eq!(result.outputs["a"], json!({"value": 42}));
}

/// No host detail in what a guest's failure says: no Rust backtrace, no
/// source paths.
fn assert_for_people(error: &str) {
    for leak in [".rs:", "/.cargo/", "/rustc/", "stack backtrace"] {
        assert!(!error.contains(leak), "`{leak}` in: {error}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trap_says_what_happened_briefly_and_a_flood_of_output_is_cut() {
    let dir = PluginDir::new().add("misbehave", MISBEHAVE);
    let host = common::host(Some(dir.path())).await;
    let graph = json!({"tasks": [
        {"id": "deep", "type": "bad.stack-overflow"},
        {"id": "trap", "type": "bad.trap"},
        {"id": "flood", "type": "bad.log-flood", "defaults": {"n": 5000}},
    ]});
    let (result, events) = common::run(&host, &common::graph(graph), json!({})).await;

    let deep = common::error_of(&result, "deep");
    assert!(deep.contains("stack overflow"), "{deep}");
    assert!(deep.len() < 2048, "{} bytes: {deep}", deep.len());
    assert_for_people(deep);
    let trap = common::error_of(&result, "trap");
    assert!(trap.contains("unreachable") && trap.len() < 2048, "{trap}");
    assert_for_people(trap);

    // 5,000 lines and 5,000 progress reports of 10 KiB each: cut at the
    // per-node budget, with one notice; the 1 MiB error message is cut too.
    let flood: Vec<&weft::events::EventKind> = events
        .iter()
        .map(|e| &e.kind)
        .filter(|k| matches!(k, weft::events::EventKind::Log { node, .. } | weft::events::EventKind::Progress { node, .. } if node == "flood"))
        .collect();
    let max = weft::events::MAX_NODE_EVENTS as usize;
    assert!(flood.len() <= max + 1, "{} events", flood.len());
    let notices = flood
        .iter()
        .filter(|k| matches!(k, weft::events::EventKind::Log { message, .. } if message.contains("output truncated")))
        .count();
    assert_eq!(notices, 1);
    let error = common::error_of(&result, "flood");
    assert!(
        error.len() < weft::events::MAX_MESSAGE_BYTES + 256,
        "{}",
        error.len()
    );
    assert!(error.contains("more bytes dropped"));
}

#[tokio::test]
async fn default_memory_limit_applies_without_a_manifest() {
    let dir = PluginDir::new().add("misbehave", MISBEHAVE);
    let host = common::host(Some(dir.path())).await;
    let g = common::graph(json!({"tasks": [{"id": "bomb", "type": "bad.memory-bomb"}]}));
    let (result, _) = common::run(&host, &g, json!({})).await;
    assert_eq!(
        common::error_of(&result, "bomb"),
        "plugin `misbehave` exceeded its memory limit of 64 MiB"
    );
}

#[tokio::test]
async fn plugin_timeout_from_manifest_stops_a_spinning_task() {
    let dir = PluginDir::new()
        .add("misbehave", MISBEHAVE)
        .manifest("misbehave", "[limits]\ntimeout_ms = 200\n");
    let host = common::host(Some(dir.path())).await;
    let g = common::graph(json!({"tasks": [{"id": "spin", "type": "bad.spin"}]}));
    let (result, _) = common::run(&host, &g, json!({})).await;
    assert_eq!(common::error_of(&result, "spin"), "timed out after 200 ms");
    // The manifest's limit is a ceiling: a graph may lower it, never raise it.
    let g = common::graph(json!({"tasks": [
        {"id": "raised", "type": "bad.spin", "config": {"timeout_ms": 3_600_000}},
        {"id": "lowered", "type": "bad.spin", "config": {"timeout_ms": 50}},
    ]}));
    let (result, _) = common::run(&host, &g, json!({})).await;
    assert_eq!(
        common::error_of(&result, "raised"),
        "timed out after 200 ms"
    );
    assert_eq!(
        common::error_of(&result, "lowered"),
        "timed out after 50 ms"
    );
}

#[tokio::test]
async fn plugin_fuel_from_manifest_stops_a_spinning_task_and_spares_normal_ones() {
    let dir = PluginDir::new()
        .add("misbehave", MISBEHAVE)
        .manifest("misbehave", "[limits]\nfuel = 5000000\n");
    let host = common::host(Some(dir.path())).await;
    let g = common::graph(json!({"tasks": [
        {"id": "spin", "type": "bad.spin"},
        {"id": "fine", "type": "probe.context"},
    ]}));
    let (result, _) = common::run(&host, &g, json!({})).await;
    // Fuel stopped it, not the 5-minute wall clock.
    assert_eq!(
        common::error_of(&result, "spin"),
        "plugin `misbehave` ran out of fuel (limit 5000000 per run)"
    );
    assert!(
        result.outputs.contains_key("fine"),
        "a task within the limit completes: {result:?}"
    );
}
