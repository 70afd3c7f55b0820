//! `/v1/secrets`: a user's secrets, for the plugins they name to read
//! through their `config` import. Values go in and never come out: the
//! answers list names, plugins and times. Sealing and keeping them is
//! [`weft::secrets`]'s.

use std::sync::Arc;

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use weft::secrets::{SecretError, SecretStore};

use super::AppState;
use super::auth::User;
use super::error::ApiError;
use crate::types::{ErrorBody, SecretList, SecretRequest, SecretView};

type ApiResult<T> = Result<T, ApiError>;

impl From<SecretError> for ApiError {
    fn from(e: SecretError) -> Self {
        match e {
            SecretError::Store(e) => e.into(),
            e @ (SecretError::BadName(_) | SecretError::TooLarge { .. } | SecretError::Full) => {
                ApiError::unprocessable(e.to_string())
            }
            e => ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        }
    }
}

fn secrets(state: &AppState) -> ApiResult<&Arc<SecretStore>> {
    state.host.secrets().ok_or_else(|| {
        ApiError::new(
            StatusCode::CONFLICT,
            "this daemon keeps no secrets: the operator sets a key in [secrets] (docs/secrets.md)",
        )
    })
}

/// Your secrets: names, the plugins that may read each, when set.
#[utoipa::path(
    get, path = "/secrets", tag = "secrets",
    responses(
        (status = 200, description = "Your secrets (never their values)", body = SecretList),
        (status = 409, description = "No secrets key configured", body = ErrorBody),
    )
)]
pub(crate) async fn list(
    State(state): State<AppState>,
    Extension(user): Extension<User>,
) -> ApiResult<Json<SecretList>> {
    let found = secrets(&state)?.list(&user.0).await?;
    Ok(Json(SecretList {
        secrets: found
            .into_iter()
            .map(|s| SecretView {
                name: s.name,
                plugins: s.plugins,
                updated_ms: s.updated_ms,
            })
            .collect(),
    }))
}

/// Set a secret (replacing one of the same name).
#[utoipa::path(
    put, path = "/secrets/{name}", tag = "secrets",
    request_body = SecretRequest,
    params(("name" = String, Path, description = "The secret's name: 1–128 of [A-Za-z0-9._-]")),
    responses(
        (status = 204, description = "Set"),
        (status = 409, description = "No secrets key configured", body = ErrorBody),
        (status = 422, description = "Bad name or plugin name, a value over 64 KiB, or 100 secrets already", body = ErrorBody),
    )
)]
pub(crate) async fn put(
    State(state): State<AppState>,
    Extension(user): Extension<User>,
    Path(name): Path<String>,
    body: Result<Json<SecretRequest>, JsonRejection>,
) -> ApiResult<StatusCode> {
    let Json(request) = body.map_err(|r| ApiError::new(r.status(), r.body_text()))?;
    let store = secrets(&state)?;
    store
        .set(&user.0, &name, &request.value, request.plugins)
        .await?;
    tracing::info!(user = %user.0, secret = %name, "secret set");
    Ok(StatusCode::NO_CONTENT)
}

/// Delete a secret.
#[utoipa::path(
    delete, path = "/secrets/{name}", tag = "secrets",
    params(("name" = String, Path, description = "The secret's name")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such secret of yours", body = ErrorBody),
        (status = 409, description = "No secrets key configured", body = ErrorBody),
    )
)]
pub(crate) async fn delete(
    State(state): State<AppState>,
    Extension(user): Extension<User>,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    match secrets(&state)?.delete(&user.0, &name).await? {
        true => Ok(StatusCode::NO_CONTENT),
        false => Err(ApiError::not_found(format!("secret `{name}`"))),
    }
}
