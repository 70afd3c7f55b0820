//! The HTTP API: routes and handlers. Each handler reads its request, calls
//! the host, the store or the daemon's runs, and answers with a type from
//! [`crate::types`]; errors are [`ApiError`]s naming what is wrong. The
//! OpenAPI document is generated from the handlers' annotations and those
//! types ([`openapi`]), never written by hand.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{ConnectInfo, DefaultBodyLimit, Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::Value;
use utoipa::OpenApi;
use utoipa::openapi::response::{Response as DocResponse, ResponseBuilder};
use utoipa::openapi::{Content, RefOr};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::auth::{LOCAL_USER, Refusal, User, visible_run};
use super::cross_site::CrossSite;
use super::error::ApiError;
use super::graphs;
use crate::types::*;
use weft::events::{EventHub, EventKind, RunStatus};
use weft::graph::Graph;
use weft::store::{RunFilter, RunRecord, StoredRun, valid_graph_name};
use weft::{HostError, Prepared, Submission};

type ApiResult<T> = Result<T, ApiError>;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Weft daemon API",
        version = "0.1.0",
        description = "Submit runs of graphs of sandboxed WebAssembly tasks, follow them, \
                       manage saved graphs and dead letters. With tokens configured, every \
                       /v1 route needs `Authorization: Bearer TOKEN`. Request bodies are \
                       `application/json`."
    ),
    components(schemas(ErrorBody, Preview, RunEvent))
)]
struct ApiDoc;

/// Answers every `/v1` operation may give, whatever it does: added to each
/// operation of the document once, here, instead of on every handler.
struct CommonResponses;

impl utoipa::Modify for CommonResponses {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let common = [
            ("401", "No or unknown bearer token (tokens configured)"),
            (
                "403",
                "A cross-site request (foreign Origin or Host), or a non-loopback client \
                 without tokens configured",
            ),
            ("500", "The store failed"),
        ];
        let with_body = [
            ("413", "The request body is over `[server] max_body_bytes`"),
            ("415", "The request body is not `application/json`"),
        ];
        for (path, item) in doc.paths.paths.iter_mut() {
            if !path.starts_with("/v1/") {
                continue;
            }
            let ops = [
                (&mut item.get, false),
                (&mut item.delete, false),
                (&mut item.post, true),
                (&mut item.put, true),
            ];
            for (op, has_body) in ops {
                let Some(op) = op else { continue };
                let extra = common
                    .iter()
                    .chain(if has_body { &with_body[..] } else { &[] });
                for (status, why) in extra {
                    op.responses
                        .responses
                        .entry(status.to_string())
                        .or_insert_with(|| error_response(why));
                }
            }
        }
    }
}

fn error_response(description: &str) -> RefOr<DocResponse> {
    RefOr::T(
        ResponseBuilder::new()
            .description(description)
            .content(
                "application/json",
                Content::new(Some(RefOr::Ref(utoipa::openapi::Ref::from_schema_name(
                    "ErrorBody",
                )))),
            )
            .build(),
    )
}

/// The `/v1` routes, with their documentation.
fn v1_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(submit, list_runs))
        .routes(routes!(get_run, delete_run))
        .routes(routes!(cancel_run))
        .routes(routes!(run_graph))
        .routes(routes!(node_input))
        .routes(routes!(super::signals::send))
        .routes(routes!(super::secrets::list))
        .routes(routes!(super::storage::namespaces))
        .routes(routes!(super::storage::keys))
        .routes(routes!(super::storage::get, super::storage::delete))
        .routes(routes!(super::secrets::put, super::secrets::delete))
        .routes(routes!(super::sse::events))
        .routes(routes!(tasks))
        .routes(routes!(plugins))
        .routes(routes!(list_graphs))
        .routes(routes!(super::editing::validate))
        .routes(routes!(super::editing::convert))
        .routes(routes!(put_graph, get_graph, delete_graph))
        .routes(routes!(share_graph))
        .routes(routes!(dead_letters))
        .routes(routes!(retry_dead_letter))
        .routes(routes!(write_backup))
        .routes(routes!(super::schedules::list))
        .routes(routes!(
            super::schedules::put,
            super::schedules::get,
            super::schedules::delete
        ))
        .routes(routes!(super::schedules::pause))
        .routes(routes!(super::schedules::resume))
        .routes(routes!(openapi_json))
}

