//! Signals: `POST /v1/runs/{id}/signals/{name}` answers a run's `wait`
//! nodes (an approval, an input, news from another system). The body is
//! checked against each waiting node's schema and stored once; the run's
//! waits take it at once, on whichever host executes the run. Only the
//! run's owner may signal it. What a wait does with it is the runner's.

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use serde_json::Value;
use weft::signals::SignalError;

use super::AppState;
use super::api::load_visible;
use super::auth::User;
use super::error::ApiError;
use crate::types::{ErrorBody, SignalView};

impl From<SignalError> for ApiError {
    fn from(e: SignalError) -> Self {
        let status = match &e {
            SignalError::BadName(_) => StatusCode::BAD_REQUEST,
            SignalError::NoWait { .. } => StatusCode::NOT_FOUND,
            SignalError::Ambiguous { .. } => StatusCode::CONFLICT,
            SignalError::RunEnded { .. }
            | SignalError::WaitEnded { .. }
            | SignalError::AlreadySent { .. } => StatusCode::CONFLICT,
            SignalError::Body { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            _ => {
                return match e {
                    SignalError::Host(e) => e.into(),
                    e => ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
                };
            }
        };
        ApiError::new(status, e.to_string())
    }
}

/// Send a signal to a run: its wait nodes for it take the body as their
/// output.
#[utoipa::path(
    post, path = "/runs/{id}/signals/{name}", tag = "runs",
    request_body(content = Object, description = "The signal's body: what the wait nodes give, checked against their `output_schema`"),
    params(
        ("id" = String, Path, description = "The run's id"),
        ("name" = String, Path, description = "The signal's name (a wait node's `signal`, by default its id); for a wait inside a loop's step or a map's element, at its use: `chat[3]/reply` (the `/` sent as `%2F`), or plain when only one such wait is waiting"),
    ),
    responses(
        (status = 202, description = "Taken: the waits for it go on with it", body = SignalView),
        (status = 400, description = "Not a signal name", body = ErrorBody),
        (status = 404, description = "No such run, or no wait node of it for this signal", body = ErrorBody),
        (status = 409, description = "The run, or every wait for this signal, has ended; the signal was sent already; or several waits inside uses wait for it and it names none", body = ErrorBody),
        (status = 422, description = "The body does not match the wait node's schema", body = ErrorBody),
    )
)]
pub(crate) async fn send(
    State(state): State<AppState>,
    Extension(user): Extension<User>,
    Path((id, name)): Path<(String, String)>,
    body: Result<Json<Value>, JsonRejection>,
) -> Result<(StatusCode, Json<SignalView>), ApiError> {
    let Json(body) = body.map_err(|r| ApiError::new(r.status(), r.body_text()))?;
    load_visible(&state, &id, &user).await?;
    let sent = state.host.signal(&id, &name, body, Some(&user.0)).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(SignalView {
            run_id: sent.run_id,
            signal: sent.name,
            nodes: sent.nodes,
        }),
    ))
}
