//! `/v1/storage`: the key-value namespaces plugins keep for the calling
//! user (their `storage` import): listed with their use, keys by page, one
//! value, a key deleted. A user sees only their own; the host's own spaces
//! (`weft.…`, such as secrets) are not shown. What a plugin may do is
//! [`weft::plugin::storage`]'s.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use weft::store::key_values::{Delete, Space};

use super::AppState;
use super::api::parse_query;
use super::auth::User;
use super::error::ApiError;
use crate::types::{ErrorBody, KeyPage, KeyQuery, NamespaceList, NamespaceView, ValueView};

type ApiResult<T> = Result<T, ApiError>;

/// The user's space `namespace`, unless it is the host's own.
fn space(user: &User, namespace: &str) -> ApiResult<Space> {
    if namespace.starts_with("weft.") {
        return Err(ApiError::not_found(format!("namespace `{namespace}`")));
    }
    Ok(Space::new(&user.0, namespace))
}

fn now(state: &AppState) -> u64 {
    state.host.clock().now_ms()
}

/// Your namespaces, with their keys and bytes.
#[utoipa::path(
    get, path = "/storage", tag = "storage",
    responses((status = 200, description = "Your namespaces", body = NamespaceList))
)]
pub(crate) async fn namespaces(
    State(state): State<AppState>,
    Extension(user): Extension<User>,
) -> ApiResult<Json<NamespaceList>> {
    let spaces = state.host.store().kv_spaces(&user.0).await?;
    let namespaces = spaces
        .into_iter()
        .filter(|(ns, _)| !ns.starts_with("weft."))
        .map(|(namespace, u)| NamespaceView {
            namespace,
            keys: u.keys,
            bytes: u.bytes,
        })
        .collect();
    Ok(Json(NamespaceList { namespaces }))
}

/// A page of a namespace's keys, in byte order.
#[utoipa::path(
    get, path = "/storage/{namespace}", tag = "storage",
    params(("namespace" = String, Path, description = "As listed"), KeyQuery),
    responses(
        (status = 200, description = "Keys", body = KeyPage),
        (status = 400, description = "A bad parameter", body = ErrorBody),
    )
)]
pub(crate) async fn keys(
    State(state): State<AppState>,
    Extension(user): Extension<User>,
    Path(namespace): Path<String>,
    query: Result<Query<KeyQuery>, QueryRejection>,
) -> ApiResult<Json<KeyPage>> {
    let q = parse_query(query)?;
    let limit = q.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::bad_request("`limit` must be 1 to 1000"));
    }
    let space = space(&user, &namespace)?;
    let prefix = q.prefix.unwrap_or_default();
    let keys = state
        .host
        .store()
        .kv_list(&space, &prefix, q.after.as_deref(), limit, now(&state))
        .await?;
    let next = (keys.len() == limit)
        .then(|| keys.last().cloned())
        .flatten();
    Ok(Json(KeyPage { keys, next }))
}

/// One value.
#[utoipa::path(
    get, path = "/storage/{namespace}/{key}", tag = "storage",
    params(
        ("namespace" = String, Path, description = "As listed"),
        ("key" = String, Path, description = "The key (percent-encoded)"),
    ),
    responses(
        (status = 200, description = "The value", body = ValueView),
        (status = 404, description = "No such key", body = ErrorBody),
    )
)]
pub(crate) async fn get(
    State(state): State<AppState>,
    Extension(user): Extension<User>,
    Path((namespace, key)): Path<(String, String)>,
) -> ApiResult<Json<ValueView>> {
    let space = space(&user, &namespace)?;
    let found = state
        .host
        .store()
        .kv_get(&space, std::slice::from_ref(&key), now(&state))
        .await?
        .pop()
        .flatten()
        .ok_or_else(|| ApiError::not_found(format!("key `{key}` in namespace `{namespace}`")))?;
    let (text, hex) = match String::from_utf8(found.value) {
        Ok(text) => (Some(text), None),
        Err(e) => (None, Some(hex::encode(e.into_bytes()))),
    };
    Ok(Json(ValueView {
        key,
        version: found.version,
        expires_ms: found.expires_ms,
        text,
        hex,
    }))
}

/// Delete one key.
#[utoipa::path(
    delete, path = "/storage/{namespace}/{key}", tag = "storage",
    params(
        ("namespace" = String, Path, description = "As listed"),
        ("key" = String, Path, description = "The key (percent-encoded)"),
    ),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such key", body = ErrorBody),
    )
)]
pub(crate) async fn delete(
    State(state): State<AppState>,
    Extension(user): Extension<User>,
    Path((namespace, key)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let space = space(&user, &namespace)?;
    let gone = state
        .host
        .store()
        .kv_delete(&space, &[Delete::key(&key)], now(&state))
        .await
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    match gone == [true] {
        true => Ok(StatusCode::NO_CONTENT),
        false => Err(ApiError::not_found(format!(
            "key `{key}` in namespace `{namespace}`"
        ))),
    }
}
