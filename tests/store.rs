//! The storage conformance suite: every [`RunStore`] backend must pass the same
//! tests. Run against the in-memory store and redb (a real file, reopened to
//! check what survives).

use std::sync::Arc;

use serde_json::json;
use weft::cache::CacheEntry;
use weft::events::{Event, EventKind, NodeStatus, RunStatus};
use weft::graph::Graph;
use weft::store::{
    CachePut, Commit, Created, FORMAT_VERSION, MemoryStore, NodeRecord, PgStore, RedbStore,
    RunFilter, RunRecord, RunSpec, RunStore, SlotRequest, StoreError, TaskOffer,
};

fn record(id: &str, created_ms: u64) -> (RunRecord, RunSpec) {
    let graph = Graph::builder().task("a", "math.add-one").build();
    (
        RunRecord {
            created_ms,
            updated_ms: created_ms,
            ..RunRecord::new(id, "g.json")
        },
        RunSpec {
            graph,
            origin: "g.json".into(),
            input: json!({"value": 1}),
        },
    )
}

fn event(run: &str, seq: u64) -> Event {
    Event {
        run_id: run.into(),
        seq,
        time_ms: 1,
        kind: EventKind::Log {
            node: "a".into(),
            level: weft::events::LogLevel::Info,
            message: format!("line {seq}"),
        },
    }
}

fn node(id: &str, status: NodeStatus, output: Option<serde_json::Value>) -> NodeRecord {
    NodeRecord {
        node: id.into(),
        status,
        attempt: 1,
        output,
        error: None,
        retry_at_ms: None,
    }
}

fn put(key: &str, task_type: &str, created_ms: u64, keep_last: Option<usize>) -> CachePut {
    CachePut {
        key: key.into(),
        entry: CacheEntry {
            task_type: task_type.into(),
            version: "1".into(),
            output: json!({"k": key}),
            created_ms,
        },
        keep_last,
    }
}

