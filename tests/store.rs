//! Every store backend passes the conformance suite (`weft_store::testing`):
//! the in-memory store, redb (a real file, reopened to check what survives)
//! and PostgreSQL (a real server); plus what each backend does on its own
//! (format versions, a second process, a failing disk).

use std::sync::Arc;

use serde_json::json;
use weft::events::{NodeStatus, RunStatus};
use weft::store::prelude::*;
use weft::store::{
    Commit, Created, FORMAT_VERSION, MemoryStore, NewRun, PgStore, RedbStore, RunLogError,
    StoreError,
};

use weft_store::testing::{conformance, event, node, put, record};

#[tokio::test]
async fn postgres_store_conforms_and_keeps_everything_across_reconnecting() {
    let url = weft_tests::fresh_postgres().await;
    let store = PgStore::connect(&url, 4).await.unwrap();
    // tests/postgres.sh says whether the server has pgvector: when it does,
    // the store installs and uses it (nearest keys ranked in SQL).
    let pgvector = std::env::var_os("WEFT_TEST_PGVECTOR").is_some();
    assert_eq!(
        store.pgvector(),
        pgvector,
        "pgvector used exactly when installed"
    );
    conformance(Arc::new(store)).await;
    // A second connection (another host) sees everything; migrating again is a no-op.
    let store = PgStore::connect(&url, 4).await.unwrap();
    let loaded = store.load_run("r1").await.unwrap();
    assert_eq!(loaded.run.status, RunStatus::Succeeded);
    assert_eq!(loaded.next_seq, 4);
    // A host whose run another host continued (its lease expired) has its
    // next commit refused as a lost lease, a variant of its own.
    let other = PgStore::connect(&url, 2).await.unwrap();
    let (run, spec) = record("taken", 1);
    store.create_run(NewRun::new(run, spec)).await.unwrap();
    let first = |seq| Commit {
        events: vec![event("taken", seq)],
        ..Commit::default()
    };
    other.commit("taken", first(1)).await.unwrap();
    match store.commit("taken", first(1)).await {
        Err(RunLogError::LostLease { run_id }) => assert_eq!(run_id, "taken"),
        other => panic!("expected a lost lease, got {other:?}"),
    }
    a_new_run_starts_before_its_record_lands(&store, &other).await;
    // A cache far over its `keep_last` is pruned to it in one go (in
    // chunks of at least 1,000).
    let (run, spec) = record("filler", 1);
    store.create_run(NewRun::new(run, spec)).await.unwrap();
    let many = (0..2_500u64).map(|i| put(&format!("f{i}"), "t.many", i, None));
    store
        .commit(
            "filler",
            Commit {
                cache: many.collect(),
                ..Commit::default()
            },
        )
        .await
        .unwrap();
    for i in [2_500u64, 2_501] {
        let cache = vec![put(&format!("f{i}"), "t.many", i, Some(10))];
        let commit = Commit {
            cache,
            ..Commit::default()
        };
        store.commit("filler", commit).await.unwrap();
    }
    let left = store.cache_stats().await.unwrap();
    let many = left.iter().find(|s| s.task_type == "t.many").unwrap();
    assert_eq!(many.entries, 10);
    assert!(store.cache_get("f2491").await.unwrap().is_none());
    assert!(store.cache_get("f2492").await.unwrap().is_some());
    the_run_tables_are_analyzed_as_they_grow(&store).await;
    // A deleted run leaves nothing behind, and a commit to it, even one
    // racing the delete, writes nothing (its rows carry no foreign key: a
    // commit locks its run's row instead).
    let (run, spec) = record("gone", 1);
    store.create_run(NewRun::new(run, spec)).await.unwrap();
    let full = |seq| Commit {
        nodes: vec![node("a", NodeStatus::Completed, Some(json!(seq)))],
        events: vec![event("gone", seq)],
        inputs: vec![weft::store::NodeInput {
            node: "a".into(),
            input: Arc::new(json!({"seq": seq})),
        }],
        ..Commit::default()
    };
    store.commit("gone", full(1)).await.unwrap();
    assert_eq!(
        store.node_input("gone", "a").await.unwrap(),
        Some(json!({"seq": 1}))
    );
    let racing = {
        let other = other.clone();
        tokio::spawn(async move { other.commit("gone", full(2)).await })
    };
    assert_eq!(store.delete_runs(&["gone".to_string()]).await.unwrap(), 1);
    match racing.await.unwrap() {
        Ok(()) | Err(RunLogError::UnknownRun(_)) => {}
        other => panic!("a commit racing a delete: {other:?}"),
    }
    match store.commit("gone", full(3)).await {
        Err(RunLogError::UnknownRun(id)) => assert_eq!(id, "gone"),
        other => panic!("a commit after the delete: {other:?}"),
    }
    for (table, sql) in [
        (
            "weft_nodes",
            "SELECT count(*) FROM weft_nodes WHERE run_id = 'gone'",
        ),
        (
            "weft_node_inputs",
            "SELECT count(*) FROM weft_node_inputs WHERE run_id = 'gone'",
        ),
        (
            "weft_events",
            "SELECT count(*) FROM weft_events WHERE run_id = 'gone'",
        ),
    ] {
        let left: i64 = sqlx::query_scalar(sql)
            .fetch_one(store.pool())
            .await
            .unwrap();
        assert_eq!(left, 0, "{table} keeps nothing of a deleted run");
    }
    // Whoever deletes a run (a host of an older version, by hand) takes
    // its nodes, inputs and events with it.
    let (run, spec) = record("by-hand", 1);
    store.create_run(NewRun::new(run, spec)).await.unwrap();
    let by_hand = Commit {
        nodes: vec![node("a", NodeStatus::Completed, Some(json!(1)))],
        events: vec![event("by-hand", 1)],
        inputs: vec![weft::store::NodeInput {
            node: "a".into(),
            input: Arc::new(json!(1)),
        }],
        ..Commit::default()
    };
    store.commit("by-hand", by_hand).await.unwrap();
    sqlx::query("DELETE FROM weft_runs WHERE run_id = 'by-hand'")
        .execute(store.pool())
        .await
        .unwrap();
    let left: i64 = sqlx::query_scalar(
        "SELECT (SELECT count(*) FROM weft_nodes WHERE run_id = 'by-hand')
              + (SELECT count(*) FROM weft_node_inputs WHERE run_id = 'by-hand')
              + (SELECT count(*) FROM weft_events WHERE run_id = 'by-hand')",
    )
    .fetch_one(store.pool())
    .await
    .unwrap();
    assert_eq!(left, 0, "a run deleted by hand leaves nothing");
    // A database migrated by a newer weft is refused, clearly.
    sqlx::query("INSERT INTO weft_schema (version, applied_ms) VALUES (99, 0)")
        .execute(store.pool())
        .await
        .unwrap();
    let err = PgStore::connect(&url, 2).await.err().unwrap().to_string();
    let supported = weft::store::PG_SCHEMA_VERSION;
    assert!(
        err.contains(&format!(
            "has format version 99; this weft reads up to version {supported}"
        )),
        "{err}"
    );
}

