//! The `storage` and `config` imports, through real wasm tasks built from
//! source (`tests/guests/storage`): a counter that survives runs and a
//! reopened store, one namespace per plugin and per user, shared
//! namespaces only as granted, writes only from task types with side
//! effects, quotas and their ceilings, expiry on the test clock,
//! configuration values, compare-and-swap from three hosts on one
//! PostgreSQL database; and a plugin built against the first contract
//! (`weft:plugin@0.1.0`) still loads.

use crate::common;

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use weft::clock::ManualClock;
use weft::events::RunStatus;
use weft::store::{MemoryStore, PgStore, RedbStore, RunStore};
use weft::{Host, Prepared, Submission};
use weft_tests::{PluginDir, STORAGE, WIT_0_1_0};

/// A host on `store` with the storage guest loaded as `name` (manifest
/// `manifest`).
async fn host_with(store: Arc<dyn RunStore>, name: &str, manifest: &str) -> (Host, PluginDir) {
    let dir = PluginDir::new().add(name, STORAGE).manifest(name, manifest);
    let host = common::builder(Some(dir.path()))
        .store(store)
        .build()
        .await
        .unwrap();
    let failed: Vec<_> = host
        .plugins()
        .into_iter()
        .filter(|p| p.error.is_some())
        .collect();
    assert!(failed.is_empty(), "{failed:?}");
    (host, dir)
}

/// Run task `task` once on `input` as `user` (none: no owner); its output,
/// or its error.
async fn call(host: &Host, user: Option<&str>, task: &str, input: Value) -> Result<Value, String> {
    let graph = common::graph(json!({"tasks": [{"id": "t", "type": task, "defaults": input}]}));
    let submission = Submission {
        owner: user.map(str::to_string),
        ..Submission::default()
    };
    let Prepared::New(run) = host
        .submit(&graph, "g.json", json!({}), submission)
        .await
        .unwrap()
    else {
        panic!("a new run");
    };
    let result = host.execute(&run, &CancellationToken::new()).await.unwrap();
    match result.status {
        RunStatus::Succeeded => Ok(result.outputs["t"].clone()),
        _ => Err(result.failures[0].error.clone()),
    }
}

async fn count(host: &Host, user: Option<&str>) -> u64 {
    let out = call(host, user, "kv.count", json!({})).await.unwrap();
    out["n"].as_u64().unwrap()
}

#[tokio::test]
async fn a_counter_goes_on_across_runs_and_a_reopened_store() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("weft.redb");
    {
        let store = Arc::new(RedbStore::open(&path).unwrap());
        let (host, _plugins) = host_with(store, "counter", "").await;
        for want in 1..=3 {
            assert_eq!(count(&host, None).await, want);
        }
    }
    let store = Arc::new(RedbStore::open(&path).unwrap());
    let (host, _plugins) = host_with(store, "counter", "").await;
    assert_eq!(count(&host, None).await, 4);
}

#[tokio::test]
async fn each_plugin_and_each_user_has_its_own_namespace() {
    let store: Arc<dyn RunStore> = Arc::new(MemoryStore::new());
    let (alpha, _a) = host_with(store.clone(), "alpha", "").await;
    let (beta, _b) = host_with(store.clone(), "beta", "").await;
    assert_eq!(count(&alpha, Some("ann")).await, 1);
    assert_eq!(count(&alpha, Some("ann")).await, 2);
    // Another user, the same plugin: their own count.
    assert_eq!(count(&alpha, Some("bob")).await, 1);
    // Another plugin, the same user: its own count.
    assert_eq!(count(&beta, Some("ann")).await, 1);
    let got = call(&beta, Some("ann"), "kv.get", json!({"key": "n"}))
        .await
        .unwrap();
    assert_eq!(got["value"], "1");
}

