//! Runs are pinned to the components they started with: a run resumed
//! after a restart with a changed plugin goes on with its original
//! component (kept in the store), new runs take the new one, the output
//! cache tells them apart, and a run whose plugin is gone fails clearly as
//! a dead letter instead of staying `running` (on redb and PostgreSQL).

use crate::common;

use std::path::Path;
use std::sync::Arc;

use serde_json::json;
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;
use weft::HostError;
use weft::events::RunStatus;
use weft::graph::Graph;
use weft::store::prelude::*;
use weft::store::{PgStore, RedbStore, RunStore};

/// The example plugin with a custom section named `tag`: the same tasks
/// (`example.shout`), another component (another SHA-256).
fn example_tagged(tag: &str) -> Vec<u8> {
    let mut bytes = std::fs::read(weft_tests::EXAMPLE_PLUGIN).unwrap();
    let mut payload = vec![tag.len() as u8];
    payload.extend(tag.as_bytes());
    bytes.push(0); // a custom section
    bytes.push(payload.len() as u8);
    bytes.extend(payload);
    bytes
}

fn digest(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn graph() -> Graph {
    common::graph(json!({"tasks": [{"id": "shout", "type": "example.shout",
                                     "defaults": {"text": "hi"}}]}))
}

async fn host(plugins: &Path, store: Arc<dyn RunStore>) -> weft::Host {
    common::builder(Some(plugins))
        .store(store)
        .build()
        .await
        .unwrap()
}

async fn pinned_runs_resume_on_their_component(store: Arc<dyn RunStore>) {
    let plugins = tempfile::tempdir().unwrap();
    let wasm = plugins.path().join("example.wasm");
    let (v1, v2) = (example_tagged("v1"), example_tagged("v2"));
    std::fs::write(&wasm, &v1).unwrap();

    // Submitted, then the host stops before it runs anything.
    let first = host(plugins.path(), store.clone()).await;
    let interrupted = first.prepare(&graph(), "g.json", json!({})).await.unwrap();
    let id = interrupted.run_id.clone();
    let stored = store.load_run(&id).await.unwrap();
    assert_eq!(stored.spec.components["example"], digest(&v1));
    drop((interrupted, first));

    // Restarted with a new build of the plugin: the run goes on with the
    // one it started with; a new run takes the new one.
    std::fs::write(&wasm, &v2).unwrap();
    let second = host(plugins.path(), store.clone()).await;
    let resumed = second.prepare_resume(&id).await.unwrap();
    let task = &resumed.plan.nodes[0].task;
    assert_eq!(task.component(), Some(digest(&v1).as_str()));
    let result = second
        .execute(&resumed, &CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(result.status, RunStatus::Succeeded, "{:?}", result.failures);
    assert_eq!(result.outputs["shout"]["text"], "HI!");
    let new = second.plan(&graph(), "g.json").unwrap();
    assert_eq!(new.nodes[0].task.component(), Some(digest(&v2).as_str()));
    // The output cache tells the two components apart.
    let input = json!({"text": "hi"});
    assert_ne!(
        weft::cache::key(task, &input, None),
        weft::cache::key(&new.nodes[0].task, &input, None)
    );

    // Removed: a run pinned to it fails, naming plugin and digest, and is
    // a dead letter; it is not left running for a host to claim again.
    let pinned = second.prepare(&graph(), "g.json", json!({})).await.unwrap();
    let id = pinned.run_id.clone();
    drop((pinned, second));
    std::fs::remove_file(&wasm).unwrap();
    let third = host(plugins.path(), store.clone()).await;
    let e = third.prepare_resume(&id).await.err().unwrap();
    assert!(matches!(e, HostError::Unpinnable { .. }), "{e}");
    let expected = format!(
        "plugin `example` (component sha256 {}) that the run started with is no longer loaded",
        digest(&v2)
    );
    assert!(e.to_string().contains(&expected), "{e}");
    let run = store.load_run(&id).await.unwrap();
    assert_eq!(run.run.status, RunStatus::Failed);
    assert!(!third.interrupted_runs().await.unwrap().contains(&id));
    let letters = third.dead_letters().await.unwrap();
    let letter = letters.iter().find(|l| l.run_id == id).unwrap();
    assert_eq!(letter.node, "shout");
    assert!(letter.errors[0].contains(&expected), "{letter:?}");
    // Back again: the dead letter is re-driven on the component kept.
    std::fs::write(&wasm, &v1).unwrap();
    let fourth = host(plugins.path(), store.clone()).await;
    let again = fourth.redrive(&id, "shout").await.unwrap();
    assert_eq!(
        again.plan.nodes[0].task.component(),
        Some(digest(&v2).as_str())
    );
    let result = fourth
        .execute(&again, &CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(result.status, RunStatus::Succeeded, "{:?}", result.failures);
}

#[tokio::test]
async fn on_redb() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(RedbStore::open(&dir.path().join("weft.redb")).unwrap());
    pinned_runs_resume_on_their_component(store).await;
}

#[tokio::test]
async fn on_postgres() {
    let url = weft_tests::fresh_postgres().await;
    let store = Arc::new(PgStore::connect(&url, 4).await.unwrap());
    pinned_runs_resume_on_their_component(store.clone()).await;
    // Nothing is left for a host to claim.
    let now = weft::clock::now_ms();
    let claimed = store
        .claim_runs("other-host", now, now + 60_000, 10)
        .await
        .unwrap();
    assert_eq!(claimed, Vec::<String>::new());
}
