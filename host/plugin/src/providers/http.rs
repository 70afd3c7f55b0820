//! What the HTTP providers share: the client, the API key, retries with
//! backoff on 429 and 5xx (honouring Retry-After), error mapping, and a
//! reader for streamed (Server-Sent Events) responses.

use std::time::Duration;

use futures::StreamExt;
use reqwest::{RequestBuilder, Response, StatusCode};

use super::{ModelConfig, ModelError};

/// The longest Retry-After waited for inside one call.
const MAX_INLINE_WAIT: Duration = Duration::from_secs(5);

/// How a provider wants its API key.
pub(super) enum KeyHeader {
    /// `Authorization: Bearer KEY` (OpenAI and compatible servers).
    Bearer,
    /// `NAME: KEY` (Anthropic: `x-api-key`).
    Named(&'static str),
}

/// An HTTP provider's connection settings.
pub(super) struct Http {
    pub id: String,
    pub client: reqwest::Client,
    pub base: String,
    /// The API key; `None` when the configuration names none.
    pub key: Option<String>,
    max_retries: u32,
    /// A request that failed after it was sent (a timeout) is sent again;
    /// not for image generation, where each request is billed and slow.
    resend_failed: bool,
    key_header: KeyHeader,
    /// Headers every request carries.
    headers: Vec<(&'static str, &'static str)>,
}

impl Http {
    /// A POST of JSON `body` to `path` under the base URL, with the API key
    /// and the provider's headers.
    pub fn post(&self, path: &str, body: &serde_json::Value) -> RequestBuilder {
        self.request(path).json(body)
    }

    /// A POST of a multipart form to `path`, as [`Http::post`].
    pub fn post_form(&self, path: &str, form: reqwest::multipart::Form) -> RequestBuilder {
        self.request(path).multipart(form)
    }

    fn request(&self, path: &str) -> RequestBuilder {
        let mut r = self.client.post(format!("{}{path}", self.base));
        for (name, value) in &self.headers {
            r = r.header(*name, *value);
        }
        match (&self.key, &self.key_header) {
            (Some(k), KeyHeader::Bearer) => r.bearer_auth(k),
            (Some(k), KeyHeader::Named(name)) => r.header(*name, k),
            (None, _) => r,
        }
    }