/// A host analyzes the run tables once it has created 1,000 runs (then as
/// many as they held): a plan made while `weft_runs` was nearly empty kept
/// commits reading every run (a backlog of 100,000 drained at half the
/// rate of 10,000).
async fn the_run_tables_are_analyzed_as_they_grow(store: &PgStore) {
    let rows = || async {
        sqlx::query_scalar::<_, f32>("SELECT reltuples FROM pg_class WHERE relname = 'weft_runs'")
            .fetch_one(store.pool())
            .await
            .unwrap()
    };
    let before = rows().await;
    assert!(before < 1_000.0, "{before}");
    let creates = (0..1_000).map(|i| {
        let (run, spec) = record(&format!("many-{i}"), 1);
        store.create_run(NewRun::new(run, spec))
    });
    for created in futures::future::join_all(creates).await {
        created.unwrap();
    }
    for _ in 0..100 {
        if rows().await >= 1_000.0 {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!(
        "weft_runs not analyzed after 1,000 runs: {} rows by its statistics",
        rows().await
    );
}

/// A new run without an idempotency key or a quota starts before its record
/// lands: its lease holds meanwhile, and its first commit, sent before the
/// record is durable, lands after it (`reader` is another host, or the same
/// store).
async fn a_new_run_starts_before_its_record_lands(store: &dyn RunStore, reader: &dyn RunStore) {
    let (run, spec) = record("quick", 1);
    let lease = weft::store::Lease {
        host: "here".into(),
        until_ms: u64::MAX / 2,
    };
    let (created, durable) = store
        .create_run_applied(NewRun::new(run, spec).leased(Some(lease)))
        .await
        .unwrap();
    assert_eq!(created, Created::New);
    let lost = store
        .renew_leases("here", &["quick".to_string()], u64::MAX / 2)
        .await
        .unwrap();
    assert!(lost.is_empty(), "{lost:?}");
    store
        .commit(
            "quick",
            Commit {
                nodes: vec![node("a", NodeStatus::Completed, Some(json!(1)))],
                events: vec![event("quick", 1)],
                ..Commit::default()
            },
        )
        .await
        .unwrap();
    durable.await.unwrap();
    let loaded = reader.load_run("quick").await.unwrap();
    assert_eq!((loaded.nodes.len(), loaded.next_seq), (1, 2));
}

#[tokio::test]
async fn memory_store_conforms() {
    conformance(Arc::new(MemoryStore::new())).await;
}

#[tokio::test]
async fn redb_store_conforms_and_keeps_everything_across_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("weft.redb");
    conformance(Arc::new(RedbStore::open(&path).unwrap())).await;
    // A new store is created under a temporary name and renamed: nothing else is left.
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, vec!["weft.redb"]);
    // Dropped (closed) above; everything committed is still there.
    let store = RedbStore::open(&path).unwrap();
    let loaded = store.load_run("r1").await.unwrap();
    assert_eq!(loaded.run.status, RunStatus::Succeeded);
    assert_eq!(loaded.next_seq, 4);
    assert_eq!(store.list_runs().await.unwrap().len(), 16);
    assert_eq!(store.graph_list().await.unwrap().len(), 2);
    let newest: Vec<String> = store.list_runs().await.unwrap()[..3]
        .iter()
        .map(|r| r.run_id.clone())
        .collect();
    drop(store);

    // A file written before the age indexes existed gets them at open.
    {
        let db = redb::Database::create(&path).unwrap();
        let tx = db.begin_write().unwrap();
        tx.delete_table(redb::TableDefinition::<(u64, &str), ()>::new(
            "runs_by_time",
        ))
        .unwrap();
        tx.delete_table(redb::TableDefinition::<(&str, u64, &str), ()>::new(
            "runs_by_owner",
        ))
        .unwrap();
        tx.open_table(redb::TableDefinition::<&str, u64>::new("meta"))
            .unwrap()
            .remove("age_index")
            .unwrap();
        tx.commit().unwrap();
    }
    let store = RedbStore::open(&path).unwrap();
    let page = store
        .runs_page(&weft::store::RunFilter::default(), None, 3)
        .await
        .unwrap();
    let ids: Vec<String> = page.into_iter().map(|r| r.run_id).collect();
    assert_eq!(ids, newest);
    a_new_run_starts_before_its_record_lands(&store, &store).await;
}

