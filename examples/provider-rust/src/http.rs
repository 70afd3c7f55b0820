//! Outgoing HTTP with the raw `wasi:http` bindings: one POST, and its
//! answer read whole or chunk by chunk.

use wasip2::http::outgoing_handler;
use wasip2::http::types::{
    Fields, IncomingBody, IncomingResponse, Method, OutgoingBody, OutgoingRequest, Scheme,
};
use wasip2::io::streams::{InputStream, StreamError};

use crate::weft::plugin::models::ModelError;

/// The most bytes written to an output stream at once (`wasi:io` allows 4096).
const WRITE_CHUNK: usize = 4096;

fn unavailable(what: &str, e: impl std::fmt::Debug) -> ModelError {
    ModelError::Unavailable(format!("{what}: {e:?}"))
}

/// A base URL: scheme, authority and path prefix.
pub struct Base {
    scheme: Scheme,
    authority: String,
    prefix: String,
}

impl Base {
    /// `http(s)://authority[/prefix]`.
    pub fn parse(url: &str) -> Result<Base, String> {
        let (scheme, rest) = match url.split_once("://") {
            Some(("http", rest)) => (Scheme::Http, rest),
            Some(("https", rest)) => (Scheme::Https, rest),
            _ => {
                return Err(format!(
                    "base_url `{url}` is not an http:// or https:// URL"
                ));
            }
        };
        let (authority, prefix) = match rest.find('/') {
            Some(i) => (&rest[..i], rest[i..].trim_end_matches('/')),
            None => (rest, ""),
        };
        if authority.is_empty() {
            return Err(format!("base_url `{url}` names no host"));
        }
        Ok(Base {
            scheme,
            authority: authority.to_string(),
            prefix: prefix.to_string(),
        })
    }

    /// POST `body` (JSON) to `path` under this base.
    pub fn post_json(
        &self,
        path: &str,
        bearer: Option<&str>,
        body: &[u8],
    ) -> Result<Response, ModelError> {
        let mut headers = vec![("content-type".to_string(), b"application/json".to_vec())];
        if let Some(key) = bearer {
            headers.push(("authorization".into(), format!("Bearer {key}").into_bytes()));
        }
        let fields = Fields::from_list(&headers).map_err(|e| unavailable("headers", e))?;
        let request = OutgoingRequest::new(fields);
        let refused = |e| unavailable("request", e);
        request
            .set_method(&Method::Post)
            .map_err(|_| refused("method"))?;
        request
            .set_scheme(Some(&self.scheme))
            .map_err(|_| refused("scheme"))?;
        request
            .set_authority(Some(&self.authority))
            .map_err(|_| refused("authority"))?;
        request
            .set_path_with_query(Some(&format!("{}{path}", self.prefix)))
            .map_err(|_| refused("path"))?;
        let outgoing = request.body().map_err(|_| refused("body"))?;
        let pending = outgoing_handler::handle(request, None)
            .map_err(|e| unavailable("the request failed", e))?;
        // A request the host refuses fails in its answer (and its body is
        // closed): say the refusal, not the closed body.
        let sent = send(outgoing, body);
        pending.subscribe().block();
        let response = pending
            .get()
            .ok_or_else(|| ModelError::Unavailable("no response".into()))?
            .map_err(|e| unavailable("response", e))?
            .map_err(|e| unavailable("the request failed", e))?;
        sent?;
        Response::new(response)
    }
}

/// Write `bytes` as the whole of a request's body.
fn send(outgoing: OutgoingBody, bytes: &[u8]) -> Result<(), ModelError> {
    {
        let stream = outgoing
            .write()
            .map_err(|e| unavailable("body stream", e))?;
        for chunk in bytes.chunks(WRITE_CHUNK) {
            stream
                .blocking_write_and_flush(chunk)
                .map_err(|e| unavailable("sending the body", e))?;
        }
    }
    OutgoingBody::finish(outgoing, None).map_err(|e| unavailable("finishing the body", e))
}

/// An answer being read. Fields drop in order: the stream before the body
/// it belongs to, the body before its response.
pub struct Response {
    pub status: u16,
    /// A `Retry-After` in seconds, as milliseconds.
    pub retry_after_ms: Option<u64>,
    stream: InputStream,
    _body: IncomingBody,
    _response: IncomingResponse,
}

impl Response {
    fn new(response: IncomingResponse) -> Result<Self, ModelError> {
        let status = response.status();
        let retry_after_ms = response
            .headers()
            .get("retry-after")
            .first()
            .and_then(|v| std::str::from_utf8(v).ok()?.trim().parse::<u64>().ok())
            .map(|s| s * 1000);
        let body = response.consume().map_err(|e| unavailable("body", e))?;
        let stream = body.stream().map_err(|e| unavailable("body stream", e))?;
        Ok(Response {
            status,
            retry_after_ms,
            stream,
            _body: body,
            _response: response,
        })
    }

    /// The next bytes of the body as they arrive; `None` at its end.
    pub fn read_chunk(&mut self) -> Result<Option<Vec<u8>>, ModelError> {
        match self.stream.blocking_read(64 << 10) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(StreamError::Closed) => Ok(None),
            Err(StreamError::LastOperationFailed(e)) => Err(unavailable(
                "reading the answer",
                wasip2::http::types::http_error_code(&e),
            )),
        }
    }

    /// The whole body as text, at most `limit` bytes of it.
    pub fn text(mut self, limit: usize) -> Result<String, ModelError> {
        let mut bytes = Vec::new();
        while bytes.len() < limit {
            match self.read_chunk()? {
                Some(chunk) => bytes.extend(chunk),
                None => break,
            }
        }
        bytes.truncate(limit);
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }

    /// The whole body as JSON (at most 64 MiB).
    pub fn json<T: serde::de::DeserializeOwned>(mut self) -> Result<T, ModelError> {
        let mut bytes = Vec::new();
        while let Some(chunk) = self.read_chunk()? {
            bytes.extend(chunk);
            if bytes.len() > 64 << 20 {
                return Err(ModelError::Unavailable("the answer is over 64 MiB".into()));
            }
        }
        serde_json::from_slice(&bytes)
            .map_err(|e| ModelError::Unavailable(format!("malformed answer from the API: {e}")))
    }
}
