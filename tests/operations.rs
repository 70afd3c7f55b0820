//! What an operator keeps: stores written by an earlier build open, list
//! their history and resume their interrupted runs (the fixtures in
//! `tests/fixtures/stores/`, written by `write_store_fixtures`); a
//! PostgreSQL dump restores into a fresh database and its runs resume.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use serde_json::json;
use tokio_util::sync::CancellationToken;
use weft::events::RunStatus;
use weft::graph::Graph;
use weft::store::prelude::*;
use weft::store::{PgStore, RedbStore, RunFilter};

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

/// What a fixture holds (its `FIXTURE.ids`: `done interrupted [schedule]`):
/// a run that succeeded, one interrupted before it ran, and (from
/// PostgreSQL schema 6 and redb files written since) a schedule of user
/// `fixture`.
struct History {
    done: String,
    interrupted: String,
    schedule: Option<String>,
}

/// The schedule a fixture holds.
fn fixture_schedule(name: &str) -> weft::store::Schedule {
    weft::store::Schedule {
        owner: "fixture".into(),
        name: name.into(),
        graph: "chain".into(),
        version: Some(1),
        input: json!({"value": 1}),
        cadence: weft::schedule::Cadence::Cron {
            pattern: "0 3 * * *".into(),
            time_zone: "Europe/Paris".into(),
        },
        catch_up: weft::schedule::CatchUp::All,
        paused: false,
        created_ms: 1_764_720_000_000,
        next_ms: Some(1_764_727_200_000),
        last: None,
    }
}

/// Write the history every fixture holds.
async fn write_history(store: Arc<dyn RunStore>) -> History {
    store
        .schedule_put(&fixture_schedule("nightly"))
        .await
        .unwrap();
    let host = common::builder(None).store(store).build().await.unwrap();
    let done = host.run(&chain(), json!({"value": 1})).await.unwrap();
    assert_eq!(done.status, RunStatus::Succeeded);
    let interrupted = host
        .prepare(&chain(), "g.json", json!({"value": 10}))
        .await
        .unwrap();
    History {
        done: done.run_id,
        interrupted: interrupted.run_id.clone(),
        schedule: Some("nightly".into()),
    }
}

/// The history is there, and the interrupted run resumes to its end.
async fn check_history(store: Arc<dyn RunStore>, history: &History) {
    let (done, interrupted) = (history.done.as_str(), history.interrupted.as_str());
    if let Some(name) = &history.schedule {
        let kept = store.schedule_get("fixture", name).await.unwrap();
        assert_eq!(kept, Some(fixture_schedule(name)));
    }
    let host = common::builder(None)
        .store(store.clone())
        .build()
        .await
        .unwrap();
    // Its pins survived the upgrade: the component it needs is not unused.
    let pinned = store.load_run(interrupted).await.unwrap().spec.components;
    let unused = store.components_unused().await.unwrap();
    assert!(!pinned.is_empty());
    assert!(pinned.values().all(|d| !unused.contains(d)), "{unused:?}");
    // And it is known as kept (from format 4 on, without reading it): a
    // put under its digest changes nothing.
    for digest in pinned.values() {
        let kept = store.component_get(digest).await.unwrap();
        assert!(kept.is_some(), "{digest} is kept");
        store
            .component_put(digest, b"other"[..].into())
            .await
            .unwrap();
        assert_eq!(store.component_get(digest).await.unwrap(), kept);
    }
    let runs = store.list_runs().await.unwrap();
    let status = |id: &str| runs.iter().find(|r| r.run_id == id).map(|r| r.status);
    assert_eq!(status(done), Some(RunStatus::Succeeded));
    assert_eq!(status(interrupted), Some(RunStatus::Running));
    assert_eq!(store.load_run(done).await.unwrap().nodes.len(), 2);
    // A page of succeeded runs finds it (on redb through the index of
    // ended runs by state, built when a file of format 4 or older opens).
    let succeeded = RunFilter {
        status: Some(RunStatus::Succeeded),
        ..RunFilter::default()
    };
    let page = store.runs_page(&succeeded, None, 10).await.unwrap();
    assert_eq!(page.iter().map(|r| &r.run_id).collect::<Vec<_>>(), [done]);
    assert!(
        host.interrupted_runs()
            .await
            .unwrap()
            .contains(&interrupted.to_string())
    );
    // A host claiming runs finds it (on redb through the index of running
    // runs by age, built when an older file opens).
    let later = weft::clock::now_ms() + 3_600_000;
    let claimed = store
        .claim_runs("upgraded", later, later + 60_000, 10)
        .await
        .unwrap();
    assert_eq!(claimed, vec![interrupted.to_string()]);
    let resumed = host.prepare_resume(interrupted).await.unwrap();
    let result = host
        .execute(&resumed, &CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(result.status, RunStatus::Succeeded, "{:?}", result.failures);
    assert_eq!(result.outputs["b"]["value"], 12);
    let page = store.runs_page(&succeeded, None, 10).await.unwrap();
    let ids: Vec<&str> = page.iter().map(|r| r.run_id.as_str()).collect();
    assert_eq!(ids, [interrupted, done]);
}

/// A fixture's history, from its `FIXTURE.ids`.
fn fixture_ids(fixture: &Path) -> History {
    let mut name = fixture.as_os_str().to_owned();
    name.push(".ids");
    let text = std::fs::read_to_string(&name).unwrap();
    let mut ids = text.split_whitespace().map(str::to_string);
    History {
        done: ids.next().unwrap(),
        interrupted: ids.next().unwrap(),
        schedule: ids.next(),
    }
}

/// Write `FIXTURE.ids` for `history`.
fn write_ids(name: &str, history: &History) {
    let mut ids = format!("{} {}", history.done, history.interrupted);
    if let Some(schedule) = &history.schedule {
        ids.push_str(&format!(" {schedule}"));
    }
    std::fs::write(fixtures().join(format!("{name}.ids")), ids + "\n").unwrap();
}

/// The fixtures of one backend (`ext`: "redb" or "sql"), oldest first.
fn fixtures_of(ext: &str) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(fixtures())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == ext))
        .collect();
    found.sort();
    assert!(!found.is_empty(), "no {ext} fixtures");
    found
}

