//! Helpers shared by the test modules (`suite.rs` declares them once).
#![allow(dead_code)]

use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use serde_json::Value;
use tokio_util::sync::CancellationToken;
use weft::Host;
use weft::events::{Event, EventHub};
use weft::graph::Graph;
use weft::plugin::EngineOptions;
use weft::runner::RunResult;

/// A host with the standard plugins, `dir`'s plugins if given, and the shared
/// test artifact cache.
pub async fn host(dir: Option<&Path>) -> Host {
    builder(dir).build().await.expect("host starts")
}

/// The builder behind [`host`], to add settings.
pub fn builder(dir: Option<&Path>) -> weft::HostBuilder {
    let mut b = Host::builder().engine_options(EngineOptions {
        cache_dir: Some(weft_tests::cache_dir()),
        ..EngineOptions::default()
    });
    if let Some(d) = dir {
        b = b.plugins_dir(d);
    }
    b
}

/// Parse graph JSON (panics on a malformed test graph).
pub fn graph(v: Value) -> Graph {
    Graph::from_json(&v.to_string(), "test.json").expect("test graph parses")
}

/// Run `graph` on `input`, returning the result and every event in order.
pub async fn run(host: &Host, graph: &Graph, input: Value) -> (RunResult, Vec<Event>) {
    let plan = host.plan(graph, "test.json").expect("test graph is valid");
    let hub = EventHub::new("test-run", 1);
    let mut rx = hub.subscribe();
    let result = host
        .run_plan(&plan, &input, &hub, &CancellationToken::new())
        .await
        .expect("input is valid");
    drop(hub);
    let mut events = Vec::new();
    while let Ok(e) = rx.try_recv() {
        events.push(e);
    }
    (result, events)
}

/// Run one node of `task_type` with `input` as its defaults: its output,
/// or its error message.
pub async fn one(host: &Host, task_type: &str, input: Value) -> Result<Value, String> {
    let g =
        graph(serde_json::json!({"tasks": [{"id": "t", "type": task_type, "defaults": input}]}));
    let (result, _) = run(host, &g, serde_json::json!({})).await;
    match result.status {
        weft::events::RunStatus::Succeeded => Ok(result.outputs["t"].clone()),
        _ => Err(error_of(&result, "t").to_string()),
    }
}

/// The error message of node `node` in `result` (panics if it has none).
pub fn error_of<'a>(result: &'a RunResult, node: &str) -> &'a str {
    &result
        .failures
        .iter()
        .find(|f| f.node == node)
        .unwrap_or_else(|| panic!("node {node} did not fail: {:?}", result.nodes))
        .error
}

/// A `w × h` RGBA image whose pixel (x, y) is `f(x, y)`, as a PNG data URI.
pub fn png(w: u32, h: u32, f: impl Fn(u32, u32) -> [u8; 4]) -> String {
    let img = image::RgbaImage::from_fn(w, h, |x, y| image::Rgba(f(x, y)));
    let mut bytes = Vec::new();
    img.write_to(
        &mut std::io::Cursor::new(&mut bytes),
        image::ImageFormat::Png,
    )
    .unwrap();
    format!("data:image/png;base64,{}", STANDARD.encode(bytes))
}

/// The pixels of a PNG data URI.
pub fn pixels(uri: &str) -> image::RgbaImage {
    let b64 = uri
        .strip_prefix("data:image/png;base64,")
        .expect("a PNG data URI");
    image::load_from_memory(&STANDARD.decode(b64).unwrap())
        .unwrap()
        .into_rgba8()
}
