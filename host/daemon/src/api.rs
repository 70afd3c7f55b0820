//! The HTTP API: routes, request parsing and JSON answers. Each handler reads
//! its request, calls the host, the store or the daemon's runs, and answers;
//! errors become [`ApiError`]s with a status and a message naming what is wrong.

use std::net::SocketAddr;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{ConnectInfo, DefaultBodyLimit, Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Extension, Json, Router};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::AppState;
use super::auth::{LOCAL_USER, Refusal, User};
use super::cross_site::CrossSite;
use weft::events::{EventHub, EventKind, RunStatus};
use weft::graph::Graph;
use weft::store::{RunFilter, RunRecord, StoreError, StoredRun, valid_graph_name};
use weft::{HostError, Prepared, Submission};

/// The OpenAPI document of this API.
const OPENAPI: &str = include_str!("openapi.json");

/// An error answer: a status and `{"error": message, ...details}`.
#[derive(Debug)]
pub(crate) struct ApiError {
    status: StatusCode,
    message: String,
    details: Box<Map<String, Value>>,
    headers: Vec<(HeaderName, String)>,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
            details: Box::default(),
            headers: Vec::new(),
        }
    }

    pub(crate) fn header(mut self, name: HeaderName, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    /// The answer's status.
    pub(crate) fn status(&self) -> StatusCode {
        self.status
    }

    fn detail(mut self, key: &str, value: Value) -> Self {
        self.details.insert(key.to_string(), value);
        self
    }

    fn not_found(what: impl std::fmt::Display) -> Self {
        ApiError::new(StatusCode::NOT_FOUND, format!("no {what}"))
    }

    fn internal(e: impl std::fmt::Display) -> Self {
        tracing::error!(error = %e, "request failed");
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = Map::new();
        body.insert("error".into(), Value::String(self.message));
        body.extend(*self.details);
        let mut response = (self.status, Json(Value::Object(body))).into_response();
        for (name, value) in self.headers {
            if let Ok(v) = HeaderValue::from_str(&value) {
                response.headers_mut().insert(name, v);
            }
        }
        response
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::UnknownRun(id) => ApiError::not_found(format!("run `{id}`")),
            e => ApiError::internal(e),
        }
    }
}

impl From<HostError> for ApiError {
    fn from(e: HostError) -> Self {
        match e {
            HostError::Invalid(errors) => {
                let list: Vec<Value> = errors
                    .errors
                    .iter()
                    .map(|e| Value::String(format!("{}: {e}", errors.origin)))
                    .collect();
                ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    format!(
                        "{} is invalid ({} problem{})",
                        errors.origin,
                        list.len(),
                        if list.len() == 1 { "" } else { "s" }
                    ),
                )
                .detail("errors", Value::Array(list))
            }
            HostError::Store(e) => e.into(),
            e @ HostError::AlreadyFinished { .. } => {
                ApiError::new(StatusCode::CONFLICT, e.to_string())
            }
            e @ HostError::NotDeadLetter { .. } => {
                ApiError::new(StatusCode::NOT_FOUND, e.to_string())
            }
            e => ApiError::internal(e),
        }
    }
}

type ApiResult<T> = Result<T, ApiError>;

pub(crate) fn router(state: AppState, max_body_bytes: usize, cross_site: CrossSite) -> Router {
    let v1 = Router::new()
        .route("/runs", post(submit).get(list_runs))
        .route("/runs/{id}", get(get_run))
        .route("/runs/{id}/cancel", post(cancel_run))
        .route("/runs/{id}/events", get(super::sse::events))
        .route("/tasks", get(tasks))
        .route("/plugins", get(plugins))
        .route("/graphs", get(list_graphs))
        .route(
            "/graphs/{name}",
            put(put_graph).get(get_graph).delete(delete_graph),
        )
        .route("/dead-letters", get(dead_letters))
        .route("/dead-letters/{id}/retry", post(retry_dead_letter))
        .route("/openapi.json", get(openapi))
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(state.clone(), authenticate))
        .layer(DefaultBodyLimit::max(max_body_bytes));
    let mut app = Router::new()
        .nest("/v1", v1)
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .fallback(not_found)
        .with_state(state);
    // Outermost: a foreign page is refused before anything else looks at
    // its request; CORS answers only the origins the operator listed.
    if let Some(cors) = cross_site.cors() {
        app = app.layer(cors);
    }
    app.layer(middleware::from_fn_with_state(
        std::sync::Arc::new(cross_site),
        super::cross_site::guard,
    ))
}