/// The webhook route: outside bearer authentication (a hook checks the
/// body's signature instead).
fn hook_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(super::hooks::deliver))
}

/// Every route, with the document generated from them.
fn all_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .nest("/v1", v1_routes().merge(hook_routes()))
        .routes(routes!(healthz))
        .routes(routes!(readyz))
        .routes(routes!(metrics))
}

/// The OpenAPI document of this API (served at `/v1/openapi.json`).
pub fn openapi() -> utoipa::openapi::OpenApi {
    let mut doc = all_routes().split_for_parts().1;
    utoipa::Modify::modify(&CommonResponses, &mut doc);
    doc
}

fn openapi_text() -> &'static str {
    static DOC: OnceLock<String> = OnceLock::new();
    DOC.get_or_init(|| openapi().to_pretty_json().unwrap_or_default())
}

pub(crate) fn router(
    state: AppState,
    max_body_bytes: usize,
    cross_site: CrossSite,
) -> axum::Router {
    let hook_body = state.hooks.values().map(|h| h.max_body_bytes).max();
    let hooks = hook_routes().layer(DefaultBodyLimit::max(hook_body.unwrap_or(0)));
    let v1 = v1_routes()
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(state.clone(), authenticate))
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .merge(hooks);
    let (routes, _) = OpenApiRouter::new()
        .nest("/v1", v1)
        .routes(routes!(healthz))
        .routes(routes!(readyz))
        .routes(routes!(metrics))
        .split_for_parts();
    let mut app = routes
        .route("/", axum::routing::get(super::console::index))
        .route("/assets/{*path}", axum::routing::get(super::console::asset))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state);
    // Outermost: a foreign page is refused before anything else looks at
    // its request; CORS answers only the origins the operator listed.
    if let Some(cors) = cross_site.cors() {
        app = app.layer(cors);
    }
    app.layer(middleware::from_fn_with_state(
        Arc::new(cross_site),
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
    ApiError::not_found("such route (see /v1/openapi.json)")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "this route does not take that method (see /v1/openapi.json)",
    )
}