    pub fn new(
        id: &str,
        config: &ModelConfig,
        default_base: &str,
        key_header: KeyHeader,
        headers: Vec<(&'static str, &'static str)>,
    ) -> Result<Self, ModelError> {
        let key = match &config.api_key_env {
            Some(var) => Some(std::env::var(var).map_err(|_| {
                ModelError::Unavailable(format!(
                    "model `{id}`: environment variable {var} (its API key) is not set"
                ))
            })?),
            None => None,
        };
        // Making an image takes a minute or more at high quality.
        let making_images = config.kind() == super::ModelKind::ImageGeneration;
        let default_ms = if making_images { 300_000 } else { 60_000 };
        let timeout = Duration::from_millis(config.timeout_ms.unwrap_or(default_ms));
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10).min(timeout))
            .read_timeout(timeout)
            .build()
            .map_err(|e| ModelError::Unavailable(format!("model `{id}`: {e}")))?;
        Ok(Http {
            id: id.to_string(),
            client,
            base: config
                .base_url
                .clone()
                .unwrap_or_else(|| default_base.to_string())
                .trim_end_matches('/')
                .to_string(),
            key,
            max_retries: config.max_retries.unwrap_or(3),
            resend_failed: !making_images,
            key_header,
            headers,
        })
    }

    /// Send the request `build` makes, retrying connection failures, 429 and
    /// 5xx with exponential backoff (at least what Retry-After asks, when that
    /// is at most 5 s; a longer wait is returned as `RateLimited`). Only
    /// whole requests are retried: nothing has been streamed to the caller yet.
    pub async fn send(&self, build: impl Fn() -> RequestBuilder) -> Result<Response, ModelError> {
        let mut attempt = 0;
        loop {
            let outcome = build().send().await;
            let (error, wait) = match outcome {
                Ok(r) if r.status().is_success() => return Ok(r),
                Ok(r) => {
                    let status = r.status();
                    let retry_after = retry_after(&r);
                    let body = r.text().await.unwrap_or_default();
                    let error = self.status_error(status, retry_after, &body);
                    if !(status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error()) {
                        return Err(error);
                    }
                    (error, retry_after)
                }
                Err(e) => {
                    let error =
                        ModelError::Unavailable(format!("model `{}`: {}", self.id, describe(&e)));
                    // Sent, perhaps served: sending it again might pay twice.
                    if !self.resend_failed && !e.is_connect() {
                        return Err(error);
                    }
                    (error, None)
                }
            };
            // A long Retry-After goes back to the caller (the model's limiter
            // pauses; a task can retry later with a durable timer) rather than
            // holding the task here.
            if attempt >= self.max_retries || wait.is_some_and(|w| w > MAX_INLINE_WAIT) {
                return Err(error);
            }
            let backoff = Duration::from_millis(250 << attempt.min(5));
            let wait = wait.map_or(backoff, |w| w.max(backoff));
            tracing::info!(model = %self.id, attempt, wait_ms = wait.as_millis() as u64, error = %error, "retrying model request");
            tokio::time::sleep(wait).await;
            attempt += 1;
        }
    }

    fn status_error(
        &self,
        status: StatusCode,
        retry_after: Option<Duration>,
        body: &str,
    ) -> ModelError {
        if status == StatusCode::TOO_MANY_REQUESTS {
            return ModelError::RateLimited {
                retry_after_ms: retry_after.map_or(1000, |d| d.as_millis() as u64),
            };
        }
        let message = serde_json::from_str::<serde_json::Value>(body)
            .ok()
            .and_then(|v| {
                v["error"]["message"]
                    .as_str()
                    .or(v["error"].as_str())
                    .map(str::to_string)
            })
            .unwrap_or_else(|| body.chars().take(300).collect());
        let text = format!("model `{}`: HTTP {status}: {message}", self.id);
        if status.is_client_error() {
            ModelError::InvalidRequest(text)
        } else {
            ModelError::Unavailable(text)
        }
    }

    /// Read a JSON answer, naming the model when it is not what was expected.
    pub async fn json(&self, response: Response) -> Result<serde_json::Value, ModelError> {
        let body = response.text().await.map_err(|e| {
            ModelError::Unavailable(format!("model `{}`: {}", self.id, describe(&e)))
        })?;
        serde_json::from_str(&body).map_err(|e| self.malformed(e))
    }

    pub fn malformed(&self, e: impl std::fmt::Display) -> ModelError {
        ModelError::Unavailable(format!("model `{}`: malformed response: {e}", self.id))
    }
}

/// Retry-After (seconds) or retry-after-ms, when given.
fn retry_after(r: &Response) -> Option<Duration> {
    let header = |name: &str| {
        r.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<f64>().ok())
    };
    header("retry-after-ms")
        .map(|ms| Duration::from_millis(ms as u64))
        .or_else(|| header("retry-after").map(|s| Duration::from_millis((s * 1000.0) as u64)))
}

fn describe(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        format!("timed out ({e})")
    } else if e.is_connect() {
        format!("cannot connect ({e})")
    } else {
        e.to_string()
    }
}

/// Reads Server-Sent Events from a streamed response.
pub(super) struct EventReader {
    stream: futures::stream::BoxStream<'static, reqwest::Result<bytes::Bytes>>,
    buffer: String,
}

/// One SSE event: its `event:` name (if any) and `data:`.
pub(super) struct SseEvent {
    pub event: Option<String>,
    pub data: String,
}

impl EventReader {
    pub fn new(response: Response) -> Self {
        EventReader {
            stream: response.bytes_stream().boxed(),
            buffer: String::new(),
        }
    }

    /// The next event; `None` at the end of the stream.
    pub async fn next(&mut self, http: &Http) -> Result<Option<SseEvent>, ModelError> {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let frame: String = self.buffer.drain(..end + 2).collect();
                let mut event = None;
                let mut data = Vec::new();
                for line in frame.lines() {
                    if let Some(v) = line.strip_prefix("event:") {
                        event = Some(v.trim().to_string());
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data.push(v.strip_prefix(' ').unwrap_or(v));
                    }
                }
                if data.is_empty() && event.is_none() {
                    continue;
                }
                return Ok(Some(SseEvent {
                    event,
                    data: data.join("\n"),
                }));
            }
            match self.stream.next().await {
                Some(Ok(chunk)) => self
                    .buffer
                    .push_str(&String::from_utf8_lossy(&chunk).replace("\r\n", "\n")),
                Some(Err(e)) => {
                    return Err(ModelError::Unavailable(format!(
                        "model `{}`: stream broken: {}",
                        http.id,
                        describe(&e)
                    )));
                }
                None => return Ok(None),
            }
        }
    }
}
