//! The storage conformance suite: every backend must pass it. A third-party
//! backend runs it from its own tests (feature `testing`):
//!
//! ```ignore
//! weft_store::testing::conformance(Arc::new(MyStore::new())).await;
//! ```
//!
//! It panics, naming the check, on the first behaviour that differs from
//! what the runtime relies on. It expects an empty store.

use std::sync::Arc;

use bytes::Bytes;
use serde_json::json;
use weft_core::cache::CacheEntry;
use weft_core::event::{Event, EventKind, NodeStatus, RunStatus};
use weft_core::graph::Graph;

use crate::prelude::*;
use crate::{
    CachePut, Commit, Created, NewRun, NodeRecord, RunFilter, RunLogError, RunRecord, RunSpec,
    SlotRequest, TaskOffer,
};

/// A running run `id` created at `created_ms`, with a one-node graph.
pub fn record(id: &str, created_ms: u64) -> (RunRecord, RunSpec) {
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
            components: Default::default(),
        },
    )
}

/// Event `seq` of run `run` (a log line).
pub fn event(run: &str, seq: u64) -> Event {
    Event {
        run_id: run.into(),
        seq,
        time_ms: 1,
        kind: EventKind::Log {
            node: "a".into(),
            level: weft_core::event::LogLevel::Info,
            message: format!("line {seq}"),
        },
    }
}

/// Node `id`'s record in `status`.
pub fn node(id: &str, status: NodeStatus, output: Option<serde_json::Value>) -> NodeRecord {
    NodeRecord {
        node: id.into(),
        status,
        attempt: 1,
        output,
        error: None,
        retry_at_ms: None,
        wait_until_ms: None,
    }
}