/// Parse a JSON request body: 413 over the size limit, 400 for malformed JSON
/// (naming line and column), 422 for JSON of the wrong shape.
pub(crate) fn parse_body<T: for<'de> Deserialize<'de>>(
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<T> {
    let bytes = body.map_err(|r| ApiError::new(r.status(), r.body_text()))?;
    serde_json::from_slice(&bytes).map_err(|e| {
        if e.is_syntax() || e.is_eof() {
            // serde_json's message ends with "at line L column C".
            ApiError::bad_request(format!("malformed JSON in request body: {e}"))
        } else {
            ApiError::unprocessable(format!("request body: {e}"))
        }
    })
}

/// Parse a query string: 400 naming the parameter.
pub(crate) fn parse_query<T>(query: Result<Query<T>, QueryRejection>) -> ApiResult<T> {
    query
        .map(|Query(q)| q)
        .map_err(|e| ApiError::bad_request(e.body_text()))
}

pub(crate) async fn load_visible(state: &AppState, id: &str, user: &User) -> ApiResult<StoredRun> {
    let stored = state.host.store().load_run(id).await?;
    if !visible_run(&stored.run, user) {
        return Err(ApiError::not_found(format!("run `{id}`")));
    }
    Ok(stored)
}

/// `user`'s saved graph `name` (or `OWNER/NAME` shared with them), the
/// given version or the newest, with the saved graphs its nodes use pinned
/// (expanded), ready to run: the graph, its origin (`graph NAME@V`) and its
/// name. What hooks and schedules start.
pub(crate) async fn saved_graph(
    state: &AppState,
    user: &User,
    name: &str,
    version: Option<u32>,
) -> ApiResult<(Graph, String, Option<String>)> {
    let request = SubmitRequest {
        graph: Value::String(name.to_string()),
        version,
        input: Value::Null,
        idempotency_key: None,
        preview: false,
    };
    let (graph, origin, graph_name) = submitted_graph(state, user, &request).await?;
    let graph = graphs::expand(&state.host, user, graph).await?;
    Ok((graph, origin, graph_name))
}
/// The graph a submission names: inline, or saved (its version or newest).
pub(crate) async fn submitted_graph(
    state: &AppState,
    user: &User,
    body: &SubmitRequest,
) -> ApiResult<(Graph, String, Option<String>)> {
    match &body.graph {
        Value::String(name) => {
            let saved = graphs::find(state.host.store().as_ref(), user, name, body.version)
                .await?
                .ok_or_else(|| match body.version {
                    Some(v) => ApiError::not_found(format!("saved graph `{name}` version {v}")),
                    None => ApiError::not_found(format!("saved graph `{name}`")),
                })?;
            let origin = format!("graph {name}@{}", saved.version);
            Ok((saved.graph, origin, Some(name.clone())))
        }
        inline @ (Value::Object(_) | Value::Array(_)) => {
            let graph = Graph::from_value(inline.clone(), "request body: `graph`")
                .map_err(|e| ApiError::unprocessable(e.to_string()))?;
            Ok((graph, "request graph".to_string(), None))
        }
        _ => Err(ApiError::unprocessable(
            "request body: `graph` must be a graph object or the name of a saved graph",
        )),
    }
}

/// Submit a run of an inline or saved graph.
#[utoipa::path(
    post, path = "/runs", tag = "runs",
    request_body = SubmitRequest,
    params(("Idempotency-Key" = Option<String>, Header, description = "As `idempotency_key`")),
    responses(
        (status = 201, description = "Started", body = Submitted),
        (status = 200, description = "The run this idempotency key already started (a `Submitted`), or with `preview`, the preview (a `Preview`)", body = SubmitAnswer),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 404, description = "No such saved graph or version", body = ErrorBody),
        (status = 422, description = "The body, graph or input is invalid", body = ErrorBody),
        (status = 429, description = "Over a quota; see the Retry-After header", body = ErrorBody),
    )
)]
async fn submit(
    State(state): State<AppState>,
    Extension(user): Extension<User>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Response> {
    let body: SubmitRequest = parse_body(body)?;
    let (graph, origin, graph_name) = submitted_graph(&state, &user, &body).await?;
    // Saved graphs used as node types, pinned to their versions now.
    let graph = graphs::expand(&state.host, &user, graph).await?;
    if body.preview {
        state
            .quotas
            .admit(&user.0)
            .await
            .map_err(|r| too_many(&state, r))?;
        return preview(&state, &user, &graph, &origin, body.input).await;
    }
    let idempotency_key = body.idempotency_key.or_else(|| {
        headers
            .get("idempotency-key")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    });
    start_run(
        &state,
        &user,
        &graph,
        &origin,
        graph_name,
        body.input,
        idempotency_key,
    )
    .await
}

/// Record a run of `graph` for `user` (after their submission quotas) and
/// start it here if this host has room: 201 with its id, or 200 with the
/// run `idempotency_key` already started.
pub(crate) async fn start_run(
    state: &AppState,
    user: &User,
    graph: &Graph,
    origin: &str,
    graph_name: Option<String>,
    input: Value,
    idempotency_key: Option<String>,
) -> ApiResult<Response> {
    let answer = begin_run(
        state,
        user,
        graph,
        origin,
        graph_name,
        input,
        idempotency_key,
    )
    .await?;
    let status = match answer.existing {
        true => StatusCode::OK,
        false => StatusCode::CREATED,
    };
    let location = format!("/v1/runs/{}", answer.run_id);
    Ok((status, [(header::LOCATION, location)], Json(answer)).into_response())
}

/// [`start_run`], answering with the run rather than a response.
pub(crate) async fn begin_run(
    state: &AppState,
    user: &User,
    graph: &Graph,
    origin: &str,
    graph_name: Option<String>,
    input: Value,
    idempotency_key: Option<String>,
) -> ApiResult<Submitted> {
    let refused = |refusal: Refusal| too_many(state, refusal);
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
    // The run starts as soon as it is recorded (without a key or a quota,
    // as soon as its record is on its way); the answer waits until the
    // record is durable: its first tasks run meanwhile.
    let (prepared, durable) = state
        .host
        .submit_applied(graph, origin, input, submission)
        .await?;
    let (run_id, status, existing) = match prepared {
        Prepared::New(run) => {
            let run_id = run.run_id.clone();
            tracing::info!(run_id = %run_id, user = %user.0, origin = %origin, "run submitted");
            if leased {
                state.runs.start(run, Some(user.0.clone()));
            }
            (run_id, RunStatus::Running, false)
        }
        Prepared::TooManyRunning(running) => {
            return Err(refused(state.quotas.too_many_running(&user.0, running)));
        }
        Prepared::Existing(run) => (run.run_id, run.status, true),
    };
    durable.await.map_err(weft::HostError::from)?;
    if !leased && !existing {
        state.runs.left_unleased();
    }
    Ok(Submitted {
        run_id,
        status,
        existing,
    })
}

/// How long a preview may take.
const PREVIEW_TIME: std::time::Duration = std::time::Duration::from_secs(30);

/// Run a preview for `user` and answer with it (200).
async fn preview(
    state: &AppState,
    user: &User,
    graph: &Graph,
    origin: &str,
    input: Value,
) -> ApiResult<Response> {
    let cancel = tokio_util::sync::CancellationToken::new();
    let deadline = cancel.clone();
    let timer = tokio::spawn(async move {
        tokio::time::sleep(PREVIEW_TIME).await;
        deadline.cancel();
    });
    let result = state
        .host
        .preview(graph, origin, input, Some(&user.0), &cancel)
        .await;
    timer.abort();
    let result = result?;
    let answer = Preview {
        status: result.status,
        nodes: result.nodes,
        outputs: result.outputs,
        previewed: result.previewed,
        failures: result
            .failures
            .into_iter()
            .map(|f| NodeError {
                node: f.node,
                status: f.status,
                error: f.error,
            })
            .collect(),
    };
    Ok((StatusCode::OK, Json(answer)).into_response())
}

/// The runs `user` may see, as a filter: what `visible_run` allows (their
/// own, and for the local user also those started from the CLI).
fn visible_to(user: &User) -> RunFilter {
    RunFilter {
        owner: Some(user.0.clone()),
        with_unowned: user.0 == LOCAL_USER,
        ..RunFilter::default()
    }
}

/// 429 with `Retry-After`, counted in the metrics.
pub(crate) fn too_many(state: &AppState, refusal: Refusal) -> ApiError {
    state.metrics.rejected(refusal.reason);
    ApiError::new(StatusCode::TOO_MANY_REQUESTS, refusal.message)
        .header(header::RETRY_AFTER, refusal.retry_after_s.to_string())
}

fn run_summary(run: &RunRecord) -> RunSummary {
    RunSummary {
        run_id: run.run_id.clone(),
        status: run.status,
        origin: run.origin.clone(),
        graph_name: run.graph_name.clone(),
        owner: run.owner.clone(),
        created_ms: run.created_ms,
        updated_ms: run.updated_ms,
    }
}

/// A run as the API shows it: summary, node states, outputs once finished,
/// and the errors of failed nodes.
fn run_view(stored: &StoredRun) -> RunView {
    let mut nodes = std::collections::BTreeMap::new();
    let mut outputs = serde_json::Map::new();
    let mut errors = Vec::new();
    // Instances (a map's elements, …) are counted on their node, not listed.
    let (own, mut counts) = weft::instance::split_instances(&stored.nodes);
    for n in own {
        if let Some(e) = &n.error {
            errors.push(NodeError {
                node: n.node.clone(),
                status: n.status,
                error: e.clone(),
            });
        }
        if let Some(out) = &n.output {
            outputs.insert(n.node.clone(), out.clone());
        }
        let view = NodeView {
            status: n.status,
            attempt: n.attempt,
            error: n.error.clone(),
            retry_at_ms: n.retry_at_ms,
            instances: counts.remove(&n.node),
        };
        nodes.insert(n.node.clone(), view);
    }
    RunView {
        summary: run_summary(&stored.run),
        nodes,
        outputs: (stored.run.status != RunStatus::Running).then_some(outputs),
        errors,
        events: stored.next_seq - 1,
    }
}

/// A run: every node's state, its outputs once it ended, and its errors.
#[utoipa::path(
    get, path = "/runs/{id}", tag = "runs",
    params(("id" = String, Path, description = "The run's id")),
    responses(
        (status = 200, description = "The run", body = RunView),
        (status = 404, description = "No such run (or another user's)", body = ErrorBody),
    )
)]
async fn get_run(
    State(state): State<AppState>,
    Extension(user): Extension<User>,
    Path(id): Path<String>,
) -> ApiResult<Json<RunView>> {
    Ok(Json(run_view(&load_visible(&state, &id, &user).await?)))
}

