//! Schedules, on daemons run in this process against a test clock: cron
//! and interval schedules fire at their instants, a restart catches up as
//! each schedule's policy says, and three hosts on one PostgreSQL database
//! start each occurrence exactly once.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use weft::Host;
use weft::clock::{Clock, ManualClock};
use weft::store::RunStore;
use weft_daemon::{Daemon, DaemonOptions};

const SECOND: u64 = 1_000;
const HOUR: u64 = 3_600_000;
/// 2025-12-03T00:00:00Z.
const DAY0: u64 = 1_764_720_000_000;

/// A daemon serving in this process until dropped.
struct Running {
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    done: tokio::task::JoinHandle<()>,
    http: reqwest::Client,
    token: Option<String>,
}

impl Running {
    async fn start(
        store: Arc<dyn RunStore>,
        clock: Arc<ManualClock>,
        options: DaemonOptions,
    ) -> Running {
        let host = Host::builder()
            .store(store)
            .clock(clock)
            .build()
            .await
            .unwrap();
        let options = DaemonOptions {
            listen: "127.0.0.1:0".parse().unwrap(),
            schedule_tick: Duration::from_millis(20),
            shutdown_grace: Duration::from_secs(5),
            ..options
        };
        let daemon = Daemon::bind(Arc::new(host), options).await.unwrap();
        let addr = daemon.local_addr();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let done = tokio::spawn(async move {
            daemon
                .run(async move {
                    let _ = stopped.await;
                })
                .await
                .unwrap();
        });
        Running {
            addr,
            stop: Some(stop),
            done,
            http: reqwest::Client::new(),
            token: None,
        }
    }

    fn as_token(&self, token: &str) -> Running {
        Running {
            addr: self.addr,
            stop: None,
            done: tokio::spawn(async {}),
            http: self.http.clone(),
            token: Some(token.into()),
        }
    }

    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        let mut r = self
            .http
            .request(method, format!("http://{}{path}", self.addr));
        if let Some(t) = &self.token {
            r = r.bearer_auth(t);
        }
        if let Some(b) = body {
            r = r.json(&b);
        }
        let response = r.send().await.unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    async fn text(&self, path: &str) -> String {
        let url = format!("http://{}{path}", self.addr);
        self.http
            .get(url)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.done.await.unwrap();
    }
}

/// The store's runs started by schedules: schedule name → occurrence
/// instants (from their idempotency keys), each run finished.
async fn fired(store: &dyn RunStore) -> BTreeMap<String, Vec<u64>> {
    let mut by_schedule: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for run in store.list_runs().await.unwrap() {
        let Some(key) = run.idempotency_key.as_deref() else {
            continue;
        };
        let mut parts = key.split(':');
        assert_eq!(parts.next(), Some("schedule"), "{key}");
        let name = parts.next().unwrap().to_string();
        let at: u64 = parts.next().unwrap().parse().unwrap();
        assert!(
            run.origin
                .starts_with(&format!("schedule {name}: graph adder@1")),
            "{}",
            run.origin
        );
        by_schedule.entry(name).or_default().push(at);
    }
    for list in by_schedule.values_mut() {
        list.sort();
    }
    by_schedule
}

