//! The OpenAPI document is the contract: every route is driven through its
//! successes and its refusals against a real `weft serve`, and each answer
//! (status, content type, body) is checked against the document the daemon
//! serves, which is generated from the handlers' types.

#[path = "support/daemon.rs"]
mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use support::Daemon;

const TOKEN: &str = "alice-token-0123456789";

/// Checks answers against the document and remembers which operations
/// and statuses were seen.
struct Contract {
    doc: Value,
    seen: BTreeSet<(String, String, u16)>,
}

impl Contract {
    /// Send `request` and check its answer as one of `method template`.
    async fn call(
        &mut self,
        method: &str,
        template: &str,
        request: reqwest::RequestBuilder,
    ) -> Value {
        let answer = request.send().await.expect("the daemon answers");
        self.check(method, template, answer).await
    }

    /// Check one answer of `method path_template`; returns its JSON body.
    async fn check(&mut self, method: &str, template: &str, r: reqwest::Response) -> Value {
        let status = r.status().as_u16();
        let content_type = r
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default();
        let escaped = template.replace('~', "~0").replace('/', "~1");
        let pointer = format!("/paths/{escaped}/{method}/responses/{status}");
        let documented = self.doc.pointer(&pointer).unwrap_or_else(|| {
            panic!("{method} {template} answered {status}, which the document does not list")
        });
        self.seen
            .insert((method.to_string(), template.to_string(), status));
        let Some(content) = documented.get("content") else {
            assert!(
                r.bytes().await.unwrap().is_empty(),
                "{method} {template} {status}: a body the document does not describe"
            );
            return Value::Null;
        };
        if content_type.starts_with("application/json") {
            let text = r.text().await.unwrap();
            let body: Value = serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("{method} {template} {status}: not JSON ({e}): {text}"));
            let schema = content
                .pointer("/application~1json/schema")
                .unwrap_or_else(|| panic!("{method} {template} {status}: JSON not documented"));
            let errors = self.mismatches(schema, &body);
            assert!(
                errors.is_empty(),
                "{method} {template} {status}: body does not match the document: {errors:?}\n{body}"
            );
            body
        } else {
            let essence = content_type.split(';').next().unwrap_or_default().trim();
            let listed = content
                .as_object()
                .unwrap()
                .keys()
                .any(|k| k.split(';').next().unwrap_or_default().trim() == essence);
            assert!(
                listed,
                "{method} {template} {status}: content type `{content_type}` not documented"
            );
            Value::Null
        }
    }
}

impl Contract {
    /// How `value` differs from `schema` (which may name the document's
    /// components).
    fn mismatches(&self, schema: &Value, value: &Value) -> Vec<String> {
        let mut root = schema.clone();
        if let Value::Object(map) = &mut root {
            map.insert("components".into(), self.doc["components"].clone());
        }
        let validator = jsonschema::options()
            .with_draft(jsonschema::Draft::Draft202012)
            .build(&root)
            .expect("the document's schemas compile");
        validator
            .iter_errors(value)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect()
    }
}

fn add_two() -> Value {
    json!({
        "tasks": [{"id": "a", "type": "math.add-one"}, {"id": "b", "type": "math.add-one"}],
        "dataflows": [{"sourceTaskId": "a", "sourceTaskPortId": "value",
                       "targetTaskId": "b", "targetTaskPortId": "value"}],
    })
}

fn slow() -> Value {
    json!({"tasks": [{"id": "d", "type": "util.delay", "defaults": {"ms": 30000}}]})
}

fn broken() -> Value {
    json!({"tasks": [{"id": "p", "type": "json.parse", "defaults": {"text": "{nope"}}]})
}