#[test]
fn redb_file_of_a_newer_format_is_refused_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("weft.redb");
    {
        let db = redb::Database::create(&path).unwrap();
        let tx = db.begin_write().unwrap();
        {
            let mut meta = tx
                .open_table(redb::TableDefinition::<&str, u64>::new("meta"))
                .unwrap();
            meta.insert("format_version", FORMAT_VERSION + 1).unwrap();
        }
        tx.commit().unwrap();
    }
    let err = RedbStore::open(&path)
        .err()
        .expect("a newer file is refused");
    assert!(matches!(err, StoreError::NewerFormat { found, .. } if found == FORMAT_VERSION + 1));
    assert!(err.to_string().contains("upgrade weft"), "{err}");
}

#[test]
fn a_second_process_on_the_same_data_directory_is_told_so() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("weft.redb");
    let _first = RedbStore::open(&path).unwrap();
    let err = RedbStore::open(&path).err().expect("the file is locked");
    assert!(matches!(&err, StoreError::InUse { path: p } if p.ends_with("weft.redb")));
    assert!(
        err.to_string()
            .contains("is in use by another weft process"),
        "{err}"
    );
}

/// A file backend that fails every write and sync after its budget is spent:
/// a disk that dies (or power that goes) in the middle of a commit.
#[derive(Debug)]
struct DyingDisk {
    file: redb::backends::FileBackend,
    budget: std::sync::atomic::AtomicI64,
}

