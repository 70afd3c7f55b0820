//! A fake model API on a loopback port, speaking the OpenAI and Anthropic
//! wire formats (streamed with Server-Sent Events), scripted to fail in the
//! ways providers do; shared by `models.rs` and `providers.rs`.
#![allow(dead_code)]

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use serde_json::{Value, json};

/// What the fake provider does with the next request.
#[derive(Clone, Debug)]
pub enum Reply {
    Ok,
    Status(u16, Option<u64>),
    Slow(u64),
    Malformed,
    /// A chat completion answering this text, in one chunk.
    Text(String),
}

#[derive(Default)]
pub struct Fake {
    pub script: Mutex<VecDeque<Reply>>,
    /// (path, headers, body) of every request.
    pub seen: Mutex<Vec<(String, HeaderMap, Value)>>,
}

impl Fake {
    pub fn script(&self, replies: &[Reply]) {
        *self.script.lock().unwrap() = replies.iter().cloned().collect();
    }
    pub fn hits(&self) -> usize {
        self.seen.lock().unwrap().len()
    }
}

/// Server-Sent Events sent one by one, 5 ms apart.
fn sse(frames: Vec<String>) -> Response {
    let stream = futures::stream::iter(frames).then(|f| async move {
        tokio::time::sleep(Duration::from_millis(5)).await;
        Ok::<_, std::convert::Infallible>(Bytes::from(f))
    });
    Response::builder()
        .header("content-type", "text/event-stream")
        .body(Body::from_stream(stream))
        .unwrap()
}

async fn provider(
    State(fake): State<Arc<Fake>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    // JSON, or else (a multipart form) the text of the body.
    let body: Value = serde_json::from_slice(&body)
        .unwrap_or_else(|_| json!({"raw": String::from_utf8_lossy(&body)}));
    fake.seen
        .lock()
        .unwrap()
        .push((uri.path().to_string(), headers, body.clone()));
    let reply = fake.script.lock().unwrap().pop_front().unwrap_or(Reply::Ok);
    match reply {
        Reply::Status(code, retry_after) => {
            let mut r = (
                StatusCode::from_u16(code).unwrap(),
                axum::Json(json!({"error": {"message": "overloaded, try later"}})),
            )
                .into_response();
            if let Some(s) = retry_after {
                r.headers_mut()
                    .insert("retry-after", s.to_string().parse().unwrap());
            }
            return r;
        }
        Reply::Slow(ms) => tokio::time::sleep(Duration::from_millis(ms)).await,
        Reply::Malformed => return sse(vec!["data: {\"choices\": [{\"delta\": \n\n".into()]),
        Reply::Text(text) => {
            let chunk = json!({"choices": [{"delta": {"content": text}, "finish_reason": "stop"}]});
            return sse(vec![
                format!("data: {chunk}\n\n"),
                "data: [DONE]\n\n".into(),
            ]);
        }
        Reply::Ok => {}
    }
    match uri.path() {
        "/v1/chat/completions" => {
            let chunk = |content: &str, finish: Option<&str>| {
                format!(
                    "data: {}\n\n",
                    json!({"choices": [{"delta": {"content": content}, "finish_reason": finish}]})
                )
            };
            sse(vec![
                chunk("Hel", None),
                chunk("lo", None),
                chunk(" world", Some("stop")),
                format!(
                    "data: {}\n\n",
                    json!({"choices": [], "usage": {"completion_tokens": 3}})
                ),
                "data: [DONE]\n\n".into(),
            ])
        }
        "/v1/embeddings" => {
            let texts = body["input"].as_array().cloned().unwrap_or_default();
            // Answered out of order: the client must sort by index.
            let data: Vec<Value> = texts
                .iter()
                .enumerate()
                .rev()
                .map(|(i, t)| json!({"index": i, "embedding": [t.as_str().unwrap().len(), i]}))
                .collect();
            axum::Json(json!({"data": data})).into_response()
        }
        "/v1/messages" => {
            let event = |name: &str, data: Value| format!("event: {name}\ndata: {data}\n\n");
            sse(vec![
                event(
                    "message_start",
                    json!({"type": "message_start", "message": {"usage": {"input_tokens": 5}}}),
                ),
                event(
                    "content_block_start",
                    json!({"type": "content_block_start", "index": 0}),
                ),
                event(
                    "content_block_delta",
                    json!({"type": "content_block_delta", "delta": {"type": "text_delta", "text": "Bon"}}),
                ),
                event("ping", json!({"type": "ping"})),
                event(
                    "content_block_delta",
                    json!({"type": "content_block_delta", "delta": {"type": "text_delta", "text": "jour"}}),
                ),
                event(
                    "content_block_stop",
                    json!({"type": "content_block_stop", "index": 0}),
                ),
                event(
                    "message_delta",
                    json!({"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 2}}),
                ),
                event("message_stop", json!({"type": "message_stop"})),
            ])
        }
        "/v1/images/generations" | "/v1/images/edits" => {
            axum::Json(json!({"data": [{"b64_json": made_image()}]})).into_response()
        }
        "/v1/messages/count_tokens" => {
            let text = body["messages"][0]["content"].as_str().unwrap_or_default();
            axum::Json(json!({"input_tokens": text.split_whitespace().count()})).into_response()
        }
        _ => StatusCode::NOT_FOUND.into_response(),
    }
}

/// A fake provider on a loopback port; its base URL.
pub async fn fake_provider() -> (Arc<Fake>, String) {
    let fake = Arc::new(Fake::default());
    let app = axum::Router::new()
        .fallback(provider)
        .with_state(fake.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (fake, format!("http://{addr}"))
}

/// The image the fake makes: a 3×2 PNG, in base64.
pub fn made_image() -> String {
    use base64::Engine;
    let image = image::RgbaImage::from_pixel(3, 2, image::Rgba([10, 200, 30, 255]));
    let mut png = Vec::new();
    image
        .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .unwrap();
    base64::engine::general_purpose::STANDARD.encode(png)
}
