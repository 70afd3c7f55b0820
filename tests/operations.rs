//! What an operator keeps: stores written by an earlier build open, list
//! their history and resume their interrupted runs (the fixtures in
//! `tests/fixtures/stores/`, written by `write_store_fixtures`); a
//! PostgreSQL dump restores into a fresh database and its runs resume.

#[path = "common/mod.rs"]
mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use serde_json::json;
use tokio_util::sync::CancellationToken;
use weft::events::RunStatus;
use weft::graph::Graph;
use weft::store::prelude::*;
use weft::store::{PgStore, RedbStore};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/stores")
}

/// A PostgreSQL client program: from the test server's folder, else PATH.
fn pg_tool(name: &str) -> PathBuf {
    match std::env::var("WEFT_TEST_PG_BIN") {
        Ok(bin) => Path::new(&bin).join(name),
        Err(_) => PathBuf::from(name),
    }
}

fn chain() -> Graph {
    common::graph(json!({
        "tasks": [{"id": "a", "type": "math.add-one"}, {"id": "b", "type": "math.add-one"}],
        "dataflows": [{"sourceTaskId": "a", "sourceTaskPortId": "value",
                       "targetTaskId": "b", "targetTaskPortId": "value"}]
    }))
}

/// Write the history every fixture holds: a run that succeeded and one
/// interrupted before it ran (ids returned).
async fn write_history(store: Arc<dyn RunStore>) -> (String, String) {
    let host = common::builder(None).store(store).build().await.unwrap();
    let done = host.run(&chain(), json!({"value": 1})).await.unwrap();
    assert_eq!(done.status, RunStatus::Succeeded);
    let interrupted = host
        .prepare(&chain(), "g.json", json!({"value": 10}))
        .await
        .unwrap();
    (done.run_id, interrupted.run_id.clone())
}

/// The history is there, and the interrupted run resumes to its end.
async fn check_history(store: Arc<dyn RunStore>, done: &str, interrupted: &str) {
    let host = common::builder(None)
        .store(store.clone())
        .build()
        .await
        .unwrap();
    let runs = store.list_runs().await.unwrap();
    let status = |id: &str| runs.iter().find(|r| r.run_id == id).map(|r| r.status);
    assert_eq!(status(done), Some(RunStatus::Succeeded));
    assert_eq!(status(interrupted), Some(RunStatus::Running));
    assert_eq!(store.load_run(done).await.unwrap().nodes.len(), 2);
    assert!(
        host.interrupted_runs()
            .await
            .unwrap()
            .contains(&interrupted.to_string())
    );
    let resumed = host.prepare_resume(interrupted).await.unwrap();
    let result = host
        .execute(&resumed, &CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(result.status, RunStatus::Succeeded, "{:?}", result.failures);
    assert_eq!(result.outputs["b"]["value"], 12);
}

/// The fixture's run ids: `done interrupted`.
fn fixture_ids(name: &str) -> (String, String) {
    let text = std::fs::read_to_string(fixtures().join(name)).unwrap();
    let mut ids = text.split_whitespace().map(str::to_string);
    (ids.next().unwrap(), ids.next().unwrap())
}

#[tokio::test]
async fn a_redb_store_written_by_an_earlier_build_opens_and_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("weft.redb");
    std::fs::copy(fixtures().join("v1.redb"), &path).unwrap();
    let (done, interrupted) = fixture_ids("v1.redb.ids");
    let store = Arc::new(RedbStore::open(&path).unwrap());
    check_history(store, &done, &interrupted).await;
}

#[tokio::test]
async fn a_postgres_database_written_by_an_earlier_build_migrates_and_resumes() {
    let url = weft_tests::fresh_postgres().await;
    let out = Command::new(pg_tool("psql"))
        .args(["-q", "-v", "ON_ERROR_STOP=1", "-d", &url, "-f"])
        .arg(fixtures().join("v4.sql"))
        .output()
        .expect("psql runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (done, interrupted) = fixture_ids("v4.sql.ids");
    let store = Arc::new(PgStore::connect(&url, 4).await.unwrap());
    check_history(store, &done, &interrupted).await;
}

#[tokio::test]
async fn a_postgres_dump_restores_into_a_fresh_database_and_resumes() {
    let url = weft_tests::fresh_postgres().await;
    let store = Arc::new(PgStore::connect(&url, 4).await.unwrap());
    let (done, interrupted) = write_history(store.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let dump = dir.path().join("weft.dump");
    let out = Command::new(pg_tool("pg_dump"))
        .args(["-Fc", "-d", &url, "-f"])
        .arg(&dump)
        .output()
        .expect("pg_dump runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let fresh = weft_tests::fresh_postgres().await;
    let out = Command::new(pg_tool("pg_restore"))
        .args(["--no-owner", "-d", &fresh])
        .arg(&dump)
        .output()
        .expect("pg_restore runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let restored = Arc::new(PgStore::connect(&fresh, 4).await.unwrap());
    check_history(restored, &done, &interrupted).await;
}

/// The digests run `id` of the store at `path` is pinned to.
fn weft_tests_pins(path: &Path, id: &str) -> Vec<String> {
    let db = redb::Database::create(path).unwrap();
    let tx = redb::ReadableDatabase::begin_read(&db).unwrap();
    let specs = tx
        .open_table(redb::TableDefinition::<&str, &[u8]>::new("run_specs"))
        .unwrap();
    let spec: serde_json::Value =
        serde_json::from_slice(specs.get(id).unwrap().unwrap().value()).unwrap();
    spec["components"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_str().unwrap().to_string())
        .collect()
}

/// Writes the fixtures of this build's formats (run when a format changes,
/// and commit them: `cargo test -p weft-tests --test operations --
/// --ignored write_store_fixtures`, with `tests/postgres.sh` started).
#[tokio::test]
#[ignore]
async fn write_store_fixtures() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("weft.redb");
    let store = Arc::new(RedbStore::open(&path).unwrap());
    let (done, interrupted) = write_history(store.clone()).await;
    drop(store);
    // Only the component the runs are pinned to (not every plugin loaded).
    {
        let pinned = weft_tests_pins(&path, &interrupted);
        let db = redb::Database::create(&path).unwrap();
        let tx = db.begin_write().unwrap();
        {
            let def = redb::TableDefinition::<&str, &[u8]>::new("components");
            let mut table = tx.open_table(def).unwrap();
            table
                .retain(|digest, _| pinned.contains(&digest.to_string()))
                .unwrap();
        }
        tx.commit().unwrap();
    }
    RedbStore::compact_file(&path).unwrap();
    std::fs::copy(&path, fixtures().join("v1.redb")).unwrap();
    std::fs::write(
        fixtures().join("v1.redb.ids"),
        format!("{done} {interrupted}\n"),
    )
    .unwrap();

    let url = weft_tests::fresh_postgres().await;
    let store = Arc::new(PgStore::connect(&url, 4).await.unwrap());
    let (done, interrupted) = write_history(store.clone()).await;
    let pinned: Vec<String> = store
        .load_run(&interrupted)
        .await
        .unwrap()
        .spec
        .components
        .into_values()
        .collect();
    sqlx::query("DELETE FROM weft_components WHERE digest <> ALL($1)")
        .bind(&pinned)
        .execute(store.pool())
        .await
        .unwrap();
    let out = Command::new(pg_tool("pg_dump"))
        .args(["--no-owner", "--no-privileges", "-d", &url, "-f"])
        .arg(fixtures().join("v4.sql"))
        .output()
        .expect("pg_dump runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::write(
        fixtures().join("v4.sql.ids"),
        format!("{done} {interrupted}\n"),
    )
    .unwrap();
}