/// The graph a run executes, as submitted (with the saved graphs it uses
/// pinned in place), and its input: what the console draws.
#[utoipa::path(
    get, path = "/runs/{id}/graph", tag = "runs",
    params(("id" = String, Path, description = "The run's id")),
    responses(
        (status = 200, description = "The run's graph and input", body = RunGraph),
        (status = 404, description = "No such run (or another user's)", body = ErrorBody),
    )
)]
async fn run_graph(
    State(state): State<AppState>,
    Extension(user): Extension<User>,
    Path(id): Path<String>,
) -> ApiResult<Json<RunGraph>> {
    let stored = load_visible(&state, &id, &user).await?;
    let graph = serde_json::to_value(&stored.spec.graph).map_err(ApiError::internal)?;
    Ok(Json(RunGraph {
        graph,
        input: stored.spec.input,
    }))
}

/// The input one of a run's nodes was started with: its defaults and what
/// its dataflows brought, after their transforms (a retry starts with the
/// same). Nodes inside a compound node's body are not stored one by one.
#[utoipa::path(
    get, path = "/runs/{id}/nodes/{node}/input", tag = "runs",
    params(
        ("id" = String, Path, description = "The run's id"),
        ("node" = String, Path, description = "The node's id"),
    ),
    responses(
        (status = 200, description = "The node's input", body = NodeInputView),
        (status = 404, description = "No such run (or another user's), or the node has not started", body = ErrorBody),
    )
)]
async fn node_input(
    State(state): State<AppState>,
    Extension(user): Extension<User>,
    Path((id, node)): Path<(String, String)>,
) -> ApiResult<Json<NodeInputView>> {
    load_visible(&state, &id, &user).await?;
    match state.host.store().node_input(&id, &node).await? {
        Some(input) => Ok(Json(NodeInputView { input })),
        None => Err(ApiError::not_found(format!(
            "input of node `{node}` in run `{id}` (no such node, or it has not started)"
        ))),
    }
}