impl DyingDisk {
    fn spend(&self) -> std::io::Result<()> {
        if self
            .budget
            .fetch_sub(1, std::sync::atomic::Ordering::SeqCst)
            <= 0
        {
            return Err(std::io::Error::other("injected: the disk is gone"));
        }
        Ok(())
    }
}

impl redb::StorageBackend for DyingDisk {
    fn len(&self) -> std::io::Result<u64> {
        self.file.len()
    }
    fn read(&self, offset: u64, out: &mut [u8]) -> std::io::Result<()> {
        self.file.read(offset, out)
    }
    fn set_len(&self, len: u64) -> std::io::Result<()> {
        self.spend()?;
        self.file.set_len(len)
    }
    fn sync_data(&self) -> std::io::Result<()> {
        self.spend()?;
        self.file.sync_data()
    }
    fn write(&self, offset: u64, data: &[u8]) -> std::io::Result<()> {
        self.spend()?;
        self.file.write(offset, data)
    }
}

/// Fault injection in the style of redb's crash tests: for every point at
/// which the disk can fail during a series of commits, the file reopened
/// afterwards holds every acknowledged commit, and each commit wholly or not at
/// all (a node's state and the event announcing it together).
#[tokio::test]
async fn a_disk_failing_mid_commit_loses_nothing_acknowledged_and_tears_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut failures_seen = 0;
    for budget in 1..200i64 {
        let path = dir.path().join(format!("f{budget}.redb"));
        // An existing store (creating one is atomic: see RedbStore::open).
        drop(RedbStore::open(&path).unwrap());
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .unwrap();
        let disk = DyingDisk {
            file: redb::backends::FileBackend::new(file).unwrap(),
            budget: budget.into(),
        };
        let mut acknowledged = 0u64;
        let mut created = false;
        if let Ok(store) = RedbStore::with_backend(disk, &path) {
            let (run, spec) = record("r", 1);
            // Every other budget, the run starts before its record lands:
            // its commits go out at once, and are acknowledged only if
            // the record is durable too.
            let early = budget % 2 == 1;
            let durable = if early {
                match store.create_run_applied(NewRun::new(run, spec)).await {
                    Ok((_, durable)) => Some(durable),
                    Err(_) => None,
                }
            } else {
                created = store.create_run(NewRun::new(run, spec)).await.is_ok();
                None
            };
            for j in 1..=12u64 {
                if !created && !early {
                    break;
                }
                let commit = Commit {
                    nodes: vec![node(
                        &format!("n{j}"),
                        NodeStatus::Completed,
                        Some(json!({"j": j})),
                    )],
                    events: vec![event("r", j)],
                    ..Commit::default()
                };
                match store.commit("r", commit).await {
                    Ok(()) => acknowledged = j,
                    Err(_) => {
                        failures_seen += 1;
                        break;
                    }
                }
            }
            if let Some(durable) = durable {
                created = durable.await.is_ok();
                assert!(
                    created || acknowledged == 0,
                    "budget {budget}: a commit acknowledged, its run's record not"
                );
            }
        }
        // The process "restarts": the file opens with a healthy disk.
        let store = RedbStore::open(&path)
            .unwrap_or_else(|e| panic!("budget {budget}: cannot reopen: {e}"));
        let Ok(loaded) = store.load_run("r").await else {
            assert!(!created, "budget {budget}: an acknowledged run is gone");
            continue;
        };
        let events: Vec<u64> = store
            .events("r", 0)
            .await
            .unwrap()
            .iter()
            .map(|e| e.seq)
            .collect();
        let stored = events.len() as u64;
        assert!(
            stored >= acknowledged,
            "budget {budget}: {acknowledged} commits acknowledged, {stored} kept"
        );
        assert_eq!(
            events,
            (1..=stored).collect::<Vec<_>>(),
            "budget {budget}: a gap in the event log"
        );
        let mut nodes: Vec<String> = loaded.nodes.iter().map(|n| n.node.clone()).collect();
        nodes.sort_by_key(|n| n[1..].parse::<u64>().unwrap());
        let expected: Vec<String> = (1..=stored).map(|j| format!("n{j}")).collect();
        assert_eq!(
            nodes, expected,
            "budget {budget}: a commit was torn (events and node states disagree)"
        );
    }
    assert!(
        failures_seen > 50,
        "only {failures_seen} injected failures hit a commit"
    );
}