#[tokio::test]
async fn shared_namespaces_are_used_only_as_granted() {
    let store: Arc<dyn RunStore> = Arc::new(MemoryStore::new());
    let writer = "[[grants.storage]]\nname = \"index\"\nwritable = true\n";
    let (alpha, _a) = host_with(store.clone(), "alpha", writer).await;
    let (beta, _b) = host_with(store.clone(), "beta", "[grants]\nstorage = [\"index\"]\n").await;
    let (gamma, _c) = host_with(store.clone(), "gamma", "").await;
    let put = json!({"namespace": "index", "key": "doc-1", "value": "hello"});
    call(&alpha, Some("ann"), "kv.put", put.clone())
        .await
        .unwrap();
    let key = json!({"namespace": "index", "key": "doc-1"});
    let read = call(&beta, Some("ann"), "kv.get", key.clone())
        .await
        .unwrap();
    assert_eq!(read["value"], "hello");
    // Another user does not see ann's shared namespace.
    let other = call(&beta, Some("bob"), "kv.get", key.clone())
        .await
        .unwrap();
    assert_eq!(other["value"], Value::Null);
    let refused = call(&beta, Some("ann"), "kv.put", put.clone())
        .await
        .unwrap_err();
    assert!(
        refused.contains("namespace `index` is granted to plugin `beta` read-only"),
        "{refused}"
    );
    let refused = call(&gamma, Some("ann"), "kv.get", key).await.unwrap_err();
    assert!(
        refused.contains("namespace `index` is not granted to plugin `gamma`"),
        "{refused}"
    );
}

#[tokio::test]
async fn only_task_types_with_side_effects_write() {
    let (host, _p) = host_with(Arc::new(MemoryStore::new()), "p", "").await;
    let out = call(&host, None, "kv.try-put", json!({"key": "k"}))
        .await
        .unwrap();
    let said = out["error"].as_str().unwrap();
    assert!(
        said.contains("task type `kv.try-put` does not declare side effects"),
        "{said}"
    );
    let got = call(&host, None, "kv.get", json!({"key": "k"}))
        .await
        .unwrap();
    assert_eq!(got["value"], Value::Null);
}

/// Keys, values, batches and pages past the host's limits are refused as
/// `invalid`, naming the limit, and nothing of a refused batch is written.
#[tokio::test]
async fn keys_values_batches_and_pages_past_the_limits_are_refused() {
    let (host, _p) = host_with(Arc::new(MemoryStore::new()), "p", "").await;
    let out = call(&host, None, "kv.try-invalid", json!({}))
        .await
        .unwrap();
    let said = |what: &str| out[what].as_str().unwrap_or_default().to_string();
    for (what, expected) in [
        ("empty key", "invalid: "),
        ("long key", "512"),
        ("big value", "1048576"),
        ("big batch", "1000"),
        ("key twice", "same"),
        ("big get", "1000"),
        ("big delete", "1000"),
        ("delete twice", "same"),
        ("page of 0", "1"),
        ("page of 1001", "1000"),
        ("vectors: one short", "one vector per write"),
        ("vectors: empty", "1 to 16000"),
        ("vectors: too long", "16001"),
        ("vectors: not finite", "number 1 is not finite"),
        ("vectors: big batch", "1000"),
        ("vectors: key twice", "same"),
        ("nearest: empty query", "1 to 16000"),
        ("nearest: infinite query", "not finite"),
        ("nearest: page of 0", "1"),
        ("nearest: page of 1001", "1000"),
    ] {
        let s = said(what);
        assert!(
            s.starts_with("invalid: ") && s.contains(expected),
            "{what}: {s}"
        );
    }
    assert_eq!(out["nothing written"], true, "{out}");
}

/// Vectors written by one user are searched by that user only, in the
/// namespaces the plugin may use; nearest keys come back nearest first, a
/// page at a time.
#[tokio::test]
async fn vectors_are_searched_per_user_nearest_first_in_granted_namespaces() {
    let (host, _p) = host_with(Arc::new(MemoryStore::new()), "p", "").await;
    let put = json!({"keys": [["a", [1.0, 0.0]], ["b", [0.0, 1.0]], ["c", [1.0, 1.0]]]});
    call(&host, Some("ann"), "kv.vector-put", put)
        .await
        .unwrap();
    let query = |skip: u32, limit: u32| json!({"prefix": "", "query": [1.0, 0.1], "skip": skip, "limit": limit});
    let ann = call(&host, Some("ann"), "kv.nearest", query(0, 10))
        .await
        .unwrap();
    assert_eq!(ann["keys"], json!(["a", "c", "b"]));
    let page = call(&host, Some("ann"), "kv.nearest", query(1, 1))
        .await
        .unwrap();
    assert_eq!(page["keys"], json!(["c"]));
    let bob = call(&host, Some("bob"), "kv.nearest", query(0, 10))
        .await
        .unwrap();
    assert_eq!(bob["keys"], json!([]));
    let ungranted =
        json!({"namespace": "elsewhere", "prefix": "", "query": [1.0], "skip": 0, "limit": 1});
    let refused = call(&host, Some("ann"), "kv.nearest", ungranted)
        .await
        .unwrap_err();
    assert!(refused.contains("not granted"), "{refused}");
}