/// Delete one of your runs that has ended, with everything of it: its
/// events, node states and outputs, and its dead letters.
#[utoipa::path(
    delete, path = "/runs/{id}", tag = "runs",
    params(("id" = String, Path, description = "The run's id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such run (or another user's)", body = ErrorBody),
        (status = 409, description = "The run is still running: cancel it first", body = ErrorBody),
    )
)]
async fn delete_run(
    State(state): State<AppState>,
    Extension(user): Extension<User>,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let stored = load_visible(&state, &id, &user).await?;
    if stored.run.status == RunStatus::Running {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            format!("run `{id}` is running; cancel it first"),
        ));
    }
    state.host.store().delete_run(&id).await?;
    tracing::info!(run_id = %id, user = %user.0, "run deleted");
    Ok(StatusCode::NO_CONTENT)
}

/// Write a backup of the embedded store now, while the daemon serves (runs
/// go on meanwhile), into its backups folder (`[backup] dir`, default
/// `backups` in the data directory); the oldest beyond `[backup] keep` are
/// deleted. For operators only.
#[utoipa::path(
    post, path = "/store/backups", tag = "operations",
    responses(
        (status = 201, description = "Written", body = BackupWritten),
        (status = 403, description = "Not an operator", body = ErrorBody),
        (status = 409, description = "The store is PostgreSQL: use pg_dump", body = ErrorBody),
    )
)]
async fn write_backup(
    State(state): State<AppState>,
    Extension(user): Extension<User>,
) -> ApiResult<(StatusCode, Json<BackupWritten>)> {
    state.auth.operator(&user)?;
    let Some(backups) = &state.backups else {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "this daemon's store is not the embedded one: back PostgreSQL up with pg_dump",
        ));
    };
    let (path, bytes) = backups.write_one().await?;
    tracing::info!(backup = %path.display(), user = %user.0, "store backed up on request");
    let path = path.display().to_string();
    Ok((StatusCode::CREATED, Json(BackupWritten { path, bytes })))
}

/// The user's runs, newest first, a page at a time.
#[utoipa::path(
    get, path = "/runs", tag = "runs",
    params(RunsQuery),
    responses(
        (status = 200, description = "A page of runs", body = RunPage),
        (status = 400, description = "A query parameter is invalid", body = ErrorBody),
    )
)]
async fn list_runs(
    State(state): State<AppState>,
    Extension(user): Extension<User>,
    query: Result<Query<RunsQuery>, QueryRejection>,
) -> ApiResult<Json<RunPage>> {
    let q = parse_query(query)?;
    let limit = q.limit.unwrap_or(50).clamp(1, 1000);
    let filter = RunFilter {
        status: q.status,
        since_ms: q.since,
        graph: q.graph.clone(),
        ..visible_to(&user)
    };
    // One more than asked says whether there is a next page.
    let mut page = state
        .host
        .store()
        .runs_page(&filter, q.cursor.as_deref(), limit + 1)
        .await?;
    let more = page.len() > limit;
    page.truncate(limit);
    let next_cursor = more
        .then(|| page.last().map(|r| r.run_id.clone()))
        .flatten();
    Ok(Json(RunPage {
        runs: page.iter().map(run_summary).collect(),
        next_cursor,
    }))
}