/// Many runs committing at once share fsyncs (redb) or statements
/// (PostgreSQL), yet each commit stands alone: one refused (an unknown
/// run, or on PostgreSQL an event another host already wrote) takes no other
/// with it, and every acknowledged one is there when the store is opened
/// again.
async fn commits_of_many_runs_at_once_each_stand_alone(store: Arc<dyn RunStore>) {
    // Created at once, in pairs; every other pair with one idempotency key
    // (racing): one of each such pair is recorded, the other is answered
    // with it.
    let mut creators = tokio::task::JoinSet::new();
    for r in 0..64u64 {
        let store = store.clone();
        creators.spawn(async move {
            let create = |id: String| {
                let (mut run, spec) = record(&id, r);
                run.idempotency_key = (r % 2 == 0).then(|| format!("k{r}"));
                store.create_run(NewRun::new(run, spec))
            };
            let (a, b) = tokio::join!(create(format!("r{r}")), create(format!("twin{r}")));
            (r, [a.unwrap(), b.unwrap()])
        });
    }
    while let Some(joined) = creators.join_next().await {
        match joined.unwrap() {
            (r, [Created::New, Created::New]) if r % 2 == 1 => {}
            (r, [Created::New, Created::Existing(run)]) if r % 2 == 0 => {
                assert_eq!(run.run_id, format!("r{r}"))
            }
            (r, [Created::Existing(run), Created::New]) if r % 2 == 0 => {
                // The twin won: r{r} is not recorded, so make it so.
                assert_eq!(run.run_id, format!("twin{r}"));
                let (run, spec) = record(&format!("r{r}"), r);
                store.create_run(NewRun::new(run, spec)).await.unwrap();
            }
            (r, other) => panic!("r{r}: {other:?}"),
        }
    }
    let mut writers = tokio::task::JoinSet::new();
    for r in 0..64u64 {
        for j in 1..=8u64 {
            let store = store.clone();
            // Every 8th writer names a run that does not exist.
            let id = if r % 8 == 7 {
                format!("ghost{r}")
            } else {
                format!("r{r}")
            };
            writers.spawn(async move {
                let commit = Commit {
                    nodes: vec![node(
                        &format!("n{j}"),
                        NodeStatus::Completed,
                        Some(json!({"j": j})),
                    )],
                    events: vec![event(&id, j)],
                    ..Commit::default()
                };
                let result = store.commit(&id, commit).await;
                (id, result)
            });
        }
    }
    while let Some(joined) = writers.join_next().await {
        let (id, result) = joined.unwrap();
        match (id.starts_with("ghost"), result) {
            (false, Ok(())) => {}
            (true, Err(RunLogError::UnknownRun(unknown))) => assert_eq!(unknown, id),
            (_, other) => panic!("{id}: {other:?}"),
        }
    }
}