#[tokio::test]
async fn quotas_hold_within_the_hosts_ceilings() {
    let manifest = "[storage]\nmax_keys = 2\nmax_bytes = 1000\n";
    let (host, _p) = host_with(Arc::new(MemoryStore::new()), "p", manifest).await;
    for key in ["a", "b"] {
        call(&host, None, "kv.put", json!({"key": key, "value": "v"}))
            .await
            .unwrap();
    }
    let refused = call(&host, None, "kv.put", json!({"key": "c", "value": "v"}))
        .await
        .unwrap_err();
    assert!(refused.contains("quota"), "{refused}");
    assert!(refused.contains("3 keys needed, 2 allowed"), "{refused}");
    // Rewriting a key needs no new room.
    call(&host, None, "kv.put", json!({"key": "a", "value": "w"}))
        .await
        .unwrap();
    let big = "x".repeat(1_100);
    let refused = call(&host, None, "kv.put", json!({"key": "a", "value": big}))
        .await
        .unwrap_err();
    assert!(refused.contains("bytes needed"), "{refused}");

    // A manifest may not ask for more than the host allows.
    let greedy = PluginDir::new()
        .add("greedy", STORAGE)
        .manifest("greedy", "[storage]\nmax_keys = 100000000\n");
    let host = common::host(Some(greedy.path())).await;
    let report = host
        .plugins()
        .into_iter()
        .find(|p| p.name == "greedy")
        .unwrap();
    let error = report.error.unwrap();
    assert!(error.contains("storage quota of 100000000 keys"), "{error}");
}

#[tokio::test]
async fn keys_expire_on_the_hosts_clock() {
    let clock = ManualClock::at(1_000_000);
    let dir = PluginDir::new().add("p", STORAGE);
    let host = common::builder(Some(dir.path()))
        .clock(clock.clone())
        .build()
        .await
        .unwrap();
    let put = json!({"key": "session", "value": "s", "ttl_ms": 60_000});
    call(&host, None, "kv.put", put).await.unwrap();
    let get = json!({"key": "session"});
    clock.advance(Duration::from_millis(59_999));
    assert_eq!(
        call(&host, None, "kv.get", get.clone()).await.unwrap()["value"],
        "s"
    );
    clock.advance(Duration::from_millis(1));
    assert_eq!(
        call(&host, None, "kv.get", get.clone()).await.unwrap()["value"],
        Value::Null
    );
    let keys = call(&host, None, "kv.keys", json!({"prefix": ""}))
        .await
        .unwrap();
    assert_eq!(keys["keys"], json!([]));
    // Absent again: it may be written as new.
    let again = json!({"key": "session", "value": "t", "if_version": 0});
    call(&host, None, "kv.put", again).await.unwrap();
}

#[tokio::test]
async fn keys_list_in_byte_order_a_page_at_a_time() {
    let (host, _p) = host_with(Arc::new(MemoryStore::new()), "p", "").await;
    call(
        &host,
        None,
        "kv.fill",
        json!({"prefix": "doc/", "n": 2_500}),
    )
    .await
    .unwrap();
    call(&host, None, "kv.fill", json!({"prefix": "img/", "n": 3}))
        .await
        .unwrap();
    // The SDK reads pages of 1,000 until the last.
    let out = call(&host, None, "kv.keys", json!({"prefix": "doc/"}))
        .await
        .unwrap();
    let keys: Vec<&str> = out["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap())
        .collect();
    assert_eq!(keys.len(), 2_500);
    assert!(keys.windows(2).all(|w| w[0] < w[1]));
    assert_eq!((keys[0], keys[2_499]), ("doc/00000", "doc/02499"));
    let out = call(&host, None, "kv.keys", json!({"prefix": "img/"}))
        .await
        .unwrap();
    assert_eq!(out["keys"], json!(["img/00000", "img/00001", "img/00002"]));
}

/// Several keys deleted in one call, all or none; a prefix cleared a
/// thousand keys to a call; on a real redb file.
#[tokio::test]
async fn keys_are_deleted_together_or_not_at_all() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(RedbStore::open(&dir.path().join("weft.redb")).unwrap());
    let (host, _p) = host_with(store, "p", "").await;
    let fill = json!({"prefix": "doc/", "n": 2_500});
    call(&host, None, "kv.fill", fill).await.unwrap();
    let host = &host;
    let keys = |prefix: &str| {
        let input = json!({ "prefix": prefix });
        async move { call(host, None, "kv.keys", input).await.unwrap()["keys"].clone() }
    };
    let delete = |deletions: Value| async move {
        call(host, None, "kv.delete", json!({ "deletions": deletions })).await
    };
    // One condition fails: nothing is deleted.
    let refused = delete(json!([["doc/00000", null], ["doc/00001", 999_999]]))
        .await
        .unwrap_err();
    assert!(refused.contains("conflict"), "{refused}");
    assert_eq!(keys("doc/0000").await.as_array().unwrap().len(), 10);
    let out = delete(json!([
        ["doc/00000", null],
        ["doc/00001", null],
        ["nope", 0]
    ]))
    .await
    .unwrap();
    assert_eq!(out["found"], json!([true, true, false]));
    assert_eq!(keys("doc/0000").await.as_array().unwrap().len(), 8);
    // 2,498 keys left, cleared in three calls of at most 1,000.
    let cleared = call(host, None, "kv.clear", json!({"prefix": "doc/"}))
        .await
        .unwrap();
    assert_eq!(cleared["deleted"], 2_498);
    assert_eq!(keys("").await, json!([]));
}

