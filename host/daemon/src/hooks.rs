//! Webhooks: `POST /v1/hooks/{name}` starts a saved graph with the request
//! body as its input, when the body is signed with the hook's secret
//! (HMAC-SHA256, in `X-Weft-Signature: sha256=HEX` or GitHub's
//! `X-Hub-Signature-256`). A delivery id (`X-Weft-Delivery` or
//! `X-GitHub-Delivery`) makes a redelivery answer with the run the first
//! one started. Owns signatures, body and rate limits of hooks; runs start
//! as `POST /v1/runs` starts them ([`crate::api::start_run`]). Knows
//! nothing of bearer tokens: a hook's caller is whoever holds its secret.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;

use super::AppState;
use super::api::{saved_graph, start_run, too_many};
use super::auth::User;
use super::error::ApiError;
use crate::types::{ErrorBody, Submitted};
use weft::limiter::RateConfig;

/// A webhook (from `[hooks.NAME]`).
#[derive(Clone)]
pub struct Hook {
    /// The saved graph it starts, as `user` names it.
    pub graph: String,
    /// Whose run it is.
    pub user: String,
    /// The signing secret.
    pub secret: String,
    /// Larger bodies are refused (413).
    pub max_body_bytes: usize,
    /// Deliveries per sliding window.
    pub rate: Option<RateConfig>,
}

impl std::fmt::Debug for Hook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hook")
            .field("graph", &self.graph)
            .field("user", &self.user)
            .field("max_body_bytes", &self.max_body_bytes)
            .finish_non_exhaustive()
    }
}

/// Headers carrying the signature, ours first.
const SIGNATURES: [&str; 2] = ["x-weft-signature", "x-hub-signature-256"];
/// Headers carrying the delivery id, ours first.
const DELIVERIES: [&str; 2] = ["x-weft-delivery", "x-github-delivery"];
/// The longest delivery id kept.
const MAX_DELIVERY_ID: usize = 200;

/// Start the saved graph of hook `name` with the body as input.
#[utoipa::path(
    post, path = "/hooks/{name}", tag = "hooks",
    request_body(content = Object, description = "The run's input (a JSON object), signed"),
    params(
        ("name" = String, Path, description = "The hook (`[hooks.NAME]`)"),
        ("X-Weft-Signature" = String, Header, description = "`sha256=` and the hex HMAC-SHA256 of the body with the hook's secret (or `X-Hub-Signature-256`)"),
        ("X-Weft-Delivery" = Option<String>, Header, description = "A delivery id: a redelivery answers with the first delivery's run (or `X-GitHub-Delivery`)"),
    ),
    responses(
        (status = 201, description = "Started", body = Submitted),
        (status = 200, description = "This delivery id already started a run: that run", body = Submitted),
        (status = 401, description = "The signature is missing or does not match the body: nothing runs", body = ErrorBody),
        (status = 404, description = "No such hook, or its saved graph is gone", body = ErrorBody),
        (status = 413, description = "The body is over the hook's `max_body_bytes`", body = ErrorBody),
        (status = 422, description = "The body is not a JSON object, or not a valid input", body = ErrorBody),
        (status = 429, description = "Over the hook's rate or its user's quota; see Retry-After", body = ErrorBody),
    )
)]
pub(crate) async fn deliver(
    State(state): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let hook = state
        .hooks
        .get(&name)
        .ok_or_else(|| ApiError::not_found(format!("hook `{name}`")))?;
    let body = body.map_err(|r| ApiError::new(r.status(), r.body_text()))?;
    if body.len() > hook.max_body_bytes {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "hook `{name}` takes bodies up to {} bytes",
                hook.max_body_bytes
            ),
        ));
    }
    check_signature(&hook.secret, &headers, &body)?;
    if let Some(rate) = hook.rate {
        let scope = format!("hook `{name}`");
        let id = format!("quota:hook\u{1f}{name}");
        state
            .quotas
            .window(&id, rate, "hook", &scope)
            .await
            .map_err(|r| too_many(&state, r))?;
    }
    let input: Value = serde_json::from_slice(&body).map_err(|e| {
        ApiError::unprocessable(format!("hook `{name}`: the body is not JSON: {e}"))
    })?;
    if !input.is_object() {
        return Err(ApiError::unprocessable(format!(
            "hook `{name}`: the body must be a JSON object (the run's input)"
        )));
    }
    let delivery = header_of(&headers, &DELIVERIES)
        .map(|id| format!("hook:{name}:{}", truncate(id, MAX_DELIVERY_ID)));
    let user = User(hook.user.clone());
    let (graph, origin, graph_name) = saved_graph(&state, &user, &hook.graph, None).await?;
    let origin = format!("hook {name}: {origin}");
    start_run(&state, &user, &graph, &origin, graph_name, input, delivery).await
}

/// Whether `body` carries a valid signature made with `secret` (401 if not).
fn check_signature(secret: &str, headers: &HeaderMap, body: &[u8]) -> Result<(), ApiError> {
    let refuse = |why: &str| ApiError::new(StatusCode::UNAUTHORIZED, why.to_string());
    let given = header_of(headers, &SIGNATURES).ok_or_else(|| {
        refuse("missing signature: send X-Weft-Signature: sha256=HEX (HMAC-SHA256 of the body)")
    })?;
    let digest = given
        .strip_prefix("sha256=")
        .and_then(|hex| hex::decode(hex).ok())
        .ok_or_else(|| refuse("the signature must be `sha256=` and hex digits"))?;
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes())
        .map_err(|_| refuse("the hook's secret is unusable"))?;
    mac.update(body);
    // Compared in constant time.
    mac.verify_slice(&digest)
        .map_err(|_| refuse("the signature does not match the body"))
}

/// The first of `names` present as text.
fn header_of<'h>(headers: &'h HeaderMap, names: &[&str]) -> Option<&'h str> {
    names
        .iter()
        .find_map(|n| headers.get(*n).and_then(|v| v.to_str().ok()))
}

fn truncate(s: &str, max: usize) -> &str {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signed(secret: &str, body: &[u8]) -> HeaderMap {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
        mac.update(body);
        let mut headers = HeaderMap::new();
        let value = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
        headers.insert("x-hub-signature-256", value.parse().unwrap());
        headers
    }

    #[test]
    fn signatures_are_checked_against_the_body_and_secret() {
        let (secret, body) = ("a-long-hook-secret-0001", br#"{"value":1}"#);
        assert!(check_signature(secret, &signed(secret, body), body).is_ok());
        let tampered = check_signature(secret, &signed(secret, body), br#"{"value":2}"#);
        assert!(tampered.unwrap_err().message().contains("does not match"));
        let other = check_signature(secret, &signed("another-secret-000001", body), body);
        assert!(other.is_err());
        assert!(check_signature(secret, &HeaderMap::new(), body).is_err());
        let mut bad = HeaderMap::new();
        bad.insert("x-weft-signature", "md5=00".parse().unwrap());
        assert!(check_signature(secret, &bad, body).is_err());
    }
}
