//! Outgoing HTTP from plugins (`wasi:http`), against a real HTTP server on
//! loopback: a request to a granted origin goes through; one to another host
//! name, scheme or port, or from a plugin with no grant, is refused before
//! anything is sent; a response over the host's size limit is cut off; the
//! host counts what passed and what it refused.

use crate::common;

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::{Value, json};
use weft::Host;
use weft::plugin::HostLimits;
use weft_tests::{FETCH, PluginDir};

/// A server on loopback: `/hello` says hi, `/big` sends 5,000 bytes; its
/// port and how many requests reached it.
async fn server() -> (u16, Arc<AtomicUsize>) {
    let hits = Arc::new(AtomicUsize::new(0));
    let counted = hits.clone();
    let app = axum::Router::new()
        .route("/hello", axum::routing::get(|| async { "hi" }))
        .route("/big", axum::routing::get(|| async { "x".repeat(5_000) }))
        .layer(axum::middleware::from_fn(
            move |req, next: axum::middleware::Next| {
                counted.fetch_add(1, Ordering::SeqCst);
                async move { next.run(req).await }
            },
        ));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (port, hits)
}

async fn host(manifest: &str) -> (Host, PluginDir) {
    let dir = PluginDir::new()
        .add("fetch", FETCH)
        .manifest("fetch", manifest);
    let limits = HostLimits {
        http: weft::plugin::http::HttpLimits {
            max_response_bytes: 1_000,
            ..Default::default()
        },
        ..HostLimits::default()
    };
    let host = common::builder(Some(dir.path()))
        .limits(limits)
        .build()
        .await
        .unwrap();
    let report = host
        .plugins()
        .into_iter()
        .find(|p| p.name == "fetch")
        .unwrap();
    assert_eq!(report.error, None);
    (host, dir)
}