#[tokio::test]
async fn configuration_comes_from_the_manifest_the_environment_and_files() {
    let manifest = "[config]\ngreeting = \"hello\"\nlimits = { n = 3 }\n\
                    home = { env = \"WEFT_TEST_CONFIG_VALUE\" }\nprompt = { file = \"prompt.txt\" }\n\
                    token = { secret = \"API_TOKEN\" }\n";
    // SAFETY: set before any host reads it; no other test reads this name.
    unsafe { std::env::set_var("WEFT_TEST_CONFIG_VALUE", "from the environment") };
    let dir = PluginDir::new()
        .add("p", STORAGE)
        .manifest("p", manifest)
        .file("prompt.txt", b"Be brief.");
    let host = common::host(Some(dir.path())).await;
    let get = |key: &str| call(&host, None, "kv.config", json!({"key": key}));
    let out = get("greeting").await.unwrap();
    assert_eq!(out["value"], "hello");
    assert_eq!(
        out["keys"],
        json!(["greeting", "home", "limits", "prompt", "token"])
    );
    assert_eq!(get("limits").await.unwrap()["value"], json!({"n": 3}));
    assert_eq!(get("home").await.unwrap()["value"], "from the environment");
    assert_eq!(get("prompt").await.unwrap()["value"], "Be brief.");
    assert_eq!(get("missing").await.unwrap()["value"], Value::Null);
    // A secret with no user and no secrets configured is refused, by name.
    let refused = get("token").await.unwrap_err();
    assert!(refused.contains("secret `API_TOKEN`"), "{refused}");
}

#[tokio::test]
async fn three_hosts_on_postgres_count_with_one_winner_per_version() {
    let url = weft_tests::fresh_postgres().await;
    let mut hosts = Vec::new();
    for i in 0..3 {
        let store = Arc::new(PgStore::connect(&url, 8).await.unwrap());
        let (host, dir) = host_with(store, "counter", "").await;
        hosts.push((Arc::new(host), dir, i));
    }
    let mut runs = tokio::task::JoinSet::new();
    for (host, _, _) in &hosts {
        for _ in 0..15 {
            let host = host.clone();
            runs.spawn(async move { count(&host, Some("ann")).await });
        }
    }
    let mut seen = Vec::new();
    while let Some(n) = runs.join_next().await {
        seen.push(n.unwrap());
    }
    seen.sort_unstable();
    // Every increment saw its own version: 1 to 45, each once.
    assert_eq!(seen, (1..=45).collect::<Vec<u64>>());
}

#[tokio::test]
async fn a_plugin_built_against_the_first_contract_still_loads_and_runs() {
    let dir = PluginDir::new().add("old", WIT_0_1_0);
    let host = common::host(Some(dir.path())).await;
    let report = host
        .plugins()
        .into_iter()
        .find(|p| p.name == "old")
        .unwrap();
    assert_eq!(report.error, None);
    let out = call(&host, None, "old.echo", json!({"x": 1}))
        .await
        .unwrap();
    assert_eq!(out, json!({"x": 1}));
}