async fn authenticate(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    mut request: Request,
    next: Next,
) -> Response {
    match state.auth.user(request.headers(), peer) {
        Ok(user) => {
            request.extensions_mut().insert(user);
            next.run(request).await
        }
        Err(e) => e.into_response(),
    }
}

async fn not_found() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "no such route (see /v1/openapi.json)",
    )
}

/// Parse a JSON request body: 413 over the size limit, 400 for malformed JSON
/// (naming line and column), 422 for JSON of the wrong shape.
fn parse_body<T: for<'de> Deserialize<'de>>(body: Result<Bytes, BytesRejection>) -> ApiResult<T> {
    let bytes = body.map_err(|r| ApiError::new(r.status(), r.body_text()))?;
    serde_json::from_slice(&bytes).map_err(|e| {
        if e.is_syntax() || e.is_eof() {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                // serde_json's message ends with "at line L column C".
                format!("malformed JSON in request body: {e}"),
            )
        } else {
            ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("request body: {e}"),
            )
        }
    })
}

/// A run the user may see: their own (and, for loopback use without tokens,
/// runs started from the CLI). Others' runs are answered as unknown.
pub(crate) fn visible_run(run: &RunRecord, user: &User) -> bool {
    match &run.owner {
        Some(owner) => *owner == user.0,
        None => user.0 == LOCAL_USER,
    }
}

async fn load_visible(state: &AppState, id: &str, user: &User) -> ApiResult<StoredRun> {
    let stored = state.host.store().load_run(id).await?;
    if !visible_run(&stored.run, user) {
        return Err(ApiError::not_found(format!("run `{id}`")));
    }
    Ok(stored)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SubmitBody {
    /// A graph (object) or the name of a saved graph (string).
    graph: Value,
    /// With a saved graph: its version (default: the newest).
    #[serde(default)]
    version: Option<u32>,
    #[serde(default = "empty_object")]
    input: Value,
    #[serde(default)]
    idempotency_key: Option<String>,
}

fn empty_object() -> Value {
    json!({})
}

async fn submit(
    State(state): State<AppState>,
    Extension(user): Extension<User>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Response> {
    let body: SubmitBody = parse_body(body)?;
    let (graph, origin, graph_name) = match body.graph {
        Value::String(name) => {
            let saved = state
                .host
                .store()
                .graph_get(&name, body.version)
                .await?
                .ok_or_else(|| match body.version {
                    Some(v) => ApiError::not_found(format!("saved graph `{name}` version {v}")),
                    None => ApiError::not_found(format!("saved graph `{name}`")),
                })?;
            let origin = format!("graph {name}@{}", saved.version);
            (saved.graph, origin, Some(name))
        }
        inline @ Value::Object(_) => {
            let graph: Graph = serde_json::from_value(inline).map_err(|e| {
                ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    format!("request body: `graph` is not a graph: {e}"),
                )
            })?;
            (graph, "request graph".to_string(), None)
        }
        _ => {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "request body: `graph` must be a graph object or the name of a saved graph",
            ));
        }
    };
    let idempotency_key = body.idempotency_key.or_else(|| {
        headers
            .get("idempotency-key")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    });
    let refused = |refusal: Refusal| {
        state.metrics.rejected(refusal.reason);
        ApiError::new(StatusCode::TOO_MANY_REQUESTS, refusal.message)
            .header(header::RETRY_AFTER, refusal.retry_after_s.to_string())
    };
    state.quotas.admit(&user.0).await.map_err(refused)?;
    let lease = state.runs.lease_for_new();
    let leased = lease.is_some();
    let submission = Submission {
        owner: Some(user.0.clone()),
        graph_name,
        idempotency_key,
        lease,
        max_running: state.quotas.concurrent_runs(),
    };
    match state
        .host
        .submit(&graph, &origin, body.input, submission)
        .await?
    {
        Prepared::New(run) => {
            let run_id = run.run_id.clone();
            tracing::info!(run_id = %run_id, user = %user.0, origin = %origin, "run submitted");
            if leased {
                state.runs.start(run, Some(user.0));
            }
            Ok((
                StatusCode::CREATED,
                [(header::LOCATION, format!("/v1/runs/{run_id}"))],
                Json(json!({"run_id": run_id, "status": "running", "existing": false})),
            )
                .into_response())
        }
        Prepared::TooManyRunning(running) => {
            Err(refused(state.quotas.too_many_running(&user.0, running)))
        }
        Prepared::Existing(run) => Ok((
            StatusCode::OK,
            [(header::LOCATION, format!("/v1/runs/{}", run.run_id))],
            Json(json!({"run_id": run.run_id, "status": run.status, "existing": true})),
        )
            .into_response()),
    }
}