async fn get(host: &Host, url: &str) -> Result<Value, String> {
    let graph =
        common::graph(json!({"tasks": [{"id": "g", "type": "net.get", "defaults": {"url": url}}]}));
    let result = host.run(&graph, json!({})).await.unwrap();
    match result.outputs.get("g") {
        Some(out) if result.failures.is_empty() => Ok(out.clone()),
        _ => Err(result.failures[0].error.clone()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_granted_origin_is_reached_and_every_other_is_refused_before_sending() {
    let (port, hits) = server().await;
    let grant = format!("[grants]\nhttp = [\"http://127.0.0.1:{port}\"]\n");
    let (host, _dir) = host(&grant).await;
    let ok = get(&host, &format!("http://127.0.0.1:{port}/hello"))
        .await
        .unwrap();
    assert_eq!(ok, json!({"status": 200, "body": "hi"}));
    assert_eq!(hits.load(Ordering::SeqCst), 1);

    for (why, url) in [
        (
            "another host name",
            format!("http://localhost:{port}/hello"),
        ),
        ("another scheme", format!("https://127.0.0.1:{port}/hello")),
        (
            "another port",
            format!("http://127.0.0.1:{}/hello", port.wrapping_add(1)),
        ),
    ] {
        let refused = get(&host, &url).await.unwrap_err();
        assert!(refused.contains("HttpRequestDenied"), "{why}: {refused}");
    }
    assert_eq!(hits.load(Ordering::SeqCst), 1, "nothing refused was sent");

    // Over the host's response limit: cut off, as an error.
    let big = get(&host, &format!("http://127.0.0.1:{port}/big"))
        .await
        .unwrap_err();
    assert!(big.contains("HttpResponseBodySize"), "{big}");

    let stats = host.plugin_host().http_stats();
    assert_eq!(stats.sent.load(Relaxed), 2);
    assert_eq!(stats.refused.load(Relaxed), 3);
    assert!(stats.failed.load(Relaxed) >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_without_a_grant_sends_nothing() {
    let (port, hits) = server().await;
    let (host, _dir) = host("").await;
    let refused = get(&host, &format!("http://127.0.0.1:{port}/hello"))
        .await
        .unwrap_err();
    assert!(refused.contains("HttpRequestDenied"), "{refused}");
    assert_eq!(hits.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn an_http_grant_must_be_an_origin() {
    let (host, _dir) = async {
        let dir = PluginDir::new().add("fetch", FETCH).manifest(
            "fetch",
            "[grants]\nhttp = [\"https://api.example.com/v1\"]\n",
        );
        (common::host(Some(dir.path())).await, dir)
    }
    .await;
    let report = host
        .plugins()
        .into_iter()
        .find(|p| p.name == "fetch")
        .unwrap();
    let error = report.error.unwrap();
    assert!(
        error.contains("http grant `https://api.example.com/v1`"),
        "{error}"
    );
    assert!(error.contains("an origin has no path"), "{error}");
}

/// `net.fetch-url` (Workglow's `FetchUrlTask`) on a host granting `origins`.
async fn fetch(origins: &[String], input: Value) -> Result<Value, String> {
    let host = common::builder(None)
        .fetch_origins(origins.to_vec())
        .build()
        .await
        .unwrap();
    let graph =
        common::graph(json!({"tasks": [{"id": "f", "type": "FetchUrlTask", "defaults": input}]}));
    let result = host.run(&graph, json!({})).await.unwrap();
    match result.outputs.get("f") {
        Some(out) if result.failures.is_empty() => Ok(out.clone()),
        _ => Err(result.failures[0].error.clone()),
    }
}

/// A loopback server for `net.fetch-url`: `/json` answers JSON, `/echo`
/// the request's method, header and body, `/fail` a 503.
async fn api() -> (u16, Arc<AtomicUsize>) {
    use axum::routing::{any, get};
    let hits = Arc::new(AtomicUsize::new(0));
    let counted = hits.clone();
    let app = axum::Router::new()
        .route("/json", get(|| async { axum::Json(json!({"ok": true, "n": 3})) }))
        .route(
            "/echo",
            any(|method: axum::http::Method, headers: axum::http::HeaderMap, body: String| async move {
                let who = headers.get("x-who").and_then(|v| v.to_str().ok()).unwrap_or("");
                format!("{method} {who} {body}")
            }),
        )
        .route(
            "/fail",
            get(|| async { (axum::http::StatusCode::SERVICE_UNAVAILABLE, "busy") }),
        )
        .layer(axum::middleware::from_fn(
            move |req, next: axum::middleware::Next| {
                counted.fetch_add(1, Ordering::SeqCst);
                async move { next.run(req).await }
            },
        ));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (port, hits)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fetch_url_reaches_granted_origins_and_never_a_private_address_through_a_public_grant() {
    let (port, hits) = api().await;
    let base = format!("http://127.0.0.1:{port}");

    // Nothing granted (the default): refused, nothing sent.
    let e = fetch(&[], json!({"url": format!("{base}/json")}))
        .await
        .unwrap_err();
    assert!(e.contains("no `[fetch] origins` grant"), "{e}");

    // "Any public host" on that port: loopback, by address or by name, is
    // not public; nor are the cloud metadata address and private ranges.
    let any = vec![format!("http://*:{port}")];
    for url in [
        format!("{base}/json"),
        format!("http://localhost:{port}/json"),
        format!("http://[::1]:{port}/json"),
        format!("http://169.254.169.254:{port}/latest"),
        format!("http://10.0.0.1:{port}/"),
    ] {
        let e = fetch(&any, json!({"url": url})).await.unwrap_err();
        assert!(e.contains("not public"), "{url}: {e}");
    }
    assert_eq!(hits.load(Relaxed), 0, "nothing reached the server");

    // The origin granted by name: JSON, a POST with headers and body, a
    // 503 as a retryable failure.
    let named = vec![base.clone()];
    let out = fetch(&named, json!({"url": format!("{base}/json")}))
        .await
        .unwrap();
    assert_eq!(out["json"], json!({"ok": true, "n": 3}));
    assert_eq!(out["metadata"]["contentType"], "application/json");
    let out = fetch(
        &named,
        json!({"url": format!("{base}/echo"), "method": "POST",
               "headers": {"X-Who": "ann"}, "body": "hello"}),
    )
    .await
    .unwrap();
    assert_eq!(out["text"], "POST ann hello");
    let out = fetch(
        &named,
        json!({"url": format!("{base}/json"), "response_type": "arraybuffer"}),
    )
    .await
    .unwrap();
    assert!(
        out["arraybuffer"].as_str().is_some_and(|b| !b.is_empty()),
        "{out}"
    );
    let e = fetch(&named, json!({"url": format!("{base}/fail")}))
        .await
        .unwrap_err();
    assert!(e.contains("HTTP 503"), "{e}");
    let e = fetch(&named, json!({"url": "ftp://x/y"}))
        .await
        .unwrap_err();
    assert!(e.contains("not an http:// or https:// URL"), "{e}");
}
