//! `net.get`: an HTTP GET through `wasi:http/outgoing-handler`, with the
//! raw WASI bindings (`wasip2`): the response's status and body, or the
//! host's refusal as the task's error.
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use wasip2::http::outgoing_handler;
use wasip2::http::types::{
    Fields, IncomingResponse, Method, OutgoingBody, OutgoingRequest, Scheme,
};
use wasip2::io::streams::StreamError;
use weft_sdk::{Context, TaskDef, TaskError};

#[derive(Deserialize, JsonSchema)]
struct Get {
    /// `http://host[:port]/path` or `https://…`.
    url: String,
}

#[derive(Serialize, JsonSchema)]
struct Got {
    status: u16,
    body: String,
}

fn failed(what: &str, e: impl std::fmt::Debug) -> TaskError {
    TaskError::failed(format!("{what}: {e:?}"))
}

fn get(input: Get, _: &Context) -> Result<Got, TaskError> {
    let (scheme, rest) = match input.url.split_once("://") {
        Some(("http", rest)) => (Scheme::Http, rest),
        Some(("https", rest)) => (Scheme::Https, rest),
        Some((other, rest)) => (Scheme::Other(other.to_string()), rest),
        None => return Err(TaskError::invalid_input("not a URL")),
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let request = OutgoingRequest::new(Fields::new());
    request
        .set_method(&Method::Get)
        .map_err(|e| failed("method", e))?;
    request
        .set_scheme(Some(&scheme))
        .map_err(|e| failed("scheme", e))?;
    request
        .set_authority(Some(authority))
        .map_err(|e| failed("authority", e))?;
    request
        .set_path_with_query(Some(path))
        .map_err(|e| failed("path", e))?;
    let body = request.body().map_err(|e| failed("body", e))?;
    let pending = outgoing_handler::handle(request, None).map_err(|e| failed("refused", e))?;
    OutgoingBody::finish(body, None).map_err(|e| failed("finish", e))?;
    pending.subscribe().block();
    let response: IncomingResponse = pending
        .get()
        .ok_or_else(|| TaskError::failed("no response"))?
        .map_err(|e| failed("response", e))?
        .map_err(|e| failed("refused", e))?;
    let status = response.status();
    let incoming = response.consume().map_err(|e| failed("consume", e))?;
    let stream = incoming.stream().map_err(|e| failed("stream", e))?;
    let mut bytes = Vec::new();
    loop {
        match stream.blocking_read(64 << 10) {
            Ok(chunk) => bytes.extend(chunk),
            Err(StreamError::Closed) => break,
            Err(StreamError::LastOperationFailed(e)) => {
                let code = wasip2::http::types::http_error_code(&e);
                return Err(failed("reading the body", code));
            }
        }
    }
    Ok(Got {
        status,
        body: String::from_utf8_lossy(&bytes).into_owned(),
    })
}

fn tasks() -> Vec<TaskDef> {
    vec![TaskDef::new("net.get", get).side_effects()]
}

weft_sdk::export_plugin!(tasks);