fn run_summary(run: &RunRecord) -> Value {
    json!({
        "run_id": run.run_id,
        "status": run.status,
        "origin": run.origin,
        "graph_name": run.graph_name,
        "owner": run.owner,
        "created_ms": run.created_ms,
        "updated_ms": run.updated_ms,
    })
}

/// A run as the API shows it: summary, node states, outputs once finished,
/// and the errors of failed nodes.
fn run_view(stored: &StoredRun) -> Value {
    let mut view = run_summary(&stored.run);
    let mut nodes = Map::new();
    let mut outputs = Map::new();
    let mut errors = Vec::new();
    for n in &stored.nodes {
        let mut node = json!({"status": n.status, "attempt": n.attempt});
        if let Some(e) = &n.error {
            node["error"] = json!(e);
            errors.push(json!({"node": n.node, "status": n.status, "error": e}));
        }
        if let Some(at) = n.retry_at_ms {
            node["retry_at_ms"] = json!(at);
        }
        if let Some(out) = &n.output {
            outputs.insert(n.node.clone(), out.clone());
        }
        nodes.insert(n.node.clone(), node);
    }
    view["nodes"] = Value::Object(nodes);
    if stored.run.status != RunStatus::Running {
        view["outputs"] = Value::Object(outputs);
    }
    view["errors"] = Value::Array(errors);
    view["events"] = json!(stored.next_seq - 1);
    view
}

async fn get_run(
    State(state): State<AppState>,
    Extension(user): Extension<User>,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    Ok(Json(run_view(&load_visible(&state, &id, &user).await?)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    status: Option<RunStatus>,
    /// The saved graph's name, or the origin.
    graph: Option<String>,
    /// Created at or after, ms since the Unix epoch.
    since: Option<u64>,
    limit: Option<usize>,
    /// The last run id of the previous page.
    cursor: Option<String>,
}

async fn list_runs(
    State(state): State<AppState>,
    Extension(user): Extension<User>,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<Value>> {
    let Query(q) = query.map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e.body_text()))?;
    let limit = q.limit.unwrap_or(50).clamp(1, 1000);
    // What `visible_run` allows: the user's runs, and for the local user
    // also those started from the CLI.
    let filter = RunFilter {
        owner: Some(user.0.clone()),
        with_unowned: user.0 == LOCAL_USER,
        status: q.status,
        since_ms: q.since,
        graph: q.graph.clone(),
    };
    // Runs are listed newest first; a page resumes after the cursor. One
    // more than asked says whether there is a next page.
    let mut page = state
        .host
        .store()
        .runs_page(&filter, q.cursor.as_deref(), limit + 1)
        .await?;
    let more = page.len() > limit;
    page.truncate(limit);
    let next = if more {
        page.last().map(|r| r.run_id.clone())
    } else {
        None
    };
    Ok(Json(json!({
        "runs": page.iter().map(run_summary).collect::<Vec<_>>(),
        "next_cursor": next,
    })))
}

async fn cancel_run(
    State(state): State<AppState>,
    Extension(user): Extension<User>,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let stored = load_visible(&state, &id, &user).await?;
    if stored.run.status != RunStatus::Running {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            format!(
                "run `{id}` already ended ({}); nothing to cancel",
                serde_json::to_value(stored.run.status).unwrap_or_default()
            ),
        ));
    }
    if !state.runs.cancel(&id, Duration::from_secs(30)).await {
        // Recorded as running but not executing here (it could not be
        // resumed): end it in the store.
        EventHub::with_store(&id, stored.next_seq, state.host.store().clone())
            .commit(
                Vec::new(),
                Some(RunStatus::Cancelled),
                vec![EventKind::RunFinished {
                    status: RunStatus::Cancelled,
                }],
            )
            .await?;
    }
    tracing::info!(run_id = %id, user = %user.0, "run cancelled");
    Ok(Json(run_view(&state.host.store().load_run(&id).await?)))
}