/// The behaviour every backend must have.
async fn conformance(store: Arc<dyn RunStore>) {
    // Runs: create, list newest first, unknown ids are typed errors.
    let (r1, s1) = record("r1", 10);
    let (r2, s2) = record("r2", 20);
    store.create_run(r1, s1.clone()).await.unwrap();
    store.create_run(r2, s2).await.unwrap();
    let listed: Vec<String> = store
        .list_runs()
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.run_id)
        .collect();
    assert_eq!(listed, vec!["r2", "r1"]);
    assert!(
        matches!(store.load_run("nope").await, Err(StoreError::UnknownRun(id)) if id == "nope")
    );
    let orphan = Commit {
        events: vec![event("nope", 1)],
        ..Commit::default()
    };
    assert!(matches!(
        store.commit("nope", orphan).await,
        Err(StoreError::UnknownRun(_))
    ));

    // A new run has no nodes and starts its events at 1.
    let loaded = store.load_run("r1").await.unwrap();
    assert_eq!(loaded.spec, s1);
    assert!(loaded.nodes.is_empty());
    assert_eq!(loaded.next_seq, 1);

    // Commits: node states replace earlier ones, events append, status changes.
    store
        .commit(
            "r1",
            Commit {
                nodes: vec![node("a", NodeStatus::Running, None)],
                events: vec![event("r1", 1), event("r1", 2)],
                ..Commit::default()
            },
        )
        .await
        .unwrap();
    store
        .commit(
            "r1",
            Commit {
                nodes: vec![node("a", NodeStatus::Completed, Some(json!({"value": 2})))],
                status: Some(RunStatus::Succeeded),
                events: vec![event("r1", 3)],
                cache: vec![],
            },
        )
        .await
        .unwrap();
    // One commit may carry several states of a node (group commit): the last wins.
    let (dup, spec) = record("dup", 5);
    store.create_run(dup, spec).await.unwrap();
    store
        .commit(
            "dup",
            Commit {
                nodes: vec![
                    node("x", NodeStatus::Running, None),
                    node("x", NodeStatus::Completed, Some(json!({"v": 1}))),
                ],
                status: Some(RunStatus::Succeeded),
                ..Commit::default()
            },
        )
        .await
        .unwrap();
    let x = store.load_run("dup").await.unwrap();
    let x = x.nodes.iter().find(|n| n.node == "x").unwrap();
    assert_eq!(
        (x.status, x.output.clone()),
        (NodeStatus::Completed, Some(json!({"v": 1})))
    );
    // A node waiting for a retry keeps its due time.
    let waiting = NodeRecord {
        retry_at_ms: Some(123_456),
        error: Some("busy".into()),
        ..node("b", NodeStatus::Retrying, None)
    };
    store
        .commit(
            "r2",
            Commit {
                nodes: vec![waiting.clone()],
                ..Commit::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(store.load_run("r2").await.unwrap().nodes, vec![waiting]);

    let loaded = store.load_run("r1").await.unwrap();
    assert_eq!(loaded.run.status, RunStatus::Succeeded);
    assert_eq!(
        loaded.nodes,
        vec![node("a", NodeStatus::Completed, Some(json!({"value": 2})))]
    );
    assert_eq!(loaded.next_seq, 4);
    let seqs = |events: Vec<Event>| events.iter().map(|e| e.seq).collect::<Vec<_>>();
    assert_eq!(seqs(store.events("r1", 0).await.unwrap()), vec![1, 2, 3]);
    assert_eq!(seqs(store.events("r1", 2).await.unwrap()), vec![3]);
    assert!(store.events("r1", 3).await.unwrap().is_empty());
    // Runs do not see each other's nodes or events.
    assert!(store.events("r2", 0).await.unwrap().is_empty());
    assert!(
        store
            .load_run("r2")
            .await
            .unwrap()
            .nodes
            .iter()
            .all(|n| n.node != "a")
    );

    // The output cache: put in a commit, get, keep-last per type, stats, clear.
    let cache = vec![
        put("k1", "t.a", 1, Some(2)),
        put("k2", "t.a", 2, Some(2)),
        put("k3", "t.a", 3, Some(2)),
        put("k4", "t.b", 4, None),
    ];
    store
        .commit(
            "r2",
            Commit {
                cache,
                ..Commit::default()
            },
        )
        .await
        .unwrap();
    assert!(
        store.cache_get("k1").await.unwrap().is_none(),
        "the oldest t.a entry beyond keep_last 2 is gone"
    );
    assert_eq!(
        store.cache_get("k3").await.unwrap().unwrap().output,
        json!({"k": "k3"})
    );
    // Putting the same key again replaces it.
    store
        .commit(
            "r2",
            Commit {
                cache: vec![put("k4", "t.b", 5, None)],
                ..Commit::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(store.cache_get("k4").await.unwrap().unwrap().created_ms, 5);
    let stats = store.cache_stats().await.unwrap();
    let entries: Vec<(String, u64)> = stats
        .iter()
        .map(|s| (s.task_type.clone(), s.entries))
        .collect();
    assert_eq!(
        entries,
        vec![("t.a".to_string(), 2), ("t.b".to_string(), 1)]
    );
    assert!(stats.iter().all(|s| s.bytes > 0));
    assert_eq!(store.cache_clear(Some("t.a")).await.unwrap(), 2);
    assert!(store.cache_get("k2").await.unwrap().is_none());
    assert!(store.cache_get("k4").await.unwrap().is_some());
    // Many lookups at once (a backend may coalesce them): each gets its own
    // answer, repeated keys included.
    let keys: Vec<String> = (0..60)
        .map(|i| match i % 3 {
            0 => "k4".to_string(),
            _ => format!("absent-{i}"),
        })
        .collect();
    let found = futures::future::join_all(keys.iter().map(|k| store.cache_get(k))).await;
    for (k, f) in keys.iter().zip(found) {
        assert_eq!(f.unwrap().is_some(), k == "k4", "{k}");
    }
    assert_eq!(store.cache_clear(None).await.unwrap(), 1);
    assert!(store.cache_stats().await.unwrap().is_empty());

    // Rate limiter state: starts in a window (several per ms counted), old
    // starts forgotten, pauses only move later, ids independent.
    let take = |at| store.rate_acquire("q/k", at, 500, u32::MAX);
    assert_eq!(take(1_000).await.unwrap(), None);
    assert_eq!(take(1_000).await.unwrap(), None);
    assert_eq!(take(1_300).await.unwrap(), None);
    assert_eq!(
        store.rate_state("q/k", 900).await.unwrap().starts,
        vec![1_000, 1_000, 1_300]
    );
    assert_eq!(
        store.rate_state("q/k", 1_100).await.unwrap().starts,
        vec![1_300]
    );
    assert_eq!(take(1_700).await.unwrap(), None);
    assert_eq!(
        store.rate_state("q/k", 0).await.unwrap().starts,
        vec![1_300, 1_700],
        "starts before 1200 are forgotten"
    );
    // Admission is checked and recorded in one step: 2 per 500 ms.
    let two = |at| store.rate_acquire("q/two", at, 500, 2);
    assert_eq!(two(2_000).await.unwrap(), None);
    assert_eq!(two(2_100).await.unwrap(), None);
    assert_eq!(two(2_200).await.unwrap(), Some(300), "full until 2500");
    assert_eq!(
        two(2_501).await.unwrap(),
        None,
        "the start at 2000 left the window"
    );
    assert_eq!(
        store.rate_state("q/two", 0).await.unwrap().starts,
        vec![2_100, 2_501]
    );
    store.rate_pause("q/k", 5_000).await.unwrap();
    store.rate_pause("q/k", 4_000).await.unwrap();
    assert_eq!(
        store.rate_state("q/k", 0).await.unwrap().paused_until_ms,
        5_000
    );
    assert_eq!(
        store
            .rate_acquire("q/k", 4_500, 500, u32::MAX)
            .await
            .unwrap(),
        Some(500),
        "paused until 5000"
    );
    let other = store.rate_state("q/other", 0).await.unwrap();
    assert!(other.starts.is_empty() && other.paused_until_ms == 0);

    // Idempotency keys: unique per owner; the second submission finds the first run.
    let keyed = |id: &str, owner: &str| {
        let (mut r, s) = record(id, 30);
        r.owner = Some(owner.into());
        r.idempotency_key = Some("k1".into());
        (r, s)
    };
    let (r, s) = keyed("i1", "alice");
    assert_eq!(store.create_run(r, s).await.unwrap(), Created::New);
    let (r, s) = keyed("i2", "alice");
    match store.create_run(r, s).await.unwrap() {
        Created::Existing(existing) => assert_eq!(existing.run_id, "i1"),
        other => panic!("a repeated idempotency key gave {other:?}"),
    }
    assert!(matches!(
        store.load_run("i2").await,
        Err(StoreError::UnknownRun(_))
    ));
    let (r, s) = keyed("i3", "bob");
    assert_eq!(
        store.create_run(r, s).await.unwrap(),
        Created::New,
        "keys are per owner"
    );

    // Saved graphs: versions count up, the newest is the default, a delete
    // removes every version but never lets a version number be reused.
    let g1 = Graph::builder().task("a", "math.add-one").build();
    let g2 = Graph::builder().task("b", "math.add-one").build();
    assert_eq!(store.graph_get("g", None).await.unwrap(), None);
    let v1 = store
        .graph_put("g", g1.clone(), Some("alice".into()))
        .await
        .unwrap();
    let v2 = store.graph_put("g", g2.clone(), None).await.unwrap();
    assert_eq!((v1.version, v2.version), (1, 2));
    store.graph_put("other", g1.clone(), None).await.unwrap();
    assert_eq!(store.graph_get("g", None).await.unwrap().unwrap().graph, g2);
    let first = store.graph_get("g", Some(1)).await.unwrap().unwrap();
    assert_eq!(
        (first.graph, first.owner.as_deref()),
        (g1.clone(), Some("alice"))
    );
    assert_eq!(store.graph_get("g", Some(9)).await.unwrap(), None);
    let listed: Vec<(String, u32)> = store
        .graph_list()
        .await
        .unwrap()
        .into_iter()
        .map(|g| (g.name, g.version))
        .collect();
    assert_eq!(listed, vec![("g".to_string(), 2), ("other".to_string(), 1)]);
    assert!(store.graph_delete("g").await.unwrap());
    assert!(!store.graph_delete("g").await.unwrap());
    assert_eq!(store.graph_get("g", Some(1)).await.unwrap(), None);
    assert_eq!(store.graph_put("g", g1, None).await.unwrap().version, 3);

    // Leases: one host at a time executes a running run; an expired lease can
    // be claimed by another host (stale-run recovery), oldest run first.
    let (l1, spec) = record("l1", 40);
    store.create_run(l1, spec).await.unwrap();
    assert!(store.lease_run("l1", "A", 1_000, 2_000).await.unwrap());
    assert!(!store.lease_run("l1", "B", 1_500, 2_500).await.unwrap());
    assert!(
        store.lease_run("l1", "A", 1_500, 2_600).await.unwrap(),
        "a holder renews"
    );
    assert!(
        !store.lease_run("r1", "A", 1_500, 2_600).await.unwrap(),
        "r1 has ended"
    );
    assert_eq!(
        store
            .renew_leases("A", &["l1".into(), "r2".into()], 3_000)
            .await
            .unwrap(),
        vec!["r2".to_string()]
    );
    let mut claimed = Vec::new();
    while let Some(id) = store.claim_run("B", 2_000, 9_000).await.unwrap() {
        claimed.push(id);
    }
    assert_eq!(
        claimed,
        vec!["r2", "i1", "i3"],
        "unleased running runs, oldest first"
    );
    assert_eq!(
        store.claim_run("B", 2_500, 9_000).await.unwrap(),
        None,
        "A holds l1 until 3000"
    );
    assert_eq!(
        store.claim_run("C", 3_500, 9_000).await.unwrap().as_deref(),
        Some("l1"),
        "A's lease expired"
    );
    store.release_run("l1", "A").await.unwrap();
    assert!(
        !store.lease_run("l1", "A", 3_600, 9_000).await.unwrap(),
        "A's release of C's lease did nothing"
    );
    store.release_run("l1", "C").await.unwrap();
    assert!(store.lease_run("l1", "A", 3_600, 9_000).await.unwrap());

    // The concurrent-runs quota: checked with the insert, per owner.
    let quota_run = |id: &str, owner: &str, key: Option<&str>| {
        let (mut run, spec) = record(id, 50);
        run.owner = Some(owner.into());
        run.idempotency_key = key.map(str::to_string);
        run.max_running = Some(2);
        (run, spec)
    };
    for id in ["q1", "q2"] {
        let (run, spec) = quota_run(id, "u", Some(id));
        assert_eq!(store.create_run(run, spec).await.unwrap(), Created::New);
    }
    let (run, spec) = quota_run("q3", "u", Some("q3"));
    assert_eq!(
        store.create_run(run, spec).await.unwrap(),
        Created::TooManyRunning { running: 2 }
    );
    let (run, spec) = quota_run("q3", "u", Some("q1"));
    assert!(
        matches!(store.create_run(run, spec).await.unwrap(), Created::Existing(r) if r.run_id == "q1"),
        "a repeated submission is answered, not refused"
    );
    let (run, spec) = quota_run("v1", "v", None);
    assert_eq!(store.create_run(run, spec).await.unwrap(), Created::New);
    let finished = Commit {
        status: Some(RunStatus::Succeeded),
        ..Commit::default()
    };
    store.commit("q1", finished).await.unwrap();
    let (run, spec) = quota_run("q3", "u", Some("q3"));
    assert_eq!(
        store.create_run(run, spec).await.unwrap(),
        Created::New,
        "q1 ended: room for one more"
    );

    task_offers(store.as_ref()).await;
    concurrency_slots(store.as_ref()).await;
    pages_of_runs(store.as_ref()).await;
}

/// Listing runs by page, newest first, with filters.
async fn pages_of_runs(store: &dyn RunStore) {
    for (id, created, owner) in [
        ("p1", 100, Some("pager")),
        ("p2", 101, Some("pager")),
        ("p3", 102, Some("pager")),
        ("p4", 103, Some("pager")),
        ("p5", 104, Some("pager")),
        ("p0", 150, None),
    ] {
        let (mut run, spec) = record(id, created);
        run.owner = owner.map(str::to_string);
        if id == "p4" {
            run.graph_name = Some("saved".into());
        }
        store.create_run(run, spec).await.unwrap();
    }
    let done = Commit {
        status: Some(RunStatus::Succeeded),
        ..Commit::default()
    };
    store.commit("p2", done).await.unwrap();
    let ids = |runs: Vec<RunRecord>| runs.into_iter().map(|r| r.run_id).collect::<Vec<_>>();
    let pager = RunFilter {
        owner: Some("pager".into()),
        ..RunFilter::default()
    };
    let page = |filter: RunFilter, after: Option<&'static str>, limit| async move {
        ids(store.runs_page(&filter, after, limit).await.unwrap())
    };
    assert_eq!(
        page(pager.clone(), None, 10).await,
        ["p5", "p4", "p3", "p2", "p1"]
    );
    assert_eq!(page(pager.clone(), None, 2).await, ["p5", "p4"]);
    assert_eq!(page(pager.clone(), Some("p4"), 2).await, ["p3", "p2"]);
    assert_eq!(page(pager.clone(), Some("p2"), 2).await, ["p1"]);
    assert!(page(pager.clone(), Some("nope"), 2).await.is_empty());
    let with_unowned = RunFilter {
        with_unowned: true,
        since_ms: Some(100),
        ..pager.clone()
    };
    assert_eq!(page(with_unowned, None, 3).await, ["p0", "p5", "p4"]);
    let succeeded = RunFilter {
        status: Some(RunStatus::Succeeded),
        ..pager.clone()
    };
    assert_eq!(page(succeeded, None, 10).await, ["p2"]);
    let saved = RunFilter {
        graph: Some("saved".into()),
        ..pager.clone()
    };
    assert_eq!(page(saved, None, 10).await, ["p4"]);
    let by_origin = RunFilter {
        graph: Some("g.json".into()),
        since_ms: Some(103),
        ..pager
    };
    assert_eq!(page(by_origin, None, 10).await, ["p5", "p4"]);
}

/// Concurrency slots: at most `max` held per id, by all holders together;
/// released or expired slots are free again; a heartbeat keeps a host's.
async fn concurrency_slots(store: &dyn RunStore) {
    let slot = |id: &'static str, token: &'static str, host: &'static str, now: u64| SlotRequest {
        id,
        token,
        host,
        max: 2,
        now_ms: now,
        until_ms: now + 1_000,
    };
    assert!(store.slot_acquire(slot("q", "a1", "A", 0)).await.unwrap());
    assert!(store.slot_acquire(slot("q", "b1", "B", 0)).await.unwrap());
    assert!(
        !store.slot_acquire(slot("q", "b2", "B", 10)).await.unwrap(),
        "two are held"
    );
    assert!(
        store
            .slot_acquire(slot("other", "b2", "B", 10))
            .await
            .unwrap(),
        "each id has its own slots"
    );
    store.slot_release("q", "b1").await.unwrap();
    assert!(store.slot_acquire(slot("q", "b3", "B", 20)).await.unwrap());
    // A renews (until 5000); B does not: its slot expires at 1020.
    store
        .slot_renew("A", &["a1".to_string()], 5_000)
        .await
        .unwrap();
    assert!(
        store
            .slot_acquire(slot("q", "c1", "C", 2_000))
            .await
            .unwrap()
    );
    assert!(
        !store
            .slot_acquire(slot("q", "c2", "C", 2_000))
            .await
            .unwrap(),
        "A's renewed slot and C's are held"
    );
}

fn offer(key: &str, run: &str, offered_ms: u64) -> TaskOffer {
    TaskOffer {
        key: key.into(),
        run_id: run.into(),
        node: key.into(),
        attempt: 1,
        task_type: "math.add-one@1".into(),
        input: json!({"value": 1}),
        timeout_ms: 1_000,
        offered_ms,
    }
}

/// Task offers: one claim at a time, oldest first, only by hosts that have the
/// task type; a claim is kept by heartbeats and lost when it expires; only the
/// holder records a result; a result is taken once; withdrawn offers are gone.
async fn task_offers(store: &dyn RunStore) {
    let types = vec!["math.add-one@1".to_string()];
    let keys = |k: &[&str]| k.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    store.task_offer(offer("o2", "r1", 20)).await.unwrap();
    store.task_offer(offer("o1", "r1", 10)).await.unwrap();
    assert_eq!(
        store
            .task_claim("B", &keys(&["math.add-one@2"]), 100, 200)
            .await
            .unwrap(),
        None,
        "a host without that task version claims nothing"
    );
    let first = store.task_claim("B", &types, 100, 200).await.unwrap();
    assert_eq!(first, Some(offer("o1", "r1", 10)), "oldest first, intact");
    let second = store.task_claim("C", &types, 100, 300).await.unwrap();
    assert_eq!(second.map(|o| o.key).as_deref(), Some("o2"));
    assert_eq!(store.task_claim("D", &types, 150, 400).await.unwrap(), None);
    assert_eq!(
        store.task_renew("B", &keys(&["o1"]), 350).await.unwrap(),
        Vec::<String>::new()
    );
    assert_eq!(
        store
            .task_renew("C", &keys(&["o1", "o2"]), 350)
            .await
            .unwrap(),
        keys(&["o1"]),
        "C never held o1"
    );
    assert!(!store.task_finish("o1", "C", json!({"x": 0})).await.unwrap());
    assert!(store.task_finish("o1", "B", json!({"x": 2})).await.unwrap());
    assert_eq!(
        store.task_claim("D", &types, 320, 400).await.unwrap(),
        None,
        "a finished offer is not claimed again; o2 is held until 350"
    );
    assert_eq!(
        store.task_results(&keys(&["o1", "o2"])).await.unwrap(),
        vec![("o1".to_string(), json!({"x": 2}))]
    );
    assert!(store.task_results(&keys(&["o1"])).await.unwrap().is_empty());
    // C stops renewing o2: once its claim expires, D takes it; C's
    // heartbeat then says it lost it, and its late result is refused.
    let again = store.task_claim("D", &types, 400, 900).await.unwrap();
    assert_eq!(again.map(|o| o.key).as_deref(), Some("o2"));
    assert_eq!(
        store.task_renew("C", &keys(&["o2"]), 600).await.unwrap(),
        keys(&["o2"])
    );
    assert!(!store.task_finish("o2", "C", json!({"x": 1})).await.unwrap());
    // Withdrawn by key, or every offer of a run.
    store
        .task_withdraw("r1", Some(&keys(&["o2"])))
        .await
        .unwrap();
    assert_eq!(
        store.task_renew("D", &keys(&["o2"]), 700).await.unwrap(),
        keys(&["o2"])
    );
    assert!(!store.task_finish("o2", "D", json!({"x": 1})).await.unwrap());
    store.task_offer(offer("o3", "r1", 30)).await.unwrap();
    store.task_offer(offer("o4", "r2", 40)).await.unwrap();
    store.task_withdraw("r1", None).await.unwrap();
    let left = store.task_claim("B", &types, 1_000, 2_000).await.unwrap();
    assert_eq!(left.map(|o| o.key).as_deref(), Some("o4"));
    store.task_withdraw("r2", None).await.unwrap();
    // The offering host takes back an offer nobody claimed yet, not a claimed one.
    store.task_offer(offer("o5", "r1", 50)).await.unwrap();
    assert!(store.task_take_back("o5").await.unwrap());
    assert_eq!(
        store.task_claim("B", &types, 1_000, 2_000).await.unwrap(),
        None
    );
    store.task_offer(offer("o6", "r1", 60)).await.unwrap();
    assert!(
        store
            .task_claim("B", &types, 1_000, 2_000)
            .await
            .unwrap()
            .is_some()
    );
    assert!(!store.task_take_back("o6").await.unwrap());
    store.task_withdraw("r1", None).await.unwrap();
}

#[tokio::test]
async fn postgres_store_conforms_and_keeps_everything_across_reconnecting() {
    let url = weft_tests::fresh_postgres().await;
    conformance(Arc::new(PgStore::connect(&url, 4).await.unwrap())).await;
    // A second connection (another host) sees everything; migrating again is a no-op.
    let store = PgStore::connect(&url, 4).await.unwrap();
    let loaded = store.load_run("r1").await.unwrap();
    assert_eq!(loaded.run.status, RunStatus::Succeeded);
    assert_eq!(loaded.next_seq, 4);
    // A database migrated by a newer weft is refused, clearly.
    sqlx::query("INSERT INTO weft_schema (version, applied_ms) VALUES (99, 0)")
        .execute(store.pool())
        .await
        .unwrap();
    let err = PgStore::connect(&url, 2).await.err().unwrap().to_string();
    assert!(
        err.contains("has format version 99; this weft reads up to version 3"),
        "{err}"
    );
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
            created = store.create_run(run, spec).await.is_ok();
            for j in 1..=12u64 {
                if !created {
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