/// What [`commits_of_many_runs_at_once_each_stand_alone`] acknowledged.
async fn all_kept(store: &dyn RunStore) {
    for r in (0..64u64).filter(|r| r % 8 != 7) {
        let loaded = store.load_run(&format!("r{r}")).await.unwrap();
        assert_eq!(
            loaded.nodes.len(),
            8,
            "r{r}: every acknowledged commit kept"
        );
        assert_eq!(loaded.next_seq, 9, "r{r}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redb_commits_of_many_runs_at_once_each_stand_alone_and_last() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("weft.redb");
    commits_of_many_runs_at_once_each_stand_alone(Arc::new(RedbStore::open(&path).unwrap())).await;
    all_kept(&RedbStore::open(&path).unwrap()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_commits_of_many_runs_at_once_each_stand_alone_and_last() {
    let url = weft_tests::fresh_postgres().await;
    let store = Arc::new(PgStore::connect(&url, 8).await.unwrap());
    commits_of_many_runs_at_once_each_stand_alone(store.clone()).await;
    all_kept(&PgStore::connect(&url, 2).await.unwrap()).await;
    // Events another host already wrote: that run's commit alone is refused
    // as a lost lease, among many at once.
    let mut writers = tokio::task::JoinSet::new();
    for r in 0..16u64 {
        let store = store.clone();
        let id = format!("r{r}");
        let seq = if r == 5 { 8 } else { 9 };
        writers.spawn(async move {
            let commit = Commit {
                events: vec![event(&id, seq)],
                ..Commit::default()
            };
            (r, store.commit(&id, commit).await)
        });
    }
    while let Some(joined) = writers.join_next().await {
        match joined.unwrap() {
            (5, Err(RunLogError::LostLease { run_id })) => assert_eq!(run_id, "r5"),
            (r, Ok(())) if r != 5 => {}
            (r, other) => panic!("r{r}: {other:?}"),
        }
    }
    let next = |id: &'static str| {
        let store = store.clone();
        async move { store.load_run(id).await.unwrap().next_seq }
    };
    assert_eq!(next("r0").await, 10, "the others landed");
    assert_eq!(next("r5").await, 9, "the refused one did not");
}

/// A backup taken while the store is in use holds what was committed when
/// it began; compaction and restore need the file closed.
#[tokio::test]
async fn redb_backups_are_consistent_copies_that_restore() {
    use weft_store::testing::record;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("weft.redb");
    let store = RedbStore::open(&path).unwrap();
    let digest = "d".repeat(64);
    store
        .component_put(&digest, b"\0asm"[..].into())
        .await
        .unwrap();
    for (id, created) in [("a", 1), ("b", 2)] {
        let (run, mut spec) = record(id, created);
        spec.components.insert("t@1".into(), digest.clone());
        store.create_run(NewRun::new(run, spec)).await.unwrap();
    }
    let backup = dir.path().join("backup.redb");
    store.backup_to(&backup).await.unwrap();
    let (run, spec) = record("c", 3);
    store.create_run(NewRun::new(run, spec)).await.unwrap();
    assert!(store.backup_to(&backup).await.is_err(), "never over a file");
    // Closed: the file in place is held by nobody.
    let err = RedbStore::compact_file(&path).unwrap_err().to_string();
    assert!(err.contains("in use"), "{err}");
    drop(store);
    let copy = RedbStore::open(&backup).unwrap();
    let ids: Vec<String> = copy
        .list_runs()
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.run_id)
        .collect();
    assert_eq!(ids, ["b", "a"]);
    // Every table came along: the copy knows its runs need the component.
    assert_eq!(
        copy.component_get(&digest).await.unwrap().unwrap(),
        b"\0asm"
    );
    assert!(copy.components_unused().await.unwrap().is_empty());
    drop(copy);
    RedbStore::restore_file(&backup, &path).unwrap();
    let restored = RedbStore::open(&path).unwrap();
    assert_eq!(restored.list_runs().await.unwrap().len(), 2);
    drop(restored);
    assert!(dir.path().join("weft.redb.before-restore").exists());
    let (before, after) = RedbStore::compact_file(&path).unwrap();
    assert!(after <= before, "{before} → {after}");
}
