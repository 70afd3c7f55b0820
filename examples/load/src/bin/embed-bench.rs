//! Embeddings/s through the wasm task path (`ai.text-embedding` in a graph:
//! scheduling, a fresh sandboxed instance, the `models` import, JSON) against
//! the host calling ONNX directly, at batch 1 and batch 32, side by side in one
//! run. Needs `examples/models/fetch.sh` first; `examples/bench/models.sh`
//! runs it.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use serde_json::json;
use tokio_util::sync::CancellationToken;
use weft::events::EventHub;
use weft::graph::Graph;
use weft::providers::{ModelConfig, ModelKind, OnnxEmbedder, Provider};

fn sentences(n: usize, offset: usize) -> Vec<String> {
    let words = [
        "weft", "warp", "loom", "thread", "pattern", "cloth", "shuttle", "colour", "weave",
        "fibre", "linen", "wool", "silk", "cotton", "knot", "needle",
    ];
    (0..n)
        .map(|i| {
            (0..12)
                .map(|j| words[(i * 7 + j * 3 + offset) % words.len()])
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect()
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let data = PathBuf::from(std::env::args().nth(1).unwrap_or_else(|| ".weft".into()));
    let model = data.join("models/minilm/model.onnx");
    anyhow::ensure!(
        model.is_file(),
        "{} is missing: run examples/models/fetch.sh",
        model.display()
    );
    weft::providers::set_default_onnx_runtime(data.join("onnxruntime/libonnxruntime.so.1.31.1"));
    let config = ModelConfig {
        max_length: Some(256),
        sessions: Some(1),
        ..ModelConfig::local(ModelKind::Embedding, &model)
    };
    let direct = OnnxEmbedder::load("minilm", &config).map_err(|e| anyhow::anyhow!("{e}"))?;
    let host = weft::Host::builder()
        .model("minilm", config)
        .build()
        .await
        .context("host")?;
    let graph = Graph::builder()
        .task("embed", "ai.text-embedding")
        .defaults(json!({"model": "minilm"}))
        .build();
    let plan = host
        .plan(&graph, "bench")
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let host = Arc::new(host);

    println!(
        "{:<8} {:>8} {:>16} {:>16} {:>8}",
        "batch", "texts", "direct emb/s", "wasm task emb/s", "ratio"
    );
    for (batch, rounds) in [(1usize, 300usize), (32, 30)] {
        // Warm both paths (model sessions, compiled component).
        direct
            .embed(&sentences(batch, 999))
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let input = json!({"texts": sentences(batch, 998)});
        host.run_plan(
            &plan,
            &input,
            &EventHub::new("warm", 1),
            &CancellationToken::new(),
        )
        .await?;

        let start = Instant::now();
        for r in 0..rounds {
            direct
                .embed(&sentences(batch, r))
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
        }
        let direct_rate = (batch * rounds) as f64 / start.elapsed().as_secs_f64();

        let start = Instant::now();
        for r in 0..rounds {
            let input = json!({"texts": sentences(batch, r)});
            let result = host
                .run_plan(
                    &plan,
                    &input,
                    &EventHub::new("bench", 1),
                    &CancellationToken::new(),
                )
                .await?;
            anyhow::ensure!(result.failures.is_empty(), "{:?}", result.failures);
        }
        let wasm_rate = (batch * rounds) as f64 / start.elapsed().as_secs_f64();
        println!(
            "{batch:<8} {:>8} {direct_rate:>16.1} {wasm_rate:>16.1} {:>8.2}",
            batch * rounds,
            wasm_rate / direct_rate
        );
    }
    Ok(())
}
