//! Webhooks, as a sender meets them: a real `weft serve` on loopback, a
//! saved graph started by signed deliveries.

#[path = "support/daemon.rs"]
mod support;

use hmac::{Hmac, Mac};
use reqwest::StatusCode;
use serde_json::{Value, json};
use sha2::Sha256;
use support::Daemon;

const SECRET: &str = "hook-secret-0123456789";

fn signature(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// A signed body starts the saved graph as the hook's user (once per
/// delivery id); an unsigned, mis-signed, oversized or over-rate delivery
/// starts nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_deliveries_start_the_saved_graph_and_nothing_else_does() {
    let dir = tempfile::tempdir().unwrap();
    let plugins = dir.path().join("plugins");
    std::fs::create_dir_all(&plugins).unwrap();
    let config = format!(
        "[[tokens]]\nuser = \"alice\"\ntoken = \"alice-secret-token-0001\"\n\n\
         [hooks.deploy]\ngraph = \"adder\"\nuser = \"alice\"\nsecret = \"{SECRET}\"\n\
         max_body_bytes = 200\nrate = {{ max = 4, per_ms = 600000 }}\n"
    );
    let d = Daemon::start(dir.path(), &plugins, &config);
    let alice = d.as_user("alice-secret-token-0001");
    let graph = json!({"tasks": [{"id": "a", "type": "math.add-one"}]});
    let (s, e) = alice
        .call(reqwest::Method::PUT, "/v1/graphs/adder", Some(graph))
        .await;
    assert!(s.is_success(), "{e}");

    let deliver = |body: &str, headers: &[(&str, String)]| {
        let mut r = d
            .req(reqwest::Method::POST, "/v1/hooks/deploy")
            .header("content-type", "application/json")
            .body(body.to_string());
        for (k, v) in headers {
            r = r.header(*k, v);
        }
        r.send()
    };
    let answer = |r: reqwest::Response| async move {
        let status = r.status();
        (status, r.json::<Value>().await.unwrap())
    };
    let body = r#"{"value": 41}"#;
    let runs = || async {
        alice.get("/v1/runs").await.1["runs"]
            .as_array()
            .unwrap()
            .len()
    };

    // Nothing runs without the right signature.
    let (s, e) = answer(deliver(body, &[]).await.unwrap()).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "{e}");
    assert!(
        e["error"].as_str().unwrap().contains("missing signature"),
        "{e}"
    );
    let forged = [(
        "x-weft-signature",
        signature("not-the-secret-000000", body.as_bytes()),
    )];
    let (s, e) = answer(deliver(body, &forged).await.unwrap()).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "{e}");
    let other_body = [("x-weft-signature", signature(SECRET, b"{\"value\": 1}"))];
    let (s, _) = answer(deliver(body, &other_body).await.unwrap()).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert_eq!(runs().await, 0);

    // Signed (GitHub's header names work too): runs as alice, once per delivery.
    let signed = |body: &str, delivery: &str| {
        vec![
            ("x-hub-signature-256", signature(SECRET, body.as_bytes())),
            ("x-github-delivery", delivery.to_string()),
        ]
    };
    let (s, first) = answer(deliver(body, &signed(body, "d-1")).await.unwrap()).await;
    assert_eq!(s, StatusCode::CREATED, "{first}");
    let run_id = first["run_id"].as_str().unwrap();
    let run = alice.finished(run_id).await;
    assert_eq!(run["outputs"]["a"]["value"], 42, "{run}");
    assert_eq!(run["owner"], "alice", "{run}");
    assert!(
        run["origin"].as_str().unwrap().starts_with("hook deploy"),
        "{run}"
    );
    let (s, again) = answer(deliver(body, &signed(body, "d-1")).await.unwrap()).await;
    assert_eq!(s, StatusCode::OK, "{again}");
    assert_eq!(again["run_id"], first["run_id"]);

    // Limits: the body size, the input's shape, the hook's rate.
    let big = format!(r#"{{"value": 1, "pad": "{}"}}"#, "x".repeat(300));
    let (s, _) = answer(deliver(&big, &signed(&big, "d-2")).await.unwrap()).await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE);
    let (s, e) = answer(deliver("[1]", &signed("[1]", "d-3")).await.unwrap()).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{e}");
    let (s, _) = answer(deliver(body, &signed(body, "d-4")).await.unwrap()).await;
    assert_eq!(s, StatusCode::CREATED);
    let over = deliver(body, &signed(body, "d-5")).await.unwrap();
    assert_eq!(over.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(over.headers().contains_key("retry-after"));
    assert_eq!(runs().await, 2);

    let (s, _) = answer(deliver(body, &signed(body, "d-6")).await.unwrap()).await;
    assert_eq!(s, StatusCode::TOO_MANY_REQUESTS);
    let unknown = d
        .req(reqwest::Method::POST, "/v1/hooks/nope")
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
}
