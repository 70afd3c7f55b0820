//! The daemon, tested as users meet it: a real `weft serve` process on a
//! loopback port, with a real redb file, driven over HTTP.

#[path = "support/daemon.rs"]
mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};
use support::{Api, Daemon};

fn flow(s: &str, sp: &str, t: &str, tp: &str) -> Value {
    json!({"sourceTaskId": s, "sourceTaskPortId": sp, "targetTaskId": t, "targetTaskPortId": tp})
}

/// a → b (add-one twice).
fn add_two() -> Value {
    json!({
        "tasks": [{"id": "a", "type": "math.add-one"}, {"id": "b", "type": "math.add-one"}],
        "dataflows": [flow("a", "value", "b", "value")],
    })
}

/// `n` delays of `ms` in a chain, then add-one.
fn delays(n: usize, ms: u64) -> Value {
    let mut tasks = Vec::new();
    let mut flows = Vec::new();
    for i in 0..n {
        tasks.push(json!({"id": format!("d{i}"), "type": "util.delay", "defaults": {"ms": ms}}));
        if i > 0 {
            flows.push(flow(
                &format!("d{}", i - 1),
                "value",
                &format!("d{i}"),
                "value",
            ));
        }
    }
    tasks.push(json!({"id": "end", "type": "math.add-one"}));
    flows.push(flow(&format!("d{}", n - 1), "value", "end", "value"));
    json!({"tasks": tasks, "dataflows": flows})
}

