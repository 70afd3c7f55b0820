//! `POST /v1/validate`: a graph (and a run input) checked as a submission
//! would check them, without running or recording anything, answered with
//! every problem and where it is (a node, a dataflow, the graph), for an
//! editor to mark. An invalid graph is a successful answer here: the
//! problems are the result.

use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::{Extension, Json};
use serde_json::Value;

use super::AppState;
use super::auth::User;
use super::error::ApiError;
use super::graphs::{self, ExpandError};
use crate::types::{ErrorBody, Problem, ValidateRequest, Validation};
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
    let graph = match graphs::expand(state.host.store().as_ref(), &user, graph).await {
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