async fn tasks(State(state): State<AppState>) -> Json<Value> {
    let registry = state.host.registry();
    Json(Value::Array(
        registry.task_types().map(|t| t.to_json()).collect(),
    ))
}

async fn plugins(State(state): State<AppState>) -> Json<Value> {
    Json(json!(state.host.plugins()))
}

fn check_graph_name(name: &str) -> ApiResult<()> {
    if valid_graph_name(name) {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("graph name `{name}` must be 1-128 characters of A-Z, a-z, 0-9, `.`, `_`, `-`"),
        ))
    }
}

async fn put_graph(
    State(state): State<AppState>,
    Extension(user): Extension<User>,
    Path(name): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Response> {
    check_graph_name(&name)?;
    let graph: Graph = parse_body(body)?;
    state
        .host
        .plan(&graph, &format!("graph {name}"))
        .map_err(|e| ApiError::from(HostError::Invalid(e)))?;
    let saved = state
        .host
        .store()
        .graph_put(&name, graph, Some(user.0))
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"name": saved.name, "version": saved.version, "saved_ms": saved.saved_ms})),
    )
        .into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct VersionQuery {
    version: Option<u32>,
}

async fn get_graph(
    State(state): State<AppState>,
    Path(name): Path<String>,
    query: Result<Query<VersionQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<Value>> {
    let Query(q) = query.map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e.body_text()))?;
    let saved = state
        .host
        .store()
        .graph_get(&name, q.version)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("saved graph `{name}`")))?;
    Ok(Json(json!(saved)))
}

async fn delete_graph(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    if state.host.store().graph_delete(&name).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!("saved graph `{name}`")))
    }
}

async fn list_graphs(State(state): State<AppState>) -> ApiResult<Json<Value>> {
    let graphs = state.host.store().graph_list().await?;
    Ok(Json(Value::Array(
        graphs
            .into_iter()
            .map(|g| {
                json!({
                    "name": g.name,
                    "version": g.version,
                    "saved_ms": g.saved_ms,
                    "owner": g.owner,
                    "tasks": g.graph.tasks.len(),
                })
            })
            .collect(),
    )))
}

async fn dead_letters(
    State(state): State<AppState>,
    Extension(user): Extension<User>,
) -> ApiResult<Json<Value>> {
    let runs = state.host.store().list_runs().await?;
    let letters = state.host.dead_letters().await?;
    let list: Vec<Value> = letters
        .into_iter()
        .filter(|l| {
            runs.iter()
                .any(|r| r.run_id == l.run_id && visible_run(r, &user))
        })
        .map(|l| {
            let mut v = json!(l);
            v["id"] = json!(format!("{}:{}", l.run_id, l.node));
            v
        })
        .collect();
    Ok(Json(Value::Array(list)))
}

async fn retry_dead_letter(
    State(state): State<AppState>,
    Extension(user): Extension<User>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let (run_id, node) = id.split_once(':').ok_or_else(|| {
        ApiError::not_found(format!("dead letter `{id}` (ids are `RUN_ID:NODE`)"))
    })?;
    let stored = load_visible(&state, run_id, &user).await?;
    let run = state.host.redrive(run_id, node).await?;
    state.runs.start_existing(run, stored.run.owner).await;
    tracing::info!(run_id, node, user = %user.0, "dead letter re-driven");
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"run_id": run_id, "node": node, "status": "running"})),
    )
        .into_response())
}

async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI).into_response()
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(state): State<AppState>) -> Response {
    if !state.ready.load(std::sync::atomic::Ordering::Acquire) {
        return ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "starting: plugins not scanned yet",
        )
        .into_response();
    }
    match state.host.store().cache_get("readyz").await {
        Ok(_) => "ready\n".into_response(),
        Err(e) => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("store unavailable: {e}"),
        )
        .into_response(),
    }
}

async fn metrics(State(state): State<AppState>) -> Response {
    let failures = state
        .host
        .plugins()
        .iter()
        .filter(|p| p.error.is_some())
        .count();
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.render(failures),
    )
        .into_response()
}