fn empty_plugins(dir: &Path) -> PathBuf {
    let p = dir.join("plugins");
    std::fs::create_dir_all(&p).unwrap();
    p
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_endpoint_answers_and_refuses_bad_requests_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(
        dir.path(),
        &empty_plugins(dir.path()),
        "[server]\nmax_body_bytes = 4000\n",
    );

    // Health, readiness, the API document.
    let (s, _) = d.get("/healthz").await;
    assert_eq!(s, StatusCode::OK);
    let (s, _) = d.get("/readyz").await;
    assert_eq!(s, StatusCode::OK);
    let (s, doc) = d.get("/v1/openapi.json").await;
    assert_eq!(s, StatusCode::OK);
    let paths: Vec<&str> = doc["paths"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    for p in [
        "/v1/runs",
        "/v1/runs/{id}",
        "/v1/runs/{id}/cancel",
        "/v1/runs/{id}/events",
        "/v1/tasks",
        "/v1/plugins",
        "/v1/graphs",
        "/v1/graphs/{name}",
        "/v1/dead-letters",
        "/v1/dead-letters/{id}/retry",
        "/healthz",
        "/readyz",
        "/metrics",
    ] {
        assert!(paths.contains(&p), "{p} is not documented");
    }

    // Task types with schemas; plugins with hashes.
    let (_, tasks) = d.get("/v1/tasks").await;
    let add = tasks
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == "math.add-one")
        .unwrap();
    assert_eq!(add["input_schema"]["properties"]["value"]["type"], "number");
    let (_, plugins) = d.get("/v1/plugins").await;
    assert!(
        plugins
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == "std-math" && p["sha256"].as_str().unwrap().len() == 64)
    );

    // A run: 201 with its id, then its outputs.
    let (s, body) = d
        .post(
            "/v1/runs",
            json!({"graph": add_two(), "input": {"value": 40}}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{body}");
    let id = body["run_id"].as_str().unwrap();
    let run = d.finished(id).await;
    assert_eq!(run["status"], "succeeded");
    assert_eq!(run["outputs"]["b"]["value"], 42);
    assert_eq!(run["nodes"]["a"]["status"], "completed");
    assert_eq!(run["owner"], "local");

    // Bad requests: each names what is wrong.
    let raw = |body: &'static str| {
        d.req(reqwest::Method::POST, "/v1/runs")
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    let r = raw("{\"graph\": {\"tasks\": [}").await.unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let e: Value = r.json().await.unwrap();
    assert!(
        e["error"].as_str().unwrap().contains("line 1 column 22"),
        "{e}"
    );
    let (s, e) = d
        .post(
            "/v1/runs",
            json!({"graph": {"tasks": [{"id": "a", "type": "math.add-on"}]}}),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        e["errors"][0].as_str().unwrap().contains(
            "tasks[0] (node \"a\"): unknown task type `math.add-on` (did you mean `math.add-one`?)"
        ),
        "{e}"
    );
    let (s, e) = d.post("/v1/runs", json!({"graph": 7})).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        e["error"].as_str().unwrap().contains("`graph` must be"),
        "{e}"
    );
    let (s, e) = d
        .post("/v1/runs", json!({"graph": add_two(), "inptu": {}}))
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        e["error"]
            .as_str()
            .unwrap()
            .contains("unknown field `inptu`"),
        "{e}"
    );
    let (s, e) = d
        .post(
            "/v1/runs",
            json!({"graph": add_two(), "input": {"value": "x"}}),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{e}");
    assert!(
        e["errors"][0]
            .as_str()
            .unwrap()
            .contains("tasks[0] (node \"a\"): the run's input does not fit `math.add-one`"),
        "{e}"
    );
    let (s, e) = d
        .post(
            "/v1/runs",
            json!({"graph": add_two(), "input": {"pad": "x".repeat(5000)}}),
        )
        .await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE, "{e}");
    let (s, _) = d.get("/v1/runs/no-such-run").await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, e) = d.get("/v1/nothing-here").await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert!(e["error"].as_str().unwrap().contains("no such route"));
    let (s, _) = d.get("/v1/runs?status=bogus").await;
    assert_eq!(s, StatusCode::BAD_REQUEST);

    // Saved graphs: validated on save, versioned, runnable by name.
    let put = |name: &str, graph: Value| {
        d.req(reqwest::Method::PUT, &format!("/v1/graphs/{name}"))
            .json(&graph)
            .send()
    };
    let r = put(
        "broken",
        json!({"tasks": [{"id": "a", "type": "nope.nope"}]}),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let e: Value = r.json().await.unwrap();
    assert!(
        e["errors"][0]
            .as_str()
            .unwrap()
            .starts_with("graph broken: tasks[0]"),
        "{e}"
    );
    let r = put("bad name!", add_two()).await.unwrap();
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let r = put("plus", add_two()).await.unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_eq!(r.json::<Value>().await.unwrap()["version"], 1);
    let one = json!({"tasks": [{"id": "a", "type": "math.add-one"}]});
    let r = put("plus", one.clone()).await.unwrap();
    assert_eq!(r.json::<Value>().await.unwrap()["version"], 2);
    let (_, latest) = d.get("/v1/graphs/plus").await;
    assert_eq!(
        (
            latest["version"].clone(),
            latest["graph"]["tasks"].as_array().unwrap().len()
        ),
        (json!(2), 1)
    );
    let (_, first) = d.get("/v1/graphs/plus?version=1").await;
    assert_eq!(first["graph"]["tasks"].as_array().unwrap().len(), 2);
    let (_, list) = d.get("/v1/graphs").await;
    assert_eq!(
        list,
        json!([{"name": "plus", "version": 2, "saved_ms": latest["saved_ms"], "owner": "local", "tasks": 1}])
    );
    let (s, body) = d
        .post(
            "/v1/runs",
            json!({"graph": "plus", "version": 1, "input": {"value": 1}}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let named = d.finished(body["run_id"].as_str().unwrap()).await;
    assert_eq!(
        (
            named["outputs"]["b"]["value"].clone(),
            named["graph_name"].clone()
        ),
        (json!(3), json!("plus"))
    );
    assert_eq!(named["origin"], "graph plus@1");
    let (s, _) = d.post("/v1/runs", json!({"graph": "nope"})).await;
    assert_eq!(s, StatusCode::NOT_FOUND);

    // Listing: filters and pages.
    let (_, page) = d.get("/v1/runs?graph=plus").await;
    assert_eq!(page["runs"].as_array().unwrap().len(), 1);
    let (_, page) = d.get("/v1/runs?status=succeeded&limit=1").await;
    assert_eq!(page["runs"].as_array().unwrap().len(), 1);
    let cursor = page["next_cursor"].as_str().unwrap().to_string();
    let (_, next) = d
        .get(&format!(
            "/v1/runs?status=succeeded&limit=1&cursor={cursor}"
        ))
        .await;
    assert_eq!(next["runs"].as_array().unwrap().len(), 1);
    assert_ne!(next["runs"][0]["run_id"], page["runs"][0]["run_id"]);
    assert_eq!(next["next_cursor"], Value::Null);
    let (_, none) = d.get("/v1/runs?since=99999999999999").await;
    assert_eq!(none["runs"], json!([]));

    let r = d
        .req(reqwest::Method::DELETE, "/v1/graphs/plus")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let r = d
        .req(reqwest::Method::DELETE, "/v1/graphs/plus")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);

    // Dead letters: a failed node is listed and can be re-driven.
    let failing = json!({"tasks": [{"id": "t", "type": "text.template", "defaults": {"template": "{{missing}}"}}]});
    let id = d.submit(failing, json!({})).await;
    assert_eq!(d.finished(&id).await["status"], "failed");
    // Paged by failed run, newest first.
    let newer = d
        .submit(
            json!({"tasks": [{"id": "t", "type": "text.template", "defaults": {"template": "{{gone}}"}}]}),
            json!({}),
        )
        .await;
    assert_eq!(d.finished(&newer).await["status"], "failed");
    let (_, first) = d.get("/v1/dead-letters?limit=1").await;
    let cursor = first["next_cursor"].as_str().unwrap().to_string();
    let (_, second) = d
        .get(&format!("/v1/dead-letters?limit=1&cursor={cursor}"))
        .await;
    assert_eq!(
        first["dead_letters"][0]["run_id"],
        newer.as_str(),
        "{first}"
    );
    assert_eq!(second["dead_letters"][0]["run_id"], id.as_str(), "{second}");
    let (_, letters) = d.get("/v1/dead-letters").await;
    assert_eq!(letters["next_cursor"], Value::Null, "{letters}");
    let letter = letters["dead_letters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["run_id"] == id.as_str())
        .unwrap();
    assert_eq!(letter["id"], format!("{id}:t"));
    assert!(
        letter["errors"][0]
            .as_str()
            .unwrap()
            .contains("{{missing}}"),
        "{letter}"
    );
    let (s, _) = d
        .post(&format!("/v1/dead-letters/{id}:t/retry"), json!({}))
        .await;
    assert_eq!(s, StatusCode::ACCEPTED);
    let again = d.finished(&id).await;
    assert_eq!(again["status"], "failed");
    let all = d.events(&id, None, 1000).await;
    let resumed = all
        .iter()
        .filter(|e| e["type"] == "run_started" && e["resumed"] == true)
        .count();
    assert_eq!(resumed, 1, "the re-drive ran the node again");
    let (s, _) = d
        .post(&format!("/v1/dead-letters/{id}:nope/retry"), json!({}))
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);

    // Cancel: a running run ends cancelled; a finished one cannot be.
    let id = d.submit(delays(1, 20_000), json!({})).await;
    let (s, run) = d.post(&format!("/v1/runs/{id}/cancel"), json!({})).await;
    assert_eq!(s, StatusCode::OK, "{run}");
    assert_eq!(run["status"], "cancelled");
    let (s, e) = d.post(&format!("/v1/runs/{id}/cancel"), json!({})).await;
    assert_eq!(s, StatusCode::CONFLICT);
    assert!(
        e["error"].as_str().unwrap().contains("already ended"),
        "{e}"
    );

    // Metrics count what happened.
    let text = d
        .http
        .get(format!("{}/metrics", d.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        text.contains("weft_runs_finished_total{status=\"succeeded\"} 2"),
        "{text}"
    );
    assert!(
        text.contains("weft_runs_finished_total{status=\"cancelled\"} 1"),
        "{text}"
    );
    assert!(text.contains("weft_task_duration_seconds_count"), "{text}");
    assert!(text.contains("weft_plugin_load_failures 0"), "{text}");
}

const TWO_USERS: &str = r#"
[[tokens]]
user = "alice"
token = "alice-secret-token-0001"

[[tokens]]
user = "bob"
token = "bob-secret-token-00002"
"#;

/// What a web page open in the operator's browser could send to the loopback
/// daemon: a form post, a fetch from its own origin, a DNS-rebound name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn web_pages_cannot_drive_the_loopback_daemon() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(
        dir.path(),
        &empty_plugins(dir.path()),
        "[server]\nallowed_origins = [\"https://console.example\"]\nallowed_hosts = [\"weft.internal\"]\n",
    );
    let body = json!({"graph": add_two(), "input": {"value": 1}}).to_string();
    let port = d.url.rsplit(':').next().unwrap().to_string();
    let post = |content_type: &str, extra: &[(&str, String)]| {
        let mut r = d
            .req(reqwest::Method::POST, "/v1/runs")
            .header("content-type", content_type)
            .body(body.clone());
        for (k, v) in extra {
            r = r.header(*k, v);
        }
        r.send()
    };
    let error = |r: reqwest::Response| async move {
        let status = r.status();
        let e: Value = r.json().await.unwrap();
        (status, e["error"].as_str().unwrap_or_default().to_string())
    };

    // A form or `text/plain` post, the requests a page sends without asking.
    for form in [
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data",
    ] {
        let (s, e) = error(post(form, &[]).await.unwrap()).await;
        assert_eq!(s, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{form}: {e}");
        assert!(e.contains("application/json"), "{e}");
    }
    // A JSON post from a foreign page (after a preflight it would not get).
    let evil = [("origin", "https://evil.example".to_string())];
    let (s, e) = error(post("application/json", &evil).await.unwrap()).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert!(e.contains("`https://evil.example`"), "{e}");
    let r = d
        .req(reqwest::Method::OPTIONS, "/v1/runs")
        .header("origin", "https://evil.example")
        .header("access-control-request-method", "POST")
        .send()
        .await
        .unwrap();
    assert!(r.headers().get("access-control-allow-origin").is_none());
    // Without Origin but marked cross-site by the browser.
    let marked = [("sec-fetch-site", "cross-site".to_string())];
    let (s, _) = error(post("application/json", &marked).await.unwrap()).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    // A rebound name: every route refuses it, the event stream included.
    let rebound = format!("evil.example:{port}");
    for path in ["/v1/runs", "/v1/runs/x/events", "/metrics", "/healthz"] {
        let r = d
            .req(reqwest::Method::GET, path)
            .header("host", &rebound)
            .send()
            .await
            .unwrap();
        let (s, e) = error(r).await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{path}");
        assert!(e.contains(&format!("host `{rebound}`")), "{e}");
    }
    // None of that started a run.
    let (_, runs) = d.get("/v1/runs").await;
    assert_eq!(runs["runs"], json!([]), "{runs}");

    // What keeps working: the daemon's own origin, a configured origin
    // (with CORS answers), a configured host name, and clients with no Origin.
    let own = [("origin", d.url.clone())];
    assert_eq!(
        post("application/json", &own).await.unwrap().status(),
        StatusCode::CREATED
    );
    let console = [("origin", "https://console.example".to_string())];
    let r = post("application/json", &console).await.unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_eq!(
        r.headers()["access-control-allow-origin"],
        "https://console.example"
    );
    let r = d
        .req(reqwest::Method::OPTIONS, "/v1/runs")
        .header("origin", "https://console.example")
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "content-type")
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    assert_eq!(
        r.headers()["access-control-allow-origin"],
        "https://console.example"
    );
    let named = [("host", format!("weft.internal:{port}"))];
    assert_eq!(
        post("application/json; charset=utf-8", &named)
            .await
            .unwrap()
            .status(),
        StatusCode::CREATED
    );
    let (s, e) = d
        .post(
            "/v1/runs",
            json!({"graph": add_two(), "input": {"value": 1}}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{e}");
    let (_, runs) = d.get("/v1/runs").await;
    assert_eq!(runs["runs"].as_array().unwrap().len(), 4, "{runs}");
}

/// One user's cached outputs are not served to another: a cache hit would
/// tell bob what alice ran.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_output_cache_is_per_user() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(dir.path(), &empty_plugins(dir.path()), TWO_USERS);
    let alice = d.as_user("alice-secret-token-0001");
    let bob = d.as_user("bob-secret-token-00002");
    let cached = |events: &[Value]| {
        events
            .iter()
            .find(|e| e["type"] == "node" && e["status"] == "completed")
            .map(|e| e["cached"] == true)
            .expect("the node completed")
    };
    let graph = json!({"tasks": [{"id": "a", "type": "math.add-one"}]});
    let mut seen = Vec::new();
    for api in [&alice, &bob, &alice, &bob] {
        let id = api.submit(graph.clone(), json!({"value": 41})).await;
        api.finished(&id).await;
        seen.push(cached(&api.events(&id, None, 100).await));
    }
    assert_eq!(seen, [false, false, true, true], "alice, bob, alice, bob");

    // Unless the operator shares a task type's entries.
    let shared_dir = tempfile::tempdir().unwrap();
    let config = format!("[cache]\nshared = [\"math.add-one\"]\n{TWO_USERS}");
    let d = Daemon::start(
        shared_dir.path(),
        &empty_plugins(shared_dir.path()),
        &config,
    );
    let alice = d.as_user("alice-secret-token-0001");
    let bob = d.as_user("bob-secret-token-00002");
    let mut seen = Vec::new();
    for api in [&alice, &bob] {
        let id = api.submit(graph.clone(), json!({"value": 41})).await;
        api.finished(&id).await;
        seen.push(cached(&api.events(&id, None, 100).await));
    }
    assert_eq!(seen, [false, true], "bob is served alice's entry");
}

/// A saved graph is its user's: another user can neither read, replace nor
/// delete it, and submitting by name runs one's own graph.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn saved_graphs_belong_to_their_user() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(dir.path(), &empty_plugins(dir.path()), TWO_USERS);
    let alice = d.as_user("alice-secret-token-0001");
    let bob = d.as_user("bob-secret-token-00002");
    let put = |api: &support::Api, graph: Value| {
        api.req(reqwest::Method::PUT, "/v1/graphs/pipeline")
            .json(&graph)
            .send()
    };
    let adds = |n: usize| {
        let tasks: Vec<Value> = (0..n)
            .map(|i| json!({"id": format!("a{i}"), "type": "math.add-one"}))
            .collect();
        let flows: Vec<Value> = (1..n)
            .map(|i| flow(&format!("a{}", i - 1), "value", &format!("a{i}"), "value"))
            .collect();
        json!({"tasks": tasks, "dataflows": flows})
    };
    assert_eq!(
        put(&alice, adds(1)).await.unwrap().status(),
        StatusCode::CREATED
    );

    // Bob cannot see it; his save of the same name is his own graph.
    let (s, _) = bob.get("/v1/graphs/pipeline").await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (_, listed) = bob.get("/v1/graphs").await;
    assert_eq!(listed, json!([]));
    let r = put(&bob, adds(3)).await.unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_eq!(
        r.json::<Value>().await.unwrap()["version"],
        1,
        "his own first version"
    );

    // Alice's graph is unchanged, and submitting it by name runs hers.
    let (s, mine) = alice.get("/v1/graphs/pipeline").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        (mine["name"].clone(), mine["version"].clone()),
        (json!("pipeline"), json!(1))
    );
    assert_eq!(mine["graph"]["tasks"].as_array().unwrap().len(), 1);
    let id = alice.submit(json!("pipeline"), json!({"value": 1})).await;
    assert_eq!(alice.finished(&id).await["outputs"]["a0"]["value"], 2);
    let id = bob.submit(json!("pipeline"), json!({"value": 1})).await;
    assert_eq!(bob.finished(&id).await["outputs"]["a2"]["value"], 4);

    // Bob's delete removes his own only.
    let r = bob
        .req(reqwest::Method::DELETE, "/v1/graphs/pipeline")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let r = bob
        .req(reqwest::Method::DELETE, "/v1/graphs/pipeline")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let (s, _) = alice.get("/v1/graphs/pipeline").await;
    assert_eq!(s, StatusCode::OK);
    let (_, listed) = alice.get("/v1/graphs").await;
    assert_eq!(listed[0]["name"], "pipeline");
    assert_eq!(listed.as_array().unwrap().len(), 1);

    // Sharing is explicit: once Alice shares it, Bob reads and runs it as
    // `alice/pipeline`; he can never change or delete it.
    let theirs = "/v1/graphs/alice%2Fpipeline";
    assert_eq!(
        bob.get(theirs).await.0,
        StatusCode::NOT_FOUND,
        "not shared yet"
    );
    let share = |users: Value| {
        alice
            .req(reqwest::Method::PUT, "/v1/graphs/pipeline/sharing")
            .json(&json!({"users": users}))
            .send()
    };
    assert_eq!(
        share(json!(["bob"])).await.unwrap().status(),
        StatusCode::CREATED
    );
    let (s, shared) = bob.get(theirs).await;
    assert_eq!(s, StatusCode::OK, "{shared}");
    assert_eq!(shared["shared_with"], json!(["bob"]));
    let (_, listed) = bob.get("/v1/graphs").await;
    assert_eq!(listed[0]["name"], "alice/pipeline", "{listed}");
    let id = bob
        .submit(json!("alice/pipeline"), json!({"value": 1}))
        .await;
    let run = bob.finished(&id).await;
    assert_eq!(
        run["outputs"]["a0"]["value"], 2,
        "alice's graph, as bob's run"
    );
    for method in [reqwest::Method::PUT, reqwest::Method::DELETE] {
        let r = bob
            .req(method.clone(), theirs)
            .json(&adds(1))
            .send()
            .await
            .unwrap();
        assert!(
            r.status().is_client_error() && r.status() != StatusCode::OK,
            "{method}"
        );
    }
    let r = bob
        .req(reqwest::Method::PUT, "/v1/graphs/pipeline/sharing")
        .json(&json!({"users": ["bob"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        StatusCode::NOT_FOUND,
        "bob has no graph of that name"
    );
    // A new version keeps the sharing; an empty list ends it.
    assert_eq!(
        put(&alice, adds(2)).await.unwrap().status(),
        StatusCode::CREATED
    );
    assert_eq!(
        bob.get(theirs).await.1["graph"]["tasks"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    assert_eq!(
        share(json!([])).await.unwrap().status(),
        StatusCode::CREATED
    );
    assert_eq!(bob.get(theirs).await.0, StatusCode::NOT_FOUND);
    let (s, _) = alice.get("/v1/graphs/pipeline").await;
    assert_eq!(s, StatusCode::OK, "alice's graph is intact");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_see_and_cancel_only_their_own_runs() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(dir.path(), &empty_plugins(dir.path()), TWO_USERS);
    // No token, a wrong token: 401 on every /v1 route; health stays open.
    for path in ["/v1/runs", "/v1/tasks", "/v1/openapi.json"] {
        let (s, e) = d.get(path).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "{path}");
        assert!(
            e["error"].as_str().unwrap().contains("Authorization"),
            "{e}"
        );
    }
    let (s, _) = d.as_user("wrong-token-000000000").get("/v1/runs").await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, _) = d.get("/healthz").await;
    assert_eq!(s, StatusCode::OK);

    let alice = d.as_user("alice-secret-token-0001");
    let bob = d.as_user("bob-secret-token-00002");
    let id = alice.submit(delays(1, 20_000), json!({})).await;
    let (s, run) = alice.get(&format!("/v1/runs/{id}")).await;
    assert_eq!((s, run["owner"].clone()), (StatusCode::OK, json!("alice")));
    // Her node's input, once it has started (it waits 20 s).
    let input = format!("/v1/runs/{id}/nodes/d0/input");
    let deadline = Instant::now() + Duration::from_secs(30);
    while alice.get(&input).await.0 != StatusCode::OK {
        assert!(Instant::now() < deadline, "d0 never started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for (method, path) in [
        (reqwest::Method::GET, format!("/v1/runs/{id}")),
        (reqwest::Method::POST, format!("/v1/runs/{id}/cancel")),
        (reqwest::Method::GET, format!("/v1/runs/{id}/events")),
        (reqwest::Method::GET, format!("/v1/runs/{id}/graph")),
        (reqwest::Method::GET, input),
    ] {
        let (s, _) = bob.call(method, &path, None).await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{path}");
    }
    let (_, list) = bob.get("/v1/runs").await;
    assert_eq!(list["runs"], json!([]));
    let (_, list) = alice.get("/v1/runs").await;
    assert_eq!(list["runs"].as_array().unwrap().len(), 1);
    // Bob's failed attempt changed nothing; Alice cancels her run.
    let (s, run) = alice
        .post(&format!("/v1/runs/{id}/cancel"), json!({}))
        .await;
    assert_eq!(
        (s, run["status"].clone()),
        (StatusCode::OK, json!("cancelled"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_over_the_quota_gets_429_with_retry_after() {
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        "{TWO_USERS}\n[quotas]\nsubmissions = {{ max = 3, per_ms = 60000 }}\nconcurrent_runs = 2\n"
    );
    let d = Daemon::start(dir.path(), &empty_plugins(dir.path()), &config);
    let alice = d.as_user("alice-secret-token-0001");
    let bob = d.as_user("bob-secret-token-00002");

    // Concurrent runs: two long runs fill Alice's slots.
    alice.submit(delays(1, 20_000), json!({})).await;
    alice.submit(delays(1, 20_000), json!({})).await;
    let r = alice
        .req(reqwest::Method::POST, "/v1/runs")
        .json(&json!({"graph": add_two(), "input": {"value": 1}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(r.headers()["retry-after"], "1");
    let e: Value = r.json().await.unwrap();
    assert!(
        e["error"]
            .as_str()
            .unwrap()
            .contains("already has 2 runs running"),
        "{e}"
    );

    // The sliding window: Bob's burst of 5 gets 3 through.
    let mut codes = Vec::new();
    let mut retry_after = Vec::new();
    for _ in 0..5 {
        let r = bob
            .req(reqwest::Method::POST, "/v1/runs")
            .json(&json!({"graph": add_two(), "input": {"value": 1}}))
            .send()
            .await
            .unwrap();
        codes.push(r.status().as_u16());
        if r.status() == StatusCode::CREATED {
            // Let it end, so only the window limits Bob.
            let body: Value = r.json().await.unwrap();
            bob.finished(body["run_id"].as_str().unwrap()).await;
            continue;
        }
        if let Some(v) = r.headers().get("retry-after") {
            retry_after.push(v.to_str().unwrap().parse::<u64>().unwrap());
        }
    }
    assert_eq!(codes, vec![201, 201, 201, 429, 429]);
    assert!(
        retry_after.iter().all(|&s| (1..=60).contains(&s)),
        "{retry_after:?}"
    );
    // Saving a graph counts against the same window.
    let r = bob
        .req(reqwest::Method::PUT, "/v1/graphs/spam")
        .json(&add_two())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(r.headers().contains_key("retry-after"));
    let text = d
        .http
        .get(format!("{}/metrics", d.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        text.contains("weft_submissions_rejected_total{reason=\"submissions\"} 3"),
        "{text}"
    );
    assert!(
        text.contains("weft_submissions_rejected_total{reason=\"concurrent_runs\"} 1"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_concurrent_submissions_with_one_idempotency_key_start_one_run() {
    let dir = tempfile::tempdir().unwrap();
    let d = Arc::new(Daemon::start(dir.path(), &empty_plugins(dir.path()), ""));
    let mut calls = Vec::new();
    for _ in 0..50 {
        let d = d.clone();
        calls.push(tokio::spawn(async move {
            d.post(
                "/v1/runs",
                json!({"graph": add_two(), "input": {"value": 1}, "idempotency_key": "order-17"}),
            )
            .await
        }));
    }
    let mut ids = std::collections::HashSet::new();
    let mut created = 0;
    for c in calls {
        let (s, body) = c.await.unwrap();
        assert!(
            s == StatusCode::CREATED || s == StatusCode::OK,
            "{s} {body}"
        );
        created += usize::from(s == StatusCode::CREATED);
        ids.insert(body["run_id"].as_str().unwrap().to_string());
    }
    assert_eq!((created, ids.len()), (1, 1));
    let id = ids.into_iter().next().unwrap();
    d.finished(&id).await;
    // Also once it has finished.
    let (s, body) = d
        .post(
            "/v1/runs",
            json!({"graph": add_two(), "input": {"value": 1}, "idempotency_key": "order-17"}),
        )
        .await;
    assert_eq!(
        (s, body["run_id"].as_str().unwrap(), body["status"].clone()),
        (StatusCode::OK, id.as_str(), json!("succeeded"))
    );
    let (_, list) = d.get("/v1/runs").await;
    assert_eq!(list["runs"].as_array().unwrap().len(), 1);
}

/// Event sequence numbers 1..=n, each once, ending with the run's end.
fn assert_complete(events: &[Value]) {
    let seqs: Vec<u64> = events.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    let expected: Vec<u64> = (1..=seqs.len() as u64).collect();
    assert_eq!(seqs, expected, "no gap, no duplicate");
    let last = events.last().unwrap();
    assert_eq!(
        (last["type"].clone(), last["status"].clone()),
        (json!("run_finished"), json!("succeeded"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_streams_resume_without_gap_or_duplicate_also_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let plugins = empty_plugins(dir.path());
    let d = Daemon::start(dir.path(), &plugins, "");
    let id = d.submit(delays(6, 250), json!({"value": 5})).await;

    // Read a few events, drop the connection, reconnect with Last-Event-ID.
    let mut seen = d.events(&id, None, 4).await;
    assert_eq!(seen[0]["type"], "run_started");
    let last = seen.last().unwrap()["seq"].as_u64().unwrap();
    seen.extend(d.events(&id, Some(last), 4).await);
    // `?after=N` works as well as the header.
    let after = seen.last().unwrap()["seq"].as_u64().unwrap();
    let r = d
        .req(
            reqwest::Method::GET,
            &format!("/v1/runs/{id}/events?after={after}"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    drop(r);

    // Kill the daemon mid-run; a new one resumes the run by itself.
    let mut d = d;
    d.signal("-KILL");
    d.wait(Duration::from_secs(10));
    let status_before = seen.len();
    assert!(
        !seen.iter().any(|e| e["type"] == "run_finished"),
        "the run ended before the kill; make it longer"
    );
    let d2 = Daemon::start(dir.path(), &plugins, "");
    let last = seen.last().unwrap()["seq"].as_u64().unwrap();
    seen.extend(d2.events(&id, Some(last), 10_000).await);
    assert!(seen.len() > status_before);
    assert_complete(&seen);
    assert!(
        seen.iter()
            .any(|e| e["type"] == "run_started" && e["resumed"] == true)
    );
    let run = d2.finished(&id).await;
    assert_eq!(run["outputs"]["end"]["value"], 6);
    // A stream opened after the end replays the whole log and ends.
    let replay = d2.events(&id, None, 10_000).await;
    assert_eq!(replay, seen);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_mid_run_then_restart_completes_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let plugins = empty_plugins(dir.path());
    let config = "[server]\nshutdown_grace_s = 0\n";
    let mut d = Daemon::start(dir.path(), &plugins, config);
    let id = d.submit(delays(3, 700), json!({"value": 1})).await;
    // Let the first delay complete.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, run) = d.get(&format!("/v1/runs/{id}")).await;
        if run["nodes"]["d0"]["status"] == "completed" {
            break;
        }
        assert!(Instant::now() < deadline, "{run}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    d.signal("-TERM");
    assert!(d.wait(Duration::from_secs(20)).success());
    let said = d.lines.lock().unwrap().join("\n");
    assert!(
        said.contains("1 runs were still running and resume at the next start"),
        "{said}"
    );

    let d2 = Daemon::start(dir.path(), &plugins, config);
    let run = d2.finished(&id).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(run["outputs"]["end"]["value"], 2);
    assert_eq!(
        run["nodes"]["d0"]["attempt"], 1,
        "a completed node does not run again"
    );
    assert_complete(&d2.events(&id, None, 10_000).await);
}

/// Poll `/v1/tasks` until `check` holds on the task ids.
async fn wait_for_tasks(d: &Daemon, what: &str, check: impl Fn(&[String]) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, tasks) = d.get("/v1/tasks").await;
        let ids: Vec<String> = tasks
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["id"].as_str().unwrap().to_string())
            .collect();
        if check(&ids) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "plugins folder not reloaded: {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Put `bytes` at `path` the way deploy tools should: write aside, rename.
fn install(path: &Path, bytes: &[u8]) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_plugins_folder_is_hot_reloaded() {
    let dir = tempfile::tempdir().unwrap();
    let plugins = empty_plugins(dir.path());
    let d = Daemon::start(dir.path(), &plugins, "");
    let has = |id: &'static str| move |ids: &[String]| ids.iter().any(|t| t == id);
    let example = std::fs::read(weft_tests::EXAMPLE_PLUGIN).unwrap();
    let target = plugins.join("example.wasm");

    // Add.
    install(&target, &example);
    wait_for_tasks(&d, "add", has("example.shout")).await;

    // A run in flight keeps the version it started with, even when the file goes.
    let graph = json!({
        "tasks": [
            {"id": "wait", "type": "util.delay", "defaults": {"ms": 1500, "value": "hi"}},
            {"id": "shout", "type": "example.shout"}
        ],
        "dataflows": [flow("wait", "value", "shout", "text")],
    });
    let in_flight = d.submit(graph.clone(), json!({})).await;

    // Replace with a broken build: the old version keeps serving, the error is reported.
    install(&target, b"\0asm broken");
    let deadline = Instant::now() + Duration::from_secs(20);
    let report = loop {
        let (_, list) = d.get("/v1/plugins").await;
        let report = list
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == "example")
            .cloned();
        if let Some(r) = report.filter(|r| r["error"].is_string()) {
            break r;
        }
        assert!(
            Instant::now() < deadline,
            "broken replacement not reported: {list}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(
        report["error"].as_str().unwrap().contains("still serving"),
        "{report}"
    );
    wait_for_tasks(&d, "broken replace keeps the old", has("example.shout")).await;
    let id = d.submit(graph.clone(), json!({})).await;

    // Replace with another component: its tasks replace the old ones.
    install(&target, &std::fs::read(weft_tests::MISBEHAVE).unwrap());
    wait_for_tasks(&d, "replace", |ids| {
        ids.iter().any(|t| t == "bad.fail") && !ids.iter().any(|t| t == "example.shout")
    })
    .await;
    let (s, e) = d.post("/v1/runs", json!({"graph": graph})).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{e}");

    // Remove.
    std::fs::remove_file(&target).unwrap();
    wait_for_tasks(&d, "remove", |ids| !ids.iter().any(|t| t == "bad.fail")).await;

    // Both runs started on the example plugin finished on it.
    for run in [in_flight, id] {
        let run = d.finished(&run).await;
        assert_eq!(run["status"], "succeeded", "{run}");
        assert_eq!(run["outputs"]["shout"]["text"], "HI!");
    }
}

fn client(d: &Daemon, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_weft"))
        .args(args)
        .env("WEFT_SERVER", &d.url)
        .env_remove("WEFT_TOKEN")
        .output()
        .expect("weft runs")
}

/// `weft` with only `--config`, as an operator runs it beside a daemon.
fn configured(config: &Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_weft"))
        .args(args)
        .arg("--config")
        .arg(config)
        .env_remove("WEFT_DATA_DIR")
        .env_remove("WEFT_DATABASE_URL")
        .env_remove("WEFT_SERVER")
        .output()
        .expect("weft runs")
}

/// The daemon and every command read the store `weft.toml` names: a run
/// written by `weft serve` is what `weft runs` and `weft status` show.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_command_reads_the_store_the_configuration_names() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let config = format!(
        "[server]\ndata_dir = {:?}\nplugins = {:?}\n",
        state.display().to_string(),
        empty_plugins(dir.path()).display().to_string()
    );
    let config_path = dir.path().join("weft.toml");
    let mut d = Daemon::start_configured(dir.path(), &config);
    assert!(
        d.first
            .contains(&state.join("weft.redb").display().to_string()),
        "{}",
        d.first
    );
    let id = d.submit(add_two(), json!({"value": 5})).await;
    assert_eq!(d.finished(&id).await["status"], "succeeded");

    // The embedded store belongs to the daemon while it runs: said plainly.
    let out = configured(&config_path, &["runs"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("is in use by another weft process"), "{err}");
    assert!(err.contains("--server"), "{err}");

    d.signal("-TERM");
    assert!(d.wait(Duration::from_secs(30)).success());
    let out = configured(&config_path, &["runs", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let runs: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(runs[0]["run_id"], id.as_str(), "{runs}");
    let out = configured(&config_path, &["status", &id, "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let status: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(status["status"], "succeeded", "{status}");
    assert_eq!(status["nodes"]["b"]["output"]["value"], 7, "{status}");
}

/// With PostgreSQL named in `weft.toml`, commands read it while the daemon
/// runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_read_the_configured_postgres_store_beside_the_daemon() {
    let dir = tempfile::tempdir().unwrap();
    let url = weft_tests::fresh_postgres().await;
    let config = format!(
        "store = {url:?}\n[server]\nplugins = {:?}\n",
        empty_plugins(dir.path()).display().to_string()
    );
    let config_path = dir.path().join("weft.toml");
    let d = Daemon::start_configured(dir.path(), &config);
    assert!(d.first.contains("store PostgreSQL"), "{}", d.first);
    let id = d.submit(add_two(), json!({"value": 1})).await;
    assert_eq!(d.finished(&id).await["status"], "succeeded");
    let out = configured(&config_path, &["status", &id, "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let status: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(status["nodes"]["b"]["output"]["value"], 3, "{status}");
    let out = configured(&config_path, &["events", &id]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("run succeeded"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_submits_follows_and_cancels_runs_on_a_daemon() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(dir.path(), &empty_plugins(dir.path()), "");
    let graph = dir.path().join("g.json");
    std::fs::write(&graph, add_two().to_string()).unwrap();
    let g = graph.to_str().unwrap();

    // submit --wait: the run id, then its events; exit 0 when it succeeded.
    let out = client(&d, &["submit", g, "--input", r#"{"value": 1}"#, "--wait"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    let id = text.lines().next().unwrap().to_string();
    assert!(
        text.contains("node b completed") && text.trim_end().ends_with("run succeeded"),
        "{text}"
    );
    let out = client(&d, &["status", &id]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("succeeded") && text.contains(r#"b completed (attempt 1) {"value":3}"#),
        "{text}"
    );
    let out = client(&d, &["status", &id, "--input", "b"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let input: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(input, json!({"value": 2}), "what a gave b");

    // A bad graph is refused with the located message.
    std::fs::write(
        &graph,
        json!({"tasks": [{"id": "a", "type": "math.nope"}]}).to_string(),
    )
    .unwrap();
    let out = client(&d, &["submit", g]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("422") && err.contains("tasks[0] (node \"a\"): unknown task type `math.nope`"),
        "{err}"
    );

    // watch --json follows a run; cancel ends it; watch exits 1.
    std::fs::write(&graph, delays(1, 20_000).to_string()).unwrap();
    let out = client(&d, &["submit", g]);
    let id = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let watcher = Command::new(env!("CARGO_BIN_EXE_weft"))
        .args(["watch", &id, "--json"])
        .env("WEFT_SERVER", &d.url)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let out = client(&d, &["cancel", &id]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("run {id} cancelled")
    );
    let watched = watcher.wait_with_output().unwrap();
    assert_eq!(watched.status.code(), Some(1));
    let lines: Vec<Value> = String::from_utf8_lossy(&watched.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.last().unwrap()["status"], "cancelled");
    let out = client(&d, &["cancel", &id]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("409"),
        "cancelling twice is refused"
    );
}

/// Users of one daemon: each run uses only the folders, databases, models
/// and queues its user is granted, whether the graph, the run's input or a
/// dataflow names them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_run_only_with_what_they_are_granted() {
    let dir = tempfile::tempdir().unwrap();
    for folder in ["shared", "private"] {
        std::fs::create_dir_all(dir.path().join(folder)).unwrap();
        std::fs::write(dir.path().join(folder).join("note.txt"), folder).unwrap();
    }
    let config = format!(
        "[data.folders.shared]\npath = \"{d}/shared\"\n\n\
         [data.folders.private]\npath = \"{d}/private\"\n\n\
         [queues.fast]\nconcurrency = 8\n\n\
         [[tokens]]\nuser = \"alice\"\ntoken = \"alice-secret-token-0001\"\n\
         grants = {{ folders = [\"shared\"] }}\n\n\
         [[tokens]]\nuser = \"bob\"\ntoken = \"bob-secret-token-00002\"\n\
         grants = {{ folders = [\"*\"], queues = [\"fast\"] }}\n",
        d = dir.path().display()
    );
    let d = Daemon::start(dir.path(), &empty_plugins(dir.path()), &config);
    let alice = d.as_user("alice-secret-token-0001");
    let bob = d.as_user("bob-secret-token-00002");
    let read = |folder: Option<&str>, config: Value| {
        let mut defaults = json!({"path": "note.txt"});
        if let Some(f) = folder {
            defaults["folder"] = json!(f);
        }
        json!({"tasks": [{"id": "r", "type": "data.file-read", "defaults": defaults, "config": config}]})
    };
    let refused = |answer: (StatusCode, Value), what: &str| {
        let (status, body) = answer;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        let e = body["error"].as_str().unwrap();
        assert!(e.contains("node `r`") && e.contains(what), "{e}");
    };

    // Named in the graph, or in the run's input: refused at submit.
    let submit = |api: &Api, graph: Value, input: Value| {
        let api = api.clone();
        async move {
            api.post("/v1/runs", json!({"graph": graph, "input": input}))
                .await
        }
    };
    let not_alices = "folder `private` is not granted to user `alice`";
    refused(
        submit(&alice, read(Some("private"), json!({})), json!({})).await,
        not_alices,
    );
    refused(
        submit(&alice, read(None, json!({})), json!({"folder": "private"})).await,
        not_alices,
    );
    refused(
        submit(
            &alice,
            read(Some("shared"), json!({"queue": "fast"})),
            json!({}),
        )
        .await,
        "queue `fast` is not granted to user `alice`",
    );
    // Inside a map's subgraph too, named by its path.
    for (config, what) in [
        (json!({}), not_alices),
        (json!({"queue": "fast"}), "queue `fast`"),
    ] {
        let map =
            json!({"tasks": [{"id": "m", "type": "map", "graph": read(Some("private"), config)}]});
        let (status, body) = submit(&alice, map, json!({"path": ["note.txt"]})).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        let e = body["error"].as_str().unwrap();
        assert!(e.contains("node `m/r`") && e.contains(what), "{e}");
    }
    // Arriving through a dataflow: the task is refused when it starts.
    let by_flow = json!({"tasks": [
        {"id": "p", "type": "json.parse", "defaults": {"text": "\"private\""}},
        {"id": "r", "type": "data.file-read", "defaults": {"path": "note.txt"}}],
        "dataflows": [{"sourceTaskId": "p", "sourceTaskPortId": "value",
                       "targetTaskId": "r", "targetTaskPortId": "folder"}]});
    let run_id = alice.submit(by_flow.clone(), json!({})).await;
    let run = alice.finished(&run_id).await;
    assert_eq!(run["status"], "failed", "{run}");
    assert!(run.to_string().contains(not_alices), "{run}");
    assert!(!run.to_string().contains("\"text\":\"private\""), "{run}");

    // What is granted runs.
    let run_id = alice
        .submit(read(Some("shared"), json!({})), json!({}))
        .await;
    assert_eq!(alice.finished(&run_id).await["status"], "succeeded");
    let run_id = bob.submit(by_flow, json!({})).await;
    let run = bob.finished(&run_id).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    let run_id = bob
        .submit(read(Some("private"), json!({"queue": "fast"})), json!({}))
        .await;
    assert_eq!(bob.finished(&run_id).await["status"], "succeeded");
}

/// Connections cost the daemon a bounded amount: headers must arrive in
/// time, connections beyond the limit wait, and a user's event streams are
/// capped (a closed one frees its place).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_and_event_streams_are_limited() {
    use std::io::{Read, Write};
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(
        dir.path(),
        &empty_plugins(dir.path()),
        "[server]\nheader_timeout_ms = 300\nmax_connections = 3\nmax_streams_per_user = 2\n",
    );
    let addr = d.url.trim_start_matches("http://").to_string();

    // A client that trickles its headers is cut off.
    let mut slow = std::net::TcpStream::connect(&addr).unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        .unwrap();
    slow.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let started = Instant::now();
    let mut buf = Vec::new();
    let _ = slow.read_to_end(&mut buf);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "the connection stayed open past the header timeout"
    );

    // Streams: two per user; a third is refused until one closes.
    let run_id = d.submit(delays(1, 20_000), json!({})).await;
    let open = || {
        d.req(reqwest::Method::GET, &format!("/v1/runs/{run_id}/events"))
            .send()
    };
    let first = open().await.unwrap();
    let second = open().await.unwrap();
    assert_eq!(
        (first.status(), second.status()),
        (StatusCode::OK, StatusCode::OK)
    );
    let third = open().await.unwrap();
    assert_eq!(third.status(), StatusCode::TOO_MANY_REQUESTS);
    let e: Value = third.json().await.unwrap();
    assert!(
        e["error"]
            .as_str()
            .unwrap()
            .contains("max_streams_per_user"),
        "{e}"
    );
    drop(first);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let again = open().await.unwrap();
        if again.status() == StatusCode::OK {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "a closed stream never freed its place"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (status, _) = d
        .post(&format!("/v1/runs/{run_id}/cancel"), json!({}))
        .await;
    assert_eq!(status, StatusCode::OK);
}

/// One user's many long tasks do not hold every instance: each user runs at
/// most `[quotas] running_tasks` plugin tasks at once, so another user's
/// task starts at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_users_tasks_cannot_starve_another_users() {
    let dir = tempfile::tempdir().unwrap();
    let config = "[quotas]\nrunning_tasks = 2\n\n\
         [[tokens]]\nuser = \"ann\"\ntoken = \"ann-secret-token-000001\"\n\n\
         [[tokens]]\nuser = \"bob\"\ntoken = \"bob-secret-token-000002\"\n";
    let d = Daemon::start(dir.path(), &empty_plugins(dir.path()), config);
    let ann = d.as_user("ann-secret-token-000001");
    let bob = d.as_user("bob-secret-token-000002");
    // Six independent 1.5 s tasks: with two at a time, three waves.
    let wide: Vec<Value> = (0..6)
        .map(|i| json!({"id": format!("d{i}"), "type": "util.delay", "defaults": {"ms": 1500}}))
        .collect();
    let started = Instant::now();
    let anns = ann.submit(json!({"tasks": wide}), json!({})).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let bobs = bob.submit(delays(1, 10), json!({"value": 1})).await;
    assert_eq!(bob.finished(&bobs).await["status"], "succeeded");
    let bob_done = started.elapsed();
    assert_eq!(ann.finished(&anns).await["status"], "succeeded");
    let ann_done = started.elapsed();
    assert!(
        ann_done >= Duration::from_millis(4400),
        "ann ran more than two tasks at once ({ann_done:?})"
    );
    assert!(
        bob_done < ann_done,
        "bob waited for ann's tasks ({bob_done:?} vs {ann_done:?})"
    );
}

/// A host runs at most `[server] max_runs` runs at once; the rest wait,
/// unleased, and each starts when one ends: none is lost or run twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_over_max_runs_wait_for_room_then_run() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(
        dir.path(),
        &empty_plugins(dir.path()),
        "[server]\nmax_runs = 1\n",
    );
    let started = Instant::now();
    let mut ids = Vec::new();
    for i in 0..4 {
        ids.push(d.submit(delays(1, 400), json!({"value": i})).await);
    }
    for (i, id) in ids.iter().enumerate() {
        let run = d.finished(id).await;
        assert_eq!(run["status"], "succeeded", "run {i}: {run}");
        assert_eq!(
            run["outputs"]["end"]["value"],
            json!(i + 1),
            "run {i}: {run}"
        );
        let starts = d
            .events(id, None, 1000)
            .await
            .iter()
            .filter(|e| e["type"] == "node" && e["node"] == "d0" && e["status"] == "running")
            .count();
        assert_eq!(starts, 1, "run {i} ran its task {starts} times");
    }
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_millis(1600),
        "four 400 ms runs ended in {elapsed:?}: more than one ran at once"
    );
}

/// The graph language through the API: a map's run view counts its elements
/// instead of listing them; a preview answers at once, runs nothing with
/// effects and stores no run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn maps_are_summarised_and_previews_store_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(dir.path(), &empty_plugins(dir.path()), TWO_USERS);
    let alice = d.as_user("alice-secret-token-0001");
    let map = json!({"tasks": [{"id": "m", "type": "map", "config": {"task": "math.add-one"}}]});
    let id = alice.submit(map.clone(), json!({"value": [1, 2, 3]})).await;
    let run = alice.finished(&id).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(run["outputs"]["m"], json!({"value": [2, 3, 4]}));
    assert_eq!(
        run["nodes"]["m"]["instances"],
        json!({"completed": 3, "failed": 0})
    );
    assert!(
        run["nodes"].get("m[0]").is_none(),
        "elements are counted, not listed"
    );

    let (status, preview) = alice
        .post(
            "/v1/runs",
            json!({"graph": {"tasks": [
            {"id": "a", "type": "math.add-one"},
            {"id": "log", "type": "util.debug-log"}],
            "dataflows": [{"sourceTaskId": "a", "sourceTaskPortId": "value",
                           "targetTaskId": "log", "targetTaskPortId": "message",
                           "transforms": [{"id": "numberToString"}]}]},
            "input": {"value": 1}, "preview": true}),
        )
        .await;
    assert_eq!(status, 200, "{preview}");
    assert_eq!(preview["status"], "succeeded");
    assert_eq!(preview["outputs"]["a"], json!({"value": 2}));
    assert_eq!(
        preview["nodes"]["log"], "disabled",
        "util.debug-log is not cacheable: {preview}"
    );
    assert_eq!(preview["previewed"]["log"], json!({"message": "2"}));
    let (_, runs) = alice.get("/v1/runs").await;
    assert_eq!(
        runs["runs"].as_array().map(Vec::len),
        Some(1),
        "only the map run: {runs}"
    );
    // A preview is validated like a run.
    let (status, body) = alice
        .post(
            "/v1/runs",
            json!({"graph": {"tasks": [{"id": "a", "type": "nope"}]}, "preview": true}),
        )
        .await;
    assert_eq!(status, 422, "{body}");
}

/// A saved graph is a node type (`graph:NAME`, `graph:NAME@VERSION`): listed
/// with its ports, pinned to its version when a run is submitted, and saved
/// graphs that use each other are refused with the cycle named.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn saved_graphs_are_node_types_pinned_when_a_run_is_submitted() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(dir.path(), &empty_plugins(dir.path()), "");
    let put = |name: &str, graph: Value| {
        d.req(reqwest::Method::PUT, &format!("/v1/graphs/{name}"))
            .json(&graph)
            .send()
    };
    let chain = |n: usize| {
        let tasks: Vec<Value> = (0..n)
            .map(|i| json!({"id": format!("n{i}"), "type": "math.add-one"}))
            .collect();
        let flows: Vec<Value> = (1..n)
            .map(|i| {
                json!({"sourceTaskId": format!("n{}", i - 1), "sourceTaskPortId": "value",
                            "targetTaskId": format!("n{i}"), "targetTaskPortId": "value"})
            })
            .collect();
        json!({"tasks": tasks, "dataflows": flows})
    };
    assert_eq!(
        put("inc", chain(2)).await.unwrap().status(),
        StatusCode::CREATED
    );
    let uses = |ty: &str| {
        json!({"tasks": [{"id": "x", "type": ty, "defaults": {"value": 10}},
                         {"id": "y", "type": "math.add-one"}],
               "dataflows": [{"sourceTaskId": "x", "sourceTaskPortId": "value",
                              "targetTaskId": "y", "targetTaskPortId": "value"}]})
    };
    let run = |graph: Value| {
        let d = &d;
        async move {
            let (s, body) = d.post("/v1/runs", json!({"graph": graph})).await;
            assert_eq!(s, StatusCode::CREATED, "{body}");
            d.finished(body["run_id"].as_str().unwrap()).await
        }
    };
    let first = run(uses("graph:inc")).await;
    assert_eq!(first["outputs"]["y"]["value"], 13, "{first}");
    // A new version: new runs take it, unless a version is named.
    assert_eq!(
        put("inc", chain(5)).await.unwrap().status(),
        StatusCode::CREATED
    );
    assert_eq!(run(uses("graph:inc")).await["outputs"]["y"]["value"], 16);
    assert_eq!(run(uses("graph:inc@1")).await["outputs"]["y"]["value"], 13);
    // The run holds the saved graph's nodes, put in place at submission
    // (so a resumed run goes on with them, whatever is saved since).
    assert!(first["nodes"]["x/n1"].is_object(), "{first}");

    // Listed as a task type with the ports of its roots and leaves.
    let (_, tasks) = d.get("/v1/tasks").await;
    let inc = tasks
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == "graph:inc")
        .unwrap();
    assert_eq!(inc["version"], "2");
    assert!(
        inc["input_schema"]["properties"]["value"].is_object(),
        "{inc}"
    );
    assert!(
        inc["output_schema"]["properties"]["value"].is_object(),
        "{inc}"
    );
    assert_eq!(inc["ports"]["input"]["value"], json!(["integer", "number"]));
    // `weft tasks` asks the daemon when given one.
    let out = client(&d, &["tasks", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let listed: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        listed
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["id"] == "graph:inc" && t["version"] == "2"),
        "{listed}"
    );

    // Saved graphs put in place count against the node cap: 101 uses of a
    // 100-node graph are refused before anything runs.
    assert_eq!(
        put("hundred", chain(100)).await.unwrap().status(),
        StatusCode::CREATED
    );
    let many: Vec<Value> = (0..101)
        .map(|i| json!({"id": format!("u{i}"), "type": "graph:hundred"}))
        .collect();
    let (s, e) = d.post("/v1/runs", json!({"graph": {"tasks": many}})).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        e.to_string()
            .contains("more than 10000 nodes once the saved graphs it uses are put in place"),
        "{e}"
    );

    // Unknown names and cycles are refused, named.
    let (s, e) = d
        .post("/v1/runs", json!({"graph": uses("graph:nope")}))
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        e.to_string().contains("node `x`: no saved graph `nope`"),
        "{e}"
    );
    assert_eq!(
        put("b", chain(1)).await.unwrap().status(),
        StatusCode::CREATED
    );
    assert_eq!(
        put("a", uses("graph:b")).await.unwrap().status(),
        StatusCode::CREATED
    );
    assert_eq!(
        put("b", uses("graph:a")).await.unwrap().status(),
        StatusCode::CREATED
    );
    let (s, e) = d.post("/v1/runs", json!({"graph": "a"})).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(e.to_string().contains("in a cycle: b@2 → a@1 → b@2"), "{e}");
}

/// The Python and JavaScript builders and clients (sdk/python-graph,
/// sdk/js-graph) against a real daemon: their own tests, given its address.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_and_javascript_builders_build_submit_and_follow_runs() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(dir.path(), &empty_plugins(dir.path()), "");
    let package = std::path::Path::new(weft_tests::ROOT).join("sdk/python-graph");
    let out = tokio::process::Command::new("python3")
        .args(["-m", "unittest", "-v"])
        .current_dir(&package)
        .env("WEFT_URL", &d.url)
        .output()
        .await
        .expect("python3 runs");
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{log}");
    assert!(log.contains("Ran 4 tests"), "{log}");

    // And the JavaScript one (sdk/js-graph), the same checks.
    let package = std::path::Path::new(weft_tests::ROOT).join("sdk/js-graph");
    let out = tokio::process::Command::new("node")
        .arg("test.mjs")
        .current_dir(&package)
        .env("WEFT_URL", &d.url)
        .output()
        .await
        .expect("node runs");
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{log}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("ok: 4 checks"));
}

/// Ended runs are pruned by their retention rule (per status and per
/// user), nothing of another user's is touched, and a user deletes their
/// own ended run (not a running one, not someone else's).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_prunes_ended_runs_and_users_delete_their_own() {
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        "[retention]\nsucceeded = \"1s\"\nfailed = \"never\"\nevery_s = 1\n\
         [retention.users.bob]\nsucceeded = \"never\"\n{TWO_USERS}"
    );
    let d = Daemon::start(dir.path(), &empty_plugins(dir.path()), &config);
    let alice = d.as_user("alice-secret-token-0001");
    let bob = d.as_user("bob-secret-token-00002");
    let ok = json!({"tasks": [{"id": "a", "type": "math.add-one"}]});
    let bad = json!({"tasks": [{"id": "a", "type": "math.divide", "defaults": {"b": 0},
                                "config": {"retries": 0}}]});
    let alice_ok = alice.submit(ok.clone(), json!({"value": 1})).await;
    let alice_bad = alice.submit(bad, json!({"a": 1})).await;
    let bob_ok = bob.submit(ok, json!({"value": 1})).await;
    for (api, id) in [(&alice, &alice_ok), (&alice, &alice_bad), (&bob, &bob_ok)] {
        api.finished(id).await;
    }
    // Alice's succeeded run goes within a few passes; her failed run and
    // Bob's succeeded run (his rule: never) stay.
    let deadline = Instant::now() + Duration::from_secs(20);
    while alice.get(&format!("/v1/runs/{alice_ok}")).await.0 != StatusCode::NOT_FOUND {
        assert!(
            Instant::now() < deadline,
            "alice's succeeded run was not pruned"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (_, events) = alice.get(&format!("/v1/runs/{alice_ok}/events")).await;
    assert!(!events.to_string().contains("run_started"), "{events}");
    assert_eq!(
        alice.get(&format!("/v1/runs/{alice_bad}")).await.0,
        StatusCode::OK
    );
    assert_eq!(
        bob.get(&format!("/v1/runs/{bob_ok}")).await.0,
        StatusCode::OK
    );

    // Deleting: not another user's run, not a running one; one's own, once.
    let path = |id: &str| format!("/v1/runs/{id}");
    let (s, _) = bob
        .call(reqwest::Method::DELETE, &path(&alice_bad), None)
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let slow = json!({"tasks": [{"id": "w", "type": "util.delay", "defaults": {"ms": 20000}}]});
    let running = alice.submit(slow, json!({})).await;
    let (s, e) = alice
        .call(reqwest::Method::DELETE, &path(&running), None)
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "{e}");
    assert!(
        e["error"].as_str().unwrap().contains("cancel it first"),
        "{e}"
    );
    alice
        .post(&format!("/v1/runs/{running}/cancel"), json!({}))
        .await;
    let (s, _) = alice
        .call(reqwest::Method::DELETE, &path(&alice_bad), None)
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    assert_eq!(alice.get(&path(&alice_bad)).await.0, StatusCode::NOT_FOUND);
    let (_, letters) = alice.get("/v1/dead-letters").await;
    assert!(!letters.to_string().contains(&alice_bad), "{letters}");
    let (s, _) = alice
        .call(reqwest::Method::DELETE, &path(&alice_bad), None)
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

/// The daemon backs its embedded store up while it serves; a backup put in
/// place of a lost data directory opens with the history it held, and its
/// interrupted run resumes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backups_written_while_serving_restore_and_resume() {
    let dir = tempfile::tempdir().unwrap();
    let plugins = empty_plugins(dir.path());
    let config = "[backup]\ndir = \"backups\"\nevery_s = 1\nkeep = 2\n";
    let mut d = Daemon::start(dir.path(), &plugins, config);
    let done = d
        .submit(
            json!({"tasks": [{"id": "a", "type": "math.add-one"}]}),
            json!({"value": 1}),
        )
        .await;
    d.finished(&done).await;
    let slow =
        json!({"tasks": [{"id": "w", "type": "util.delay", "defaults": {"ms": 3000, "value": 7}}]});
    let interrupted = d.submit(slow, json!({})).await;
    // Two more backups: the newest was begun after both runs were recorded.
    let backups = dir.path().join("data/backups");
    let list = || {
        // Whole backups only: one being written is `*.partial-PID`.
        let mut files: Vec<std::path::PathBuf> = std::fs::read_dir(&backups)
            .map(|r| r.map(|e| e.unwrap().path()).collect())
            .unwrap_or_default();
        files.retain(|f| f.extension().is_some_and(|e| e == "redb"));
        files.sort();
        files
    };
    let before = list().last().cloned();
    let deadline = Instant::now() + Duration::from_secs(20);
    while list().iter().filter(|f| Some(*f) > before.as_ref()).count() < 2 {
        assert!(
            Instant::now() < deadline,
            "no backups written: {:?}",
            list()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    d.signal("-KILL");
    d.wait(Duration::from_secs(10));
    assert!(list().len() <= 2, "keep = 2: {:?}", list());
    let backup = list().pop().unwrap();

    // A new machine: the backup restored into an empty data directory.
    let fresh = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_weft"))
        .args(["store", "restore"])
        .arg(&backup)
        .arg("--data-dir")
        .arg(fresh.path().join("data"))
        .env_remove("WEFT_DATABASE_URL")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let d = Daemon::start(fresh.path(), &empty_plugins(fresh.path()), "");
    let run = d.finished(&interrupted).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(run["outputs"]["w"]["value"], 7);
    let (s, run) = d.get(&format!("/v1/runs/{done}")).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(run["outputs"]["a"]["value"], 2, "{run}");
}

/// An operator has the serving daemon write a backup now (`weft store
/// backup --server`); other users may not; the command that opens the file
/// itself says the daemon holds it and what to do instead.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operators_ask_the_serving_daemon_for_a_backup() {
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        "{TWO_USERS}\n[[tokens]]\nuser = \"ops\"\ntoken = \"ops-secret-token-00003\"\noperator = true\n"
    );
    let d = Daemon::start(dir.path(), &empty_plugins(dir.path()), &config);
    let alice = d.as_user("alice-secret-token-0001");
    let done = alice
        .submit(
            json!({"tasks": [{"id": "a", "type": "math.add-one"}]}),
            json!({"value": 1}),
        )
        .await;
    alice.finished(&done).await;

    let (s, e) = alice.post("/v1/store/backups", json!({})).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{e}");
    assert!(
        e["error"].as_str().unwrap().contains("not an operator"),
        "{e}"
    );

    let weft = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_weft"))
            .args(args)
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .env_remove("WEFT_DATABASE_URL")
            .env_remove("WEFT_TOKEN")
            .output()
            .unwrap()
    };
    let copy = dir.path().join("copy.redb");
    let out = weft(&["store", "backup", copy.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("--server"), "{stderr}");

    let out = weft(&[
        "store",
        "backup",
        "--server",
        &d.url,
        "--token",
        "ops-secret-token-00003",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let written = std::path::PathBuf::from(stdout.split(" (").next().unwrap().trim());
    assert!(
        written.starts_with(dir.path().join("data/backups")),
        "{stdout}"
    );
    // A whole store: it holds alice's run.
    let store = weft::store::RedbStore::open(&written).unwrap();
    let stored = weft::store::prelude::RunLog::load_run(&store, &done)
        .await
        .unwrap();
    assert_eq!(stored.run.status, weft::events::RunStatus::Succeeded);
}