#[tokio::test]
async fn redb_stores_written_by_earlier_builds_open_and_resume() {
    for fixture in fixtures_of("redb") {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("weft.redb");
        std::fs::copy(&fixture, &path).unwrap();
        let store = Arc::new(RedbStore::open(&path).unwrap());
        check_history(store, &fixture_ids(&fixture)).await;
    }
}

#[tokio::test]
async fn postgres_databases_written_by_earlier_builds_migrate_and_resume() {
    for fixture in fixtures_of("sql") {
        let url = weft_tests::fresh_postgres().await;
        let out = Command::new(pg_tool("psql"))
            .args(["-q", "-v", "ON_ERROR_STOP=1", "-d", &url, "-f"])
            .arg(&fixture)
            .output()
            .expect("psql runs");
        assert!(
            out.status.success(),
            "{}: {}",
            fixture.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        let store = Arc::new(PgStore::connect(&url, 4).await.unwrap());
        check_history(store, &fixture_ids(&fixture)).await;
    }
}

#[tokio::test]
async fn a_postgres_dump_restores_into_a_fresh_database_and_resumes() {
    let url = weft_tests::fresh_postgres().await;
    let store = Arc::new(PgStore::connect(&url, 4).await.unwrap());
    let history = write_history(store.clone()).await;
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
    check_history(restored, &history).await;
}

/// Delete the components no stored run is pinned to (a fixture keeps only
/// those its runs need, not every plugin loaded).
async fn keep_only_pinned(store: &dyn RunStore) {
    for digest in store.components_unused().await.unwrap() {
        assert!(store.component_delete_unused(&digest).await.unwrap());
    }
}

/// Writes the fixtures of this build's formats (run when a format changes,
/// and commit them beside the older ones: `cargo test -p weft-tests --test
/// operations -- --ignored write_store_fixtures`, with `tests/postgres.sh`
/// started).
#[tokio::test]
#[ignore]
async fn write_store_fixtures() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("weft.redb");
    let store = Arc::new(RedbStore::open(&path).unwrap());
    let history = write_history(store.clone()).await;
    keep_only_pinned(store.as_ref()).await;
    drop(store);
    RedbStore::compact_file(&path).unwrap();
    let name = format!("v{}.redb", weft::store::FORMAT_VERSION);
    std::fs::copy(&path, fixtures().join(&name)).unwrap();
    write_ids(&name, &history);

    let url = weft_tests::fresh_postgres().await;
    let store = Arc::new(PgStore::connect(&url, 4).await.unwrap());
    let history = write_history(store.clone()).await;
    keep_only_pinned(store.as_ref()).await;
    let name = format!("v{}.sql", weft::store::PG_SCHEMA_VERSION);
    let out = Command::new(pg_tool("pg_dump"))
        .args(["--no-owner", "--no-privileges", "-d", &url, "-f"])
        .arg(fixtures().join(&name))
        .output()
        .expect("pg_dump runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    write_ids(&name, &history);
}
