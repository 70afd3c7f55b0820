//! One HTTP request over `wasi:http`, its answer read whole (the host caps
//! its size).

use std::collections::BTreeMap;

use wasip2::http::outgoing_handler;
use wasip2::http::types::{
    Fields, IncomingBody, Method, OutgoingBody, OutgoingRequest, RequestOptions, Scheme,
};
use wasip2::io::streams::StreamError;
use weft_sdk::TaskError;

/// The most bytes written to an output stream at once.
const WRITE_CHUNK: usize = 4096;

pub struct Response {
    pub status: u16,
    /// Lower-case names; repeated headers joined with `, `.
    pub headers: BTreeMap<String, String>,
    pub body: Vec<u8>,
    pub retry_after_ms: Option<u64>,
}

fn failed(what: &str, e: impl std::fmt::Debug) -> TaskError {
    TaskError::failed(format!("{what}: {e:?}"))
}

/// `scheme://authority/path?query` in parts.
fn split(url: &str) -> Result<(Scheme, &str, &str), TaskError> {
    let (scheme, rest) = match url.split_once("://") {
        Some(("http", rest)) => (Scheme::Http, rest),
        Some(("https", rest)) => (Scheme::Https, rest),
        _ => {
            return Err(TaskError::invalid_input(format!(
                "`{url}` is not an http:// or https:// URL"
            )));
        }
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    if authority.is_empty() || authority.contains('@') {
        return Err(TaskError::invalid_input(format!(
            "`{url}`: a URL needs a host and may carry no user name or password"
        )));
    }
    let path = tail.split('#').next().unwrap_or_default();
    Ok((scheme, authority, if path.is_empty() { "/" } else { path }))
}

pub fn send(
    method: &str,
    url: &str,
    headers: &BTreeMap<String, String>,
    body: Option<&str>,
    timeout_ms: Option<u64>,
) -> Result<Response, TaskError> {
    let (scheme, authority, path) = split(url)?;
    let list: Vec<(String, Vec<u8>)> = headers
        .iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v.clone().into_bytes()))
        .collect();
    let fields = Fields::from_list(&list)
        .map_err(|e| TaskError::invalid_input(format!("headers: {e:?}")))?;
    let request = OutgoingRequest::new(fields);
    let method = match method {
        "GET" => Method::Get,
        "POST" => Method::Post,
        "PUT" => Method::Put,
        "DELETE" => Method::Delete,
        _ => Method::Patch,
    };
    let set = |ok: Result<(), ()>, what: &str| {
        ok.map_err(|_| TaskError::invalid_input(format!("`{url}`: bad {what}")))
    };
    set(request.set_method(&method), "method")?;
    set(request.set_scheme(Some(&scheme)), "scheme")?;
    set(request.set_authority(Some(authority)), "host")?;
    set(request.set_path_with_query(Some(path)), "path")?;
    let options = timeout_ms.map(|ms| {
        let options = RequestOptions::new();
        let ns = ms.saturating_mul(1_000_000);
        let _ = options.set_connect_timeout(Some(ns));
        let _ = options.set_first_byte_timeout(Some(ns));
        let _ = options.set_between_bytes_timeout(Some(ns));
        options
    });
    let outgoing = request.body().map_err(|e| failed("body", e))?;
    let pending = outgoing_handler::handle(request, options).map_err(|e| refused(url, e))?;
    let sent = write(outgoing, body.unwrap_or_default().as_bytes());
    pending.subscribe().block();
    let response = pending
        .get()
        .ok_or_else(|| TaskError::failed("no response"))?
        .map_err(|e| failed("response", e))?
        .map_err(|e| refused(url, e))?;
    sent?;
    let status = response.status();
    let mut headers: BTreeMap<String, String> = BTreeMap::new();
    for (name, value) in response.headers().entries() {
        let value = String::from_utf8_lossy(&value).into_owned();
        headers
            .entry(name.to_ascii_lowercase())
            .and_modify(|v| {
                v.push_str(", ");
                v.push_str(&value);
            })
            .or_insert(value);
    }
    let retry_after_ms = headers
        .get("retry-after")
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(|s| s * 1000);
    let incoming = response.consume().map_err(|e| failed("body", e))?;
    let body = read(&incoming)?;
    drop(incoming);
    Ok(Response {
        status,
        headers,
        body,
        retry_after_ms,
    })
}

/// What the host said when it refused or could not send.
fn refused(url: &str, e: impl std::fmt::Debug) -> TaskError {
    let code = format!("{e:?}");
    let why = if code.contains("HttpRequestDenied") {
        "no `[fetch] origins` grant of the operator covers it".to_string()
    } else if code.contains("DestinationIpProhibited") {
        "it is (or resolves to) an address that is not public (loopback, private, link-local…)"
            .to_string()
    } else {
        code
    };
    TaskError::failed(format!("cannot fetch `{url}`: {why}"))
}

fn write(outgoing: OutgoingBody, bytes: &[u8]) -> Result<(), TaskError> {
    {
        let stream = outgoing.write().map_err(|e| failed("body stream", e))?;
        for chunk in bytes.chunks(WRITE_CHUNK) {
            stream
                .blocking_write_and_flush(chunk)
                .map_err(|e| failed("sending the body", e))?;
        }
    }
    OutgoingBody::finish(outgoing, None).map_err(|e| failed("finishing the body", e))
}

fn read(incoming: &IncomingBody) -> Result<Vec<u8>, TaskError> {
    let stream = incoming.stream().map_err(|e| failed("body stream", e))?;
    let mut bytes = Vec::new();
    loop {
        match stream.blocking_read(64 << 10) {
            Ok(chunk) => bytes.extend(chunk),
            Err(StreamError::Closed) => return Ok(bytes),
            Err(StreamError::LastOperationFailed(e)) => {
                let code = wasip2::http::types::http_error_code(&e);
                return Err(failed("reading the answer", code));
            }
        }
    }
}
