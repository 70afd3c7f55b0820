//! The output cache: cacheable, side-effect-free nodes whose input was seen
//! before are served from the cache instead of running; policies per run and
//! per node; a new task version never sees the old version's entries.

use crate::common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::{Value, json};
use weft::cache::CachePolicy;
use weft::events::{EventKind, NodeStatus};
use weft::store::{MemoryStore, RunStore};
use weft::task::NativeTask;

/// A cacheable native task `count.double` that counts its executions.
fn counting(version: &str, calls: Arc<AtomicUsize>) -> NativeTask {
    let mut t = NativeTask::new("count.double", move |v: Value, _| {
        let calls = calls.clone();
        async move {
            calls.fetch_add(1, Ordering::SeqCst);
            Ok(json!({"value": v["value"].as_i64().unwrap_or(0) * 2}))
        }
    });
    t.version = version.into();
    t.cacheable = true;
    t
}

fn graph(input: i64, node_cache: Option<bool>) -> weft::graph::Graph {
    let mut node = json!({"id": "d", "type": "count.double", "defaults": {"value": input}});
    if let Some(c) = node_cache {
        node["config"] = json!({"cache": c});
    }
    common::graph(json!({"tasks": [
        node,
        {"id": "one", "type": "math.add-one", "defaults": {"value": input}},
        {"id": "wait", "type": "util.delay", "defaults": {"ms": 1}}
    ]}))
}

#[tokio::test]
async fn a_repeated_input_is_served_from_the_cache() {
    let calls = Arc::new(AtomicUsize::new(0));
    let host = common::builder(None)
        .native(counting("1", calls.clone()))
        .build()
        .await
        .unwrap();
    let first = host.run(&graph(21, None), json!({})).await.unwrap();
    assert_eq!((first.stats.tasks_executed, first.stats.cache_hits), (3, 0));

    let run = host
        .prepare(&graph(21, None), "g.json", json!({}))
        .await
        .unwrap();
    let mut events = run.hub.subscribe();
    let second = host
        .execute(&run, &tokio_util::sync::CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(second.outputs, first.outputs);
    // `util.delay` is not cacheable: it runs again; the other two are hits.
    assert_eq!(
        (second.stats.tasks_executed, second.stats.cache_hits),
        (1, 2)
    );
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    let mut cached = Vec::new();
    while let Ok(e) = events.try_recv() {
        if let EventKind::Node {
            node,
            status: NodeStatus::Completed,
            cached: true,
            ..
        } = e.kind
        {
            cached.push(node);
        }
    }
    cached.sort();
    assert_eq!(cached, vec!["d", "one"]);

    // Another input misses.
    let third = host.run(&graph(5, None), json!({})).await.unwrap();
    assert_eq!(third.outputs["d"], json!({"value": 10}));
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn cache_can_be_turned_off_per_node_and_per_run() {
    let calls = Arc::new(AtomicUsize::new(0));
    let host = common::builder(None)
        .native(counting("1", calls.clone()))
        .build()
        .await
        .unwrap();
    host.run(&graph(1, Some(false)), json!({})).await.unwrap();
    host.run(&graph(1, Some(false)), json!({})).await.unwrap();
    assert_eq!(
        calls.load(Ordering::SeqCst),
        2,
        "config.cache = false runs every time"
    );

    let calls = Arc::new(AtomicUsize::new(0));
    let off = CachePolicy {
        enabled: false,
        ..CachePolicy::default()
    };
    let host = common::builder(None)
        .native(counting("1", calls.clone()))
        .cache(off)
        .build()
        .await
        .unwrap();
    let a = host.run(&graph(1, None), json!({})).await.unwrap();
    let b = host.run(&graph(1, None), json!({})).await.unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    assert_eq!((a.stats.cache_hits, b.stats.cache_hits), (0, 0));
}

#[tokio::test]
async fn old_entries_and_old_versions_miss() {
    let store: Arc<dyn RunStore> = Arc::new(MemoryStore::new());
    let calls = Arc::new(AtomicUsize::new(0));
    let v1 = common::builder(None)
        .store(store.clone())
        .native(counting("1", calls.clone()))
        .build()
        .await
        .unwrap();
    v1.run(&graph(3, None), json!({})).await.unwrap();
    // A new version of the task shares the store but not the entries.
    let v2 = common::builder(None)
        .store(store.clone())
        .native(counting("2", calls.clone()))
        .build()
        .await
        .unwrap();
    v2.run(&graph(3, None), json!({})).await.unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    v2.run(&graph(3, None), json!({})).await.unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 2, "the same version hits");

    let young = CachePolicy {
        max_age: Some(Duration::from_millis(1)),
        ..CachePolicy::default()
    };
    let aged = common::builder(None)
        .store(store)
        .native(counting("2", calls.clone()))
        .cache(young)
        .build()
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    aged.run(&graph(3, None), json!({})).await.unwrap();
    assert_eq!(
        calls.load(Ordering::SeqCst),
        3,
        "an entry older than max_age misses"
    );
}
