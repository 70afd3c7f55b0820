//! Weft embedded in a program: build a graph in code, run it durably on the
//! redb store, print the result. `cargo run -p weft-example-embed`.

use std::sync::Arc;

use serde_json::json;
use weft::graph::Graph;
use weft::store::RedbStore;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::temp_dir().join(format!("weft-embed-{}", std::process::id()));
    let store = Arc::new(RedbStore::open(&dir.join("weft.redb"))?);
    let host = weft::Host::builder().store(store).build().await?;
    let graph = Graph::builder()
        .task("split", "text.split")
        .defaults(json!({"separator": ","}))
        .task("join", "text.join")
        .defaults(json!({"separator": " | "}))
        .flow("split.parts", "join.parts")
        .build();
    let result = host.run(&graph, json!({"text": "weft,warp,loom"})).await?;
    println!("{:?}: {}", result.status, result.outputs["join"]);
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}