/// Wait until the schedules have started `count` runs in all, and every
/// run has ended.
async fn settle(store: &dyn RunStore, count: usize) -> BTreeMap<String, Vec<u64>> {
    for _ in 0..500 {
        let runs = store.list_runs().await.unwrap();
        let ended = runs
            .iter()
            .all(|r| r.status != weft::events::RunStatus::Running);
        if runs.len() >= count && ended {
            // A little longer: nothing more may start.
            tokio::time::sleep(Duration::from_millis(200)).await;
            return fired(store).await;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!(
        "the schedules did not start {count} runs: {:?}",
        fired(store).await
    );
}

fn at_hours(hours: impl IntoIterator<Item = u64>, plus: u64) -> Vec<u64> {
    hours.into_iter().map(|h| DAY0 + h * HOUR + plus).collect()
}

async fn add(d: &Running, name: &str, body: Value) {
    let (s, e) = d
        .call(Method::PUT, &format!("/v1/schedules/{name}"), Some(body))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{e}");
}

/// Open the redb file at `path`, once the previous daemon let it go.
async fn reopen(path: &std::path::Path) -> Arc<dyn RunStore> {
    for _ in 0..250 {
        if let Ok(store) = weft::store::RedbStore::open(path) {
            return Arc::new(store);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("{} stays open", path.display());
}

/// Cron and interval schedules fire at their instants; stopped for five
/// hours, a restarted daemon starts every missed occurrence (`all`), the
/// latest (`one`) or none (`skip`), and goes on at the next instant.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schedules_fire_on_time_and_catch_up_after_a_restart_as_told() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("weft.redb");
    let clock = ManualClock::at(DAY0 + 10 * SECOND);
    let store = reopen(&path).await;
    let d = Running::start(store.clone(), clock.clone(), DaemonOptions::default()).await;
    let graph = json!({"tasks": [{"id": "a", "type": "math.add-one"}]});
    let (s, e) = d.call(Method::PUT, "/v1/graphs/adder", Some(graph)).await;
    assert!(s.is_success(), "{e}");
    add(
        &d,
        "every",
        json!({"graph": "adder", "every": "1h", "catch_up": "all", "input": {"value": 1}}),
    )
    .await;
    let one =
        json!({"graph": "adder", "cron": "0 * * * *", "catch_up": "one", "input": {"value": 1}});
    add(&d, "one", one).await;
    // On the hour in Paris is on the hour in UTC too.
    let skip = json!({"graph": "adder", "cron": "0 * * * *", "time_zone": "Europe/Paris", "catch_up": "skip", "input": {"value": 1}});
    add(&d, "skip", skip).await;
    let (_, listed) = d.call(Method::GET, "/v1/schedules", None).await;
    let next: Vec<u64> = listed["schedules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["next_ms"].as_u64().unwrap())
        .collect();
    assert_eq!(
        next,
        [DAY0 + HOUR + 10 * SECOND, DAY0 + HOUR, DAY0 + HOUR],
        "{listed}"
    );

    // Nothing is due before its instant.
    clock.advance(Duration::from_millis(HOUR - 11 * SECOND));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(fired(store.as_ref()).await.is_empty());
    // Each fires at its instant, once.
    clock.advance(Duration::from_millis(11 * SECOND));
    let runs = settle(store.as_ref(), 3).await;
    assert_eq!(runs["every"], at_hours([1], 10 * SECOND));
    assert_eq!(runs["one"], at_hours([1], 0));
    assert_eq!(runs["skip"], at_hours([1], 0));
    let (_, one) = d.call(Method::GET, "/v1/schedules/one", None).await;
    assert_eq!(one["last"]["at_ms"], json!(DAY0 + HOUR), "{one}");
    assert!(one["last"]["run_id"].is_string(), "{one}");

    // Down from 01:00:10 until 06:05:00: occurrences at 02:00 to 06:00 missed.
    d.stop().await;
    drop(store);
    clock.advance(Duration::from_millis(
        5 * HOUR + 5 * 60 * SECOND - 10 * SECOND,
    ));
    let store = reopen(&path).await;
    let d = Running::start(store.clone(), clock.clone(), DaemonOptions::default()).await;
    let runs = settle(store.as_ref(), 3 + 5 + 1).await;
    assert_eq!(
        runs["every"],
        at_hours(1..=6, 10 * SECOND),
        "all: each missed one"
    );
    assert_eq!(runs["one"], at_hours([1, 6], 0), "one: the latest");
    assert_eq!(runs["skip"], at_hours([1], 0), "skip: none");
    let (_, listed) = d.call(Method::GET, "/v1/schedules", None).await;
    let next: Vec<u64> = listed["schedules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["next_ms"].as_u64().unwrap())
        .collect();
    assert_eq!(
        next,
        [
            DAY0 + 7 * HOUR + 10 * SECOND,
            DAY0 + 7 * HOUR,
            DAY0 + 7 * HOUR
        ]
    );
    let skip = &listed["schedules"][2]["last"];
    assert!(skip["error"].as_str().unwrap().contains("missed"), "{skip}");

    // Paused, nothing fires; resumed, it goes on from the next instant.
    let (s, _) = d.call(Method::POST, "/v1/schedules/one/pause", None).await;
    assert_eq!(s, StatusCode::OK);
    clock.advance(Duration::from_millis(HOUR));
    // 07:05: `every` fires (07:00:10 is on its way); `skip` drops 07:00,
    // five minutes late; `one` is paused.
    let runs = settle(store.as_ref(), 9 + 1).await;
    assert_eq!(runs["one"], at_hours([1, 6], 0), "paused at 07:00");
    assert_eq!(runs["every"], at_hours(1..=7, 10 * SECOND));
    assert_eq!(runs["skip"], at_hours([1], 0));
    // This daemon started seven runs and dropped two occurrences.
    let metrics = d.text("/metrics").await;
    for line in [
        "weft_schedule_firings_total{outcome=\"started\"} 7",
        "weft_schedule_firings_total{outcome=\"missed\"} 2",
    ] {
        assert!(metrics.contains(line), "{line} in {metrics}");
    }
    let (_, resumed) = d.call(Method::POST, "/v1/schedules/one/resume", None).await;
    assert_eq!(resumed["next_ms"], json!(DAY0 + 8 * HOUR), "{resumed}");
    d.stop().await;
}

/// Bad schedules are refused naming what is wrong; a user sees, changes and
/// removes only their own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schedules_are_checked_and_belong_to_their_user() {
    let store: Arc<dyn RunStore> = Arc::new(weft::store::MemoryStore::new());
    let options = DaemonOptions {
        tokens: vec![
            ("ann-token-0123456789".into(), "ann".into()),
            ("bob-token-0123456789".into(), "bob".into()),
        ],
        quotas: weft::config::QuotaConfig {
            schedules: Some(2),
            ..Default::default()
        },
        ..DaemonOptions::default()
    };
    let d = Running::start(store.clone(), ManualClock::at(DAY0), options).await;
    let ann = d.as_token("ann-token-0123456789");
    let bob = d.as_token("bob-token-0123456789");
    let graph = json!({"tasks": [{"id": "a", "type": "math.add-one"}]});
    let (s, _) = ann.call(Method::PUT, "/v1/graphs/adder", Some(graph)).await;
    assert!(s.is_success());

    let refused = [
        (
            json!({"graph": "adder", "cron": "61 * * * *"}),
            "cron pattern `61 * * * *`",
        ),
        (
            json!({"graph": "adder", "cron": "0 3 * * *", "time_zone": "Mars/Olympus"}),
            "unknown time zone `Mars/Olympus`",
        ),
        (
            json!({"graph": "adder", "every": "500ms"}),
            "at least one second",
        ),
        (
            json!({"graph": "adder", "every": "1h", "cron": "0 * * * *"}),
            "either `cron`",
        ),
        (json!({"graph": "adder"}), "either `cron`"),
        (
            json!({"graph": "adder", "every": "1h", "input": [1]}),
            "`input` must be a JSON object",
        ),
    ];
    for (body, says) in refused {
        let (s, e) = ann
            .call(Method::PUT, "/v1/schedules/x", Some(body.clone()))
            .await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {e}");
        assert!(e["error"].as_str().unwrap().contains(says), "{body}: {e}");
    }
    let (s, e) = ann
        .call(
            Method::PUT,
            "/v1/schedules/bad%20name",
            Some(json!({"graph": "adder", "every": "1h"})),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{e}");
    // Bob cannot schedule Ann's graph (not shared with him).
    let (s, e) = bob
        .call(
            Method::PUT,
            "/v1/schedules/x",
            Some(json!({"graph": "adder", "every": "1h"})),
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{e}");

    // The input must fit the graph.
    let (s, e) = ann
        .call(
            Method::PUT,
            "/v1/schedules/x",
            Some(json!({"graph": "adder", "every": "1h"})),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{e}");
    assert!(e.to_string().contains("value"), "{e}");
    let hourly = json!({"graph": "adder", "every": "1h", "input": {"value": 1}});
    add(&ann, "a", hourly.clone()).await;
    add(&ann, "b", hourly.clone()).await;
    let (s, e) = ann
        .call(Method::PUT, "/v1/schedules/c", Some(hourly.clone()))
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{e}");
    assert!(
        e["error"].as_str().unwrap().contains("[quotas] schedules"),
        "{e}"
    );
    // Replacing one is not a new one.
    let (s, e) = ann
        .call(
            Method::PUT,
            "/v1/schedules/b",
            Some(json!({"graph": "adder", "every": "2h", "input": {"value": 2}})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{e}");
    assert_eq!(e["every_ms"], json!(2 * HOUR));

    // Bob sees none of Ann's, and cannot touch them.
    let (_, listed) = bob.call(Method::GET, "/v1/schedules", None).await;
    assert_eq!(listed["schedules"], json!([]));
    for (method, path) in [
        (Method::GET, "/v1/schedules/a"),
        (Method::POST, "/v1/schedules/a/pause"),
        (Method::DELETE, "/v1/schedules/a"),
    ] {
        let (s, _) = bob.call(method.clone(), path, None).await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{method} {path}");
    }
    let (s, _) = ann.call(Method::DELETE, "/v1/schedules/a", None).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (_, listed) = ann.call(Method::GET, "/v1/schedules", None).await;
    assert_eq!(listed["schedules"].as_array().unwrap().len(), 1);
    d.stop().await;
}

/// Three hosts on one PostgreSQL database, all firing due schedules: each
/// occurrence starts exactly one run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_hosts_start_each_occurrence_exactly_once() {
    let url = weft_tests::fresh_postgres().await;
    let clock = ManualClock::at(DAY0);
    let mut hosts = Vec::new();
    let mut stores = Vec::new();
    for i in 0..3 {
        let store: Arc<dyn RunStore> =
            Arc::new(weft::store::PgStore::connect(&url, 4).await.unwrap());
        let options = DaemonOptions {
            host_id: format!("host-{i}"),
            ..DaemonOptions::default()
        };
        hosts.push(Running::start(store.clone(), clock.clone(), options).await);
        stores.push(store);
    }
    let graph = json!({"tasks": [{"id": "a", "type": "math.add-one"}]});
    let (s, _) = hosts[0]
        .call(Method::PUT, "/v1/graphs/adder", Some(graph))
        .await;
    assert!(s.is_success());
    add(&hosts[1], "often", json!({"graph": "adder", "cron": "*/2 * * * * *", "catch_up": "all", "input": {"value": 1}})).await;
    // Twenty seconds, a second at a time, the three hosts racing each time.
    for _ in 0..20 {
        clock.advance(Duration::from_millis(SECOND));
        tokio::time::sleep(Duration::from_millis(60)).await;
    }
    let runs = settle(stores[0].as_ref(), 10).await;
    let expected: Vec<u64> = (1..=10).map(|i| DAY0 + 2 * i * SECOND).collect();
    assert_eq!(runs["often"], expected, "each occurrence once, none missed");
    for d in hosts {
        d.stop().await;
    }
    assert!(clock.now_ms() >= DAY0 + 20 * SECOND);
}

/// `weft schedules` adds, lists, pauses, resumes and removes a daemon's
/// schedules, and says what is wrong when the daemon refuses.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_manages_schedules() {
    let store: Arc<dyn RunStore> = Arc::new(weft::store::MemoryStore::new());
    let d = Running::start(store, ManualClock::at(DAY0), DaemonOptions::default()).await;
    let graph = json!({"tasks": [{"id": "a", "type": "math.add-one"}]});
    let (s, _) = d.call(Method::PUT, "/v1/graphs/adder", Some(graph)).await;
    assert!(s.is_success());
    let server = format!("http://{}", d.addr);
    let weft = |args: &[&str]| {
        let server = server.clone();
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        async move {
            let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_weft"))
                .args(&args)
                .args(["--server", &server])
                .env_remove("WEFT_TOKEN")
                .output()
                .await
                .unwrap();
            let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
            (out.status.success(), text(&out.stdout), text(&out.stderr))
        }
    };
    let (ok, out, err) = weft(&[
        "schedules",
        "add",
        "nightly",
        "--graph",
        "adder",
        "--cron",
        "0 3 * * *",
        "--time-zone",
        "Europe/Paris",
        "--input",
        r#"{"value": 1}"#,
    ])
    .await;
    assert!(ok, "{err}");
    // 03:00 in Paris is 02:00 UTC in December.
    assert!(
        out.contains(
            "nightly  cron \"0 3 * * *\" Europe/Paris  graph adder  next 2025-12-03T02:00:00Z"
        ),
        "{out}"
    );
    let (ok, _, err) = weft(&[
        "schedules",
        "add",
        "poll",
        "--graph",
        "adder",
        "--every",
        "1h 30m",
        "--input",
        r#"{"value": 2}"#,
        "--catch-up",
        "skip",
    ])
    .await;
    assert!(ok, "{err}");
    let (ok, out, _) = weft(&["schedules", "--json"]).await;
    assert!(ok);
    let listed: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(listed[1]["name"], "poll");
    assert_eq!(listed[1]["every_ms"], json!(90 * 60 * SECOND));
    assert_eq!(listed[1]["catch_up"], "skip");
    let (ok, out, _) = weft(&["schedules", "pause", "poll"]).await;
    assert!(
        ok && out.contains("poll  every 1h 30m  graph adder  paused"),
        "{out}"
    );
    let (ok, out, _) = weft(&["schedules", "resume", "poll"]).await;
    assert!(ok && out.contains("next 2025-12-03T01:30:00Z"), "{out}");
    let (ok, out, _) = weft(&["schedules", "rm", "poll"]).await;
    assert!(ok && out.contains("removed schedule poll"), "{out}");
    let (ok, _, err) = weft(&["schedules", "rm", "poll"]).await;
    assert!(
        !ok && err.contains("404") && err.contains("no schedule `poll`"),
        "{err}"
    );
    let (ok, _, err) = weft(&[
        "schedules",
        "add",
        "x",
        "--graph",
        "adder",
        "--every",
        "1h",
        "--cron",
        "* * * * *",
    ])
    .await;
    assert!(!ok && err.contains("cannot be used with"), "{err}");
    let (ok, out, _) = weft(&["schedules", "list"]).await;
    assert!(
        ok && out.lines().count() == 1 && out.starts_with("nightly"),
        "{out}"
    );
    d.stop().await;
}
