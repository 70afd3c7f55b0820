//! What a graph editor asks of the daemon, without running or recording
//! anything:
//!
//! - `POST /v1/validate`: a graph (and a run input) checked as a submission
//!   would check them, answered with every problem and where it is (a node,
//!   a dataflow, the graph), for the editor to mark. An invalid graph is a
//!   successful answer here: the problems are the result.
//! - `POST /v1/convert`: a graph in Weft's JSON or Workglow's (either of its
//!   forms) written in Weft's or Workglow's, for import and export.

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{Query, State};
use axum::{Extension, Json};
use serde_json::Value;

use super::AppState;
use super::auth::User;
use super::error::ApiError;
use super::graphs::{self, ExpandError};
use crate::types::{
    ConvertQuery, Converted, ErrorBody, GraphFormat, Problem, ValidateRequest, Validation,
};
use weft::HostError;
use weft::graph::{Graph, Place, ValidationError};

/// Check a graph and a run input as a submission would, without running
/// or recording anything: every problem, each with where it is.
#[utoipa::path(
    post, path = "/validate", tag = "graphs",
    request_body = ValidateRequest,
    responses(
        (status = 200, description = "The graph's problems (none when it is valid)", body = Validation),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 422, description = "The body is not `{graph, input}`", body = ErrorBody),
    )
)]
pub(crate) async fn validate(
    State(state): State<AppState>,
    Extension(user): Extension<User>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Validation>, ApiError> {
    let body: ValidateRequest = super::api::parse_body(body)?;
    let graph = match Graph::from_value(body.graph, "graph") {
        Ok(graph) => graph,
        Err(e) => return Ok(Json(Validation::of(vec![Problem::unplaced(e)]))),
    };
    let graph = match graphs::expand(&state.host, &user, graph).await {
        Ok(graph) => graph,
        Err(ExpandError::Store(e)) => return Err(ApiError::internal(e)),
        Err(e) => return Ok(Json(Validation::of(vec![Problem::unplaced(e)]))),
    };
    let input = body
        .input
        .unwrap_or_else(|| Value::Object(Default::default()));
    let problems = match state.host.check(&graph, "graph", &input, Some(&user.0)) {
        Ok(()) => Vec::new(),
        Err(HostError::Invalid(errors)) => errors.errors.iter().map(Problem::placed).collect(),
        Err(e @ (HostError::Store(_) | HostError::RunLog(_))) => return Err(e.into()),
        Err(e) => vec![Problem::unplaced(e)],
    };
    Ok(Json(Validation::of(problems)))
}

/// A graph in Weft's JSON or in Workglow's (its `toJSON()` or
/// `toDependencyJSON()` form), written in the format asked for: what an
/// editor imports and exports.
#[utoipa::path(
    post, path = "/convert", tag = "graphs",
    params(ConvertQuery),
    request_body(content = Object, description = "The graph, in Weft's or Workglow's JSON"),
    responses(
        (status = 200, description = "The same graph in the format asked for", body = Converted),
        (status = 400, description = "Malformed JSON, or `to` is not a format", body = ErrorBody),
        (status = 422, description = "Not a graph, or one with no form in that format", body = ErrorBody),
    )
)]
pub(crate) async fn convert(
    query: Result<Query<ConvertQuery>, QueryRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Converted>, ApiError> {
    let to = super::api::parse_query(query)?.to;
    let value: Value = super::api::parse_body(body)?;
    let graph = Graph::from_value(value, "request body")
        .map_err(|e| ApiError::unprocessable(e.to_string()))?;
    let graph = match to {
        GraphFormat::Weft => serde_json::to_value(&graph).map_err(ApiError::internal)?,
        GraphFormat::Workglow => weft::graph::workglow::from_weft(&graph)
            .map_err(|e| ApiError::unprocessable(format!("no Workglow form: {e}")))?,
    };
    Ok(Json(Converted { graph }))
}

impl Validation {
    fn of(problems: Vec<Problem>) -> Self {
        Validation {
            valid: problems.is_empty(),
            problems,
        }
    }
}

impl Problem {
    fn unplaced(e: impl std::fmt::Display) -> Self {
        Problem {
            message: e.to_string(),
            task: None,
            dataflow: None,
            nodes: Vec::new(),
        }
    }

    fn placed(e: &ValidationError) -> Self {
        let mut problem = Problem::unplaced(e);
        match e.place() {
            Place::Task(i) => problem.task = Some(i),
            Place::Dataflow(i) => problem.dataflow = Some(i),
            Place::Nodes(nodes) => problem.nodes = nodes,
            _ => {}
        }
        problem
    }
}