async fn finished(d: &support::Api, id: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let (_, run) = d.get(&format!("/v1/runs/{id}")).await;
        if run["status"] != "running" {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "run {id} did not end");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_answers_as_its_openapi_document_says() {
    let dir = tempfile::tempdir().unwrap();
    let plugins = dir.path().join("plugins");
    std::fs::create_dir_all(&plugins).unwrap();
    std::fs::copy(weft_tests::STORAGE, plugins.join("kvp.wasm")).unwrap();
    let config = format!(
        "[server]\nmax_body_bytes = 8000\n\n[[tokens]]\nuser = \"alice\"\ntoken = \"{TOKEN}\"\n\
         operator = true\n\n[[tokens]]\nuser = \"bob\"\ntoken = \"bob-token-not-operator\"\n\n\
         [hooks.pushed]\ngraph = \"hooked\"\nuser = \"alice\"\nsecret = \"hook-secret-0123456789\"\n\n\
         [quotas]\nsubmissions = {{ max = 14, per_ms = 600000 }}\n\n\
         [secrets]\nkey_file = \"secrets.key\"\n"
    );
    std::fs::create_dir_all(dir.path().join("data")).unwrap();
    std::fs::write(dir.path().join("data/secrets.key"), "ab".repeat(32)).unwrap();
    let d = Daemon::start(dir.path(), &plugins, &config);
    let api = d.as_user(TOKEN);
    let (status, doc) = api.get("/v1/openapi.json").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(doc["openapi"], "3.1.0");
    let mut c = Contract {
        doc: doc.clone(),
        seen: BTreeSet::new(),
    };
    let send = |method: Method, path: &str| api.req(method, path);
    let json_body = |method: Method, path: &str, body: &Value| {
        api.req(method, path)
            .header("content-type", "application/json")
            .body(body.to_string())
    };

    // Runs.
    let r = json_body(
        Method::POST,
        "/v1/runs",
        &json!({"graph": add_two(), "input": {"value": 1}, "idempotency_key": "k1"}),
    );
    let created = c.call("post", "/v1/runs", r).await;
    let run_id = created["run_id"].as_str().unwrap().to_string();
    let r = json_body(
        Method::POST,
        "/v1/runs",
        &json!({"graph": add_two(), "input": {"value": 1}, "idempotency_key": "k1"}),
    );
    let again = c.call("post", "/v1/runs", r).await;
    assert_eq!(again["existing"], true);
    let r = send(Method::POST, "/v1/runs")
        .header("content-type", "application/json")
        .body("{\"graph\": [");
    c.call("post", "/v1/runs", r).await;
    let r = json_body(Method::POST, "/v1/runs", &json!({"graph": "no-such-graph"}));
    c.call("post", "/v1/runs", r).await;
    let r = json_body(
        Method::POST,
        "/v1/runs",
        &json!({"graph": add_two(), "input": {"pad": "x".repeat(9000)}}),
    );
    c.call("post", "/v1/runs", r).await;
    let r = send(Method::POST, "/v1/runs")
        .header("content-type", "text/plain")
        .body(json!({"graph": add_two()}).to_string());
    c.call("post", "/v1/runs", r).await;
    let r = json_body(
        Method::POST,
        "/v1/runs",
        &json!({"graph": {"tasks": [{"id": "a", "type": "nope.nope"}]}}),
    );
    let invalid = c.call("post", "/v1/runs", r).await;
    assert!(invalid["errors"][0].as_str().unwrap().contains("nope.nope"));
    let r = send(Method::POST, "/v1/runs")
        .header("content-type", "application/json")
        .header("origin", "https://evil.example")
        .body(json!({"graph": add_two()}).to_string());
    c.call("post", "/v1/runs", r).await;
    let r = d
        .req(Method::POST, "/v1/runs")
        .json(&json!({"graph": add_two()}));
    c.call("post", "/v1/runs", r).await;

    finished(&api, &run_id).await;
    c.call("get", "/v1/runs", send(Method::GET, "/v1/runs?limit=1"))
        .await;
    c.call(
        "get",
        "/v1/runs",
        send(Method::GET, "/v1/runs?status=bogus"),
    )
    .await;
    let path = format!("/v1/runs/{run_id}");
    let view = c
        .call("get", "/v1/runs/{id}", send(Method::GET, &path))
        .await;
    assert_eq!(view["outputs"]["b"]["value"], 3);
    c.call("get", "/v1/runs/{id}", send(Method::GET, "/v1/runs/nope"))
        .await;
    let graph_path = format!("/v1/runs/{run_id}/graph");
    let graph = c
        .call("get", "/v1/runs/{id}/graph", send(Method::GET, &graph_path))
        .await;
    assert_eq!(graph["graph"]["tasks"][1]["id"], "b");
    c.call(
        "get",
        "/v1/runs/{id}/graph",
        send(Method::GET, "/v1/runs/nope/graph"),
    )
    .await;
    // What each node started with: the run's input, then what `a` gave `b`.
    let node_input = "/v1/runs/{id}/nodes/{node}/input";
    for (node, value) in [("a", 1), ("b", 2)] {
        let path = format!("/v1/runs/{run_id}/nodes/{node}/input");
        let got = c.call("get", node_input, send(Method::GET, &path)).await;
        assert_eq!(got["input"], json!({"value": value}), "{node}'s input");
    }
    let path = format!("/v1/runs/{run_id}/nodes/zz/input");
    c.call("get", node_input, send(Method::GET, &path)).await;
    c.call(
        "get",
        node_input,
        send(Method::GET, "/v1/runs/nope/nodes/a/input"),
    )
    .await;
    let cancel = format!("/v1/runs/{run_id}/cancel");
    c.call("post", "/v1/runs/{id}/cancel", send(Method::POST, &cancel))
        .await;
    c.call(
        "post",
        "/v1/runs/{id}/cancel",
        send(Method::POST, "/v1/runs/nope/cancel"),
    )
    .await;
    let r = json_body(Method::POST, "/v1/runs", &json!({"graph": slow()}));
    let slow_id = c.call("post", "/v1/runs", r).await["run_id"]
        .as_str()
        .unwrap()
        .to_string();
    let cancel = format!("/v1/runs/{slow_id}/cancel");
    let cancelled = c
        .call("post", "/v1/runs/{id}/cancel", send(Method::POST, &cancel))
        .await;
    assert_eq!(cancelled["status"], "cancelled");

    // Deleting: a running run is refused; an ended one goes, once.
    let r = json_body(Method::POST, "/v1/runs", &json!({"graph": slow()}));
    let running = c.call("post", "/v1/runs", r).await["run_id"]
        .as_str()
        .unwrap()
        .to_string();
    let path = format!("/v1/runs/{running}");
    c.call("delete", "/v1/runs/{id}", send(Method::DELETE, &path))
        .await;
    let cancel = format!("{path}/cancel");
    c.call("post", "/v1/runs/{id}/cancel", send(Method::POST, &cancel))
        .await;
    for _ in 0..2 {
        c.call("delete", "/v1/runs/{id}", send(Method::DELETE, &path))
            .await;
    }

    // Signals: a run waiting for `go` takes one; refusals name why.
    let wait = json!({"tasks": [{"id": "go", "type": "wait", "config": {"output_schema":
        {"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"]}}}]});
    let r = json_body(Method::POST, "/v1/runs", &json!({"graph": wait}));
    let waiting = c.call("post", "/v1/runs", r).await["run_id"]
        .as_str()
        .unwrap()
        .to_string();
    let signals = "/v1/runs/{id}/signals/{name}";
    let go = format!("/v1/runs/{waiting}/signals/go");
    for (path, body) in [
        (go.clone(), json!({"ok": "yes"})),
        (format!("/v1/runs/{waiting}/signals/stop"), json!({})),
        (format!("/v1/runs/{waiting}/signals/a%20b"), json!({})),
        ("/v1/runs/nope/signals/go".to_string(), json!({})),
        (go.clone(), json!({"ok": true})),
    ] {
        c.call("post", signals, json_body(Method::POST, &path, &body))
            .await;
    }
    finished(&api, &waiting).await;
    c.call(
        "post",
        signals,
        json_body(Method::POST, &go, &json!({"ok": true})),
    )
    .await;

    // Secrets: set, listed without values, refused, deleted once.
    let secret = json!({"value": "v", "plugins": ["p"]});
    let one = "/v1/secrets/{name}";
    for (path, body) in [
        ("/v1/secrets/T", secret.clone()),
        ("/v1/secrets/bad%20name", secret.clone()),
        ("/v1/secrets/T", json!({"value": "v"})),
    ] {
        c.call("put", one, json_body(Method::PUT, path, &body))
            .await;
    }
    c.call("get", "/v1/secrets", send(Method::GET, "/v1/secrets"))
        .await;
    for _ in 0..2 {
        c.call("delete", one, send(Method::DELETE, "/v1/secrets/T"))
            .await;
    }

    // Storage: what a plugin keeps for alice, read and deleted by her.
    let put = json!({"tasks": [{"id": "p", "type": "kv.put",
        "defaults": {"key": "a/b", "value": "v"}}]});
    let r = json_body(Method::POST, "/v1/runs", &json!({"graph": put}));
    let put_id = c.call("post", "/v1/runs", r).await["run_id"]
        .as_str()
        .unwrap()
        .to_string();
    finished(&api, &put_id).await;
    let listed = c
        .call("get", "/v1/storage", send(Method::GET, "/v1/storage"))
        .await;
    assert_eq!(listed["namespaces"][0]["namespace"], "plugin.kvp");
    let keys = "/v1/storage/{namespace}";
    for path in [
        "/v1/storage/plugin.kvp?limit=1",
        "/v1/storage/plugin.kvp?limit=0",
    ] {
        c.call("get", keys, send(Method::GET, path)).await;
    }
    let one = "/v1/storage/{namespace}/{key}";
    for path in [
        "/v1/storage/plugin.kvp/a%2Fb",
        "/v1/storage/plugin.kvp/nope",
        "/v1/storage/weft.secrets/T",
    ] {
        c.call("get", one, send(Method::GET, path)).await;
    }
    for _ in 0..2 {
        let r = send(Method::DELETE, "/v1/storage/plugin.kvp/a%2Fb");
        c.call("delete", one, r).await;
    }

    // Events.
    let events = format!("/v1/runs/{run_id}/events");
    c.call("get", "/v1/runs/{id}/events", send(Method::GET, &events))
        .await;
    let r = send(Method::GET, &events).header("last-event-id", "x");
    c.call("get", "/v1/runs/{id}/events", r).await;
    c.call(
        "get",
        "/v1/runs/{id}/events",
        send(Method::GET, "/v1/runs/nope/events"),
    )
    .await;
    // Each event's data is a `RunEvent` as the document describes: those of
    // a finished run, a failed one, and a task reporting progress.
    let ticking = api
        .submit(
            json!({"tasks": [{"id": "d", "type": "util.delay", "defaults": {"ms": 5}}]}),
            json!({"value": 1}),
        )
        .await;
    let failing = api.submit(broken(), json!({})).await;
    let event = json!({"$ref": "#/components/schemas/RunEvent"});
    let mut kinds = BTreeSet::new();
    for id in [&run_id, &ticking, &failing] {
        finished(&api, id).await;
        for e in api.events(id, None, 1000).await {
            let errors = c.mismatches(&event, &e);
            assert!(
                errors.is_empty(),
                "event {e} does not match RunEvent: {errors:?}"
            );
            kinds.insert(e["type"].as_str().unwrap().to_string());
        }
    }
    for kind in [
        "run_started",
        "node",
        "dataflow",
        "progress",
        "run_finished",
    ] {
        assert!(
            kinds.contains(kind),
            "no `{kind}` event was checked: {kinds:?}"
        );
    }

    // Catalog.
    let tasks = c
        .call("get", "/v1/tasks", send(Method::GET, "/v1/tasks"))
        .await;
    assert!(
        tasks
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["id"] == "math.add-one")
    );
    c.call("get", "/v1/plugins", send(Method::GET, "/v1/plugins"))
        .await;

    // Saved graphs.
    let r = json_body(Method::PUT, "/v1/graphs/adder", &add_two());
    c.call("put", "/v1/graphs/{name}", r).await;
    let r = json_body(Method::PUT, "/v1/graphs/bad name", &add_two());
    c.call("put", "/v1/graphs/{name}", r).await;
    let r = json_body(
        Method::PUT,
        "/v1/graphs/broken",
        &json!({"tasks": [{"id": "a", "type": "x.y"}]}),
    );
    c.call("put", "/v1/graphs/{name}", r).await;
    let r = send(Method::PUT, "/v1/graphs/adder")
        .header("content-type", "application/json")
        .body("{");
    c.call("put", "/v1/graphs/{name}", r).await;
    let r = send(Method::PUT, "/v1/graphs/adder")
        .header("content-type", "text/plain")
        .body("{}");
    c.call("put", "/v1/graphs/{name}", r).await;
    c.call("get", "/v1/graphs", send(Method::GET, "/v1/graphs"))
        .await;

    // Checking a graph: valid; each problem placed; refusals.
    let r = json_body(
        Method::POST,
        "/v1/validate",
        &json!({"graph": add_two(), "input": {"value": 1}}),
    );
    let checked = c.call("post", "/v1/validate", r).await;
    assert_eq!(checked, json!({"valid": true, "problems": []}));
    let unknown = json!({"tasks": [{"id": "a", "type": "math.add-one"},
                                   {"id": "b", "type": "nope.nope"}]});
    let r = json_body(Method::POST, "/v1/validate", &json!({"graph": unknown}));
    let checked = c.call("post", "/v1/validate", r).await;
    assert_eq!(checked["valid"], false);
    assert_eq!(checked["problems"][0]["task"], 1, "{checked}");
    let misfit = json!({"tasks": [{"id": "a", "type": "math.add-one", "defaults": {"value": 1}},
                                  {"id": "b", "type": "math.add-one"}],
                        "dataflows": [{"sourceTaskId": "a", "sourceTaskPortId": "nope",
                                       "targetTaskId": "b", "targetTaskPortId": "value"}]});
    let r = json_body(Method::POST, "/v1/validate", &json!({"graph": misfit}));
    let checked = c.call("post", "/v1/validate", r).await;
    assert_eq!(checked["problems"][0]["dataflow"], 0, "{checked}");
    let r = json_body(
        Method::POST,
        "/v1/validate",
        &json!({"graph": {"tasks": 3}}),
    );
    let checked = c.call("post", "/v1/validate", r).await;
    assert!(checked["problems"][0].get("task").is_none(), "{checked}");
    let r = send(Method::POST, "/v1/validate")
        .header("content-type", "application/json")
        .body("{");
    c.call("post", "/v1/validate", r).await;
    let r = json_body(Method::POST, "/v1/validate", &json!({"graf": {}}));
    c.call("post", "/v1/validate", r).await;

    // Converting: Weft's JSON to Workglow's and back, the same graph.
    let r = json_body(Method::POST, "/v1/convert?to=workglow", &add_two());
    let workglow = c.call("post", "/v1/convert", r).await["graph"].clone();
    assert_eq!(workglow["tasks"][0]["defaults"], json!({}), "{workglow}");
    let r = json_body(Method::POST, "/v1/convert?to=weft", &workglow);
    let weft = c.call("post", "/v1/convert", r).await["graph"].clone();
    assert_eq!(weft, add_two());
    let r = json_body(Method::POST, "/v1/convert?to=yaml", &add_two());
    c.call("post", "/v1/convert", r).await;
    let r = send(Method::POST, "/v1/convert?to=weft")
        .header("content-type", "application/json")
        .body("{");
    c.call("post", "/v1/convert", r).await;
    let no_form = json!({"tasks": [{"id": "w", "type": "wait"}]});
    let r = json_body(Method::POST, "/v1/convert?to=workglow", &no_form);
    let refused = c.call("post", "/v1/convert", r).await;
    assert!(
        refused["error"].as_str().unwrap().contains("Workglow"),
        "{refused}"
    );
    let saved = c
        .call(
            "get",
            "/v1/graphs/{name}",
            send(Method::GET, "/v1/graphs/adder?version=1"),
        )
        .await;
    assert_eq!(saved["graph"]["tasks"][0]["type"], "math.add-one");
    let sharing = "/v1/graphs/{name}/sharing";
    let users = json!({"users": ["bob"]});
    let r = json_body(Method::PUT, "/v1/graphs/adder/sharing", &users);
    c.call("put", sharing, r).await;
    let r = json_body(Method::PUT, "/v1/graphs/nope/sharing", &users);
    c.call("put", sharing, r).await;
    let bad = json!({"users": ["not a user"]});
    let r = json_body(Method::PUT, "/v1/graphs/adder/sharing", &bad);
    c.call("put", sharing, r).await;
    let r = send(Method::PUT, "/v1/graphs/adder/sharing")
        .header("content-type", "application/json")
        .body("{");
    c.call("put", sharing, r).await;
    c.call(
        "get",
        "/v1/graphs/{name}",
        send(Method::GET, "/v1/graphs/adder?version=x"),
    )
    .await;
    c.call(
        "get",
        "/v1/graphs/{name}",
        send(Method::GET, "/v1/graphs/nope"),
    )
    .await;
    c.call(
        "delete",
        "/v1/graphs/{name}",
        send(Method::DELETE, "/v1/graphs/adder"),
    )
    .await;
    c.call(
        "delete",
        "/v1/graphs/{name}",
        send(Method::DELETE, "/v1/graphs/adder"),
    )
    .await;

    // Dead letters.
    let r = json_body(Method::POST, "/v1/runs", &json!({"graph": broken()}));
    let failing = c.call("post", "/v1/runs", r).await["run_id"]
        .as_str()
        .unwrap()
        .to_string();
    finished(&api, &failing).await;
    let letters = c
        .call(
            "get",
            "/v1/dead-letters",
            send(Method::GET, "/v1/dead-letters"),
        )
        .await;
    let letter = letters["dead_letters"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let retry = format!("/v1/dead-letters/{letter}/retry");
    c.call(
        "post",
        "/v1/dead-letters/{id}/retry",
        send(Method::POST, &retry),
    )
    .await;
    let r = send(Method::POST, "/v1/dead-letters/nothing/retry");
    c.call("post", "/v1/dead-letters/{id}/retry", r).await;

    // Webhooks.
    let r = json_body(Method::PUT, "/v1/graphs/hooked", &add_two());
    c.call("put", "/v1/graphs/{name}", r).await;
    let body = json!({"value": 1}).to_string();
    let mut mac =
        <hmac::Hmac<sha2::Sha256> as hmac::Mac>::new_from_slice(b"hook-secret-0123456789").unwrap();
    hmac::Mac::update(&mut mac, body.as_bytes());
    let signature = format!(
        "sha256={}",
        hex::encode(hmac::Mac::finalize(mac).into_bytes())
    );
    let hook = |signature: &str| {
        d.req(Method::POST, "/v1/hooks/pushed")
            .header("content-type", "application/json")
            .header("x-weft-signature", signature)
            .body(body.clone())
    };
    c.call("post", "/v1/hooks/{name}", hook(&signature)).await;
    c.call("post", "/v1/hooks/{name}", hook("sha256=00")).await;

    // Schedules.
    let nightly = json!({"graph": "hooked", "cron": "0 3 * * *", "time_zone": "Europe/Paris", "input": {"value": 1}});
    let r = json_body(Method::PUT, "/v1/schedules/nightly", &nightly);
    let made = c.call("put", "/v1/schedules/{name}", r).await;
    assert_eq!(made["time_zone"], json!("Europe/Paris"), "{made}");
    let r = json_body(Method::PUT, "/v1/schedules/nightly", &nightly);
    c.call("put", "/v1/schedules/{name}", r).await;
    let r = json_body(
        Method::PUT,
        "/v1/schedules/x",
        &json!({"graph": "hooked", "every": "1ms"}),
    );
    c.call("put", "/v1/schedules/{name}", r).await;
    let r = json_body(
        Method::PUT,
        "/v1/schedules/x",
        &json!({"graph": "nope", "every": "1h"}),
    );
    c.call("put", "/v1/schedules/{name}", r).await;
    c.call("get", "/v1/schedules", send(Method::GET, "/v1/schedules"))
        .await;
    for path in ["/v1/schedules/nightly", "/v1/schedules/none"] {
        c.call("get", "/v1/schedules/{name}", send(Method::GET, path))
            .await;
    }
    for op in ["pause", "resume"] {
        let template = format!("/v1/schedules/{{name}}/{op}");
        let r = send(Method::POST, &format!("/v1/schedules/nightly/{op}"));
        let answer = c.call("post", &template, r).await;
        assert_eq!(answer["paused"], json!(op == "pause"), "{answer}");
        let r = send(Method::POST, &format!("/v1/schedules/none/{op}"));
        c.call("post", &template, r).await;
    }
    for path in ["/v1/schedules/nightly", "/v1/schedules/nightly"] {
        c.call("delete", "/v1/schedules/{name}", send(Method::DELETE, path))
            .await;
    }

    // Operations.
    let r = send(Method::POST, "/v1/store/backups");
    let written = c.call("post", "/v1/store/backups", r).await;
    assert!(written["bytes"].as_u64().unwrap() > 0, "{written}");
    let bob = d.as_user("bob-token-not-operator");
    let r = bob.req(Method::POST, "/v1/store/backups");
    c.call("post", "/v1/store/backups", r).await;

    // Meta.
    for path in ["/healthz", "/readyz", "/metrics"] {
        c.call("get", path, d.req(Method::GET, path)).await;
    }
    c.call(
        "get",
        "/v1/openapi.json",
        send(Method::GET, "/v1/openapi.json"),
    )
    .await;

    // Quota: the rest of the window's submissions, then 429.
    let mut status = StatusCode::CREATED;
    for _ in 0..20 {
        let r = json_body(
            Method::POST,
            "/v1/runs",
            &json!({"graph": add_two(), "input": {"value": 1}}),
        );
        let r = r.send().await.unwrap();
        status = r.status();
        c.check("post", "/v1/runs", r).await;
        if status == StatusCode::TOO_MANY_REQUESTS {
            break;
        }
    }
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);

    // Every operation in the document was driven, and its success answer seen.
    let paths = doc["paths"].as_object().unwrap();
    for (path, item) in paths {
        for (method, op) in item.as_object().unwrap() {
            let driven: Vec<u16> = c
                .seen
                .iter()
                .filter(|(m, p, _)| m == method && p == path)
                .map(|(_, _, s)| *s)
                .collect();
            let success = op["responses"]
                .as_object()
                .unwrap()
                .keys()
                .any(|s| s.starts_with('2') && driven.contains(&s.parse().unwrap()));
            assert!(
                success,
                "{method} {path}: no success answer driven (saw {driven:?})"
            );
        }
    }
    let errors = c.seen.iter().filter(|(_, _, s)| *s >= 400).count();
    assert!(errors >= 20, "distinct error answers checked: {errors}");
}