/// Cancel a running run: running tasks are interrupted.
#[utoipa::path(
    post, path = "/runs/{id}/cancel", tag = "runs",
    params(("id" = String, Path, description = "The run's id")),
    responses(
        (status = 200, description = "The cancelled run", body = RunView),
        (status = 404, description = "No such run", body = ErrorBody),
        (status = 409, description = "The run already ended", body = ErrorBody),
    )
)]
async fn cancel_run(
    State(state): State<AppState>,
    Extension(user): Extension<User>,
    Path(id): Path<String>,
) -> ApiResult<Json<RunView>> {
    let stored = load_visible(&state, &id, &user).await?;
    if stored.run.status != RunStatus::Running {
        let status = serde_json::to_value(stored.run.status).unwrap_or_default();
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            format!("run `{id}` already ended ({status}); nothing to cancel"),
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
                    reason: Some(format!("cancelled by {}", user.0)),
                }],
            )
            .await?;
    }
    tracing::info!(run_id = %id, user = %user.0, "run cancelled");
    Ok(Json(run_view(&state.host.store().load_run(&id).await?)))
}

/// Every task type the daemon knows, with its schemas.
#[utoipa::path(
    get, path = "/tasks", tag = "catalog",
    responses((status = 200, description = "Task types", body = Vec<TaskTypeView>))
)]
async fn tasks(
    State(state): State<AppState>,
    Extension(user): Extension<User>,
) -> ApiResult<Json<Vec<TaskTypeView>>> {
    let registry = state.host.registry();
    let mut list: Vec<TaskTypeView> = registry.task_types().map(|t| task_view(t, None)).collect();
    // The user's saved graphs (and those shared with them), as node types.
    let store = state.host.store();
    for saved in graphs::list(store.as_ref(), &user).await? {
        let name = format!("{}{}", graphs::SAVED, saved.name);
        let Ok(graph) = graphs::expand(&state.host, &user, saved.graph).await else {
            continue;
        };
        let Ok(plan) = state.host.plan(&graph, &name) else {
            continue;
        };
        // One whose leaves give the same port has no single output type.
        if let Ok(t) = weft::graph::subgraph::task_type(&name, plan, None) {
            list.push(task_view(&t, Some((name, saved.version))));
        }
    }
    Ok(Json(list))
}

/// Task type `t` as listed; `saved`: the saved graph it is, and its version.
fn task_view(t: &weft::task::TaskType, saved: Option<(String, u32)>) -> TaskTypeView {
    use weft::graph::workglow::aliases_of;
    let (id, version, plugin) = match saved {
        Some((name, v)) => (name, v.to_string(), "saved graph".to_string()),
        None => (t.id.clone(), t.version.clone(), t.plugin.clone()),
    };
    TaskTypeView {
        id,
        version,
        title: t.title.clone(),
        category: t.category.clone(),
        description: t.description.clone(),
        input_schema: t.input.raw().clone(),
        output_schema: t.output.raw().clone(),
        side_effects: t.side_effects,
        cacheable: t.cacheable,
        timeout_ms: t.timeout.as_millis() as u64,
        plugin,
        aliases: aliases_of(&t.id).iter().map(|a| a.to_string()).collect(),
        ports: t.to_json()["ports"].take(),
    }
}

/// The plugins found, with their task types or why they failed to load.
#[utoipa::path(
    get, path = "/plugins", tag = "catalog",
    responses((status = 200, description = "Plugins", body = Vec<PluginView>))
)]
async fn plugins(State(state): State<AppState>) -> Json<Vec<PluginView>> {
    let list = state.host.plugins().into_iter().map(|p| PluginView {
        name: p.name,
        source: p.source,
        sha256: p.sha256,
        tasks: p.tasks,
        provider: p.provider,
        error: p.error,
    });
    Json(list.collect())
}

