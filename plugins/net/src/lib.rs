//! Standard task `net.fetch-url`: Workglow's `FetchUrlTask`, port for port
//! (its class name is an alias), over outgoing `wasi:http`. It reaches only
//! the origins the operator grants in `[fetch] origins`; a `https://*`
//! grant reaches hosts whose addresses are all public, which the host
//! resolves and checks when it connects (docs/plugins.md).
//!
//! Differences: `blob` and `arraybuffer` are the body in base64 (JSON has
//! no bytes); `credential_key` is not supported (refused by name: a
//! plugin's secrets come from its configuration, docs/secrets.md).
mod http;
mod loader;

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use weft_sdk::{Context, TaskDef, TaskError};

#[derive(Deserialize, JsonSchema, Default, Clone, Copy)]
#[serde(rename_all = "UPPERCASE")]
enum Method {
    #[default]
    Get,
    Post,
    Put,
    Delete,
    Patch,
}

#[derive(Deserialize, JsonSchema, Clone, Copy, PartialEq)]
#[serde(rename_all = "lowercase")]
enum ResponseType {
    Json,
    Text,
    Blob,
    Arraybuffer,
}

#[derive(Deserialize, JsonSchema)]
struct FetchIn {
    /// The URL to fetch from (`http://` or `https://`).
    url: String,
    /// The HTTP method to use (default GET).
    #[serde(default)]
    method: Method,
    /// The headers to send with the request.
    #[serde(default)]
    headers: BTreeMap<String, String>,
    /// The body of the request.
    #[serde(default)]
    body: Option<String>,
    /// The type of response to return; `null`: from the Content-Type.
    #[serde(default)]
    response_type: Option<ResponseType>,
    /// Request timeout in milliseconds (the host's limit caps it).
    #[serde(default)]
    timeout: Option<f64>,
    /// Not supported (a plugin's secrets come from its configuration).
    #[serde(default)]
    credential_key: Option<String>,
}

#[derive(Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
struct Metadata {
    content_type: String,
    headers: BTreeMap<String, String>,
}

#[derive(Serialize, JsonSchema, Default)]
struct FetchOut {
    /// The JSON response.
    #[serde(skip_serializing_if = "Option::is_none")]
    json: Option<Value>,
    /// The text response.
    #[serde(skip_serializing_if = "Option::is_none")]
    text: Option<String>,
    /// The body in base64.
    #[serde(skip_serializing_if = "Option::is_none")]
    blob: Option<String>,
    /// The body in base64.
    #[serde(skip_serializing_if = "Option::is_none")]
    arraybuffer: Option<String>,
    /// Content type and headers of the response.
    #[serde(skip_serializing_if = "Option::is_none")]
    metadata: Option<Metadata>,
}

fn fetch_url(i: FetchIn, _: &Context) -> Result<FetchOut, TaskError> {
    if i.credential_key.is_some() {
        return Err(TaskError::invalid_input(
            "credential_key is not supported: give a token through the plugin's configuration",
        ));
    }
    let method = match i.method {
        Method::Get => "GET",
        Method::Post => "POST",
        Method::Put => "PUT",
        Method::Delete => "DELETE",
        Method::Patch => "PATCH",
    };
    let timeout_ms = i.timeout.filter(|t| *t > 0.0).map(|t| t as u64);
    let response = http::send(method, &i.url, &i.headers, i.body.as_deref(), timeout_ms)?;
    refuse_errors(&i.url, &response)?;
    Ok(answer(response, i.response_type))
}

/// An HTTP error status as the task's error: 429 and 5xx retryable.
fn refuse_errors(url: &str, response: &http::Response) -> Result<(), TaskError> {
    if response.status < 400 {
        return Ok(());
    }
    let message = format!("{url} answered HTTP {}", response.status);
    Err(match response.status {
        429 | 500..=599 => TaskError::retryable(message, response.retry_after_ms),
        _ => TaskError::failed(message),
    })
}

/// The response as Workglow gives it: by `wanted`, else by its type.
fn answer(response: http::Response, wanted: Option<ResponseType>) -> FetchOut {
    use base64::Engine;
    let content_type = response
        .headers
        .get("content-type")
        .cloned()
        .unwrap_or_default();
    let kind = wanted.unwrap_or(if content_type.contains("application/json") {
        ResponseType::Json
    } else if content_type.starts_with("text/") {
        ResponseType::Text
    } else {
        ResponseType::Blob
    });
    let text = || String::from_utf8_lossy(&response.body).into_owned();
    let base64 = || base64::engine::general_purpose::STANDARD.encode(&response.body);
    let mut out = FetchOut::default();
    match kind {
        ResponseType::Json => match serde_json::from_slice(&response.body) {
            Ok(v) => out.json = Some(v),
            Err(_) => out.text = Some(text()),
        },
        ResponseType::Text => out.text = Some(text()),
        ResponseType::Blob => out.blob = Some(base64()),
        ResponseType::Arraybuffer => out.arraybuffer = Some(base64()),
    }
    out.metadata = Some(Metadata {
        content_type,
        headers: response.headers,
    });
    out
}

fn tasks() -> Vec<TaskDef> {
    vec![
        TaskDef::new("net.file-loader", loader::file_loader)
            .title("File loader")
            .description(
                "Loads `url` (through the same grants as `net.fetch-url`) and reads it as \
                 `format` (`auto`: by its ending): `text`, `markdown` (with its `frontmatter`), \
                 `html`, `json`, `csv` (rows by the header's names), `image` or `pdf` (a \
                 base64 `data:` URL) → the one read, and metadata (url, format, size, title, \
                 mimeType).",
            )
            .category("Document")
            // What a URL answers changes; as `net.fetch-url`.
            .not_cacheable(),
        TaskDef::new("net.fetch-url", fetch_url)
            .title("Fetch URL")
            .description(
                "Sends an HTTP request to `url` (only to origins the operator grants) → json, \
                 text, blob or arraybuffer, and metadata.",
            )
            .category("Input")
            .not_cacheable(),
    ]
}

weft_sdk::export_plugin!(tasks);