/// An output-cache put of `{"k": key}` for `task_type`, made at `created_ms`.
pub fn put(key: &str, task_type: &str, created_ms: u64, keep_last: Option<usize>) -> CachePut {
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
/// Check every behaviour of `store` that the runtime relies on.
pub async fn conformance(store: Arc<dyn RunStore>) {
    // A new store lists no runs (its indexes exist before the first run).
    let anyone = RunFilter::default();
    let owned = RunFilter {
        owner: Some("x".into()),
        ..RunFilter::default()
    };
    for filter in [anyone, owned] {
        assert!(store.runs_page(&filter, None, 10).await.unwrap().is_empty());
    }

    // Runs: create, list newest first, unknown ids are typed errors.
    let (r1, s1) = record("r1", 10);
    let (r2, s2) = record("r2", 20);
    store.create_run(NewRun::new(r1, s1.clone())).await.unwrap();
    store.create_run(NewRun::new(r2, s2)).await.unwrap();
    let listed: Vec<String> = store
        .list_runs()
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.run_id)
        .collect();
    assert_eq!(listed, vec!["r2", "r1"]);
    assert!(
        matches!(store.load_run("nope").await, Err(RunLogError::UnknownRun(id)) if id == "nope")
    );
    assert!(
        matches!(store.run_record("nope").await, Err(RunLogError::UnknownRun(id)) if id == "nope")
    );
    let orphan = Commit {
        events: vec![event("nope", 1)],
        ..Commit::default()
    };
    assert!(matches!(
        store.commit("nope", orphan).await,
        Err(RunLogError::UnknownRun(_))
    ));

    // A new run has no nodes and starts its events at 1.
    let loaded = store.load_run("r1").await.unwrap();
    assert_eq!(store.run_record("r1").await.unwrap(), loaded.run);
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
                ..Commit::default()
            },
        )
        .await
        .unwrap();
    // One commit may carry several states of a node (group commit): the last wins.
    let (dup, spec) = record("dup", 5);
    store.create_run(NewRun::new(dup, spec)).await.unwrap();
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
    // A node's input is kept beside its state, read one node at a time;
    // within one commit the last input of a node wins.
    let input = |v: serde_json::Value| crate::NodeInput {
        node: "x".into(),
        input: Arc::new(v),
    };
    assert_eq!(store.node_input("dup", "x").await.unwrap(), None);
    store
        .commit(
            "dup",
            Commit {
                inputs: vec![input(json!({"v": 0})), input(json!({"v": 7}))],
                ..Commit::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        store.node_input("dup", "x").await.unwrap(),
        Some(json!({"v": 7}))
    );
    assert_eq!(store.node_input("dup", "y").await.unwrap(), None);
    assert_eq!(store.node_input("r1", "x").await.unwrap(), None);
    assert!(
        store.load_run("dup").await.unwrap().nodes.len() == 1,
        "an input is not a node state"
    );
    // A node waiting for a retry keeps its due time.
    let waiting = NodeRecord {
        retry_at_ms: Some(123_456),
        wait_until_ms: None,
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
    // Several at once (a host's claimed runs): each as alone, in order.
    let ids = ["r2", "nope", "r1", "r2"].map(String::from);
    let loaded = store.load_runs(&ids).await;
    assert_eq!(loaded.len(), 4);
    assert_eq!(loaded[3].as_ref().unwrap(), loaded[0].as_ref().unwrap());
    assert_eq!(
        loaded[0].as_ref().unwrap(),
        &store.load_run("r2").await.unwrap()
    );
    assert!(matches!(&loaded[1], Err(RunLogError::UnknownRun(id)) if id == "nope"));
    assert_eq!(
        loaded[2].as_ref().unwrap(),
        &store.load_run("r1").await.unwrap()
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
    assert_eq!(two(2_499).await.unwrap(), Some(1));
    assert_eq!(
        two(2_500).await.unwrap(),
        None,
        "the start at 2000 left the window exactly when the wait said"
    );
    assert_eq!(
        store.rate_state("q/two", 0).await.unwrap().starts,
        vec![2_100, 2_500]
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
    assert_eq!(
        store.create_run(NewRun::new(r, s)).await.unwrap(),
        Created::New
    );
    let (r, s) = keyed("i2", "alice");
    match store.create_run(NewRun::new(r, s)).await.unwrap() {
        Created::Existing(existing) => assert_eq!(existing.run_id, "i1"),
        other => panic!("a repeated idempotency key gave {other:?}"),
    }
    assert!(matches!(
        store.load_run("i2").await,
        Err(RunLogError::UnknownRun(_))
    ));
    let (r, s) = keyed("i3", "bob");
    assert_eq!(
        store.create_run(NewRun::new(r, s)).await.unwrap(),
        Created::New,
        "keys are per owner"
    );

    // Saved graphs: versions count up, the newest is the default, a delete
    // removes every version but never lets a version number be reused.
    let g1 = Graph::builder().task("a", "math.add-one").build();
    let g2 = Graph::builder().task("b", "math.add-one").build();
    assert_eq!(store.graph_get("g", None).await.unwrap(), None);
    let v1 = store
        .graph_put("g", g1.clone(), Some("alice".into()), vec!["bob".into()])
        .await
        .unwrap();
    let v2 = store
        .graph_put("g", g2.clone(), None, Vec::new())
        .await
        .unwrap();
    assert_eq!((v1.version, v2.version), (1, 2));
    store
        .graph_put("other", g1.clone(), None, Vec::new())
        .await
        .unwrap();
    assert_eq!(store.graph_get("g", None).await.unwrap().unwrap().graph, g2);
    let first = store.graph_get("g", Some(1)).await.unwrap().unwrap();
    assert_eq!(
        (first.graph, first.owner.as_deref(), first.shared_with),
        (g1.clone(), Some("alice"), vec!["bob".to_string()])
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
    assert_eq!(
        store
            .graph_put("g", g1, None, Vec::new())
            .await
            .unwrap()
            .version,
        3
    );

    // Leases: one host at a time executes a running run; an expired lease can
    // be claimed by another host (stale-run recovery), oldest run first.
    let (l1, spec) = record("l1", 40);
    store.create_run(NewRun::new(l1, spec)).await.unwrap();
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
    let mut claimed = store.claim_runs("B", 2_000, 9_000, 2).await.unwrap();
    assert_eq!(claimed, vec!["r2", "i1"], "the oldest, up to the limit");
    claimed.extend(store.claim_runs("B", 2_000, 9_000, 10).await.unwrap());
    assert_eq!(
        claimed,
        vec!["r2", "i1", "i3"],
        "unleased running runs, oldest first"
    );
    assert_eq!(
        store.claim_runs("B", 2_500, 9_000, 10).await.unwrap(),
        Vec::<String>::new(),
        "A holds l1 until 3000"
    );
    assert_eq!(
        store.claim_runs("C", 3_500, 9_000, 10).await.unwrap(),
        vec!["l1"],
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
        NewRun::new(run, spec).at_most_running(Some(2))
    };
    for id in ["q1", "q2"] {
        let run = quota_run(id, "u", Some(id));
        assert_eq!(store.create_run(run).await.unwrap(), Created::New);
    }
    let run = quota_run("q3", "u", Some("q3"));
    assert_eq!(
        store.create_run(run).await.unwrap(),
        Created::TooManyRunning { running: 2 }
    );
    let run = quota_run("q3", "u", Some("q1"));
    assert!(
        matches!(store.create_run(run).await.unwrap(), Created::Existing(r) if r.run_id == "q1"),
        "a repeated submission is answered, not refused"
    );
    let run = quota_run("v1", "v", None);
    assert_eq!(store.create_run(run).await.unwrap(), Created::New);
    let finished = Commit {
        status: Some(RunStatus::Succeeded),
        ..Commit::default()
    };
    store.commit("q1", finished).await.unwrap();
    let run = quota_run("q3", "u", Some("q3"));
    assert_eq!(
        store.create_run(run).await.unwrap(),
        Created::New,
        "q1 ended: room for one more"
    );

    task_offers(store.as_ref()).await;
    concurrency_slots(store.as_ref()).await;
    pages_of_runs(store.as_ref()).await;
    components(store.as_ref()).await;
    deleting_runs(store.as_ref()).await;
    schedules(store.as_ref()).await;
    signals(store.as_ref()).await;
    key_values(store.as_ref()).await;
    nearest_keys(store.as_ref()).await;
}

/// Schedules are kept per owner; the due ones are found soonest first;
/// advancing an occurrence succeeds once, and never on a paused schedule.
async fn schedules(store: &dyn RunStore) {
    use crate::{Fired, Schedule};
    use weft_core::schedule::{Cadence, CatchUp};
    let schedule = |owner: &str, name: &str, next_ms: u64| Schedule {
        owner: owner.into(),
        name: name.into(),
        graph: "g".into(),
        version: None,
        input: json!({"n": 1}),
        cadence: Cadence::Every {
            every_ms: 1_000,
            from_ms: 0,
        },
        catch_up: CatchUp::All,
        paused: false,
        created_ms: 5,
        next_ms: Some(next_ms),
        last: None,
    };
    let fired = |at_ms| Fired {
        at_ms,
        run_id: Some(format!("run-{at_ms}")),
        error: None,
    };
    store
        .schedule_put(&schedule("ann", "b", 3_000))
        .await
        .unwrap();
    store
        .schedule_put(&schedule("ann", "a", 2_000))
        .await
        .unwrap();
    store
        .schedule_put(&schedule("bob", "a", 1_000))
        .await
        .unwrap();
    let names = |list: Vec<Schedule>| -> Vec<String> {
        list.into_iter()
            .map(|s| format!("{}/{}", s.owner, s.name))
            .collect()
    };
    let ann = store.schedule_list("ann").await.unwrap();
    assert_eq!(names(ann), ["ann/a", "ann/b"], "one owner's, by name");
    assert_eq!(
        names(store.schedule_list("an").await.unwrap()),
        Vec::<String>::new()
    );
    let due = store.schedules_due(2_000, 10).await.unwrap();
    assert_eq!(
        names(due),
        ["bob/a", "ann/a"],
        "due soonest first, at or before now"
    );
    assert_eq!(names(store.schedules_due(9_000, 2).await.unwrap()).len(), 2);

    // Advancing: only from the occurrence it is due at, once.
    assert!(
        store
            .schedule_advance("bob", "a", 1_000, Some(4_000), fired(1_000))
            .await
            .unwrap()
    );
    assert!(
        !store
            .schedule_advance("bob", "a", 1_000, Some(5_000), fired(1_000))
            .await
            .unwrap(),
        "a second host advancing the same occurrence loses"
    );
    let bob = store.schedule_get("bob", "a").await.unwrap().unwrap();
    assert_eq!((bob.next_ms, bob.last), (Some(4_000), Some(fired(1_000))));
    assert_eq!(
        names(store.schedules_due(3_999, 10).await.unwrap()),
        ["ann/a", "ann/b"]
    );

    // Paused: not due, not advanced; replaced wholesale by a put.
    let mut paused = schedule("ann", "a", 2_000);
    paused.paused = true;
    store.schedule_put(&paused).await.unwrap();
    assert_eq!(
        names(store.schedules_due(9_000, 10).await.unwrap()),
        ["ann/b", "bob/a"]
    );
    assert!(
        !store
            .schedule_advance("ann", "a", 2_000, Some(3_000), fired(2_000))
            .await
            .unwrap()
    );
    assert_eq!(store.schedule_get("ann", "a").await.unwrap(), Some(paused));
    // Never again: not due.
    assert!(
        store
            .schedule_advance("ann", "b", 3_000, None, fired(3_000))
            .await
            .unwrap()
    );
    assert_eq!(
        names(store.schedules_due(u64::MAX / 2, 10).await.unwrap()),
        ["bob/a"]
    );

    assert!(store.schedule_delete("bob", "a").await.unwrap());
    assert!(!store.schedule_delete("bob", "a").await.unwrap());
    assert!(
        store
            .schedules_due(u64::MAX / 2, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(store.schedule_get("bob", "a").await.unwrap(), None);
    assert!(
        !store
            .schedule_advance("bob", "a", 4_000, None, fired(4_000))
            .await
            .unwrap()
    );
}

/// Runs listed oldest first a page at a time; a deleted run leaves nothing
/// behind (its key may be used again) and others are untouched.
/// Signals: the first of a name stays, each is announced, an unknown run is
/// refused, and they go with their run.
async fn signals(store: &dyn RunStore) {
    let mut feed = store.signal_feed();
    let (run, spec) = record("sig1", 5_000_000);
    store.create_run(NewRun::new(run, spec)).await.unwrap();
    let signal = |v: i64| crate::Signal {
        body: json!({"approved": v > 0, "n": v}),
        sent_ms: 7,
        sender: Some("ann".into()),
    };
    assert_eq!(store.signal_get("sig1", "go").await.unwrap(), None);
    assert!(store.signal_put("sig1", "go", &signal(1)).await.unwrap());
    assert!(!store.signal_put("sig1", "go", &signal(2)).await.unwrap());
    assert_eq!(
        store.signal_get("sig1", "go").await.unwrap(),
        Some(signal(1))
    );
    assert_eq!(store.signal_get("sig1", "other").await.unwrap(), None);
    let announced = tokio::time::timeout(std::time::Duration::from_secs(10), feed.recv()).await;
    let announced = announced.expect("a signal is announced").unwrap();
    assert_eq!(announced, crate::signals::Arrival::new("sig1", "go"));
    assert!(matches!(
        store.signal_put("nope", "go", &signal(1)).await,
        Err(RunLogError::UnknownRun(_))
    ));
    assert_eq!(store.delete_runs(&["sig1".into()]).await.unwrap(), 1);
    assert_eq!(store.signal_get("sig1", "go").await.unwrap(), None);
}

/// Key-value spaces: versions never reused, compare-and-swap, batches all
/// or nothing, quotas, expiry, listing, and one user's space apart from
/// another's.
async fn key_values(store: &dyn RunStore) {
    use crate::key_values::{Delete, KvError, Quota, Space, Usage, Write};
    let ann = Space::new("ann", "plugin.counter");
    let bob = Space::new("bob", "plugin.counter");
    let roomy = Quota {
        max_keys: 100,
        max_bytes: 10_000,
    };
    let w = |key: &str, value: &str, if_version: Option<u64>| Write {
        key: key.into(),
        value: value.as_bytes().to_vec(),
        if_version,
        expires_ms: None,
        vector: None,
    };
    let get = |space: &Space, key: &str, now: u64| {
        let (space, key) = (space.clone(), key.to_string());
        async move { store.kv_get(&space, &[key], now).await.unwrap().remove(0) }
    };
    assert_eq!(get(&ann, "n", 0).await, None);
    let v1 = store
        .kv_set(&ann, &[w("n", "1", Some(0))], roomy, 0)
        .await
        .unwrap()[0];
    match store.kv_set(&ann, &[w("n", "x", Some(0))], roomy, 0).await {
        Err(KvError::Conflict { key, current }) => {
            assert_eq!((key.as_str(), current), ("n", Some(v1)))
        }
        other => panic!("{other:?}"),
    }
    let v2 = store
        .kv_set(&ann, &[w("n", "2", Some(v1))], roomy, 0)
        .await
        .unwrap()[0];
    assert!(v2 > v1);
    assert_eq!(get(&ann, "n", 0).await.unwrap().value, b"2");
    // Another user's space of the same name is another space.
    assert_eq!(get(&bob, "n", 0).await, None);
    store
        .kv_set(&bob, &[w("n", "bob", None)], roomy, 0)
        .await
        .unwrap();
    assert_eq!(get(&ann, "n", 0).await.unwrap().value, b"2");
    // Deleted and written again: a newer version, never an old one.
    let del = |key: &str, if_version| Delete {
        key: key.to_string(),
        if_version,
    };
    assert!(matches!(
        store.kv_delete(&ann, &[del("n", Some(v1))], 0).await,
        Err(KvError::Conflict { .. })
    ));
    let deleted = store.kv_delete(&ann, &[del("n", Some(v2))], 0).await;
    assert_eq!(deleted.unwrap(), [true]);
    let deleted = store.kv_delete(&ann, &[del("n", None)], 0).await;
    assert_eq!(deleted.unwrap(), [false]);
    let v3 = store
        .kv_set(&ann, &[w("n", "3", Some(0))], roomy, 0)
        .await
        .unwrap()[0];
    assert!(v3 > v2);
    // A batch is all or nothing.
    let batch = [w("a", "A", None), w("n", "x", Some(v1))];
    assert!(matches!(
        store.kv_set(&ann, &batch, roomy, 0).await,
        Err(KvError::Conflict { .. })
    ));
    assert_eq!(get(&ann, "a", 0).await, None);
    let versions = store
        .kv_set(&ann, &[w("a", "A", None), w("b", "B", None)], roomy, 0)
        .await
        .unwrap();
    assert!(versions[0] > v3 && versions[1] > versions[0]);
    // Quotas: ann's space holds n, a, b (3 keys, 6 bytes).
    let spaces = store.kv_spaces("ann").await.unwrap();
    assert_eq!(
        spaces,
        [("plugin.counter".to_string(), Usage { keys: 3, bytes: 6 })]
    );
    let three = Quota {
        max_keys: 3,
        max_bytes: 100,
    };
    match store.kv_set(&ann, &[w("c", "C", None)], three, 0).await {
        Err(KvError::Quota {
            what, needed, max, ..
        }) => assert_eq!((what, needed, max), ("keys", 4, 3)),
        other => panic!("{other:?}"),
    }
    store
        .kv_set(&ann, &[w("a", "AA", None)], three, 0)
        .await
        .unwrap();
    let small = Quota {
        max_keys: 3,
        max_bytes: 8,
    };
    assert!(matches!(
        store.kv_set(&ann, &[w("b", "BBBB", None)], small, 0).await,
        Err(KvError::Quota { what: "bytes", .. })
    ));
    // Over a quota lowered since, a write that shrinks the space passes.
    let tiny = Quota {
        max_keys: 1,
        max_bytes: 1,
    };
    store
        .kv_set(&ann, &[w("a", "", None)], tiny, 0)
        .await
        .unwrap();
    // Listing: by prefix, after a key, a page at a time.
    let space = Space::new("ann", "plugin.list");
    let writes: Vec<Write> = ["k1", "k2", "k3", "j1", "l1"]
        .iter()
        .map(|k| w(k, "v", None))
        .collect();
    store.kv_set(&space, &writes, roomy, 0).await.unwrap();
    let list = |prefix: &'static str, after: Option<&'static str>, limit| {
        let space = space.clone();
        async move {
            store
                .kv_list(&space, prefix, after, limit, 0)
                .await
                .unwrap()
        }
    };
    assert_eq!(list("k", None, 10).await, ["k1", "k2", "k3"]);
    assert_eq!(list("k", None, 2).await, ["k1", "k2"]);
    assert_eq!(list("k", Some("k2"), 10).await, ["k3"]);
    assert_eq!(list("", Some("k3"), 10).await, ["l1"]);
    assert_eq!(list("", None, 10).await.len(), 5);
    // Deletes in a batch: all or nothing, each saying whether it was there.
    let batch = [del("k1", None), del("k2", Some(1)), del("k9", None)];
    assert!(matches!(
        store.kv_delete(&space, &batch, 0).await,
        Err(KvError::Conflict { key, .. }) if key == "k2"
    ));
    assert_eq!(list("k", None, 10).await, ["k1", "k2", "k3"]);
    let batch = [del("k1", None), del("k2", None), del("k9", Some(0))];
    assert_eq!(
        store.kv_delete(&space, &batch, 0).await.unwrap(),
        [true, true, false]
    );
    assert_eq!(list("", None, 10).await, ["j1", "k3", "l1"]);
    let usage = store.kv_spaces("ann").await.unwrap();
    let list_usage = usage.iter().find(|(ns, _)| ns == "plugin.list");
    assert_eq!(list_usage.map(|u| u.1), Some(Usage { keys: 3, bytes: 9 }));
    // Expiry: gone at its time, for reads, lists and compare-and-swap; the
    // sweep frees its room.
    let ttl = Space::new("ann", "plugin.ttl");
    let expiring = Write {
        expires_ms: Some(1_000),
        ..w("t", "tt", Some(0))
    };
    store.kv_set(&ttl, &[expiring], roomy, 0).await.unwrap();
    assert!(get(&ttl, "t", 999).await.is_some());
    assert_eq!(get(&ttl, "t", 1_000).await, None);
    assert!(
        store
            .kv_list(&ttl, "", None, 10, 1_000)
            .await
            .unwrap()
            .is_empty()
    );
    let deleted = store.kv_delete(&ttl, &[del("u", None)], 1_000).await;
    assert_eq!(deleted.unwrap(), [false]);
    assert_eq!(store.kv_sweep(999, 100).await.unwrap(), 0);
    assert!(store.kv_sweep(2_000, 100).await.unwrap() >= 1);
    assert!(
        !store
            .kv_spaces("ann")
            .await
            .unwrap()
            .iter()
            .any(|(ns, _)| ns == "plugin.ttl")
    );
    let again = Write {
        expires_ms: Some(1_000),
        ..w("t", "t2", Some(0))
    };
    store.kv_set(&ttl, &[again], roomy, 500).await.unwrap();
    store
        .kv_set(&ttl, &[w("t", "t3", Some(0))], roomy, 1_000)
        .await
        .unwrap();
    assert_eq!(get(&ttl, "t", 5_000).await.unwrap().value, b"t3");
    assert_eq!(
        store
            .kv_spaces("ann")
            .await
            .unwrap()
            .iter()
            .find(|(ns, _)| ns == "plugin.ttl")
            .unwrap()
            .1,
        Usage { keys: 1, bytes: 3 }
    );
}

/// Vectors kept with keys, and the keys nearest a query: the same answer
/// from every store (on PostgreSQL, pgvector's when it is installed).
async fn nearest_keys(store: &dyn RunStore) {
    use crate::key_values::{Near, Quota, Space, Usage, Write};
    let space = Space::new("ann", "plugin.kb");
    let roomy = Quota {
        max_keys: 100,
        max_bytes: 10_000,
    };
    let w = |key: &str, vector: Option<Vec<f32>>| Write {
        key: key.into(),
        value: b"v".to_vec(),
        if_version: None,
        expires_ms: None,
        vector,
    };
    let writes = [
        w("c/east", Some(vec![1.0, 0.0])),
        w("c/north", Some(vec![0.0, 1.0])),
        w("c/north-east", Some(vec![1.0, 1.0])),
        w("c/also-east", Some(vec![2.0, 0.0])),
        w("c/zero", Some(vec![0.0, 0.0])),
        w("c/west", Some(vec![-1.0, 0.0])),
        w("c/three", Some(vec![1.0, 0.0, 0.0])),
        w("c/plain", None),
        w("d/east", Some(vec![1.0, 0.0])),
    ];
    store.kv_set(&space, &writes, roomy, 0).await.unwrap();
    // Bytes: key, value and 4 per number of each vector.
    let usage = store.kv_spaces("ann").await.unwrap();
    let kb = usage.iter().find(|(ns, _)| ns == "plugin.kb").map(|u| u.1);
    let keys: u64 = writes.iter().map(|w| w.key.len() as u64 + 1).sum();
    assert_eq!(
        kb,
        Some(Usage {
            keys: 9,
            bytes: keys + 4 * 17
        })
    );

    let nearest = |prefix: &'static str, query: Vec<f32>, skip, limit, now| {
        let space = space.clone();
        async move {
            let found: Vec<Near> = store
                .kv_nearest(&space, prefix, &query, skip, limit, now)
                .await
                .unwrap();
            found
                .into_iter()
                .map(|n| (n.key, (n.similarity * 1000.0).round() / 1000.0))
                .collect::<Vec<_>>()
        }
    };
    let s = |k: &str, sim: f32| (k.to_string(), sim);
    // Nearest first, ties by key; only vectors of the query's length under
    // the prefix; an all-zeros vector at similarity 0.
    let east = vec![
        s("c/also-east", 1.0),
        s("c/east", 1.0),
        s("c/north-east", 0.707),
        s("c/north", 0.0),
        s("c/zero", 0.0),
        s("c/west", -1.0),
    ];
    assert_eq!(nearest("c/", vec![3.0, 0.0], 0, 10, 0).await, east);
    assert_eq!(nearest("c/", vec![3.0, 0.0], 2, 2, 0).await, east[2..4]);
    assert_eq!(nearest("c/", vec![3.0, 0.0], 6, 10, 0).await, []);
    assert_eq!(
        nearest("c/", vec![0.0, 0.0, 1.0], 0, 10, 0).await,
        [s("c/three", 0.0)]
    );
    assert_eq!(nearest("c/", vec![1.0], 0, 10, 0).await, []);
    // Another user's namespace of the same name holds nothing of ann's.
    let bob = Space::new("bob", "plugin.kb");
    assert!(
        store
            .kv_nearest(&bob, "", &[1.0, 0.0], 0, 10, 0)
            .await
            .unwrap()
            .is_empty()
    );

    // Written again without a vector, a key keeps none; deleted, nothing;
    // expired, it is not found.
    store
        .kv_set(&space, &[w("c/also-east", None)], roomy, 0)
        .await
        .unwrap();
    store
        .kv_delete(&space, &[crate::key_values::Delete::key("c/east")], 0)
        .await
        .unwrap();
    let expiring = Write {
        expires_ms: Some(1_000),
        ..w("c/north-east", Some(vec![1.0, 1.0]))
    };
    store.kv_set(&space, &[expiring], roomy, 0).await.unwrap();
    let top = |n: usize, now| async move { nearest("c/", vec![1.0, 0.0], 0, n, now).await };
    assert_eq!(
        top(2, 999).await,
        [s("c/north-east", 0.707), s("c/north", 0.0)]
    );
    assert_eq!(top(2, 1_000).await, [s("c/north", 0.0), s("c/zero", 0.0)]);
    let usage = store.kv_spaces("ann").await.unwrap();
    let kb = usage.iter().find(|(ns, _)| ns == "plugin.kb").map(|u| u.1);
    assert_eq!(
        kb,
        Some(Usage {
            keys: 8,
            bytes: keys - 7 + 4 * 13
        })
    );
    store.kv_sweep(2_000, 100).await.unwrap();
    let usage = store.kv_spaces("ann").await.unwrap();
    let kb = usage.iter().find(|(ns, _)| ns == "plugin.kb").map(|u| u.1);
    assert_eq!(
        kb,
        Some(Usage {
            keys: 7,
            bytes: keys - 7 - 13 + 4 * 11
        })
    );
}

async fn deleting_runs(store: &dyn RunStore) {
    let start = Some((1_000_000, ""));
    for (id, created) in [
        ("old1", 1_000_001),
        ("old2", 1_000_002),
        ("old3", 1_000_003),
    ] {
        let (mut run, spec) = record(id, created);
        run.owner = Some("del".into());
        run.idempotency_key = Some(format!("key-{id}"));
        assert_eq!(
            store.create_run(NewRun::new(run, spec)).await.unwrap(),
            Created::New
        );
        let commit = Commit {
            nodes: vec![node("a", NodeStatus::Completed, Some(json!({"value": 2})))],
            events: vec![event(id, 1), event(id, 2)],
            inputs: vec![crate::NodeInput {
                node: "a".into(),
                input: Arc::new(json!({"value": 1})),
            }],
            ..Commit::default()
        };
        store.commit(id, commit).await.unwrap();
    }
    let ids = |page: Vec<RunRecord>| page.into_iter().map(|r| r.run_id).collect::<Vec<_>>();
    assert_eq!(
        ids(store.runs_oldest(start, 2).await.unwrap()),
        ["old1", "old2"]
    );
    let next = store
        .runs_oldest(Some((1_000_002, "old2")), 10)
        .await
        .unwrap();
    assert_eq!(ids(next), ["old3"]);
    // Cached outputs: old2 makes two, old3 then makes one of the same key.
    let cache = |puts| Commit {
        cache: puts,
        ..Commit::default()
    };
    let puts = vec![
        put("del-mine", "t.del", 10, None),
        put("del-shared", "t.del", 11, None),
    ];
    store.commit("old2", cache(puts)).await.unwrap();
    let puts = vec![put("del-shared", "t.del", 12, None)];
    store.commit("old3", cache(puts)).await.unwrap();

    assert!(store.delete_run("old2").await.unwrap());
    // What it alone made goes with it; what another run has put since stays.
    assert_eq!(store.cache_get("del-mine").await.unwrap(), None);
    let shared = store.cache_get("del-shared").await.unwrap().unwrap();
    assert_eq!(shared.created_ms, 12);
    let stats = store.cache_stats().await.unwrap();
    let del = stats.iter().find(|s| s.task_type == "t.del").unwrap();
    assert_eq!(del.entries, 1);
    assert!(!store.delete_run("old2").await.unwrap(), "already gone");
    assert!(matches!(
        store.load_run("old2").await,
        Err(RunLogError::UnknownRun(_))
    ));
    assert!(store.events("old2", 0).await.unwrap().is_empty());
    assert_eq!(store.node_input("old2", "a").await.unwrap(), None);
    assert_eq!(
        ids(store.runs_oldest(start, 10).await.unwrap()),
        ["old1", "old3"]
    );
    let owned = RunFilter {
        owner: Some("del".into()),
        ..RunFilter::default()
    };
    assert_eq!(
        ids(store.runs_page(&owned, None, 10).await.unwrap()),
        ["old3", "old1"]
    );
    // A cursor at a deleted run still pages on.
    assert_eq!(
        ids(store
            .runs_oldest(Some((1_000_002, "old2")), 10)
            .await
            .unwrap()),
        ["old3"]
    );
    // The others keep everything.
    assert_eq!(store.events("old1", 0).await.unwrap().len(), 2);
    assert_eq!(store.load_run("old3").await.unwrap().nodes.len(), 1);
    assert_eq!(
        store.node_input("old3", "a").await.unwrap(),
        Some(json!({"value": 1}))
    );
    // Its idempotency key is free again.
    let (mut again, spec) = record("old2-again", 1_000_004);
    again.owner = Some("del".into());
    again.idempotency_key = Some("key-old2".into());
    assert_eq!(
        store.create_run(NewRun::new(again, spec)).await.unwrap(),
        Created::New
    );
    // Many at once: those that exist are deleted and counted.
    let ids_to = |ids: &[&str]| ids.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let deleted = store
        .delete_runs(&ids_to(&["old1", "missing", "old3"]))
        .await;
    assert_eq!(deleted.unwrap(), 2);
    assert_eq!(
        ids(store.runs_oldest(start, 10).await.unwrap()),
        ["old2-again"]
    );
    assert_eq!(store.cache_get("del-shared").await.unwrap(), None, "old3's");
}

/// Components are kept by digest, once: a second put of the same digest
/// keeps the first bytes.
async fn components(store: &dyn RunStore) {
    assert_eq!(store.component_get("d1").await.unwrap(), None);
    store
        .component_put("d1", Bytes::from_static(b"first"))
        .await
        .unwrap();
    store
        .component_put("d1", Bytes::from_static(b"second"))
        .await
        .unwrap();
    store
        .component_put("d2", Bytes::from(vec![0u8; 70_000]))
        .await
        .unwrap();
    assert_eq!(
        store.component_get("d1").await.unwrap().as_deref(),
        Some(&b"first"[..])
    );
    assert_eq!(
        store.component_get("d2").await.unwrap().map(|b| b.len()),
        Some(70_000)
    );
    // A large one comes back byte for byte, and goes whole.
    let large: Vec<u8> = (0..2_500_000u32).map(|i| (i % 251) as u8).collect();
    store
        .component_put("big", Bytes::from(large.clone()))
        .await
        .unwrap();
    assert!(store.component_get("big").await.unwrap() == Some(large));
    assert!(store.component_delete_unused("big").await.unwrap());
    assert_eq!(store.component_get("big").await.unwrap(), None);

    // Pinned from a run's creation until its deletion.
    for (id, pins) in [("pin1", &["d1"][..]), ("pin2", &["d1", "d2"][..])] {
        let (run, mut spec) = record(id, 2_000_000);
        spec.components = pins
            .iter()
            .enumerate()
            .map(|(i, d)| (format!("plugin{i}"), d.to_string()))
            .collect();
        store.create_run(NewRun::new(run, spec)).await.unwrap();
    }
    store
        .component_put("d3", Bytes::from_static(b"loose"))
        .await
        .unwrap();
    let unused = store.components_unused().await.unwrap();
    assert!(unused.contains(&"d3".to_string()), "{unused:?}");
    assert!(!unused.iter().any(|d| d == "d1" || d == "d2"), "{unused:?}");
    assert!(!store.component_delete_unused("d1").await.unwrap());
    store.delete_run("pin1").await.unwrap();
    assert!(
        !store.component_delete_unused("d1").await.unwrap(),
        "pin2 still needs it"
    );
    assert!(store.component_get("d1").await.unwrap().is_some());
    store.delete_run("pin2").await.unwrap();
    assert!(store.component_delete_unused("d1").await.unwrap());
    assert!(store.component_delete_unused("d3").await.unwrap());
    assert!(
        !store.component_delete_unused("d3").await.unwrap(),
        "already gone"
    );
    assert_eq!(store.component_get("d1").await.unwrap(), None);
    assert!(
        !store
            .components_unused()
            .await
            .unwrap()
            .contains(&"d1".to_string()),
        "a deleted component is not listed"
    );
    // Deleted, it is kept again when put again.
    store
        .component_put("d1", Bytes::from_static(b"again"))
        .await
        .unwrap();
    assert_eq!(
        store.component_get("d1").await.unwrap().as_deref(),
        Some(&b"again"[..])
    );
    assert!(
        store
            .components_unused()
            .await
            .unwrap()
            .contains(&"d2".to_string())
    );
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
        store.create_run(NewRun::new(run, spec)).await.unwrap();
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
    // Running runs (their own index on redb), by page, with the other filters.
    let running = RunFilter {
        status: Some(RunStatus::Running),
        ..pager.clone()
    };
    assert_eq!(page(running.clone(), None, 2).await, ["p5", "p4"]);
    assert_eq!(page(running.clone(), Some("p4"), 2).await, ["p3", "p1"]);
    let anyone_running = RunFilter {
        with_unowned: true,
        since_ms: Some(103),
        ..running
    };
    assert_eq!(page(anyone_running, None, 10).await, ["p0", "p5", "p4"]);
    let saved = RunFilter {
        graph: Some("saved".into()),
        ..pager.clone()
    };
    assert_eq!(page(saved, None, 10).await, ["p4"]);
    let by_origin = RunFilter {
        graph: Some("g.json".into()),
        since_ms: Some(103),
        ..pager.clone()
    };
    assert_eq!(page(by_origin, None, 10).await, ["p5", "p4"]);
    // Anyone's ended runs in one state (their own index on redb), by page
    // (those of this test: created from 100 on).
    let end = |status| Commit {
        status: Some(status),
        ..Commit::default()
    };
    for id in ["p1", "p3", "p0"] {
        store.commit(id, end(RunStatus::Failed)).await.unwrap();
    }
    let failed = RunFilter {
        status: Some(RunStatus::Failed),
        since_ms: Some(100),
        ..RunFilter::default()
    };
    assert_eq!(page(failed.clone(), None, 2).await, ["p0", "p3"]);
    assert_eq!(page(failed.clone(), Some("p3"), 2).await, ["p1"]);
    let recent = RunFilter {
        since_ms: Some(101),
        ..failed.clone()
    };
    assert_eq!(page(recent, None, 10).await, ["p0", "p3"]);
    let done = RunFilter {
        status: Some(RunStatus::Succeeded),
        ..failed.clone()
    };
    assert_eq!(page(done, None, 10).await, ["p2"]);
    let pagers_failed = RunFilter {
        status: Some(RunStatus::Failed),
        ..pager
    };
    assert_eq!(page(pagers_failed.clone(), None, 1).await, ["p3"]);
    assert_eq!(page(pagers_failed.clone(), Some("p3"), 1).await, ["p1"]);
    // A run that runs again, or is deleted, leaves its old state's pages.
    store.commit("p3", end(RunStatus::Running)).await.unwrap();
    assert!(store.delete_run("p0").await.unwrap());
    assert_eq!(page(failed.clone(), None, 10).await, ["p1"]);
    assert_eq!(page(pagers_failed, None, 10).await, ["p1"]);
    let running = RunFilter {
        status: Some(RunStatus::Running),
        ..failed
    };
    assert_eq!(page(running, None, 10).await, ["p5", "p4", "p3"]);
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
        owner: Some("ann".into()),
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