fn check_graph_name(name: &str) -> ApiResult<()> {
    if valid_graph_name(name) {
        Ok(())
    } else {
        Err(ApiError::unprocessable(format!(
            "graph name `{name}` must be 1-128 characters of A-Z, a-z, 0-9, `.`, `_`, `-`"
        )))
    }
}

/// Save a new version of one of your graphs (validated first). Saved
/// graphs belong to their user: each user has their own names. A save
/// counts against the submissions quota, like a run.
#[utoipa::path(
    put, path = "/graphs/{name}", tag = "graphs",
    params(("name" = String, Path, description = "1-128 characters of A-Z, a-z, 0-9, `.`, `_`, `-`")),
    request_body(content = Object, description = "The graph"),
    responses(
        (status = 201, description = "Saved", body = GraphSaved),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 422, description = "The name or the graph is invalid", body = ErrorBody),
        (status = 429, description = "Over the submissions quota; see the Retry-After header", body = ErrorBody),
    )
)]
async fn put_graph(
    State(state): State<AppState>,
    Extension(user): Extension<User>,
    Path(name): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Response> {
    check_graph_name(&name)?;
    let graph = Graph::from_value(parse_body(body)?, "request body")
        .map_err(|e| ApiError::unprocessable(e.to_string()))?;
    let refused = |refusal: Refusal| too_many(&state, refusal);
    state.quotas.admit(&user.0).await.map_err(refused)?;
    // Checked with the saved graphs it uses as they are now; kept as
    // written, so a run of it takes their versions of that time.
    let expanded = graphs::expand(&state.host, &user, graph.clone()).await?;
    state
        .host
        .plan(&expanded, &format!("graph {name}"))
        .map_err(|e| ApiError::from(HostError::Invalid(e)))?;
    let saved = graphs::save(state.host.store().as_ref(), &user, &name, graph).await?;
    Ok(created(saved))
}

/// 201 with the version just saved.
fn created(saved: weft::store::SavedGraph) -> Response {
    let answer = GraphSaved {
        name: saved.name,
        version: saved.version,
        saved_ms: saved.saved_ms,
    };
    (StatusCode::CREATED, Json(answer)).into_response()
}

/// One of your saved graphs: a version, or the newest.
#[utoipa::path(
    get, path = "/graphs/{name}", tag = "graphs",
    params(("name" = String, Path, description = "The graph's name"), VersionQuery),
    responses(
        (status = 200, description = "The graph", body = SavedGraphView),
        (status = 400, description = "A query parameter is invalid", body = ErrorBody),
        (status = 404, description = "No such graph or version", body = ErrorBody),
    )
)]
async fn get_graph(
    State(state): State<AppState>,
    Extension(user): Extension<User>,
    Path(name): Path<String>,
    query: Result<Query<VersionQuery>, QueryRejection>,
) -> ApiResult<Json<SavedGraphView>> {
    let q = parse_query(query)?;
    let saved = graphs::find(state.host.store().as_ref(), &user, &name, q.version)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("saved graph `{name}`")))?;
    Ok(Json(SavedGraphView {
        name: saved.name,
        version: saved.version,
        saved_ms: saved.saved_ms,
        owner: saved.owner,
        shared_with: saved.shared_with,
        graph: serde_json::to_value(saved.graph).unwrap_or_default(),
    }))
}

/// Share one of your saved graphs with other users, who may then read and
/// run it as `OWNER/NAME` (never change or delete it). Saved as a new
/// version of the same graph; later versions keep the list.
#[utoipa::path(
    put, path = "/graphs/{name}/sharing", tag = "graphs",
    params(("name" = String, Path, description = "The graph's name")),
    request_body = GraphSharing,
    responses(
        (status = 201, description = "Shared: the new version", body = GraphSaved),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 404, description = "No such graph of yours", body = ErrorBody),
        (status = 422, description = "A user name is invalid", body = ErrorBody),
    )
)]
async fn share_graph(
    State(state): State<AppState>,
    Extension(user): Extension<User>,
    Path(name): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Response> {
    check_graph_name(&name)?;
    let sharing: GraphSharing = parse_body(body)?;
    if sharing.users.len() > 1_000 {
        return Err(ApiError::unprocessable(
            "a graph is shared with at most 1,000 users",
        ));
    }
    if let Some(bad) = sharing.users.iter().find(|u| !valid_graph_name(u)) {
        return Err(ApiError::unprocessable(format!(
            "`{bad}` is not a user name (1-128 of A-Z, a-z, 0-9, `.`, `_`, `-`)"
        )));
    }
    let saved = graphs::share(state.host.store().as_ref(), &user, &name, sharing.users)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("saved graph `{name}`")))?;
    Ok(created(saved))
}

