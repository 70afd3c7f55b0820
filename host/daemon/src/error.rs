//! Error answers: a status and an [`ErrorBody`] (`{"error": message}`),
//! with headers such as `Retry-After` or `WWW-Authenticate`. Every refusal
//! of the API, its middleware and its fallbacks is one of these; this module
//! must not know which handler made it.

use axum::Json;
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use weft::HostError;
use weft::store::{RunLogError, StoreError};

use crate::types::ErrorBody;

/// An error answer.
#[derive(Debug)]
pub(crate) struct ApiError {
    status: StatusCode,
    body: ErrorBody,
    headers: Vec<(HeaderName, String)>,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            body: ErrorBody {
                error: message.into(),
                errors: None,
            },
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

    /// The answer's message.
    pub(crate) fn message(&self) -> &str {
        &self.body.error
    }

    pub(crate) fn not_found(what: impl std::fmt::Display) -> Self {
        ApiError::new(StatusCode::NOT_FOUND, format!("no {what}"))
    }

    pub(crate) fn bad_request(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }

    pub(crate) fn unprocessable(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, message)
    }

    pub(crate) fn internal(e: impl std::fmt::Display) -> Self {
        tracing::error!(error = %e, "request failed");
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, Json(self.body)).into_response();
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
        ApiError::internal(e)
    }
}

impl From<crate::graphs::ExpandError> for ApiError {
    fn from(e: crate::graphs::ExpandError) -> Self {
        match e {
            crate::graphs::ExpandError::Store(e) => ApiError::internal(e),
            e => ApiError::unprocessable(format!("graph: {e}")),
        }
    }
}

impl From<RunLogError> for ApiError {
    fn from(e: RunLogError) -> Self {
        match e {
            RunLogError::UnknownRun(id) => ApiError::not_found(format!("run `{id}`")),
            e => ApiError::internal(e),
        }
    }
}

impl From<HostError> for ApiError {
    fn from(e: HostError) -> Self {
        match e {
            HostError::Invalid(errors) => {
                let list: Vec<String> = errors
                    .errors
                    .iter()
                    .map(|e| format!("{}: {e}", errors.origin))
                    .collect();
                let n = list.len();
                let mut answer = ApiError::unprocessable(format!(
                    "{} is invalid ({n} problem{})",
                    errors.origin,
                    if n == 1 { "" } else { "s" }
                ));
                answer.body.errors = Some(list);
                answer
            }
            HostError::Store(e) => e.into(),
            HostError::RunLog(e) => e.into(),
            e @ HostError::NotGranted { .. } => ApiError::unprocessable(e.to_string()),
            e @ HostError::AlreadyFinished { .. } => {
                ApiError::new(StatusCode::CONFLICT, e.to_string())
            }
            e @ HostError::NotDeadLetter { .. } => ApiError::not_found_message(e.to_string()),
            e => ApiError::internal(e),
        }
    }
}

impl ApiError {
    fn not_found_message(message: String) -> Self {
        ApiError::new(StatusCode::NOT_FOUND, message)
    }
}
