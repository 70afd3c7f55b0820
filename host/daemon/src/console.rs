//! The web console's files: the page at `/` and its scripts and styles under
//! `/assets/`. With the `console` feature they are the files of
//! `console/dist` (built by `console/build.sh`), embedded in the binary at
//! compile time: nothing is fetched at run time. Without it, `/` answers a
//! short page saying how to get the console.
//!
//! The console is a page of the daemon's own origin that calls `/v1` like
//! any other client (with the user's token, when tokens are configured), so
//! these files are public: they hold nothing of anyone's. Every answer
//! forbids framing and limits the page to its own origin's scripts and
//! connections. This module knows nothing of the API.

use std::borrow::Cow;

use axum::body::Body;
use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// What the page may load and whom it may embed it: its own origin only.
/// (Inline styles: the graph drawing positions its nodes with them.)
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
                   img-src 'self' data:; connect-src 'self'; object-src 'none'; \
                   base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// `GET /`: the console's page.
pub(crate) async fn index() -> Response {
    page()
}

/// `GET /assets/{*path}`: one of the console's built files.
pub(crate) async fn asset(Path(path): Path<String>) -> Response {
    match file(&format!("assets/{path}")) {
        // Built file names carry a hash of their content.
        Some((bytes, mime)) => answer(bytes, &mime, "public, max-age=31536000, immutable"),
        None => (StatusCode::NOT_FOUND, "no such console file\n").into_response(),
    }
}

fn answer(body: Cow<'static, [u8]>, mime: &str, cache: &'static str) -> Response {
    let mut response = Body::from(body).into_response();
    let headers = response.headers_mut();
    if let Ok(mime) = HeaderValue::from_str(mime) {
        headers.insert(header::CONTENT_TYPE, mime);
    }
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

#[cfg(feature = "console")]
#[derive(rust_embed::Embed)]
#[folder = "../../console/dist"]
struct Built;

/// A built file's bytes and content type.
#[cfg(feature = "console")]
fn file(path: &str) -> Option<(Cow<'static, [u8]>, String)> {
    let file = Built::get(path)?;
    let mime = file.metadata.mimetype().to_string();
    Some((file.data, mime))
}

#[cfg(not(feature = "console"))]
fn file(_path: &str) -> Option<(Cow<'static, [u8]>, String)> {
    None
}

#[cfg(feature = "console")]
fn page() -> Response {
    match file("index.html") {
        Some((bytes, mime)) => answer(bytes, &mime, "no-cache"),
        None => (StatusCode::NOT_FOUND, "the console has no index.html\n").into_response(),
    }
}

#[cfg(not(feature = "console"))]
fn page() -> Response {
    answer(
        Cow::Borrowed(WITHOUT_CONSOLE.as_bytes()),
        "text/html; charset=utf-8",
        "no-cache",
    )
}

#[cfg(not(feature = "console"))]
const WITHOUT_CONSOLE: &str = r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Weft</title></head>
<body style="font-family: sans-serif; max-width: 40em; margin: 3em auto">
<h1>Weft</h1>
<p>This <code>weft</code> was built without its web console. To get it, build
the console's files and then Weft with the <code>console</code> feature, from
a clone of Weft's repository (node and npm needed):</p>
<pre>console/build.sh
cargo install --path host/cli --features console</pre>
<p>The HTTP API is served here under <code>/v1</code>; its OpenAPI document is
<a href="/v1/openapi.json">/v1/openapi.json</a>.</p>
</body></html>
"#;