/// Delete every version of one of your saved graphs.
#[utoipa::path(
    delete, path = "/graphs/{name}", tag = "graphs",
    params(("name" = String, Path, description = "The graph's name")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such graph", body = ErrorBody),
    )
)]
async fn delete_graph(
    State(state): State<AppState>,
    Extension(user): Extension<User>,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    if graphs::delete(state.host.store().as_ref(), &user, &name).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!("saved graph `{name}`")))
    }
}

/// The newest version of each of your saved graphs.
#[utoipa::path(
    get, path = "/graphs", tag = "graphs",
    responses((status = 200, description = "Saved graphs", body = Vec<GraphListing>))
)]
async fn list_graphs(
    State(state): State<AppState>,
    Extension(user): Extension<User>,
) -> ApiResult<Json<Vec<GraphListing>>> {
    let own = graphs::list(state.host.store().as_ref(), &user).await?;
    let list = own.into_iter().map(|g| GraphListing {
        name: g.name,
        version: g.version,
        saved_ms: g.saved_ms,
        owner: g.owner,
        tasks: g.graph.tasks.len(),
    });
    Ok(Json(list.collect()))
}

/// The user's dead letters (failed nodes of failed runs), a page of failed
/// runs at a time, newest first.
#[utoipa::path(
    get, path = "/dead-letters", tag = "dead letters",
    params(DeadLettersQuery),
    responses(
        (status = 200, description = "A page of dead letters", body = DeadLetterPage),
        (status = 400, description = "A query parameter is invalid", body = ErrorBody),
    )
)]
async fn dead_letters(
    State(state): State<AppState>,
    Extension(user): Extension<User>,
    query: Result<Query<DeadLettersQuery>, QueryRejection>,
) -> ApiResult<Json<DeadLetterPage>> {
    let q = parse_query(query)?;
    let limit = q.limit.unwrap_or(50).clamp(1, 1000);
    let (letters, next_cursor) = state
        .host
        .dead_letters_page(&visible_to(&user), q.cursor.as_deref(), limit)
        .await?;
    let dead_letters = letters
        .into_iter()
        .map(|l| DeadLetterView {
            id: format!("{}:{}", l.run_id, l.node),
            run_id: l.run_id,
            node: l.node,
            task_type: l.task_type,
            attempts: l.attempts,
            errors: l.errors,
            failed_ms: l.failed_ms,
        })
        .collect();
    Ok(Json(DeadLetterPage {
        dead_letters,
        next_cursor,
    }))
}

/// Run a dead letter's node again (with a fresh retry budget), continuing
/// its run.
#[utoipa::path(
    post, path = "/dead-letters/{id}/retry", tag = "dead letters",
    params(("id" = String, Path, description = "`RUN_ID:NODE`")),
    responses(
        (status = 202, description = "Running again", body = Redriven),
        (status = 404, description = "No such dead letter", body = ErrorBody),
    )
)]
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
    let answer = Redriven {
        run_id: run_id.to_string(),
        node: node.to_string(),
        status: RunStatus::Running,
    };
    Ok((StatusCode::ACCEPTED, Json(answer)).into_response())
}

/// This document.
#[utoipa::path(
    get, path = "/openapi.json", tag = "meta",
    responses((status = 200, description = "The OpenAPI document", body = Object))
)]
async fn openapi_json() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], openapi_text()).into_response()
}

/// Liveness: the process answers.
#[utoipa::path(
    get, path = "/healthz", tag = "meta",
    responses((status = 200, description = "Alive", body = String, content_type = "text/plain"))
)]
async fn healthz() -> &'static str {
    "ok\n"
}

/// Readiness: plugins scanned and the store answers.
#[utoipa::path(
    get, path = "/readyz", tag = "meta",
    responses(
        (status = 200, description = "Ready", body = String, content_type = "text/plain"),
        (status = 503, description = "Starting, or the store is unavailable", body = ErrorBody),
    )
)]
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

/// Prometheus metrics (OpenMetrics text).
#[utoipa::path(
    get, path = "/metrics", tag = "meta",
    responses((status = 200, description = "Metrics", body = String,
               content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8"))
)]
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
        state
            .metrics
            .render(failures, state.host.plugin_host().http_stats()),
    )
        .into_response()
}
